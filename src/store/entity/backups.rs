//! `backups`: A backup of an environment. Desired-state resource; `status` is the backup_status.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment_id: String,
    pub backup_scope: String,
    pub storage_type: String,
    pub storage_path: String,
    pub retention_until: String,
    pub checksum: Option<String>,
    pub size_bytes: Option<i64>,
    pub completed_at: Option<String>,
    pub deleted_at: Option<String>,
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
    /// operator, schedule, pre_restore, drill, gate.
    pub reason: String,
    pub schedule_id: Option<String>,
    /// The manifest the node reported (JSON): artifacts with size and SHA-256, versions.
    pub manifest: Option<String>,
    /// When a restore drill last proved this backup restorable.
    pub verified_at: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
