//! The promotion loop: drift gate (`drift_check`, stored as a `drift_checks` row and on the
//! promotion), the pre-promotion backup of production (a fresh one reused, else declared like a
//! restore's), a `promotion` release declared on production, then `env_promote`. Also the
//! extra-vars of both jobs, what their facts mean, and the baseline `env_create` reports.
use std::sync::Arc;
use std::time::Duration;

use reconcilers::promotion::{Drift, PromotionObserved, PromotionSpec, PromotionStatus, Step};
use reconcilers::{Context, JobType};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Map, Value};

use super::observed::{self, EnvFacts};
use super::restore::{backup_state, is_ready};
use super::{attempts, conditions_of, job_observation, jobs, Result, Runtime, RuntimeError};
use crate::clock;
use crate::notify::Kind;
use crate::store::entity::{environments, jobs as job_rows, promotions};
use crate::store::{self, events::NewEvent, promotions as store_p, releases, resources};

/// The latest job of one type for this promotion.
async fn latest_of(
    db: &impl ConnectionTrait,
    id: &str,
    job_type: JobType,
) -> Result<Option<job_rows::Model>> {
    Ok(job_rows::Entity::find()
        .filter(job_rows::Column::ResourceType.eq("promotion"))
        .filter(job_rows::Column::ResourceId.eq(id))
        .filter(job_rows::Column::JobType.eq(job_type.as_str()))
        .order_by_desc(job_rows::Column::Id)
        .one(db)
        .await?)
}

fn live(e: &Option<environments::Model>) -> bool {
    e.as_ref()
        .is_some_and(|e| e.deletion_requested_at.is_none())
}

pub(super) async fn reconcile(rt: &Arc<Runtime>, id: &str) -> Result<Option<Duration>> {
    let Some(p) = store_p::by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    let status: PromotionStatus = p.status.parse().unwrap_or(PromotionStatus::Failed);
    if status.is_final() {
        return Ok(None);
    }
    let now = clock::now();
    let source = resources::environment_by_id(&rt.db, &p.source_environment_id).await?;
    let target = resources::environment_by_id(&rt.db, &p.target_environment_id).await?;
    let has_baseline = match source.as_ref().and_then(|s| s.drift_baseline_id.as_deref()) {
        Some(b) => store_p::baseline_by_id(&rt.db, b).await?.is_some(),
        None => false,
    };
    let drift = match &p.drift_check_id {
        Some(c) => store_p::drift_check_by_id(&rt.db, c)
            .await?
            .map(|c| match c.status.as_str() {
                "clean" => Drift::Clean,
                _ => Drift::Drifted {
                    reason: c
                        .result_json
                        .as_deref()
                        .and_then(|r| serde_json::from_str::<Value>(r).ok())
                        .and_then(|r| r.get("reason").and_then(Value::as_str).map(str::to_string))
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| "production differs from the baseline".into()),
                },
            }),
        None => None,
    };
    let fresh_backup = match (&p.pre_backup_id, &target) {
        (None, Some(t)) => {
            let minutes = store::settings::all(&rt.db)
                .await?
                .get("backup_fresh_window_minutes")
                .and_then(|m| m.parse::<i64>().ok())
                .unwrap_or(crate::settings::DEFAULT_FRESH_WINDOW_MINUTES);
            let since = clock::from_now(time::Duration::minutes(-minutes));
            store_p::fresh_full_backup(&rt.db, &t.id, &since, &now)
                .await?
                .map(|b| b.id)
        }
        _ => None,
    };
    let pre_backup = match &p.pre_backup_id {
        Some(b) => Some(backup_state(
            resources::backup_by_id(&rt.db, b).await?.as_ref(),
            &now,
        )),
        None => None,
    };
    let node_ready = match &target {
        Some(t) => super::backup::node_ready(rt, &t.node_id).await?,
        None => false,
    };
    let drift_job = latest_of(&rt.db, id, JobType::DriftCheck).await?;
    let promote_job = latest_of(&rt.db, id, JobType::EnvPromote).await?;
    let latest = jobs::latest_for(&rt.db, "promotion", id).await?;
    let att = attempts(rt, "promotion", id, p.generation, None, latest.as_ref()).await?;
    let obs = PromotionObserved {
        status,
        environments_exist: live(&source) && live(&target),
        has_baseline,
        drift,
        drift_job: drift_job.as_ref().and_then(job_observation),
        fresh_backup,
        pre_backup,
        target_ready: target.as_ref().is_some_and(is_ready),
        node_ready,
        promote_job: promote_job.as_ref().and_then(job_observation),
        conditions: conditions_of(&p.conditions),
    };
    let ctx = Context {
        now: now.clone(),
        max_attempts: rt.cfg.max_attempts,
        failed_attempts: att.failed,
        retry_delay_ms: att.retry_delay_ms,
        retry_due: att.retry_due,
        resync_after_ms: rt.cfg.resync.as_millis() as u64,
    };
    let plan = reconcilers::promotion::reconcile(
        &PromotionSpec {
            generation: p.generation,
        },
        &obs,
        &ctx,
    );
    let site_id = target.as_ref().map(|e| e.site_id.clone());
    let phase = plan.phase.as_str();
    let conditions = serde_json::to_string(&plan.conditions).unwrap_or_else(|_| "[]".into());
    let (finished_at, error_code, message) = match &plan.step {
        Step::Finish {
            error_code,
            message,
            ..
        } => (
            Some(now.clone()),
            error_code.map(|c| c.as_str().to_owned()),
            Some(message.clone()),
        ),
        Step::Block { message, .. } => (Some(now.clone()), None, Some(message.clone())),
        _ => (None, p.last_error_code.clone(), None),
    };
    if p.status != phase || p.conditions != conditions || finished_at.is_some() {
        let tx = store::begin_write(&rt.db).await?;
        store::operations::record_pass::<promotions::Entity>(
            &tx,
            id,
            &store::operations::PassOutcome {
                phase,
                conditions: &conditions,
                error_code: error_code.as_deref(),
                attempts: att.failed as i64,
                finished_at: finished_at.as_deref(),
                now: &now,
            },
        )
        .await?;
        if p.status != phase {
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "promotion",
                    resource_id: id,
                    site_id: site_id.as_deref(),
                    environment_id: Some(&p.target_environment_id),
                    reason: if phase == "blocked" {
                        "Blocked"
                    } else {
                        "PhaseChanged"
                    },
                    message: store::operations::phase_change(
                        &p.status,
                        phase,
                        error_code.as_deref(),
                        message.as_deref(),
                    ),
                },
            )
            .await?;
        }
        super::fence_check(rt, &tx).await?;
        tx.commit().await?;
        rt.enqueue(Kind::Environment, &p.target_environment_id);
        rt.enqueue(Kind::Environment, &p.source_environment_id);
    }
    match &plan.step {
        Step::UseBackup { backup_id } => {
            promotions::Entity::update_many()
                .col_expr(promotions::Column::PreBackupId, Expr::value(backup_id))
                .filter(promotions::Column::Id.eq(id))
                .exec(&rt.db)
                .await?;
            rt.enqueue(Kind::Promotion, id);
        }
        Step::DeclarePreBackup => {
            let Some(t) = target.as_ref() else {
                return Ok(Some(Duration::from_secs(5)));
            };
            let tx = store::begin_write(&rt.db).await?;
            let Some(b) = super::restore::declare_rollback_backup(
                &tx,
                t,
                "gate",
                &format!("pre-promotion backup for promotion {id}"),
            )
            .await?
            else {
                return Ok(Some(Duration::from_secs(30)));
            };
            promotions::Entity::update_many()
                .col_expr(promotions::Column::PreBackupId, Expr::value(b.id.clone()))
                .filter(promotions::Column::Id.eq(id))
                .exec(&tx)
                .await?;
            super::fence_check(rt, &tx).await?;
            tx.commit().await?;
            rt.enqueue(Kind::Backup, &b.id);
            rt.enqueue(Kind::Promotion, id);
        }
        Step::RunJob { job_type } => {
            let Some(t) = target.as_ref() else {
                return Ok(Some(Duration::from_secs(5)));
            };
            if *job_type == JobType::EnvPromote && p.release_id.is_none() {
                // production's new release: declared (pending, built by this promotion)
                let tx = store::begin_write(&rt.db).await?;
                let r = releases::declare(
                    &tx,
                    t,
                    releases::NewRelease {
                        source_type: "promotion",
                        source_ref: &format!(
                            "promotion {id} of environment {}",
                            p.source_environment_id
                        ),
                        notes: None,
                        details: None,
                    },
                )
                .await?;
                promotions::Entity::update_many()
                    .col_expr(promotions::Column::ReleaseId, Expr::value(r.id.clone()))
                    .filter(promotions::Column::Id.eq(id))
                    .exec(&tx)
                    .await?;
                super::fence_check(rt, &tx).await?;
                tx.commit().await?;
            }
            rt.start_env_job(
                t,
                *job_type,
                if att.failed > 0 { "retry" } else { "create" },
                ("promotion", id, p.generation),
                att.failed,
            )
            .await?;
        }
        _ => {}
    }
    Ok(plan.requeue_after_ms.map(Duration::from_millis))
}

/// The URL the source serves WordPress on (its last converge's `site_url`, else its routes').
async fn site_url_of(rt: &Runtime, env: &environments::Model) -> Result<String> {
    let facts: EnvFacts = observed::parse(env.observed.as_deref());
    let reported = facts
        .facts
        .get("site_url")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
        .map(|s| s.trim_end_matches('/').to_string());
    Ok(match reported {
        Some(u) => u,
        None => super::routes::desired(&rt.db, env)
            .await?
            .site_url
            .trim_end_matches('/')
            .to_string(),
    })
}

/// `pl_` + the last 16 hex digits of an id: an environment's Linux user and database.
fn unix_name_of(id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    format!("pl_{}", &hex[hex.len().saturating_sub(16)..]).to_ascii_lowercase()
}

/// A stored baseline as the node module takes it.
fn baseline_value(b: &store::entity::drift_baselines::Model) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "preset": b.promotion_preset,
        "db": parse(&b.db_checksums_json),
        "files": parse(&b.file_manifest_json),
    })
}

/// `drift_check`'s own extra-vars (on top of PRODUCTION's environment vars): the preset and
/// `src`'s stored baseline. Shared by a promotion's drift gate and a standalone drift check.
pub(super) async fn drift_check_vars(
    rt: &Runtime,
    src: &environments::Model,
    preset: &str,
    v: &mut Map<String, Value>,
) -> Result<()> {
    let b = match &src.drift_baseline_id {
        Some(b) => store_p::baseline_by_id(&rt.db, b).await?,
        None => None,
    }
    .ok_or_else(|| {
        RuntimeError::Inconsistent(format!("drift baseline of environment {} is gone", src.id))
    })?;
    v.insert("promotion_preset".into(), json!(preset));
    v.insert("drift_baseline".into(), baseline_value(&b));
    Ok(())
}

/// Stores what a successful `drift_check` reported about `src`'s baseline: a `drift_checks` row,
/// the environment's `drift_status` / `drift_checked_at` / `last_drift_check_id`, and the
/// promotion's `drift_check_id` when a promotion ran it. `None` when the facts hold no verdict.
pub(super) async fn record_drift_check(
    db: &impl ConnectionTrait,
    src: &environments::Model,
    promotion_id: Option<&str>,
    preset: &str,
    facts: &Value,
) -> Result<Option<String>> {
    let Some(baseline_id) = src.drift_baseline_id.clone() else {
        return Ok(None);
    };
    let status = match facts.get("drift_status").and_then(Value::as_str) {
        Some("clean") => "clean",
        Some("drifted") => "drifted",
        _ => return Ok(None),
    };
    let text = |k: &str| facts.get(k).map(Value::to_string);
    let id = store_p::record_drift_check(
        db,
        store_p::NewDriftCheck {
            environment_id: &src.id,
            baseline_id: &baseline_id,
            promotion_id,
            preset,
            status,
            db_checksums_json: text("drift_db_checksums"),
            file_checksums_json: text("drift_file_checksums"),
            result_json: Some(
                json!({
                    "reason": facts.get("drift_reason").cloned().unwrap_or(Value::Null),
                    "tables": facts.get("drift_tables").cloned().unwrap_or(Value::Null),
                    "files": facts.get("drift_files").cloned().unwrap_or(Value::Null),
                })
                .to_string(),
            ),
        },
    )
    .await?;
    Ok(Some(id))
}

/// Extra-vars of `drift_check` and `env_promote` on top of production's environment vars.
pub(super) async fn job_vars(
    rt: &Runtime,
    job: &job_rows::Model,
    v: &mut Map<String, Value>,
    secrets: &mut Vec<String>,
) -> Result<()> {
    let gone = |what: &str, id: &str| RuntimeError::Inconsistent(format!("{what} {id} is gone"));
    let p = store_p::by_id(&rt.db, &job.resource_id)
        .await?
        .ok_or_else(|| gone("promotion", &job.resource_id))?;
    let src = resources::environment_by_id(&rt.db, &p.source_environment_id)
        .await?
        .ok_or_else(|| gone("environment", &p.source_environment_id))?;
    v.insert("promotion_id".into(), json!(p.id));
    v.insert("promotion_preset".into(), json!(p.promotion_preset));
    if let Some(url) = v.get("preview_url").cloned() {
        v.entry("site_url").or_insert(url);
    }
    match job.job_type.as_str() {
        "drift_check" => drift_check_vars(rt, &src, &p.promotion_preset, v).await?,
        "env_promote" => {
            v.insert("source_environment_id".into(), json!(src.id));
            v.insert(
                "source_environment_root".into(),
                json!(format!("/var/www/sites/{}/{}", src.site_id, src.id)),
            );
            v.insert("source_db_name".into(), json!(unix_name_of(&src.id)));
            v.insert(
                "source_site_url".into(),
                json!(site_url_of(rt, &src).await?),
            );
            if let Some(r) = &p.release_id {
                v.insert("release_id".into(), json!(r));
            }
            v.insert(
                "releases_keep".into(),
                json!(super::release::releases_keep(rt).await?),
            );
            if let Some(pre) = match &p.pre_backup_id {
                Some(b) => resources::backup_by_id(&rt.db, b).await?,
                None => None,
            }
            .filter(|b| b.completed_at.is_some() && b.deleted_at.is_none())
            {
                super::backup::storage_vars(rt, &pre, "backup_", v, secrets).await?;
                v.insert("rollback_storage_path".into(), json!(pre.storage_path));
                v.insert("rollback_manifest".into(), super::backup::manifest_of(&pre));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Stores what `drift_check` / `env_promote` reported, in the executor's transaction.
pub(super) async fn record_facts(
    db: &impl ConnectionTrait,
    job: &job_rows::Model,
    ok: bool,
    facts: &Value,
) -> Result<()> {
    let Some(p) = store_p::by_id(db, &job.resource_id).await? else {
        return Ok(());
    };
    match job.job_type.as_str() {
        "drift_check" if ok => {
            if let Some(src) = resources::environment_by_id(db, &p.source_environment_id).await? {
                record_drift_check(db, &src, Some(&p.id), &p.promotion_preset, facts).await?;
            }
        }
        "env_promote" => {
            let mut summary = facts.clone();
            if let Some(o) = summary.as_object_mut() {
                o.remove("drift_baseline");
                o.remove("health_checks");
                o.remove("rollback_checks");
            }
            promotions::Entity::update_many()
                .col_expr(
                    promotions::Column::ResultJson,
                    Expr::value(summary.to_string()),
                )
                .filter(promotions::Column::Id.eq(p.id.as_str()))
                .exec(db)
                .await?;
            record_release(db, job, &p, ok, facts).await?;
            // production now equals what was promoted: the source's new baseline
            if let (true, Some(b)) = (ok, facts.get("drift_baseline")) {
                store_p::record_baseline(
                    db,
                    &p.source_environment_id,
                    &p.target_environment_id,
                    &p.promotion_preset,
                    b.get("db").cloned().unwrap_or(Value::Null).to_string(),
                    b.get("files").cloned().unwrap_or(Value::Null).to_string(),
                )
                .await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The promotion's release on production: healthy and current, or unhealthy (switched back).
async fn record_release(
    db: &impl ConnectionTrait,
    job: &job_rows::Model,
    p: &promotions::Model,
    ok: bool,
    facts: &Value,
) -> Result<()> {
    let Some(release_id) = p.release_id.as_deref() else {
        return Ok(());
    };
    let Some(env) = resources::environment_by_id(db, &p.target_environment_id).await? else {
        return Ok(());
    };
    let mut f: EnvFacts = observed::parse(env.observed.as_deref());
    let details = json!({
        "files": {
            "added": facts.get("files_added").cloned().unwrap_or(Value::Null),
            "changed": facts.get("files_changed").cloned().unwrap_or(Value::Null),
            "removed": facts.get("files_removed").cloned().unwrap_or(Value::Null),
        },
        "tables_synced": facts.get("tables_synced").cloned().unwrap_or(Value::Null),
        "tables_protected": facts.get("tables_protected").cloned().unwrap_or(Value::Null),
        "promotion_id": p.id,
    })
    .to_string();
    let rolled_back = facts.get("rolled_back").and_then(Value::as_bool) == Some(true);
    if ok {
        releases::record_outcome(
            db,
            release_id,
            releases::HEALTHY,
            None,
            Some(details),
            Some(clock::now()),
        )
        .await?;
        releases::set_current(db, &env.id, Some(release_id)).await?;
        f.current_release = Some(release_id.to_string());
        f.healthy = Some(true);
        f.http_failures = 0;
    } else if rolled_back || facts.get("error_code").is_some() {
        let why = facts
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("the promotion failed")
            .to_string();
        releases::record_outcome(
            db,
            release_id,
            releases::UNHEALTHY,
            Some(why),
            Some(details),
            None,
        )
        .await?;
        if let Some(h) = facts.get("healthy").and_then(Value::as_bool) {
            f.healthy = Some(h);
        }
    } else {
        return Ok(());
    }
    // The generation declared nothing but this release: judged, it is applied.
    if env.release_generation == Some(env.generation)
        && f.applied_generation == Some(env.generation - 1)
    {
        f.applied_generation = Some(env.generation);
    }
    let _ = job;
    resources::record_environment_observed(db, &env.id, observed::render(&f)).await?;
    Ok(())
}

/// `env_create` of an environment cloned from production reported production's baseline: store
/// it as the environment's (never replacing one it has).
pub(super) async fn record_clone_baseline(
    db: &impl ConnectionTrait,
    env: &environments::Model,
    facts: &Value,
) -> Result<()> {
    let Some(b) = facts.get("drift_baseline").filter(|b| b.is_object()) else {
        return Ok(());
    };
    if env.drift_baseline_id.is_some() {
        return Ok(());
    }
    let Some(prod) = b
        .get("production_environment_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| env.source_environment_id.clone())
    else {
        return Ok(());
    };
    store_p::record_baseline(
        db,
        &env.id,
        &prod,
        b.get("preset")
            .and_then(Value::as_str)
            .unwrap_or(&env.promotion_preset),
        b.get("db").cloned().unwrap_or(Value::Null).to_string(),
        b.get("files").cloned().unwrap_or(Value::Null).to_string(),
    )
    .await?;
    Ok(())
}

/// The production environment a standalone drift check of `env` reads: its baseline's, while it
/// exists and is not being deleted.
pub(super) async fn drift_check_target(
    db: &impl ConnectionTrait,
    env: &environments::Model,
) -> Result<Option<environments::Model>> {
    let baseline = match &env.drift_baseline_id {
        Some(b) => store_p::baseline_by_id(db, b).await?,
        None => None,
    };
    let Some(b) = baseline else {
        return Ok(None);
    };
    Ok(
        resources::environment_by_id(db, &b.production_environment_id)
            .await?
            .filter(|p| p.deletion_requested_at.is_none()),
    )
}

/// Extra-vars of a standalone `drift_check` (resource: the staging/clone environment; the job's
/// environment, whose vars are already in `v`, is production).
pub(super) async fn requested_drift_check_vars(
    rt: &Runtime,
    job: &job_rows::Model,
    v: &mut Map<String, Value>,
) -> Result<()> {
    let env = resources::environment_by_id(&rt.db, &job.resource_id)
        .await?
        .ok_or_else(|| {
            RuntimeError::Inconsistent(format!("environment {} is gone", job.resource_id))
        })?;
    drift_check_vars(rt, &env, &env.promotion_preset, v).await
}

/// Stores what a standalone `drift_check` reported (in the executor's transaction): the
/// `drift_checks` row and the environment's drift fields, an event with the verdict; the
/// request's generation (nothing but the request) counts as applied.
pub(super) async fn record_requested_drift_check(
    db: &impl ConnectionTrait,
    job: &job_rows::Model,
    env: &environments::Model,
    f: &mut EnvFacts,
    ok: bool,
    facts: &Value,
) -> Result<()> {
    let check = if ok {
        record_drift_check(db, env, None, &env.promotion_preset, facts).await?
    } else {
        None
    };
    let message = match &check {
        Some(id) => {
            let status = facts.get("drift_status").and_then(Value::as_str);
            let reason = facts
                .get("drift_reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty());
            match (status, reason) {
                (Some("drifted"), Some(r)) => format!("drift check {id}: production drifted ({r})"),
                (Some(s), _) => format!("drift check {id}: production is {s}"),
                _ => format!("drift check {id} recorded"),
            }
        }
        None => format!(
            "the drift check could not run{}",
            facts
                .get("error")
                .and_then(Value::as_str)
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    };
    store::events::append(
        db,
        NewEvent {
            resource_type: "environment",
            resource_id: &env.id,
            site_id: Some(&env.site_id),
            environment_id: Some(&env.id),
            reason: if check.is_some() {
                "DriftChecked"
            } else {
                "DriftCheckFailed"
            },
            message,
        },
    )
    .await?;
    // The generation declared nothing but this request: run, it is applied.
    if env.release_generation == Some(job.generation)
        && f.applied_generation == Some(job.generation - 1)
    {
        f.applied_generation = Some(job.generation);
    }
    Ok(())
}
