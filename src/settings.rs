//! Installation-wide settings: the known keys, their defaults and cross-field rules. Values live in
//! the `settings` table; secret values live encrypted in the secret store and the settings row only
//! references them.
use sea_orm::ConnectionTrait;

use crate::store::{self, StoreError};

pub const DEFAULT_BACKUP_LOCAL_DIR: &str = "/var/backups/pressluft";
pub const DEFAULT_FRESH_WINDOW_MINUTES: i64 = 60;
pub const DEFAULT_ACME_DIRECTORY_URL: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const DEFAULT_TLS_RENEW_BEFORE_DAYS: i64 = 30;
/// Release directories kept per environment (never fewer than the current and the previous).
pub const DEFAULT_RELEASES_KEEP: i64 = 5;
/// Where updates of core, plugins and themes come from on the nodes (offline source).
pub const DEFAULT_UPDATE_SOURCE_DIR: &str = "/var/lib/pressluft/updates";

/// Keys whose values are secrets.
pub const SECRET_KEYS: [&str; 2] = ["dns01_credentials_json", "backup_s3_secret_access_key"];

pub fn secret_id(key: &str) -> String {
    format!("setting/{key}")
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Incomplete(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SettingsError> for crate::api::error::ApiError {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::Incomplete(m) => crate::api::error::ApiError::Conflict(m),
            SettingsError::Store(s) => s.into(),
        }
    }
}

/// Where new backups go.
#[derive(Debug, Clone)]
pub struct BackupStorage {
    pub storage_type: &'static str,
    /// Directory (`local`) or key prefix (`s3`) below which backups are stored.
    pub base: String,
}

pub async fn backup_storage(db: &impl ConnectionTrait) -> Result<BackupStorage, SettingsError> {
    let all = store::settings::all(db).await?;
    match all.get("backup_storage_type").map(String::as_str) {
        None | Some("local") => Ok(BackupStorage {
            storage_type: "local",
            base: all
                .get("backup_local_dir")
                .cloned()
                .unwrap_or_else(|| DEFAULT_BACKUP_LOCAL_DIR.to_string()),
        }),
        Some("s3") => {
            for k in [
                "backup_s3_endpoint",
                "backup_s3_bucket",
                "backup_s3_access_key_id",
                "backup_s3_secret_access_key",
            ] {
                if !all.contains_key(k) {
                    return Err(SettingsError::Incomplete(format!(
                        "backup storage is s3 but {k} is not set"
                    )));
                }
            }
            Ok(BackupStorage {
                storage_type: "s3",
                base: all
                    .get("backup_s3_path_prefix")
                    .cloned()
                    .unwrap_or_default(),
            })
        }
        Some(other) => Err(SettingsError::Store(StoreError::Corrupt(format!(
            "unknown backup_storage_type {other}"
        )))),
    }
}
