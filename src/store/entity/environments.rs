//! `environments`: An environment of a site. Desired-state resource; `status` is the environment phase (site_status values).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "environments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub site_id: String,
    pub name: String,
    pub slug: String,
    pub environment_type: String,
    pub node_id: String,
    pub source_environment_id: Option<String>,
    pub promotion_preset: String,
    pub preview_url: String,
    pub primary_domain_id: Option<String>,
    pub desired_release_id: Option<String>,
    pub current_release_id: Option<String>,
    pub wp_admin_login: String,
    pub drift_baseline_id: Option<String>,
    pub drift_status: String,
    pub drift_checked_at: Option<String>,
    pub last_drift_check_id: Option<String>,
    pub fastcgi_cache_enabled: bool,
    pub redis_cache_enabled: bool,
    pub fastcgi_cache_ttl_seconds: i64,
    pub update_scope: Option<String>,
    pub update_requested_at: Option<String>,
    pub cache_purge_requested_at: Option<String>,
    pub drift_check_requested_at: Option<String>,
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
    /// Temporary clones: when this passes, the environment loop requests the deletion.
    pub expires_at: Option<String>,
    /// The generation whose only change was the declaration of a release (deploy, rollback,
    /// update request): it needs the release work, not a converge.
    pub release_generation: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
