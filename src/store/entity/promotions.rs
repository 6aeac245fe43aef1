//! `promotions`: A promotion of a non-production environment to production. Desired-state resource; `status` is the operation_status.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promotions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub source_environment_id: String,
    pub target_environment_id: String,
    pub promotion_preset: String,
    pub drift_check_id: Option<String>,
    pub pre_backup_id: Option<String>,
    pub finished_at: Option<String>,
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
    /// The node's report (tables synced/protected, files, release) or of its rollback.
    pub result_json: Option<String>,
    /// The `promotion` release declared on production.
    pub release_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
