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
    /// `archive` or `ssh` (an adoption: the site is read over SSH from `ssh_user@ssh_host:source_path`).
    pub source_type: String,
    pub ssh_host: Option<String>,
    pub ssh_port: Option<i32>,
    pub ssh_user: Option<String>,
    /// The WordPress root on the source.
    pub source_path: Option<String>,
    /// The source's SSH host key (`ssh-ed25519 AAAA…`), pinned when the adoption was declared.
    pub source_host_key: Option<String>,
    /// What the dry run found on the source (JSON).
    pub report: Option<String>,
    /// A separate dump (`.sql` / `.sql.gz`) and wp-content tarball instead of one archive (then
    /// `archive_url` is empty), each with its optional pinned SHA-256.
    pub database_url: Option<String>,
    pub database_sha256: Option<String>,
    pub content_url: Option<String>,
    pub content_sha256: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
