//! `events`: Something that happened to a resource, for people (`reason` is one CamelCase word).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub site_id: Option<String>,
    pub environment_id: Option<String>,
    pub reason: String,
    pub message: String,
    pub created_at: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
