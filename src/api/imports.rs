//! Imports: an existing WordPress site imported from an archive into an environment (by default
//! the site's production), behind a fresh backup of the target and a health gate with rollback;
//! recorded as an `import` release. While one is pending or running, the environment is
//! `restoring` and other mutations of it answer 409 `resource_in_use`.
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::auth::Auth;
use super::error::ApiError;
use super::model::{parse_conditions, Condition};
use super::text::Text;
use super::write::Write;
use super::{next_cursor, page_limit, state, validate, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::{environments, imports};
use crate::store::events::NewEvent;
use crate::store::resources::{self, Page};
use crate::store::{self, imports::NewImport};

/// Where `file://` archives must lie on the node.
pub const IMPORT_DIR: &str = "/var/lib/pressluft/imports/";
const MAX_URL: usize = 2048;

#[derive(Debug, Clone, Object)]
pub struct Import {
    pub id: String,
    /// The target environment.
    pub environment_id: String,
    /// The archive's URL (empty when the dump and wp-content came separately); user information
    /// and the query string (credentials, signatures) are never shown.
    pub archive_url: String,
    /// The pinned SHA-256 of the archive, if declared.
    pub sha256: Option<String>,
    /// The dump's URL when it came apart from wp-content (redacted like `archive_url`).
    pub database_url: Option<String>,
    pub database_sha256: Option<String>,
    /// The wp-content tarball's URL when it came apart from the dump (redacted).
    pub content_url: Option<String>,
    pub content_sha256: Option<String>,
    /// The URL the site was served on (rewritten to the environment's URL); when not declared:
    /// meta.json's `source_url`, else the dump's `home`.
    pub source_url: Option<String>,
    /// The dump's table prefix, if declared (else meta.json's, else found in the dump).
    pub table_prefix: Option<String>,
    /// The target's pre-import backup: the rollback point.
    pub pre_backup_id: Option<String>,
    /// The `import` release the import is recorded as.
    pub release_id: Option<String>,
    /// pending, running, succeeded, failed.
    pub status: String,
    /// Why it failed (e.g. IMPORT_UNSAFE_ARCHIVE, IMPORT_PREFIX_MISMATCH, IMPORT_UNHEALTHY).
    pub error_code: Option<String>,
    /// What the node reported (sizes, checksum, tables renamed, URL rewrites, timings).
    pub result: Option<serde_json::Value>,
    pub finished_at: Option<String>,
    pub generation: i64,
    pub conditions: Vec<Condition>,
    pub created_at: String,
    pub updated_at: String,
    /// `archive`, or `ssh` for an adoption (`POST /adoptions`).
    pub source_type: String,
    /// An adoption's source (the SSH location, the pinned host key's fingerprint).
    pub ssh_source: Option<super::adoptions::AdoptionSource>,
    /// An adoption's dry-run report, as found when it was declared.
    pub report: Option<serde_json::Value>,
}

/// `url` without user information and query string.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return url.to_string(),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((_, h)) => format!("****@{h}"),
        None => authority.to_string(),
    };
    let path = match path.split_once('?') {
        Some((p, _)) => format!("{p}?****"),
        None => path.to_string(),
    };
    format!("{scheme}://{host}{path}")
}

impl From<imports::Model> for Import {
    fn from(m: imports::Model) -> Self {
        Import {
            ssh_source: super::adoptions::AdoptionSource::of(&m),
            report: m
                .report
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            source_type: m.source_type.clone(),
            conditions: parse_conditions(&m.conditions),
            archive_url: redact_url(&m.archive_url),
            database_url: m.database_url.as_deref().map(redact_url),
            content_url: m.content_url.as_deref().map(redact_url),
            database_sha256: m.database_sha256,
            content_sha256: m.content_sha256,
            result: m
                .result_json
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            id: m.id,
            environment_id: m.environment_id,
            sha256: m.sha256,
            source_url: m.source_url,
            table_prefix: m.table_prefix,
            pre_backup_id: m.pre_backup_id,
            release_id: m.release_id,
            status: m.status,
            error_code: m.last_error_code,
            finished_at: m.finished_at,
            generation: m.generation,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct ImportPage {
    pub items: Vec<Import>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateImport {
    /// `https://…` or `http://…` (user information allowed: sent as HTTP basic auth, never shown),
    /// or `file:///var/lib/pressluft/imports/…` on the node. A `.tar.gz`/`.tgz`/`.tar` holding
    /// `db.sql[.gz]` + `files/` (wp-content) + optional `meta.json`, or one `*.sql[.gz]` + a
    /// `wp-content/` directory. Instead of one archive: `database_url` + `content_url`.
    pub archive_url: Option<Text>,
    /// The archive's SHA-256 (64 hex digits): a different archive is refused.
    pub sha256: Option<Text>,
    /// A database dump alone (`.sql` or `.sql.gz`), URL as `archive_url`; with `content_url`.
    pub database_url: Option<Text>,
    /// The dump's SHA-256.
    pub database_sha256: Option<Text>,
    /// A wp-content tarball (`.tar.gz`/`.tgz`/`.tar` of the `wp-content` directory or of its
    /// contents), URL as `archive_url`; with `database_url`.
    pub content_url: Option<Text>,
    /// The tarball's SHA-256.
    pub content_sha256: Option<Text>,
    /// The URL the site was served on; default: meta.json's `source_url`, else the dump's `home`.
    pub source_url: Option<Text>,
    /// The dump's table prefix (checked against the dump); default: meta.json's, else found.
    pub table_prefix: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateSiteImport {
    /// The target environment (of this site); default: the site's production environment.
    pub environment_id: Option<Text>,
    /// As in `POST /environments/{id}/imports`.
    pub archive_url: Option<Text>,
    pub sha256: Option<Text>,
    pub database_url: Option<Text>,
    pub database_sha256: Option<Text>,
    pub content_url: Option<Text>,
    pub content_sha256: Option<Text>,
    pub source_url: Option<Text>,
    pub table_prefix: Option<Text>,
}

#[derive(ApiResponse)]
pub enum ImportAccepted {
    /// Recorded; follow the import's status.
    #[oai(status = 202)]
    Accepted(Json<Import>),
}

error_response!(ListError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(WriteError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});

/// The validated fields of an import request.
pub struct ImportRequest {
    /// Empty when the dump and wp-content come separately (`parts`).
    pub archive_url: String,
    pub sha256: Option<String>,
    pub parts: Option<PartsRequest>,
    pub source_url: Option<String>,
    pub table_prefix: Option<String>,
}

fn http_url(field: &str, v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or_else(|| ApiError::invalid(field, format!("{field} must be an http(s) URL")))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(ApiError::invalid(field, format!("{field} has no host")));
    }
    Ok(v.to_string())
}

/// A dump and a wp-content tarball given apart.
impl ImportRequest {
    /// The source for events and messages, credentials redacted.
    pub fn describe(&self) -> String {
        match &self.parts {
            Some(p) => format!(
                "{} + {}",
                redact_url(&p.database_url),
                redact_url(&p.content_url)
            ),
            None => redact_url(&self.archive_url),
        }
    }

    /// Every URL of the request (manifests refuse credentials in any).
    pub fn urls(&self) -> Vec<&str> {
        match &self.parts {
            Some(p) => vec![&p.database_url, &p.content_url],
            None => vec![&self.archive_url],
        }
    }
}

pub struct PartsRequest {
    pub database_url: String,
    pub database_sha256: Option<String>,
    pub content_url: String,
    pub content_sha256: Option<String>,
}

impl PartsRequest {
    pub fn as_new(&self) -> store::imports::ImportParts<'_> {
        store::imports::ImportParts {
            database_url: &self.database_url,
            database_sha256: self.database_sha256.as_deref(),
            content_url: &self.content_url,
            content_sha256: self.content_sha256.as_deref(),
        }
    }
}

/// A source URL: http(s) (user information allowed) or file:// under the node's import directory.
fn source_url_field(field: &str, url: &str) -> Result<String, ApiError> {
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1 to 2048 characters"),
        ));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain spaces or control characters"),
        ));
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with(IMPORT_DIR)
            || path.len() == IMPORT_DIR.len()
            || path.split('/').any(|p| p == "..")
        {
            return Err(ApiError::invalid(
                field,
                format!("file:// sources must lie under {IMPORT_DIR} on the node"),
            ));
        }
        Ok(url.to_string())
    } else {
        http_url(field, url)
    }
}

fn sha256_field(field: &str, v: Option<&str>) -> Result<Option<String>, ApiError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(Some(s.to_ascii_lowercase()))
        }
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} must be 64 hex digits"),
        )),
    }
}

/// Checks an import request (400 with the field on a problem).
pub fn validate_request(b: &CreateImport) -> Result<ImportRequest, ApiError> {
    let given = |v: &Option<Text>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    let (archive_url, sha256, parts) = match (
        given(&b.archive_url),
        given(&b.database_url),
        given(&b.content_url),
    ) {
        (true, false, false) => {
            if given(&b.database_sha256) || given(&b.content_sha256) {
                return Err(ApiError::invalid(
                    "database_sha256",
                    "database_sha256 and content_sha256 belong to database_url and content_url",
                ));
            }
            (
                source_url_field("archive_url", b.archive_url.as_deref().unwrap_or(""))?,
                sha256_field("sha256", b.sha256.as_deref())?,
                None,
            )
        }
        (false, true, true) => {
            if given(&b.sha256) {
                return Err(ApiError::invalid(
                    "sha256",
                    "sha256 is the archive's: use database_sha256 and content_sha256",
                ));
            }
            let parts = PartsRequest {
                database_url: source_url_field(
                    "database_url",
                    b.database_url.as_deref().unwrap_or(""),
                )?,
                database_sha256: sha256_field("database_sha256", b.database_sha256.as_deref())?,
                content_url: source_url_field(
                    "content_url",
                    b.content_url.as_deref().unwrap_or(""),
                )?,
                content_sha256: sha256_field("content_sha256", b.content_sha256.as_deref())?,
            };
            (String::new(), None, Some(parts))
        }
        (true, _, _) => {
            return Err(ApiError::invalid(
                "archive_url",
                "give archive_url, or database_url and content_url, not both",
            ))
        }
        (false, false, false) => {
            return Err(ApiError::invalid(
                "archive_url",
                "archive_url (or database_url and content_url) is required",
            ))
        }
        (false, true, false) => {
            return Err(ApiError::invalid(
                "content_url",
                "content_url (the wp-content tarball) goes with database_url",
            ))
        }
        (false, false, true) => {
            return Err(ApiError::invalid(
                "database_url",
                "database_url (the dump) goes with content_url",
            ))
        }
    };
    let source_url = match b.source_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => {
            if s.len() > MAX_URL
                || s.chars()
                    .any(|c| c.is_whitespace() || "\"'<>\\".contains(c))
            {
                return Err(ApiError::invalid(
                    "source_url",
                    "source_url must be an http(s) URL without spaces, quotes, angle brackets or backslashes",
                ));
            }
            let u = http_url("source_url", s)?;
            if u.contains('@') || u.contains('?') || u.contains('#') {
                return Err(ApiError::invalid(
                    "source_url",
                    "source_url is a site URL: no user information, query or fragment",
                ));
            }
            Some(u.trim_end_matches('/').to_string())
        }
    };
    let table_prefix = match b.table_prefix.as_deref() {
        None => None,
        Some(p)
            if !p.is_empty()
                && p.len() <= 32
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Some(p.to_string())
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "table_prefix",
                "table_prefix must be 1 to 32 letters, digits or underscores",
            ))
        }
    };
    Ok(ImportRequest {
        archive_url,
        sha256,
        parts,
        source_url,
        table_prefix,
    })
}

/// Records an import of `req` into `env` in the open transaction (the write path the handlers
/// share, and `POST /api/apply` later): the rules, the row, its event and audit entry, the wakes.
pub async fn create_import_in(
    w: &mut Write<'_>,
    tx: &impl sea_orm::ConnectionTrait,
    env: &environments::Model,
    req: &ImportRequest,
) -> Result<imports::Model, ApiError> {
    if env.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict(
            "the environment is being deleted".into(),
        ));
    }
    super::environments::refuse_while_restoring(tx, &env.id).await?;
    crate::settings::backup_storage(tx).await?;
    let m = store::imports::create(
        tx,
        NewImport {
            environment_id: &env.id,
            archive_url: &req.archive_url,
            sha256: req.sha256.as_deref(),
            source_url: req.source_url.as_deref(),
            table_prefix: req.table_prefix.as_deref(),
            parts: req.parts.as_ref().map(PartsRequest::as_new),
        },
    )
    .await?;
    w.event(NewEvent {
        resource_type: "import",
        resource_id: &m.id,
        site_id: Some(&env.site_id),
        environment_id: Some(&env.id),
        reason: "Created",
        message: format!("import of {} requested", req.describe()),
    })
    .await?;
    w.audit("import.create", "import", &m.id).await?;
    w.wake(Kind::Import, &m.id);
    w.wake(Kind::Environment, &env.id);
    Ok(m)
}

pub struct ImportsApi;

#[OpenApi(tag = "Tag::Sites")]
impl ImportsApi {
    /// Import an existing WordPress site from an archive into this environment. A fresh full
    /// backup of the environment is taken first (the rollback point); the archive is checked
    /// whole before anything changes; an unhealthy result is rolled back. While the import runs
    /// the environment is `restoring` and other mutations of it answer 409 `resource_in_use`.
    #[oai(
        path = "/environments/:id/imports",
        method = "post",
        operation_id = "createImport"
    )]
    async fn create(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<CreateImport>,
    ) -> Result<ImportAccepted, WriteError> {
        let st = state(req)?;
        let env_id = validate::uuid("id", &id.0)?;
        let r = validate_request(&body.0)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let env = resources::environment_by_id(&tx, &env_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        let m = create_import_in(&mut w, &tx, &env, &r).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(ImportAccepted::Accepted(Json(m.into())))
    }

    /// Import an existing WordPress site into this site (spec §4.2): into `environment_id`, by
    /// default the site's production environment. Same as `POST /environments/{id}/imports`.
    #[oai(
        path = "/sites/:id/import",
        method = "post",
        operation_id = "importSite"
    )]
    async fn create_for_site(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<CreateSiteImport>,
    ) -> Result<ImportAccepted, WriteError> {
        let st = state(req)?;
        let site_id = validate::uuid("id", &id.0)?;
        let target = body
            .0
            .environment_id
            .as_deref()
            .map(|e| validate::uuid("environment_id", e))
            .transpose()?;
        let body = body.0;
        let r = validate_request(&CreateImport {
            archive_url: body.archive_url,
            sha256: body.sha256,
            database_url: body.database_url,
            database_sha256: body.database_sha256,
            content_url: body.content_url,
            content_sha256: body.content_sha256,
            source_url: body.source_url,
            table_prefix: body.table_prefix,
        })?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let site = resources::site_by_id(&tx, &site_id)
            .await
            .map_err(ApiError::from)?
            .filter(|s| s.deletion_requested_at.is_none())
            .ok_or_else(|| ApiError::NotFound("site not found".into()))?;
        let envs = environments::Entity::find()
            .filter(environments::Column::SiteId.eq(site.id.as_str()))
            .filter(environments::Column::DeletionRequestedAt.is_null())
            .all(&tx)
            .await
            .map_err(|e| ApiError::from(crate::store::StoreError::from(e)))?;
        let env = match &target {
            Some(t) => envs
                .into_iter()
                .find(|e| &e.id == t)
                .ok_or_else(|| ApiError::NotFound("environment not found in this site".into()))?,
            None => envs
                .into_iter()
                .find(|e| e.environment_type == "production")
                .ok_or_else(|| {
                    ApiError::Conflict("the site has no production environment".into())
                })?,
        };
        let m = create_import_in(&mut w, &tx, &env, &r).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(ImportAccepted::Accepted(Json(m.into())))
    }

    /// List imports, oldest first; filter by environment.
    #[oai(path = "/imports", method = "get", operation_id = "listImports")]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        environment_id: Query<Option<String>>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<ImportPage>, ListError> {
        let st = state(req)?;
        let env = environment_id
            .0
            .map(|e| validate::uuid("environment_id", &e))
            .transpose()?;
        self.page(st, env, limit.0, cursor.0).await
    }

    /// The imports of one environment, oldest first.
    #[oai(
        path = "/environments/:id/imports",
        method = "get",
        operation_id = "listEnvironmentImports"
    )]
    async fn list_of_environment(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<ImportPage>, ListError> {
        let st = state(req)?;
        let env_id = validate::uuid("id", &id.0)?;
        resources::environment_by_id(&st.db, &env_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        self.page(st, Some(env_id), limit.0, cursor.0).await
    }

    /// Read an import.
    #[oai(path = "/imports/:id", method = "get", operation_id = "getImport")]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Import>, ListError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let m = store::imports::by_id(&st.db, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("import not found".into()))?;
        Ok(Json(m.into()))
    }
}

impl ImportsApi {
    async fn page(
        &self,
        st: &super::AppState,
        env: Option<String>,
        limit: Option<u64>,
        cursor: Option<String>,
    ) -> Result<Json<ImportPage>, ListError> {
        let limit = page_limit(limit)?;
        let p = Page {
            after: super::cursor(cursor)?,
            limit,
        };
        let rows = store::imports::list(&st.db, env.as_deref(), &p)
            .await
            .map_err(ApiError::from)?;
        let next = next_cursor(&rows, limit, |r| &r.id);
        Ok(Json(ImportPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str) -> CreateImport {
        CreateImport {
            archive_url: Some(Text(url.to_string())),
            sha256: None,
            database_url: None,
            database_sha256: None,
            content_url: None,
            content_sha256: None,
            source_url: None,
            table_prefix: None,
        }
    }

    #[test]
    fn a_dump_and_a_wp_content_tarball_go_together() {
        let mut r = req("");
        r.archive_url = None;
        r.database_url = Some(Text("https://example.test/db.sql.gz".into()));
        assert!(validate_request(&r).is_err(), "dump without wp-content");
        r.content_url = Some(Text("file:///var/lib/pressluft/imports/wp.tgz".into()));
        r.database_sha256 = Some(Text("B".repeat(64)));
        let v = validate_request(&r).unwrap();
        assert_eq!(v.archive_url, "");
        let p = v.parts.unwrap();
        assert_eq!(p.database_sha256, Some("b".repeat(64)));
        assert_eq!(p.content_url, "file:///var/lib/pressluft/imports/wp.tgz");
        r.sha256 = Some(Text("a".repeat(64)));
        assert!(
            validate_request(&r).is_err(),
            "the archive's sha256 without an archive"
        );
        r.sha256 = None;
        r.content_url = Some(Text("file:///etc/passwd".into()));
        assert!(validate_request(&r).is_err());
        r.content_url = Some(Text("https://example.test/wp.tgz".into()));
        r.archive_url = Some(Text("https://example.test/a.tgz".into()));
        assert!(validate_request(&r).is_err(), "both forms");
        r.archive_url = None;
        r.database_url = None;
        assert!(validate_request(&r).is_err(), "wp-content without a dump");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:pw@host.test/a.tgz?X-Amz-Signature=abc"),
            "https://****@host.test/a.tgz?****"
        );
        assert_eq!(
            redact_url("https://host.test/a.tgz"),
            "https://host.test/a.tgz"
        );
        assert_eq!(
            redact_url("file:///var/lib/pressluft/imports/a.tgz"),
            "file:///var/lib/pressluft/imports/a.tgz"
        );
    }

    #[test]
    fn requests_are_validated() {
        for ok in [
            "https://example.test/site.tar.gz",
            "http://u:p@127.0.0.1:8080/x.tgz",
            "file:///var/lib/pressluft/imports/site.tgz",
        ] {
            assert!(validate_request(&req(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ftp://example.test/x.tgz",
            "file:///etc/passwd",
            "file:///var/lib/pressluft/imports/../../../etc/shadow",
            "https:///x.tgz",
            "https://example.test/a b.tgz",
            "/var/lib/pressluft/imports/x.tgz",
        ] {
            assert!(validate_request(&req(bad)).is_err(), "{bad}");
        }
        let mut r = req("https://example.test/x.tgz");
        r.sha256 = Some(Text("abc".to_string()));
        assert!(validate_request(&r).is_err());
        r.sha256 = Some(Text("A".repeat(64)));
        assert_eq!(validate_request(&r).unwrap().sha256, Some("a".repeat(64)));
        r.table_prefix = Some(Text("my-site".to_string()));
        assert!(validate_request(&r).is_err());
        r.table_prefix = Some(Text("mysite_".to_string()));
        r.source_url = Some(Text("https://old.example.test/".to_string()));
        let v = validate_request(&r).unwrap();
        assert_eq!(v.source_url.as_deref(), Some("https://old.example.test"));
        r.source_url = Some(Text("javascript:alert(1)".to_string()));
        assert!(validate_request(&r).is_err());
    }
}
