//! `sites`: A site. Desired-state resource; `status` is the site_status phase.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sites")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub slug: String,
    pub primary_environment_id: Option<String>,
    pub reset_requested_at: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    pub status: String,
    pub conditions: String,
    pub state_version: i64,
    pub deletion_requested_at: Option<String>,
    pub reconcile_attempts: i64,
    pub last_error_code: Option<String>,
    pub observed: Option<String>,
    pub observed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
