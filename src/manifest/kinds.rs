//! The kinds and their fields. One table per kind drives both the validation of a document's
//! `spec` and the JSON Schema published for it, so the two cannot disagree.
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{codes, Problem, API_VERSION};
use crate::api::validate;

/// The kinds a manifest may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Kind {
    Node,
    Site,
    Environment,
    Domain,
    Backup,
    BackupSchedule,
    Promotion,
    Import,
    Settings,
}

impl Kind {
    /// In the order an apply creates them (a reference always points backwards).
    pub const ALL: [Kind; 9] = [
        Kind::Settings,
        Kind::Node,
        Kind::Site,
        Kind::Environment,
        Kind::Domain,
        Kind::BackupSchedule,
        Kind::Backup,
        Kind::Promotion,
        Kind::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Site => "Site",
            Kind::Environment => "Environment",
            Kind::Domain => "Domain",
            Kind::Backup => "Backup",
            Kind::BackupSchedule => "BackupSchedule",
            Kind::Promotion => "Promotion",
            Kind::Import => "Import",
            Kind::Settings => "Settings",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Names unique within a site rather than across the installation.
    pub fn site_scoped(self) -> bool {
        matches!(
            self,
            Kind::Environment
                | Kind::Backup
                | Kind::BackupSchedule
                | Kind::Promotion
                | Kind::Import
        )
    }

    /// What `metadata.name` is.
    pub fn name_type(self) -> Ty {
        match self {
            Kind::Domain => Ty::DomainName,
            Kind::Settings => Ty::Enum(&["settings"]),
            _ => Ty::Slug,
        }
    }

    pub fn fields(self) -> &'static [Field] {
        match self {
            Kind::Node => NODE,
            Kind::Site => SITE,
            Kind::Environment => ENVIRONMENT,
            Kind::Domain => DOMAIN,
            Kind::Backup => BACKUP,
            Kind::BackupSchedule => SCHEDULE,
            Kind::Promotion => PROMOTION,
            Kind::Import => IMPORT,
            Kind::Settings => SETTINGS,
        }
    }

    fn doc(self) -> &'static str {
        match self {
            Kind::Node => "A server Pressluft manages over SSH. `metadata.name` is the node's name.",
            Kind::Site => "A WordPress site; its production environment is created with it. `metadata.name` is the site's slug.",
            Kind::Environment => "An environment of a site (production, staging or clone). `metadata.name` is its slug, unique within the site.",
            Kind::Domain => "A domain served by an environment. `metadata.name` is the host name. Custom certificates are uploaded through the API; manifests never carry keys.",
            Kind::Backup => "A one-off backup of an environment. `metadata.name` is unique within the site.",
            Kind::BackupSchedule => "A backup schedule of an environment: exactly one of `interval_minutes` and `cron`.",
            Kind::Promotion => "A promotion of a non-production environment to its site's production environment.",
            Kind::Import => "An import of an existing WordPress site from an archive into an environment (default: the site's production). Declared once: re-applying the manifest does not import again. Archive URLs with credentials or a query string are refused here (use the API).",
            Kind::Settings => "The installation's settings; `metadata.name` is `settings`. Secret values are never written in a manifest: `{env: VAR}` names an environment variable of the applying CLI.",
        }
    }

    /// What a created resource holds for the fields its manifest does not give (what the API
    /// fills in): an apply creates with these, so a re-apply finds every field as declared.
    pub fn defaults(self, name: &str) -> BTreeMap<String, Value> {
        let pairs: Vec<(&str, Value)> = match self {
            Kind::Node => vec![("ssh_port", json!(22)), ("ssh_user", json!("root"))],
            Kind::Site => vec![("display_name", json!(name))],
            Kind::Environment => vec![
                ("display_name", json!(name)),
                ("promotion_preset", json!("content-protect")),
                ("fastcgi_cache_enabled", json!(true)),
                ("redis_cache_enabled", json!(true)),
                ("fastcgi_cache_ttl_seconds", json!(3600)),
            ],
            Kind::Domain => vec![("www_redirect", json!(false)), ("tls_mode", json!("acme"))],
            Kind::Backup => vec![("scope", json!("full"))],
            Kind::BackupSchedule => vec![
                ("backup_scope", json!("full")),
                ("drill", json!(false)),
                ("enabled", json!(true)),
            ],
            Kind::Promotion | Kind::Import | Kind::Settings => vec![],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A display name (1–200 characters, no control characters).
    Name,
    Slug,
    /// A node address: host name or IP address.
    NodeAddress,
    Ip,
    Port,
    UnixUser,
    /// A lower-case, fully qualified host name; `*.` allowed (the kind's rules decide).
    DomainName,
    Email,
    /// An `http(s)://` URL.
    Url,
    /// An absolute path without `..`.
    AbsPath,
    /// Free text, 1–1024 characters, no control characters.
    Text,
    /// RFC 3339 date-time.
    Timestamp,
    Bool,
    Int(i64, i64),
    Enum(&'static [&'static str]),
    /// Five cron fields, UTC.
    Cron,
    /// The name of a resource of this kind.
    Ref(Kind),
    /// A secret, given only as `{env: VAR}` (resolved by the applying client).
    Secret,
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub doc: &'static str,
}

const fn f(name: &'static str, ty: Ty, required: bool, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        required,
        doc,
    }
}

const PRESETS: &[&str] = &["content-protect", "commerce-protect"];
const SCOPES: &[&str] = &["full", "db", "files"];

static NODE: &[Field] = &[
    f(
        "hostname",
        Ty::NodeAddress,
        true,
        "Host name or IP address reached over SSH.",
    ),
    f(
        "public_ip",
        Ty::Ip,
        false,
        "Public address (preview URLs, DNS checks).",
    ),
    f("ssh_port", Ty::Port, false, "Default 22."),
    f("ssh_user", Ty::UnixUser, false, "Default root."),
];

static SITE: &[Field] = &[
    f(
        "display_name",
        Ty::Name,
        false,
        "Display name; default: the slug.",
    ),
    f(
        "node",
        Ty::Ref(Kind::Node),
        false,
        "Node of the production environment; default: the local node.",
    ),
];

static ENVIRONMENT: &[Field] = &[
    f("site", Ty::Ref(Kind::Site), true, "The site's slug."),
    f(
        "type",
        Ty::Enum(&["production", "staging", "clone"]),
        true,
        "A site has exactly one production environment, created with the site.",
    ),
    f(
        "display_name",
        Ty::Name,
        false,
        "Display name; default: the slug.",
    ),
    f(
        "source_environment",
        Ty::Ref(Kind::Environment),
        false,
        "Slug of the environment of the same site to copy (staging and clones).",
    ),
    f(
        "promotion_preset",
        Ty::Enum(PRESETS),
        false,
        "Data protected when promoting; default content-protect.",
    ),
    f("fastcgi_cache_enabled", Ty::Bool, false, "Page cache."),
    f("redis_cache_enabled", Ty::Bool, false, "Object cache."),
    f(
        "fastcgi_cache_ttl_seconds",
        Ty::Int(60, 604_800),
        false,
        "Page cache lifetime.",
    ),
    f(
        "expires_at",
        Ty::Timestamp,
        false,
        "A temporary environment is deleted after this time.",
    ),
];

static DOMAIN: &[Field] = &[
    f("site", Ty::Ref(Kind::Site), true, "The site's slug."),
    f(
        "environment",
        Ty::Ref(Kind::Environment),
        true,
        "The environment's slug within the site.",
    ),
    f(
        "primary",
        Ty::Bool,
        false,
        "true: the environment's site URL (one per environment; its first domain is primary \
         until another is declared primary). Only true can be declared.",
    ),
    f(
        "www_redirect",
        Ty::Bool,
        false,
        "Redirect www.<name> to the name.",
    ),
    f(
        "tls_mode",
        Ty::Enum(&["acme", "custom", "none"]),
        false,
        "Default acme.",
    ),
];

static BACKUP: &[Field] = &[
    f("site", Ty::Ref(Kind::Site), true, "The site's slug."),
    f(
        "environment",
        Ty::Ref(Kind::Environment),
        true,
        "The environment's slug within the site.",
    ),
    f("scope", Ty::Enum(SCOPES), false, "Default full."),
];

static SCHEDULE: &[Field] = &[
    f("site", Ty::Ref(Kind::Site), true, "The site's slug."),
    f(
        "environment",
        Ty::Ref(Kind::Environment),
        true,
        "The environment's slug within the site.",
    ),
    f(
        "interval_minutes",
        Ty::Int(1, 525_600),
        false,
        "Exclusive with cron.",
    ),
    f(
        "cron",
        Ty::Cron,
        false,
        "Five fields, UTC; exclusive with interval_minutes.",
    ),
    f("backup_scope", Ty::Enum(SCOPES), false, "Default full."),
    f(
        "keep_last",
        Ty::Int(1, 10_000),
        false,
        "Retention: keep the last N.",
    ),
    f(
        "keep_days",
        Ty::Int(1, 36_500),
        false,
        "Retention: keep N days.",
    ),
    f(
        "drill",
        Ty::Bool,
        false,
        "Also restore each backup into a scratch environment.",
    ),
    f("enabled", Ty::Bool, false, "Default true."),
];

static PROMOTION: &[Field] = &[
    f("site", Ty::Ref(Kind::Site), true, "The site's slug."),
    f(
        "source_environment",
        Ty::Ref(Kind::Environment),
        true,
        "The non-production environment to promote.",
    ),
    f(
        "preset",
        Ty::Enum(PRESETS),
        false,
        "Default: the source environment's promotion_preset.",
    ),
];

static IMPORT: &[Field] = &[
    f("site", Ty::Ref(Kind::Site), true, "The site's slug."),
    f(
        "environment",
        Ty::Ref(Kind::Environment),
        false,
        "The target environment; default production.",
    ),
    f(
        "archive_url",
        Ty::Text,
        false,
        "https://… or file:///var/lib/pressluft/imports/… (.tar.gz with db.sql + files/); \
         or database_url + content_url.",
    ),
    f("sha256", Ty::Text, false, "The archive's SHA-256."),
    f(
        "database_url",
        Ty::Text,
        false,
        "A dump alone (.sql or .sql.gz), with content_url instead of archive_url.",
    ),
    f("database_sha256", Ty::Text, false, "The dump's SHA-256."),
    f(
        "content_url",
        Ty::Text,
        false,
        "A wp-content tarball, with database_url instead of archive_url.",
    ),
    f("content_sha256", Ty::Text, false, "The tarball's SHA-256."),
    f(
        "source_url",
        Ty::Url,
        false,
        "The URL the site was served on; default meta.json's, else the dump's home.",
    ),
    f(
        "table_prefix",
        Ty::Text,
        false,
        "The dump's table prefix; default meta.json's, else found.",
    ),
];

static SETTINGS: &[Field] = &[
    f(
        "control_plane_domain",
        Ty::DomainName,
        false,
        "The panel's own host name.",
    ),
    f(
        "preview_domain",
        Ty::DomainName,
        false,
        "Preview host names end in this domain.",
    ),
    f(
        "dns01_provider",
        Ty::Text,
        false,
        "certbot DNS plugin for DNS-01.",
    ),
    f(
        "dns01_credentials_json",
        Ty::Secret,
        false,
        "Provider credentials (secret).",
    ),
    f(
        "backup_storage_type",
        Ty::Enum(&["local", "s3"]),
        false,
        "Default local.",
    ),
    f(
        "backup_local_dir",
        Ty::AbsPath,
        false,
        "Local backup directory on the node.",
    ),
    f(
        "backup_s3_endpoint",
        Ty::Url,
        false,
        "S3-compatible endpoint.",
    ),
    f("backup_s3_bucket", Ty::Text, false, "Bucket."),
    f("backup_s3_region", Ty::Text, false, "Region."),
    f("backup_s3_path_prefix", Ty::Text, false, "Key prefix."),
    f(
        "backup_s3_force_path_style",
        Ty::Bool,
        false,
        "Path-style requests.",
    ),
    f("backup_s3_access_key_id", Ty::Text, false, "Access key id."),
    f(
        "backup_s3_secret_access_key",
        Ty::Secret,
        false,
        "Secret key (secret).",
    ),
    f(
        "backup_fresh_window_minutes",
        Ty::Int(1, 10_080),
        false,
        "How recent a backup counts as fresh.",
    ),
    f(
        "import_max_bytes",
        Ty::Int(1, i64::MAX),
        false,
        "Imports: the largest archive accepted, in bytes (default 20 GiB).",
    ),
    f("acme_directory_url", Ty::Url, false, "ACME directory."),
    f("acme_email", Ty::Email, false, "ACME account e-mail."),
    f(
        "acme_ca_file",
        Ty::AbsPath,
        false,
        "CA bundle on the nodes for the ACME server.",
    ),
    f(
        "dns_resolver",
        Ty::Text,
        false,
        "IP:PORT of the DNS server for DNS checks.",
    ),
    f(
        "releases_keep",
        Ty::Int(2, 100),
        false,
        "Release directories kept per environment.",
    ),
    f(
        "update_source_dir",
        Ty::AbsPath,
        false,
        "Offline update source on the nodes (core/, plugins/<slug>/, themes/<slug>/).",
    ),
    f(
        "tls_renew_before_days",
        Ty::Int(1, 89),
        false,
        "Renew certificates this many days before expiry.",
    ),
];

/// Checks one value against its type; the normalised value, or the problem's message.
pub fn check_value(ty: Ty, field: &str, v: &Value) -> Result<Value, (&'static str, String)> {
    let wrong = |what: &str| (codes::WRONG_TYPE, format!("{field} must be {what}"));
    let invalid = |e: crate::api::error::ApiError| (codes::INVALID_VALUE, e.to_string());
    let s = || v.as_str().ok_or_else(|| wrong("a string"));
    Ok(match ty {
        Ty::Bool => Value::Bool(v.as_bool().ok_or_else(|| wrong("true or false"))?),
        Ty::Int(..) | Ty::Port if !v.is_i64() => return Err(wrong("an integer")),
        Ty::Port => json!(validate::port(field, v.as_i64().unwrap_or(0)).map_err(invalid)?),
        Ty::Int(min, max) => {
            let n = v.as_i64().unwrap_or(0);
            if n < min || n > max {
                return Err((
                    codes::INVALID_VALUE,
                    format!("{field} must be between {min} and {max}"),
                ));
            }
            json!(n)
        }
        Ty::Name => json!(validate::name(field, s()?).map_err(invalid)?),
        Ty::Slug | Ty::Ref(_) => json!(validate::slug(field, s()?).map_err(invalid)?),
        Ty::NodeAddress => json!(validate::node_address(field, s()?).map_err(invalid)?),
        Ty::Ip => json!(validate::ip(field, s()?).map_err(invalid)?),
        Ty::UnixUser => json!(validate::unix_user(field, s()?).map_err(invalid)?),
        Ty::DomainName => json!(validate::domain_name(field, s()?, true).map_err(invalid)?),
        Ty::Email => json!(validate::email(field, s()?).map_err(invalid)?),
        Ty::Timestamp => json!(validate::timestamp(field, s()?).map_err(invalid)?),
        Ty::Url => {
            let u = s()?;
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"));
            if !rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace)) {
                return Err((
                    codes::INVALID_VALUE,
                    format!("{field} must be an http:// or https:// URL"),
                ));
            }
            json!(u)
        }
        Ty::AbsPath => {
            let p = s()?;
            if !p.starts_with('/') || p.split('/').any(|c| c == "..") || p.contains('\0') {
                return Err((
                    codes::INVALID_VALUE,
                    format!("{field} must be an absolute path without '..'"),
                ));
            }
            json!(p)
        }
        Ty::Text => {
            let t = s()?;
            if t.is_empty() || t.chars().count() > 1024 || t.chars().any(char::is_control) {
                return Err((
                    codes::INVALID_VALUE,
                    format!("{field} must be 1-1024 characters without control characters"),
                ));
            }
            json!(t)
        }
        Ty::Enum(values) => {
            let t = s()?;
            if !values.contains(&t) {
                return Err((
                    codes::INVALID_VALUE,
                    format!("{field} must be one of {}", values.join(", ")),
                ));
            }
            json!(t)
        }
        Ty::Cron => {
            let t = s()?;
            reconcilers::schedule::Cron::parse(t).map_err(|e| (codes::INVALID_VALUE, e.0))?;
            json!(t)
        }
        Ty::Secret => {
            let env = v
                .as_object()
                .filter(|m| m.len() == 1)
                .and_then(|m| m.get("env"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    wrong("{env: VARIABLE}: secrets are referenced, never written in a manifest")
                })?;
            let ok = !env.is_empty()
                && env.len() <= 128
                && env
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && !env.as_bytes()[0].is_ascii_digit();
            if !ok {
                return Err((
                    codes::INVALID_VALUE,
                    format!("{field}.env must be an environment variable name (A-Z, 0-9, _)"),
                ));
            }
            json!({ "env": env })
        }
    })
}

/// Checks a document's `spec` against its kind's table: every problem, with paths.
pub fn check_spec(
    kind: Kind,
    index: usize,
    spec: &Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, Value> {
    let table = kind.fields();
    let mut out = BTreeMap::new();
    for (k, v) in spec {
        let path = format!("spec.{k}");
        let Some(field) = table.iter().find(|f| f.name == k) else {
            let known: Vec<&str> = table.iter().map(|f| f.name).collect();
            problems.push(Problem::new(
                index,
                path,
                codes::UNKNOWN_FIELD,
                format!(
                    "{} has no field '{k}' (known: {})",
                    kind.as_str(),
                    known.join(", ")
                ),
            ));
            continue;
        };
        if v.is_null() {
            // An explicit null means "not given", like an absent field.
            continue;
        }
        match check_value(field.ty, k, v) {
            Ok(n) => {
                out.insert(k.clone(), n);
            }
            Err((code, message)) => problems.push(Problem::new(index, path, code, message)),
        }
    }
    for f in table.iter().filter(|f| f.required) {
        if spec.get(f.name).is_none_or(Value::is_null) {
            problems.push(Problem::new(
                index,
                format!("spec.{}", f.name),
                codes::MISSING_FIELD,
                format!("{} needs spec.{}", kind.as_str(), f.name),
            ));
        }
    }
    out
}

fn schema_of(ty: Ty) -> Value {
    match ty {
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Int(min, max) => json!({"type": "integer", "minimum": min, "maximum": max}),
        Ty::Port => json!({"type": "integer", "minimum": 1, "maximum": 65535}),
        Ty::Enum(v) => json!({"type": "string", "enum": v}),
        Ty::Slug | Ty::Ref(_) => {
            json!({"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"})
        }
        Ty::Name => json!({"type": "string", "minLength": 1, "maxLength": 200}),
        Ty::Text => json!({"type": "string", "minLength": 1, "maxLength": 1024}),
        Ty::Timestamp => json!({"type": "string", "format": "date-time"}),
        Ty::Email => json!({"type": "string", "format": "email"}),
        Ty::Url => json!({"type": "string", "format": "uri", "pattern": "^https?://"}),
        Ty::AbsPath => json!({"type": "string", "pattern": "^/"}),
        Ty::Ip => json!({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
        Ty::DomainName => {
            json!({"type": "string", "pattern": "^(\\*\\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"})
        }
        Ty::NodeAddress | Ty::UnixUser => json!({"type": "string", "minLength": 1}),
        Ty::Cron => json!({"type": "string", "description": "five cron fields, UTC"}),
        Ty::Secret => json!({
            "type": "object",
            "properties": {"env": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"}},
            "required": ["env"],
            "additionalProperties": false
        }),
    }
}

/// The JSON Schema (draft 2020-12) of one kind's documents.
pub fn json_schema(kind: Kind) -> Value {
    let mut props = Map::new();
    for fld in kind.fields() {
        let mut s = schema_of(fld.ty);
        s["description"] = json!(fld.doc);
        if let Ty::Ref(k) = fld.ty {
            s["description"] = json!(format!("{} (a {} name)", fld.doc, k.as_str()));
        }
        props.insert(fld.name.to_string(), s);
    }
    let required: Vec<&str> = kind
        .fields()
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("https://pressluft.dev/schemas/v1/{}.json", kind.as_str()),
        "title": kind.as_str(),
        "description": kind.doc(),
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": false,
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": kind.as_str()},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": false,
                "properties": {
                    "name": schema_of(kind.name_type()),
                    "labels": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "maxLength": 253}
                    }
                }
            },
            "spec": {
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": props
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published schemas (`openapi/schemas/<Kind>.schema.json`) are generated from the
    /// tables; this fails when they are stale. `PRESSLUFT_UPDATE_SCHEMAS=1` rewrites them.
    #[test]
    fn committed_json_schemas_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/schemas");
        let update = std::env::var_os("PRESSLUFT_UPDATE_SCHEMAS").is_some();
        for k in Kind::ALL {
            let path = dir.join(format!("{}.schema.json", k.as_str()));
            let want = serde_json::to_string_pretty(&json_schema(k)).unwrap() + "\n";
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
                continue;
            }
            let got = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                got == want,
                "{} is stale: run PRESSLUFT_UPDATE_SCHEMAS=1 cargo test --lib committed_json_schemas",
                path.display()
            );
        }
    }

    #[test]
    fn values_are_normalised_or_refused() {
        assert_eq!(
            check_value(Ty::DomainName, "d", &json!("shop.example.com")).unwrap(),
            json!("shop.example.com")
        );
        assert!(check_value(Ty::DomainName, "d", &json!("Shop.example.com")).is_err());
        assert!(check_value(Ty::Int(1, 5), "n", &json!(6)).is_err());
        assert!(check_value(Ty::Int(1, 5), "n", &json!(1.5)).is_err());
        assert!(check_value(Ty::Port, "p", &json!("22")).is_err());
        assert!(check_value(Ty::AbsPath, "p", &json!("/a/../b")).is_err());
        assert!(check_value(Ty::Url, "u", &json!("ftp://x")).is_err());
        assert!(check_value(Ty::Cron, "c", &json!("61 * * * *")).is_err());
        assert!(check_value(Ty::Secret, "s", &json!({"env": "lower"})).is_err());
        assert!(check_value(Ty::Secret, "s", &json!({"env": "OK_1"})).is_ok());
        assert_eq!(
            check_value(Ty::Name, "n", &json!("  Shop ")).unwrap(),
            json!("Shop")
        );
    }
}
