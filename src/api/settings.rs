//! Settings: read (secrets redacted) and change (validated as a whole, then stored).
use std::collections::BTreeMap;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};

use super::auth::Auth;
use super::error::ApiError;
use super::text::Text;
use super::write::Write;
use super::{state, validate, Tag};
use crate::error_response;
use crate::settings::{self as keys, secret_id, SECRET_KEYS};
use crate::store;

/// Settings as they read back: secret values are never returned, only whether they are set.
#[derive(Debug, Object)]
pub struct Settings {
    pub control_plane_domain: Option<String>,
    pub preview_domain: Option<String>,
    pub dns01_provider: Option<String>,
    pub dns01_credentials_set: bool,
    /// `local` (default) or `s3`. With `local`, backups are not off-site.
    pub backup_storage_type: String,
    pub backup_local_dir: String,
    pub backup_s3_endpoint: Option<String>,
    pub backup_s3_bucket: Option<String>,
    pub backup_s3_region: Option<String>,
    pub backup_s3_path_prefix: Option<String>,
    pub backup_s3_force_path_style: bool,
    pub backup_s3_access_key_id: Option<String>,
    pub backup_s3_secret_access_key_set: bool,
    pub backup_fresh_window_minutes: i64,
    /// Imports: the largest archive accepted (bytes; default 20 GiB).
    pub import_max_bytes: i64,
    /// ACME directory for domain certificates (Let's Encrypt production by default; staging or
    /// any other ACME server such as a local test server).
    pub acme_directory_url: String,
    /// Account e-mail given to the ACME server (expiry notices); none when unset.
    pub acme_email: Option<String>,
    /// Path, on the nodes, of a CA bundle to trust for the ACME server's own HTTPS (test servers).
    pub acme_ca_file: Option<String>,
    /// `IP:PORT` of the DNS server asked whether a domain points at its node (default: the
    /// system resolver).
    pub dns_resolver: Option<String>,
    /// Certificates are renewed when fewer days than this remain (default 30).
    pub tls_renew_before_days: i64,
    /// Release directories kept per environment (2 … 100, default 5); the current and the
    /// previous release are never removed.
    pub releases_keep: i64,
    /// Directory on the nodes holding the update source: `core/` (a WordPress tree),
    /// `plugins/<slug>/`, `themes/<slug>/` (default /var/lib/pressluft/updates).
    pub update_source_dir: String,
}

/// A change of settings: absent fields stay, `null` clears a setting.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SettingsChange {
    pub control_plane_domain: MaybeUndefined<Text>,
    pub preview_domain: MaybeUndefined<Text>,
    pub dns01_provider: MaybeUndefined<Text>,
    /// Provider credentials as a JSON object; write-only.
    pub dns01_credentials_json: MaybeUndefined<Text>,
    pub backup_storage_type: MaybeUndefined<Text>,
    pub backup_local_dir: MaybeUndefined<Text>,
    pub backup_s3_endpoint: MaybeUndefined<Text>,
    pub backup_s3_bucket: MaybeUndefined<Text>,
    pub backup_s3_region: MaybeUndefined<Text>,
    pub backup_s3_path_prefix: MaybeUndefined<Text>,
    pub backup_s3_force_path_style: MaybeUndefined<bool>,
    pub backup_s3_access_key_id: MaybeUndefined<Text>,
    /// Write-only.
    pub backup_s3_secret_access_key: MaybeUndefined<Text>,
    pub backup_fresh_window_minutes: MaybeUndefined<i64>,
    pub import_max_bytes: MaybeUndefined<i64>,
    pub acme_directory_url: MaybeUndefined<Text>,
    pub acme_email: MaybeUndefined<Text>,
    pub acme_ca_file: MaybeUndefined<Text>,
    pub dns_resolver: MaybeUndefined<Text>,
    pub tls_renew_before_days: MaybeUndefined<i64>,
    pub releases_keep: MaybeUndefined<i64>,
    pub update_source_dir: MaybeUndefined<Text>,
}

error_response!(GetError { Unauthorized = 401 });
error_response!(WriteError { BadRequest = 400, Unauthorized = 401, Forbidden = 403 });

pub struct SettingsApi;

#[OpenApi(prefix_path = "/settings", tag = "Tag::Settings")]
impl SettingsApi {
    /// Read the settings; secrets are redacted.
    #[oai(path = "/", method = "get", operation_id = "getSettings")]
    async fn get(&self, req: &Request, _auth: Auth) -> Result<Json<Settings>, GetError> {
        let st = state(req)?;
        let all = store::settings::all(&st.db).await.map_err(ApiError::from)?;
        Ok(Json(render(&all)))
    }

    /// Change settings. The result must be complete as a whole (e.g. `s3` storage needs its
    /// endpoint, bucket and keys; a preview domain needs DNS-01 credentials).
    #[oai(path = "/", method = "patch", operation_id = "updateSettings")]
    async fn update(
        &self,
        req: &Request,
        auth: Auth,
        body: Json<SettingsChange>,
    ) -> Result<Json<Settings>, WriteError> {
        let st = state(req)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let all = update_settings_in(&mut w, body.0).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(Json(render(&all)))
    }
}

/// Validates a change of the settings as a whole and stores it; the resulting settings.
pub(crate) async fn update_settings_in(
    w: &mut Write<'_>,
    c: SettingsChange,
) -> Result<BTreeMap<String, String>, ApiError> {
    let tx = w.tx;
    let mut all = store::settings::all(tx).await.map_err(ApiError::from)?;
    let mut secrets: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let set = |all: &mut BTreeMap<String, String>, key: &str, v: Option<String>| match v {
        Some(v) => {
            all.insert(key.to_string(), v);
        }
        None => {
            all.remove(key);
        }
    };
    macro_rules! text {
        ($field:ident, $check:expr) => {
            match c.$field {
                MaybeUndefined::Undefined => {}
                MaybeUndefined::Null => set(&mut all, stringify!($field), None),
                MaybeUndefined::Value(v) => {
                    let check: fn(&str, &str) -> Result<String, ApiError> = $check;
                    let v = check(stringify!($field), &v)?;
                    set(&mut all, stringify!($field), Some(v));
                }
            }
        };
    }
    text!(control_plane_domain, validate::domain_hostname);
    text!(preview_domain, validate::domain_hostname);
    text!(dns01_provider, validate::slug);
    text!(backup_storage_type, |f, v| match v {
        "local" | "s3" => Ok(v.to_string()),
        _ => Err(ApiError::invalid(
            f,
            "backup_storage_type must be local or s3"
        )),
    });
    text!(backup_local_dir, |f, v| {
        if v.starts_with('/')
            && !v.split('/').any(|p| p == "..")
            && !v.chars().any(char::is_control)
            && v.len() <= 4096
        {
            Ok(v.trim_end_matches('/').to_string())
        } else {
            Err(ApiError::invalid(
                f,
                "backup_local_dir must be an absolute path without '..'",
            ))
        }
    });
    text!(backup_s3_endpoint, |f, v| {
        if (v.starts_with("https://") || v.starts_with("http://"))
            && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            Ok(v.trim_end_matches('/').to_string())
        } else {
            Err(ApiError::invalid(
                f,
                "backup_s3_endpoint must be an http(s) URL",
            ))
        }
    });
    text!(acme_directory_url, |f, v| {
        if v.starts_with("https://")
            && v.len() <= 1024
            && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            Ok(v.to_string())
        } else {
            Err(ApiError::invalid(
                f,
                "acme_directory_url must be an https URL",
            ))
        }
    });
    text!(acme_email, validate::email);
    text!(acme_ca_file, |f, v| {
        if v.starts_with('/')
            && !v.split('/').any(|p| p == "..")
            && !v.chars().any(|c| c.is_whitespace() || c.is_control())
            && v.len() <= 4096
        {
            Ok(v.to_string())
        } else {
            Err(ApiError::invalid(
                f,
                "acme_ca_file must be an absolute path without '..' or spaces",
            ))
        }
    });
    text!(
        dns_resolver,
        |f, v| match v.parse::<std::net::SocketAddr>() {
            Ok(a) => Ok(a.to_string()),
            Err(_) => Err(ApiError::invalid(f, "dns_resolver must be IP:PORT")),
        }
    );
    match c.tls_renew_before_days {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => set(&mut all, "tls_renew_before_days", None),
        MaybeUndefined::Value(d) if (1..=3650).contains(&d) => {
            set(&mut all, "tls_renew_before_days", Some(d.to_string()))
        }
        MaybeUndefined::Value(_) => {
            return Err(ApiError::invalid(
                "tls_renew_before_days",
                "must be between 1 and 3650",
            ))
        }
    }
    text!(backup_s3_bucket, plain);
    text!(backup_s3_region, plain);
    text!(backup_s3_path_prefix, plain);
    text!(backup_s3_access_key_id, plain);
    match c.backup_s3_force_path_style {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => set(&mut all, "backup_s3_force_path_style", None),
        MaybeUndefined::Value(b) => {
            set(&mut all, "backup_s3_force_path_style", Some(b.to_string()))
        }
    }
    match c.update_source_dir {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => set(&mut all, "update_source_dir", None),
        MaybeUndefined::Value(d) => {
            let d = d.as_str();
            if !d.starts_with('/') || d.split('/').any(|p| p == "..") || d.len() > 1024 {
                return Err(ApiError::invalid(
                    "update_source_dir",
                    "update_source_dir must be an absolute path without '..'",
                ));
            }
            set(&mut all, "update_source_dir", Some(d.to_string()))
        }
    }
    match c.releases_keep {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => set(&mut all, "releases_keep", None),
        MaybeUndefined::Value(n) if (2..=100).contains(&n) => {
            set(&mut all, "releases_keep", Some(n.to_string()))
        }
        MaybeUndefined::Value(_) => {
            return Err(ApiError::invalid(
                "releases_keep",
                "must be between 2 and 100",
            ))
        }
    }
    match c.backup_fresh_window_minutes {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => set(&mut all, "backup_fresh_window_minutes", None),
        MaybeUndefined::Value(m) if (1..=100_000).contains(&m) => {
            set(&mut all, "backup_fresh_window_minutes", Some(m.to_string()))
        }
        MaybeUndefined::Value(_) => {
            return Err(ApiError::invalid(
                "backup_fresh_window_minutes",
                "must be between 1 and 100000",
            ))
        }
    }
    match c.import_max_bytes {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => set(&mut all, "import_max_bytes", None),
        MaybeUndefined::Value(m) if m >= 1 => {
            set(&mut all, "import_max_bytes", Some(m.to_string()))
        }
        MaybeUndefined::Value(_) => {
            return Err(ApiError::invalid("import_max_bytes", "must be at least 1"))
        }
    }
    for (key, v) in [
        ("dns01_credentials_json", c.dns01_credentials_json),
        ("backup_s3_secret_access_key", c.backup_s3_secret_access_key),
    ] {
        match v {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => {
                all.remove(key);
                secrets.insert(key, None);
            }
            MaybeUndefined::Value(v) => {
                if v.is_empty() || v.len() > 16 * 1024 {
                    return Err(ApiError::invalid(
                        key,
                        format!("{key} must be 1-16384 characters"),
                    ));
                }
                if key == "dns01_credentials_json"
                    && !serde_json::from_str::<serde_json::Value>(&v).is_ok_and(|j| j.is_object())
                {
                    return Err(ApiError::invalid(
                        key,
                        "dns01_credentials_json must be a JSON object",
                    ));
                }
                all.insert(key.to_string(), format!("secret:{}", secret_id(key)));
                secrets.insert(key, Some(v.0));
            }
        }
    }
    cross_check(&all)?;
    let before = store::settings::all(tx).await.map_err(ApiError::from)?;
    let mut changed = Vec::new();
    for key in before
        .keys()
        .chain(all.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if before.get(key) != all.get(key) || secrets.contains_key(key.as_str()) {
            store::settings::put(tx, key, all.get(key).map(String::as_str))
                .await
                .map_err(ApiError::from)?;
            changed.push(key.clone());
        }
    }
    for (key, v) in &secrets {
        match v {
            Some(v) => store::secrets::put(tx, &w.st.secrets, &secret_id(key), v).await,
            None => store::secrets::delete_prefix(tx, &secret_id(key)).await,
        }
        .map_err(ApiError::from)?;
    }
    if !changed.is_empty() {
        w.event(store::events::NewEvent {
            resource_type: "settings",
            resource_id: "settings",
            reason: "SettingsChanged",
            message: format!("settings changed: {}", changed.join(", ")),
            ..Default::default()
        })
        .await?;
        w.audit_done("settings.update", "settings", "settings")
            .await?;
        // The local node serves the control plane (its domain, certificate and ACME settings):
        // its reconciler compares the panel's desired state with what the node reports.
        if changed
            .iter()
            .any(|k| crate::runtime::PANEL_SETTINGS.contains(&k.as_str()))
        {
            if let Some(node) = store::nodes::local(tx).await.map_err(ApiError::from)? {
                w.wake(crate::notify::Kind::Node, &node.id);
            }
        }
    }
    Ok(all)
}

fn plain(field: &str, v: &str) -> Result<String, ApiError> {
    if v.is_empty() || v.len() > 1024 || v.chars().any(|c| c.is_control()) {
        Err(ApiError::invalid(
            field,
            format!("{field} must be 1-1024 printable characters"),
        ))
    } else {
        Ok(v.to_string())
    }
}

fn cross_check(all: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if all.contains_key("preview_domain")
        && !(all.contains_key("dns01_provider") && all.contains_key("dns01_credentials_json"))
    {
        return Err(ApiError::invalid(
            "preview_domain",
            "a preview domain needs dns01_provider and dns01_credentials_json for its wildcard certificate",
        ));
    }
    if all.get("backup_storage_type").map(String::as_str) == Some("s3") {
        for k in [
            "backup_s3_endpoint",
            "backup_s3_bucket",
            "backup_s3_access_key_id",
            "backup_s3_secret_access_key",
        ] {
            if !all.contains_key(k) {
                return Err(ApiError::invalid(k, format!("s3 backup storage needs {k}")));
            }
        }
    }
    Ok(())
}

pub(crate) fn render(all: &BTreeMap<String, String>) -> Settings {
    let get = |k: &str| all.get(k).cloned();
    Settings {
        control_plane_domain: get("control_plane_domain"),
        preview_domain: get("preview_domain"),
        dns01_provider: get("dns01_provider"),
        dns01_credentials_set: all.contains_key(SECRET_KEYS[0]),
        backup_storage_type: get("backup_storage_type").unwrap_or_else(|| "local".into()),
        backup_local_dir: get("backup_local_dir")
            .unwrap_or_else(|| keys::DEFAULT_BACKUP_LOCAL_DIR.into()),
        backup_s3_endpoint: get("backup_s3_endpoint"),
        backup_s3_bucket: get("backup_s3_bucket"),
        backup_s3_region: get("backup_s3_region"),
        backup_s3_path_prefix: get("backup_s3_path_prefix"),
        backup_s3_force_path_style: get("backup_s3_force_path_style").is_some_and(|v| v == "true"),
        backup_s3_access_key_id: get("backup_s3_access_key_id"),
        backup_s3_secret_access_key_set: all.contains_key(SECRET_KEYS[1]),
        update_source_dir: get("update_source_dir")
            .unwrap_or_else(|| keys::DEFAULT_UPDATE_SOURCE_DIR.into()),
        releases_keep: get("releases_keep")
            .and_then(|v| v.parse().ok())
            .unwrap_or(keys::DEFAULT_RELEASES_KEEP),
        backup_fresh_window_minutes: get("backup_fresh_window_minutes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(keys::DEFAULT_FRESH_WINDOW_MINUTES),
        import_max_bytes: get("import_max_bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::runtime::DEFAULT_IMPORT_MAX_BYTES),
        acme_directory_url: get("acme_directory_url")
            .unwrap_or_else(|| keys::DEFAULT_ACME_DIRECTORY_URL.into()),
        acme_email: get("acme_email"),
        acme_ca_file: get("acme_ca_file"),
        dns_resolver: get("dns_resolver"),
        tls_renew_before_days: get("tls_renew_before_days")
            .and_then(|v| v.parse().ok())
            .unwrap_or(keys::DEFAULT_TLS_RENEW_BEFORE_DAYS),
    }
}
