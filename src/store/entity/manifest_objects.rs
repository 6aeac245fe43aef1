//! `manifest_objects`: the resource a manifest name stands for, the apply set that last applied
//! it, and its labels. Written by `POST /api/apply` only.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "manifest_objects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// The site's slug for site-scoped kinds, else empty.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub resource_id: String,
    pub apply_set: Option<String>,
    /// JSON object of strings.
    pub labels: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
