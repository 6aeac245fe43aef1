//! Releases: deploy (git or archive), rollback to an earlier release, list and read them. A deploy
//! or a rollback only records the desired release (a spec change of the environment: event and
//! audit in the same transaction); the environment's reconciler runs `env_deploy`. A dry run
//! (`dry_run: true`) builds nothing: a node query (the release module's plan mode over SSH, 30-s
//! cap) answers which files would be added, changed and removed against the current release.
use std::time::Duration;

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::auth::Auth;
use super::environments::refuse_while_restoring;
use super::error::ApiError;
use super::magic_login::{is_uuid, ssh_error, target};
use super::model::Environment;
use super::text::Text;
use super::write::Write;
use super::{state, validate, AppState, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::{environments, releases as release_rows};
use crate::store::events::NewEvent;
use crate::store::{self, releases, resources};

/// The release module, run on the node as a script for dry runs.
const RELEASE_SCRIPT: &str = include_str!("../../ansible/module_utils/pressluft_release.py");
const PLAN_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_SOURCE_REF: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ReleaseSourceType {
    /// `<repository url>#<branch, tag or commit>` (`https://`, `ssh://`, `git@host:path`,
    /// `file:///path` on the node).
    Git,
    /// `<archive url>[#sha256=<64 hex digits>]`: a `.tar.gz`, `.tgz` or `.zip` at `file:///path`
    /// on the node or `http(s)://`.
    Upload,
}

impl ReleaseSourceType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Git => "git",
            Self::Upload => "upload",
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct DeployRequest {
    pub source_type: ReleaseSourceType,
    /// Where the release comes from (see `source_type`). Content holding `wp-load.php` is a
    /// whole WordPress root; content with only `wp-content/` is an overlay of themes, plugins
    /// and mu-plugins applied onto a copy of the current release.
    pub source_ref: Text,
    /// Answer what would change (200 with a plan) without declaring anything.
    pub dry_run: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RollbackRequest {
    /// An earlier release of this environment.
    pub release_id: Text,
}

/// One release of an environment.
#[derive(Debug, Object)]
pub struct Release {
    pub id: String,
    pub environment_id: String,
    /// `git`, `upload`, `update`, `promotion`.
    pub source_type: String,
    /// Credentials in a URL are shown as `****`.
    pub source_ref: String,
    /// Directory in the environment's root: `releases/<id>`.
    pub path: String,
    /// `pending` (not judged yet), `healthy`, `unhealthy` (`unknown`: older rows).
    pub health_status: String,
    /// Why it is unhealthy.
    pub notes: Option<String>,
    /// What the build changed (`files`: added/changed/removed against the release it replaced,
    /// `source`: commit or archive checksum, `components`: an update's versions).
    pub details: Option<serde_json::Value>,
    pub created_at: String,
    /// When it last became the environment's `current`.
    pub deployed_at: Option<String>,
    /// The environment serves it now.
    pub current: bool,
    /// It is the environment's desired release.
    pub desired: bool,
}

#[derive(Debug, Object)]
pub struct ReleaseList {
    /// Newest first.
    pub items: Vec<Release>,
}

/// What a deploy would do.
#[derive(Debug, Object)]
pub struct DeployPlan {
    pub source_type: String,
    pub source_ref: String,
    /// `root` (a whole WordPress) or `overlay` (wp-content onto a copy of the current release).
    pub kind: String,
    /// The release it would be compared with and replace.
    pub current_release: Option<String>,
    pub files_added: i64,
    pub files_changed: i64,
    pub files_removed: i64,
    /// Up to 20 example paths of each.
    pub added_paths: Vec<String>,
    pub changed_paths: Vec<String>,
    pub removed_paths: Vec<String>,
    /// The source as fetched (git commit, archive SHA-256 and size).
    pub source: Option<serde_json::Value>,
}

#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)]
pub enum DeployAnswer {
    /// Dry run: what the deploy would change; nothing was declared.
    #[oai(status = 200)]
    Planned(Json<DeployPlan>),
    /// Recorded; the release is built and switched to by the environment's reconciler.
    #[oai(status = 202)]
    Accepted(Json<Environment>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum UpdateScope {
    Core,
    Plugins,
    Themes,
    All,
}

impl UpdateScope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Core => "core",
            Self::Plugins => "plugins",
            Self::Themes => "themes",
            Self::All => "all",
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateRequest {
    pub scope: UpdateScope,
    /// Answer which components would change (200) without declaring anything.
    pub dry_run: Option<bool>,
}

/// A component an update would change.
#[derive(Debug, Object)]
pub struct UpdateComponent {
    /// `core`, `plugin` or `theme`.
    #[oai(rename = "type")]
    pub type_: String,
    pub slug: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Object)]
pub struct UpdatePlan {
    pub scope: String,
    pub current_release: Option<String>,
    pub components: Vec<UpdateComponent>,
}

#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)]
pub enum UpdateAnswer {
    /// Dry run: the components (and versions) that would change; nothing was declared.
    #[oai(status = 200)]
    Planned(Json<UpdatePlan>),
    /// Recorded: a fresh full backup, then the update as a new release.
    #[oai(status = 202)]
    Accepted(Json<Environment>),
}

#[derive(ApiResponse)]
pub enum RollbackAnswer {
    /// The release is already the desired one.
    #[oai(status = 200)]
    Unchanged(Json<Environment>),
    /// Recorded; the environment switches to it.
    #[oai(status = 202)]
    Accepted(Json<Environment>),
}

error_response!(DeployError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
    BadGateway = 502,
});
error_response!(RollbackError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});
error_response!(ReadError {
    BadRequest = 400,
    Unauthorized = 401,
    NotFound = 404,
});

pub struct ReleasesApi;

#[OpenApi(tag = "Tag::Environments")]
impl ReleasesApi {
    /// Deploy a release.
    ///
    /// Declares a new release (`pending`) from a git repository or an archive and makes it the
    /// environment's desired release (202). The reconciler builds `releases/<id>/`, checks it
    /// through the environment's PHP-FPM pool before anything changes, switches `current`
    /// atomically, checks it again through nginx and switches back when that fails (the release
    /// is then `unhealthy`, with the reason in `notes`, and never retried). With
    /// `dry_run: true`: 200 with the files that would change (a node query, 30-s limit; 502
    /// `node_unreachable` when the node cannot be asked).
    #[oai(
        path = "/environments/:id/deploy",
        method = "post",
        operation_id = "deployEnvironment"
    )]
    async fn deploy(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<DeployRequest>,
    ) -> Result<DeployAnswer, DeployError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let b = body.0;
        let source_type = b.source_type.as_str();
        let source_ref = validate_source(b.source_type, b.source_ref.as_str())?;
        if b.dry_run == Some(true) {
            let env = load(&st.db, &id).await?;
            let plan = dry_run(st, &env, source_type, &source_ref).await?;
            return Ok(DeployAnswer::Planned(Json(plan)));
        }
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let env = load(&tx, &id).await?;
        writable(&tx, &env).await?;
        let release = releases::declare(
            &tx,
            &env,
            releases::NewRelease {
                source_type,
                source_ref: &source_ref,
                notes: None,
                details: None,
            },
        )
        .await
        .map_err(ApiError::from)?;
        w.event(NewEvent {
            resource_type: "environment",
            resource_id: &id,
            site_id: Some(&env.site_id),
            environment_id: Some(&id),
            reason: "ReleaseDeclared",
            message: format!(
                "release {} declared from {source_type} {}",
                release.id,
                crate::runtime::redact_source(&source_ref)
            ),
        })
        .await?;
        w.audit("environment.deploy", "environment", &id).await?;
        let env = load(&tx, &id).await?;
        w.wake(Kind::Environment, &id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(DeployAnswer::Accepted(Json(env.into())))
    }

    /// Update WordPress core, plugins or themes.
    ///
    /// Sets `update_scope` and `update_requested_at` and declares an `update` release (202). The
    /// reconciler first makes sure a full backup not older than `backup_fresh_window_minutes`
    /// exists (reused, else taken), then builds a copy of the current release in which every
    /// installed component whose version in the update source (setting `update_source_dir` on
    /// the node) is newer is replaced, and deploys it like any release (checks before and after
    /// the switch, switched back when unhealthy). `dry_run: true`: 200 with the components and
    /// versions that would change (a node query, 30-s limit).
    #[oai(
        path = "/environments/:id/updates",
        method = "post",
        operation_id = "updateEnvironmentComponents"
    )]
    async fn updates(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<UpdateRequest>,
    ) -> Result<UpdateAnswer, DeployError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let scope = body.0.scope.as_str();
        if body.0.dry_run == Some(true) {
            let env = load(&st.db, &id).await?;
            let plan = update_dry_run(st, &env, scope).await?;
            return Ok(UpdateAnswer::Planned(Json(plan)));
        }
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let env = load(&tx, &id).await?;
        writable(&tx, &env).await?;
        let release = releases::declare_with(
            &tx,
            &env,
            releases::NewRelease {
                source_type: "update",
                source_ref: &format!("scope:{scope}"),
                notes: None,
                details: None,
            },
            vec![
                ("update_scope", sea_orm::sea_query::Expr::value(scope)),
                (
                    "update_requested_at",
                    sea_orm::sea_query::Expr::value(crate::clock::now()),
                ),
            ],
        )
        .await
        .map_err(ApiError::from)?;
        w.event(NewEvent {
            resource_type: "environment",
            resource_id: &id,
            site_id: Some(&env.site_id),
            environment_id: Some(&id),
            reason: "UpdateRequested",
            message: format!("update of {scope} requested as release {}", release.id),
        })
        .await?;
        w.audit("environment.update_components", "environment", &id)
            .await?;
        let env = load(&tx, &id).await?;
        w.wake(Kind::Environment, &id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(UpdateAnswer::Accepted(Json(env.into())))
    }

    /// Roll back to an earlier release.
    ///
    /// Makes an earlier release of this environment the desired one again; the reconciler
    /// switches `current` to its directory (rebuilt from its source when it was pruned). An
    /// `unhealthy` release chosen again is judged anew.
    #[oai(
        path = "/environments/:id/rollback",
        method = "post",
        operation_id = "rollbackEnvironment"
    )]
    async fn rollback(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<RollbackRequest>,
    ) -> Result<RollbackAnswer, RollbackError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let release_id = validate::uuid("release_id", body.0.release_id.as_str())
            .map_err(|_| ApiError::invalid("release_id", "release_id must be a UUID"))?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let env = load(&tx, &id).await?;
        let release = releases::by_id(&tx, &release_id)
            .await
            .map_err(ApiError::from)?
            .filter(|r| r.environment_id == id)
            .ok_or_else(|| ApiError::NotFound("release not found in this environment".into()))?;
        if env.desired_release_id.as_deref() == Some(release.id.as_str())
            && release.health_status != releases::UNHEALTHY
        {
            return Ok(RollbackAnswer::Unchanged(Json(env.into())));
        }
        writable(&tx, &env).await?;
        if release.health_status == releases::UNHEALTHY {
            releases::record_outcome(&tx, &release.id, releases::PENDING, None, None, None)
                .await
                .map_err(ApiError::from)?;
        }
        releases::choose(&tx, &env, &release.id)
            .await
            .map_err(ApiError::from)?;
        w.event(NewEvent {
            resource_type: "environment",
            resource_id: &id,
            site_id: Some(&env.site_id),
            environment_id: Some(&id),
            reason: "RollbackRequested",
            message: format!(
                "rollback to release {} requested (serving {})",
                release.id,
                env.current_release_id
                    .as_deref()
                    .unwrap_or("another release")
            ),
        })
        .await?;
        w.audit("environment.rollback", "environment", &id).await?;
        let env = load(&tx, &id).await?;
        w.wake(Kind::Environment, &id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(RollbackAnswer::Accepted(Json(env.into())))
    }

    /// List an environment's releases, newest first.
    #[oai(
        path = "/environments/:id/releases",
        method = "get",
        operation_id = "listReleases"
    )]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<ReleaseList>, ReadError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let env = load(&st.db, &id).await?;
        let rows = releases::of_environment(&st.db, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(ReleaseList {
            items: rows.into_iter().map(|r| release(r, &env)).collect(),
        }))
    }

    /// Read a release.
    #[oai(path = "/releases/:id", method = "get", operation_id = "getRelease")]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Release>, ReadError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let r = releases::by_id(&st.db, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("release not found".into()))?;
        let env = load(&st.db, &r.environment_id).await?;
        Ok(Json(release(r, &env)))
    }
}

fn release(r: release_rows::Model, env: &environments::Model) -> Release {
    Release {
        current: env.current_release_id.as_deref() == Some(r.id.as_str()),
        desired: env.desired_release_id.as_deref() == Some(r.id.as_str()),
        id: r.id,
        environment_id: r.environment_id,
        source_type: r.source_type,
        source_ref: crate::runtime::redact_source(&r.source_ref),
        path: r.path,
        health_status: r.health_status,
        notes: r.notes,
        details: r.details.and_then(|d| serde_json::from_str(&d).ok()),
        created_at: r.created_at,
        deployed_at: r.deployed_at,
    }
}

async fn load(
    db: &impl sea_orm::ConnectionTrait,
    id: &str,
) -> Result<environments::Model, ApiError> {
    resources::environment_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("environment not found".into()))
}

/// A release can be declared while the environment is not being deleted or restored.
async fn writable(
    db: &impl sea_orm::ConnectionTrait,
    env: &environments::Model,
) -> Result<(), ApiError> {
    if env.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict(
            "the environment is being deleted".into(),
        ));
    }
    refuse_while_restoring(db, &env.id).await
}

/// Strict validation of a source reference (the node module checks the same again).
pub fn validate_source(kind: ReleaseSourceType, v: &str) -> Result<String, ApiError> {
    let bad = |m: &str| ApiError::invalid("source_ref", m);
    let v = v.trim();
    if v.is_empty() || v.len() > MAX_SOURCE_REF {
        return Err(bad("source_ref must be 1 to 2048 characters"));
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(
            "source_ref must not contain spaces or control characters",
        ));
    }
    match kind {
        ReleaseSourceType::Git => {
            let (url, reference) = v.rsplit_once('#').ok_or_else(|| {
                bad("git source_ref must be <repository url>#<branch, tag or commit>")
            })?;
            let scheme_ok = ["https://", "http://", "ssh://", "git://", "file:///"]
                .iter()
                .any(|s| url.starts_with(s) && url.len() > s.len())
                || (url.contains('@') && url.contains(':') && !url.contains("://"));
            if !scheme_ok || url.starts_with('-') {
                return Err(bad(
                    "the repository URL must be https://, http://, ssh://, git://, file:///… or user@host:path",
                ));
            }
            let ref_ok = !reference.is_empty()
                && reference.len() <= 255
                && !reference.starts_with('-')
                && !reference.contains("..")
                && reference
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._/-+".contains(c));
            if !ref_ok {
                return Err(bad("the git ref must be a branch, tag or commit name"));
            }
        }
        ReleaseSourceType::Upload => {
            let (url, fragment) = match v.split_once('#') {
                Some((u, f)) => (u, Some(f)),
                None => (v, None),
            };
            if let Some(f) = fragment {
                let ok = f
                    .strip_prefix("sha256=")
                    .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
                if !ok {
                    return Err(bad(
                        "the archive URL's fragment must be #sha256=<64 hex digits>",
                    ));
                }
            }
            if !["file:///", "http://", "https://"]
                .iter()
                .any(|s| url.starts_with(s) && url.len() > s.len())
            {
                return Err(bad(
                    "the archive URL must be file:///…, http:// or https://",
                ));
            }
            let path = url.split('?').next().unwrap_or(url).to_ascii_lowercase();
            if !(path.ends_with(".tar.gz") || path.ends_with(".tgz") || path.ends_with(".zip")) {
                return Err(bad("the archive must be a .tar.gz, .tgz or .zip"));
            }
            if url.starts_with("file:///") && url.split('/').any(|p| p == "..") {
                return Err(bad("the archive path must not contain '..'"));
            }
        }
    }
    Ok(v.to_string())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs the release script on the node with `args` (validated, quoted by the caller); its
/// last JSON line.
async fn node_script(
    st: &AppState,
    env: &environments::Model,
    args: &str,
) -> Result<serde_json::Value, ApiError> {
    let node = store::nodes::by_id(&st.db, &env.node_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("node {} is gone", env.node_id).into()))?;
    let sudo = if node.ssh_user != "root" {
        "sudo -n "
    } else {
        ""
    };
    let command = format!("{sudo}python3 -c {} {args}", shell_quote(RELEASE_SCRIPT));
    let target = target(st, &node).await?;
    let out = crate::ssh::exec(&target, &command, PLAN_TIMEOUT)
        .await
        .map_err(|e| ssh_error(&node, e))?;
    out.stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            tracing::warn!(environment = %env.id, exit_status = out.exit_status, "release script: no answer");
            ApiError::NodeUnreachable("the node did not answer the plan".into())
        })
}

async fn update_dry_run(
    st: &AppState,
    env: &environments::Model,
    scope: &str,
) -> Result<UpdatePlan, ApiError> {
    if !is_uuid(&env.id) || !is_uuid(&env.site_id) {
        return Err(ApiError::Internal(
            format!("environment {}: ids do not have the expected form", env.id).into(),
        ));
    }
    let dir = store::settings::all(&st.db)
        .await?
        .get("update_source_dir")
        .cloned()
        .unwrap_or_else(|| crate::settings::DEFAULT_UPDATE_SOURCE_DIR.into());
    let answer = node_script(
        st,
        env,
        &format!(
            "plan-update /var/www/sites {} {} {scope} {}",
            env.site_id,
            env.id,
            shell_quote(&dir)
        ),
    )
    .await?;
    if answer["ok"] != serde_json::Value::Bool(true) {
        let code = answer["error_code"].as_str().unwrap_or("RELEASE_INVALID");
        let msg = answer["error"].as_str().unwrap_or("the plan failed");
        return Err(ApiError::Conflict(format!("{code}: {msg}")));
    }
    let p = &answer["plan"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    Ok(UpdatePlan {
        scope: scope.to_string(),
        current_release: p["current_release"].as_str().map(str::to_string),
        components: p["components"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| UpdateComponent {
                        type_: s(&c["type"]),
                        slug: s(&c["slug"]),
                        from: s(&c["from"]),
                        to: s(&c["to"]),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The plan of a deploy, from the node (the release module's plan mode as a script).
async fn dry_run(
    st: &AppState,
    env: &environments::Model,
    source_type: &str,
    source_ref: &str,
) -> Result<DeployPlan, ApiError> {
    if !is_uuid(&env.id) || !is_uuid(&env.site_id) {
        return Err(ApiError::Internal(
            format!("environment {}: ids do not have the expected form", env.id).into(),
        ));
    }
    let node = store::nodes::by_id(&st.db, &env.node_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("node {} is gone", env.node_id).into()))?;
    let sudo = if node.ssh_user != "root" {
        "sudo -n "
    } else {
        ""
    };
    let command = format!(
        "{sudo}python3 -c {} plan /var/www/sites {} {} plan-{} {} {}",
        shell_quote(RELEASE_SCRIPT),
        env.site_id,
        env.id,
        &env.id[..8],
        source_type,
        shell_quote(source_ref)
    );
    let target = target(st, &node).await?;
    let out = crate::ssh::exec(&target, &command, PLAN_TIMEOUT)
        .await
        .map_err(|e| ssh_error(&node, e))?;
    let answer: serde_json::Value = out
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            tracing::warn!(environment = %env.id, exit_status = out.exit_status, "deploy plan: no answer");
            ApiError::NodeUnreachable("the node did not answer the deploy plan".into())
        })?;
    if answer["ok"] != serde_json::Value::Bool(true) {
        let code = answer["error_code"].as_str().unwrap_or("RELEASE_INVALID");
        let msg = answer["error"].as_str().unwrap_or("the plan failed");
        return Err(ApiError::invalid("source_ref", format!("{code}: {msg}")));
    }
    let p = &answer["plan"];
    let files = &p["files"];
    let n = |k: &str| files[k].as_i64().unwrap_or(0);
    let paths = |k: &str| {
        files[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(DeployPlan {
        source_type: source_type.to_string(),
        source_ref: crate::runtime::redact_source(source_ref),
        kind: p["kind"].as_str().unwrap_or("").to_string(),
        current_release: p["current_release"].as_str().map(str::to_string),
        files_added: n("added"),
        files_changed: n("changed"),
        files_removed: n("removed"),
        added_paths: paths("added_paths"),
        changed_paths: paths("changed_paths"),
        removed_paths: paths("removed_paths"),
        source: Some(p["source"].clone()).filter(|s| !s.is_null()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_validated_strictly() {
        use ReleaseSourceType::{Git, Upload};
        for ok in [
            "file:///srv/site.git#main",
            "https://git.example.test/acme/site.git#v1.2.3",
            "git@github.com:acme/site.git#feature/x",
            "ssh://git@host/acme.git#0123abcd",
        ] {
            assert!(validate_source(Git, ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "file:///srv/site.git",
            "file:///srv/site.git#",
            "file:///srv/site.git#--upload-pack=x",
            "-oProxyCommand=x#main",
            "ftp://x/y.git#main",
            "file:///srv/site.git#a b",
            "file:///srv/site.git#a..b",
        ] {
            assert!(validate_source(Git, bad).is_err(), "{bad:?}");
        }
        let sha = "a".repeat(64);
        for ok in [
            "file:///srv/r.tar.gz".to_string(),
            format!("https://cdn.test/r.zip#sha256={sha}"),
            "http://x.test/a/b.tgz".into(),
        ] {
            assert!(validate_source(Upload, &ok).is_ok(), "{ok}");
        }
        for bad in [
            "file:///srv/r.rar",
            "s3://bucket/r.tar.gz",
            "file:///srv/r.tar.gz#sha256=abc",
            "file:///srv/../etc/r.tar.gz",
            "file:///srv/r.tar.gz#md5=x",
        ] {
            assert!(validate_source(Upload, bad).is_err(), "{bad:?}");
        }
        let e = validate_source(Upload, "file:///x.rar").unwrap_err();
        assert_eq!(e.code(), "bad_request");
        assert_eq!(e.body().details.unwrap()["field"], "source_ref");
    }
}
