//! `releases`: A release directory of an environment (`releases/<id>/` on the node). Immutable
//! except `health_status`, `notes`, `details` and `deployed_at`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "releases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment_id: String,
    pub source_type: String,
    pub source_ref: String,
    pub path: String,
    pub health_status: String,
    pub notes: Option<String>,
    pub created_at: String,
    /// JSON: files added/changed/removed against the release it replaced, component versions.
    pub details: Option<String>,
    /// When it last became the environment's `current`.
    pub deployed_at: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
