//! `imports`: An import of an archive into an environment. Desired-state resource; `status` is the operation_status.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "imports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment_id: String,
    pub archive_url: String,
    pub pre_backup_id: Option<String>,
    pub release_id: Option<String>,
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
    /// The archive's pinned SHA-256 (hex), if declared.
    pub sha256: Option<String>,
    /// The URL the site was served on (rewritten to the environment's); else meta.json's or the
    /// dump's `home`.
    pub source_url: Option<String>,
    /// The dump's table prefix, if declared (else meta.json's, else derived from the dump).
    pub table_prefix: Option<String>,
    /// What the node reported (JSON).
    pub result_json: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
