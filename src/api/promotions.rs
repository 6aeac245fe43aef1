//! Promotions: a staging or clone environment promoted to its site's production environment,
//! behind the drift gate (blocked, final, when production's overwritable data moved since the
//! baseline) and a fresh backup of production as the rollback point. A dry run answers the plan
//! at once (a node query over SSH, 30 s cap) and changes nothing.
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{json, Value};

use super::auth::Auth;
use super::error::ApiError;
use super::magic_login::{ssh_error, target};
use super::model::{parse_conditions, Condition, PromotionPreset};
use super::write::Write;
use super::{next_cursor, page_limit, state, validate, AppState, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::ssh::StreamOptions;
use crate::store::entity::{environments, promotions};
use crate::store::events::NewEvent;
use crate::store::promotions::{self as store_p, NewPromotion};
use crate::store::resources::{self, Page};
use crate::store::{self};

/// The node side of a dry run: the promotion module's shared code, run by `python3` on the node.
const PLAN_SCRIPT: &str = include_str!("../../ansible/module_utils/pressluft_promote.py");
/// A dry run's node query may take this long (checksums of tables, hashes of files).
const PLAN_TIMEOUT: Duration = Duration::from_secs(30);
const PLAN_OUTPUT_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Object)]
pub struct Promotion {
    pub id: String,
    /// The environment promoted (staging or clone).
    pub source_environment_id: String,
    /// The site's production environment.
    pub target_environment_id: String,
    /// content-protect or commerce-protect.
    pub promotion_preset: String,
    /// pending, running, blocked (the drift gate; final, no override), succeeded, failed.
    pub status: String,
    /// This promotion's drift check.
    pub drift_check_id: Option<String>,
    /// Production's pre-promotion backup (reused when fresh): the rollback point.
    pub pre_backup_id: Option<String>,
    /// The `promotion` release declared on production.
    pub release_id: Option<String>,
    /// Why it failed (e.g. PROMOTION_ROLLED_BACK).
    pub error_code: Option<String>,
    /// What the node did: tables_synced, tables_protected, files_added/changed/removed, release,
    /// rolled_back, timings.
    pub result: Option<Value>,
    pub finished_at: Option<String>,
    pub generation: i64,
    /// Ready, Reconciling, Stalled, DriftClean (False with reason Drifted or NoBaseline when
    /// blocked), BackupFresh.
    pub conditions: Vec<Condition>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<promotions::Model> for Promotion {
    fn from(m: promotions::Model) -> Self {
        Promotion {
            conditions: parse_conditions(&m.conditions),
            result: m
                .result_json
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            id: m.id,
            source_environment_id: m.source_environment_id,
            target_environment_id: m.target_environment_id,
            promotion_preset: m.promotion_preset,
            status: m.status,
            drift_check_id: m.drift_check_id,
            pre_backup_id: m.pre_backup_id,
            release_id: m.release_id,
            error_code: m.last_error_code,
            finished_at: m.finished_at,
            generation: m.generation,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// One drift check: production's overwritable data against a baseline (immutable).
#[derive(Debug, Object)]
pub struct DriftCheck {
    pub id: String,
    /// The environment whose baseline was compared (the one being promoted).
    pub environment_id: String,
    pub baseline_id: String,
    pub promotion_id: Option<String>,
    pub promotion_preset: String,
    /// clean or drifted.
    pub status: String,
    /// What drifted: `reason`, `tables`, `files` {added, changed, removed}.
    pub result: Option<Value>,
    pub checked_at: String,
}

#[derive(Debug, Object)]
pub struct PromotionPage {
    pub items: Vec<Promotion>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreatePromotion {
    /// Default: the source environment's promotion_preset.
    pub preset: Option<PromotionPreset>,
    /// Answer the plan (200) without changing anything.
    pub dry_run: Option<bool>,
}

/// What a promotion would do.
#[derive(Debug, Object)]
pub struct PromotionPlan {
    pub source_environment_id: String,
    pub target_environment_id: String,
    pub promotion_preset: String,
    /// clean, drifted, or unknown (no baseline: the promotion would be blocked).
    pub drift_status: String,
    /// What drifted (empty when clean).
    pub drift_reason: String,
    /// Production's tables the promotion would replace with the source's.
    pub tables_synced: Vec<String>,
    /// Tables the preset protects: never written.
    pub tables_protected: Vec<String>,
    /// Files of wp-content (uploads excluded) production would gain, see changed, lose.
    pub files_added: Vec<String>,
    pub files_changed: Vec<String>,
    pub files_removed: Vec<String>,
    /// The node's whole answer (also volatile tables, tables left alone, drifted tables/files).
    pub details: Value,
}

#[derive(ApiResponse)]
pub enum PromotionAccepted {
    /// The dry run's plan; nothing was changed.
    #[oai(status = 200)]
    Plan(Json<PromotionPlan>),
    /// Recorded; follow the promotion's status.
    #[oai(status = 202)]
    Accepted(Json<Promotion>),
}

error_response!(ListError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(WriteError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
    BadGateway = 502,
});

pub struct PromotionsApi;

#[OpenApi(tag = "Tag::Environments")]
impl PromotionsApi {
    /// Promote this (staging or clone) environment to its site's production environment.
    ///
    /// The promotion checks production for drift first (its overwritable data against the
    /// baseline recorded when this environment was cloned): drifted, or no baseline, and it ends
    /// `blocked` with `DriftClean=False` - nothing on production changes, and there is no
    /// override. Then a fresh full backup of production (reused, else taken), the sync (files and
    /// non-protected tables; protected tables are never written), health checks, and a rollback
    /// when unhealthy. While it runs, other mutations of both environments answer 409
    /// `resource_in_use`. With `dry_run: true` the answer is the plan (200), nothing changes.
    #[oai(
        path = "/environments/:id/promote",
        method = "post",
        operation_id = "promoteEnvironment"
    )]
    async fn create(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<CreatePromotion>,
    ) -> Result<PromotionAccepted, WriteError> {
        let st = state(req)?;
        let src_id = validate::uuid("id", &id.0)?;
        let src = resources::environment_by_id(&st.db, &src_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        let preset = body
            .0
            .preset
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| src.promotion_preset.clone());
        if src.environment_type == "production" {
            return Err(ApiError::Conflict(
                "production cannot be promoted: promote a staging or clone environment".into(),
            )
            .into());
        }
        if src.deletion_requested_at.is_some() {
            return Err(ApiError::Conflict("the environment is being deleted".into()).into());
        }
        let target = production_of(st, &src).await?;
        if body.0.dry_run == Some(true) {
            let plan = dry_run(st, &src, &target, &preset).await?;
            return Ok(PromotionAccepted::Plan(Json(plan)));
        }
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let p = create_promotion_in(&mut w, &src, &target, &preset).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(PromotionAccepted::Accepted(Json(p.into())))
    }

    /// Read a promotion.
    #[oai(
        path = "/promotions/:id",
        method = "get",
        operation_id = "getPromotion"
    )]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Promotion>, ListError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let p = store_p::by_id(&st.db, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("promotion not found".into()))?;
        Ok(Json(p.into()))
    }

    /// Read a drift check (a promotion's `drift_check_id`).
    #[oai(
        path = "/drift-checks/:id",
        method = "get",
        operation_id = "getDriftCheck"
    )]
    async fn drift_check(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<DriftCheck>, ListError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let c = store_p::drift_check_by_id(&st.db, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("drift check not found".into()))?;
        Ok(Json(DriftCheck {
            result: c
                .result_json
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            id: c.id,
            environment_id: c.environment_id,
            baseline_id: c.baseline_id,
            promotion_id: c.promotion_id,
            promotion_preset: c.promotion_preset,
            status: c.status,
            checked_at: c.checked_at,
        }))
    }

    /// The promotions from or into this environment, oldest first.
    #[oai(
        path = "/environments/:id/promotions",
        method = "get",
        operation_id = "listEnvironmentPromotions"
    )]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<PromotionPage>, ListError> {
        let st = state(req)?;
        let env_id = validate::uuid("id", &id.0)?;
        resources::environment_by_id(&st.db, &env_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        let limit = page_limit(limit.0)?;
        let page = Page {
            after: super::cursor(cursor.0)?,
            limit,
        };
        let rows = store_p::of_environment(&st.db, &env_id, &page)
            .await
            .map_err(ApiError::from)?;
        let next = next_cursor(&rows, limit, |r| &r.id);
        Ok(Json(PromotionPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }
}

/// The site's production environment (409 when there is none or it is being deleted).
/// Declares a promotion of `src` to its site's production environment `target`.
pub(crate) async fn create_promotion_in(
    w: &mut Write<'_>,
    src: &environments::Model,
    target: &environments::Model,
    preset: &str,
) -> Result<promotions::Model, ApiError> {
    let tx = w.tx;
    super::environments::refuse_while_restoring(tx, &src.id).await?;
    super::environments::refuse_while_restoring(tx, &target.id).await?;
    let p = store_p::create(
        tx,
        NewPromotion {
            source_environment_id: &src.id,
            target_environment_id: &target.id,
            preset,
        },
    )
    .await?;
    w.event(NewEvent {
        resource_type: "promotion",
        resource_id: &p.id,
        site_id: Some(&src.site_id),
        environment_id: Some(&target.id),
        reason: "Created",
        message: format!(
            "promotion of environment {} to production ({preset}) requested",
            src.id
        ),
    })
    .await?;
    w.audit("promotion.create", "promotion", &p.id).await?;
    w.wake(Kind::Promotion, &p.id);
    w.wake(Kind::Environment, &target.id);
    Ok(p)
}

async fn production_of(
    st: &AppState,
    src: &environments::Model,
) -> Result<environments::Model, ApiError> {
    let envs = resources::list_environments(
        &st.db,
        &resources::EnvironmentFilter {
            site_id: Some(src.site_id.clone()),
            ..Default::default()
        },
        &Page {
            after: None,
            limit: 1000,
        },
    )
    .await?;
    envs.into_iter()
        .find(|e| e.environment_type == "production" && e.deletion_requested_at.is_none())
        .ok_or_else(|| ApiError::Conflict("the site has no production environment".into()))
}

fn unix_name_of(id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    format!("pl_{}", &hex[hex.len().saturating_sub(16)..]).to_ascii_lowercase()
}

/// The dry run: the promotion module's `plan()` on the node (read-only), 30 s cap.
async fn dry_run(
    st: &AppState,
    src: &environments::Model,
    target_env: &environments::Model,
    preset: &str,
) -> Result<PromotionPlan, ApiError> {
    let baseline = match &src.drift_baseline_id {
        Some(b) => store_p::baseline_by_id(&st.db, b).await?.map(|b| {
            let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            json!({"preset": b.promotion_preset, "db": parse(&b.db_checksums_json),
                   "files": parse(&b.file_manifest_json)})
        }),
        None => None,
    };
    let payload = json!({
        "production": {"root": format!("/var/www/sites/{}/{}", target_env.site_id, target_env.id),
                       "db": unix_name_of(&target_env.id)},
        "source": {"root": format!("/var/www/sites/{}/{}", src.site_id, src.id),
                   "db": unix_name_of(&src.id)},
        "preset": preset,
        "baseline": baseline,
    });
    let node = store::nodes::by_id(&st.db, &target_env.node_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("node {} is gone", target_env.node_id).into()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    // script and payload on stdin (no size limit of a command line, nothing to quote)
    let stdin = format!(
        "{}\n{}\n",
        b64.encode(PLAN_SCRIPT),
        b64.encode(payload.to_string())
    );
    let command =
        format!(
        "{}python3 -c 'import base64,sys; s=sys.stdin.readline(); p=sys.stdin.readline().strip(); \
         exec(base64.b64decode(s).decode(\"utf-8\")); plan_main(p)'",
        if node.ssh_user != "root" { "sudo -n " } else { "" }
    );
    let t = target(st, &node).await?;
    let opts = StreamOptions {
        start_timeout: PLAN_TIMEOUT,
        idle_timeout: PLAN_TIMEOUT,
        stall_timeout: PLAN_TIMEOUT,
        stdin: stdin.into_bytes(),
        redact: vec![],
        label: "promotion plan".into(),
    };
    let collect = async {
        let mut stream = crate::ssh::exec_stream(&t, &command, opts)
            .await
            .map_err(|e| ssh_error(&node, e))?;
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::warn!(error = %e, "promotion plan: node query failed");
                ApiError::NodeUnreachable("the node did not answer the promotion plan".into())
            })?;
            buf.extend_from_slice(&chunk);
            if buf.len() > PLAN_OUTPUT_LIMIT {
                return Err(ApiError::NodeUnreachable(
                    "the node's promotion plan is too large".into(),
                ));
            }
        }
        Ok::<_, ApiError>(buf)
    };
    let out = tokio::time::timeout(PLAN_TIMEOUT, collect)
        .await
        .map_err(|_| {
            ApiError::NodeUnreachable("the node did not answer within 30 seconds".into())
        })??;
    let text = String::from_utf8_lossy(&out);
    let answer: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l.trim()).ok())
        .ok_or_else(|| {
            tracing::warn!("promotion plan: no JSON answer from the node");
            ApiError::NodeUnreachable("the node gave no promotion plan".into())
        })?;
    if answer.get("ok") != Some(&Value::Bool(true)) {
        tracing::warn!(answer = %answer, "promotion plan failed on the node");
        return Err(ApiError::Conflict(format!(
            "the plan could not be made: {}",
            answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .chars()
                .take(300)
                .collect::<String>()
        )));
    }
    let plan = answer.get("plan").cloned().unwrap_or(Value::Null);
    let list = |k: &str| -> Vec<String> {
        plan.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let text_of = |k: &str| {
        plan.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(PromotionPlan {
        source_environment_id: src.id.clone(),
        target_environment_id: target_env.id.clone(),
        promotion_preset: preset.to_string(),
        drift_status: text_of("drift_status"),
        drift_reason: text_of("drift_reason"),
        tables_synced: list("tables_synced"),
        tables_protected: list("tables_protected"),
        files_added: list("files_added"),
        files_changed: list("files_changed"),
        files_removed: list("files_removed"),
        details: plan,
    })
}
