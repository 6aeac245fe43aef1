//! The import loop: the gate (a full backup of the target taken for this import, like a restore's
//! pre-restore backup: decision "Pre-restore backup not reused"), an `import` release declared on
//! the target, then `site_import`. Also the job's
//! extra-vars and what its facts mean (the release's health, the environment's `current`).
use std::sync::Arc;
use std::time::Duration;

use reconcilers::import::{ImportObserved, ImportSpec, OperationStatus, Step};
use reconcilers::Context;
use sea_orm::ConnectionTrait;
use serde_json::{json, Map, Value};

use super::observed::{self, EnvFacts};
use super::restore::backup_state;
use super::{attempts, conditions_of, job_observation, jobs, Result, Runtime, RuntimeError};
use crate::clock;
use crate::notify::Kind;
use crate::store::entity::{imports, jobs as job_rows};
use crate::store::{self, events::NewEvent, imports as store_i, releases, resources};

/// The archive limit when the `import_max_bytes` setting is not set: 20 GiB.
pub const DEFAULT_IMPORT_MAX_BYTES: i64 = 20 * 1024 * 1024 * 1024;
/// Where `file://` archives must lie on the node (tests, archives staged by hand).
pub const IMPORT_DIR: &str = "/var/lib/pressluft/imports";

pub(super) async fn reconcile(rt: &Arc<Runtime>, id: &str) -> Result<Option<Duration>> {
    let Some(r) = store_i::by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    let status: OperationStatus = r.status.parse().unwrap_or(OperationStatus::Failed);
    if matches!(status, OperationStatus::Succeeded | OperationStatus::Failed) {
        return Ok(None);
    }
    let now = clock::now();
    let env = resources::environment_by_id(&rt.db, &r.environment_id)
        .await?
        .filter(|e| e.deletion_requested_at.is_none());
    let pre = match &r.pre_backup_id {
        Some(p) => Some(backup_state(
            resources::backup_by_id(&rt.db, p).await?.as_ref(),
            &now,
        )),
        None => None,
    };
    let node_ready = match &env {
        Some(e) => super::backup::node_ready(rt, &e.node_id).await?,
        None => false,
    };
    let target_created = env.as_ref().is_some_and(|e| {
        let f: EnvFacts = observed::parse(e.observed.as_deref());
        f.ever_ready || f.applied_generation.is_some()
    });
    let latest = jobs::latest_for(&rt.db, "import", id).await?;
    let att = attempts(rt, "import", id, r.generation, None, latest.as_ref()).await?;
    let spec = ImportSpec {
        generation: r.generation,
    };
    let obs = ImportObserved {
        status,
        pre_backup: pre,
        target_live: env.is_some(),
        node_ready,
        latest_job: latest.as_ref().and_then(job_observation),
        conditions: conditions_of(&r.conditions),
        adoption: r.source_type == "ssh",
        target_created,
        target_failed: env.as_ref().is_some_and(|e| e.status == "failed"),
    };
    let ctx = Context {
        now: now.clone(),
        max_attempts: rt.cfg.max_attempts,
        failed_attempts: att.failed,
        retry_delay_ms: att.retry_delay_ms,
        retry_due: att.retry_due,
        resync_after_ms: rt.cfg.resync.as_millis() as u64,
    };
    let plan = reconcilers::import::reconcile(&spec, &obs, &ctx);
    if let Some(pre_id) = &r.pre_backup_id {
        if obs.latest_job.as_ref().is_some_and(|j| !j.is_in_progress()) {
            // the job that took (or failed to take) the pre-import backup is over: the backup's
            // own reconciler records its phase, or takes it itself now
            rt.enqueue(Kind::Backup, pre_id);
        }
    }
    let site_id = env.as_ref().map(|e| e.site_id.clone());
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
        _ => (None, r.last_error_code.clone(), None),
    };
    if r.status != phase || r.conditions != conditions || finished_at.is_some() {
        let tx = store::begin_write(&rt.db).await?;
        super::fence_check(rt, &tx).await?;
        store::operations::record_pass::<imports::Entity>(
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
        if r.status != phase {
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "import",
                    resource_id: id,
                    site_id: site_id.as_deref(),
                    environment_id: Some(&r.environment_id),
                    reason: "PhaseChanged",
                    message: store::operations::phase_change(
                        &r.status,
                        phase,
                        error_code.as_deref(),
                        message.as_deref(),
                    ),
                },
            )
            .await?;
        }
        tx.commit().await?;
        rt.enqueue(Kind::Environment, &r.environment_id);
    }
    match &plan.step {
        Step::DeclarePreBackup => {
            let Some(env) = env.as_ref() else {
                return Ok(Some(Duration::from_secs(5)));
            };
            let tx = store::begin_write(&rt.db).await?;
            super::fence_check(rt, &tx).await?;
            let Some(b) = super::restore::declare_rollback_backup(
                &tx,
                env,
                "gate",
                &format!("pre-import backup for import {id}"),
            )
            .await?
            else {
                return Ok(Some(Duration::from_secs(30)));
            };
            store_i::set_ref(&tx, id, imports::Column::PreBackupId, &b.id).await?;
            tx.commit().await?;
            // The backup's own reconciler is not woken: the next pass starts site_import, which
            // takes the backup itself (its reconciler waits while that job is queued or running,
            // and is woken when it ended). Woken by a resync in between, it takes the backup
            // with a job of its own first - slower, just as correct.
            rt.enqueue(Kind::Import, id);
        }
        Step::RunJob { job_type } => {
            let Some(env) = env.as_ref() else {
                return Ok(Some(Duration::from_secs(5)));
            };
            if r.release_id.is_none() {
                // the target's new release: declared (pending, built by this import)
                let tx = store::begin_write(&rt.db).await?;
                super::fence_check(rt, &tx).await?;
                let rel = releases::declare(
                    &tx,
                    env,
                    releases::NewRelease {
                        source_type: "import",
                        source_ref: &format!("import {id}"),
                        notes: None,
                        details: None,
                    },
                )
                .await?;
                store_i::set_ref(&tx, id, imports::Column::ReleaseId, &rel.id).await?;
                tx.commit().await?;
            }
            rt.start_env_job(
                env,
                *job_type,
                if att.failed > 0 { "retry" } else { "create" },
                ("import", id, r.generation),
                att.failed,
            )
            .await?;
        }
        _ => {}
    }
    Ok(plan.requeue_after_ms.map(Duration::from_millis))
}

/// Extra-vars of `site_import` on top of the environment's (the archive URL is a secret: it may
/// carry credentials).
pub(super) async fn job_vars(
    rt: &Runtime,
    job: &job_rows::Model,
    v: &mut Map<String, Value>,
    secrets: &mut Vec<String>,
) -> Result<()> {
    let gone = |what: &str, id: &str| RuntimeError::Inconsistent(format!("{what} {id} is gone"));
    let r = store_i::by_id(&rt.db, &job.resource_id)
        .await?
        .ok_or_else(|| gone("import", &job.resource_id))?;
    if let Some(url) = v.get("preview_url").cloned() {
        v.entry("site_url").or_insert(url);
    }
    // URLs may carry credentials
    for url in [
        Some(&r.archive_url),
        r.database_url.as_ref(),
        r.content_url.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter(|u| !u.is_empty())
    {
        secrets.push(url.clone());
    }
    let max = store::settings::all(&rt.db)
        .await?
        .get("import_max_bytes")
        .and_then(|m| m.parse::<i64>().ok())
        .unwrap_or(DEFAULT_IMPORT_MAX_BYTES);
    for (k, val) in [
        ("import_id", json!(r.id)),
        ("release_id", json!(r.release_id)),
        ("import_archive_url", json!(r.archive_url)),
        ("import_archive_sha256", json!(r.sha256)),
        ("import_database_url", json!(r.database_url)),
        ("import_database_sha256", json!(r.database_sha256)),
        ("import_content_url", json!(r.content_url)),
        ("import_content_sha256", json!(r.content_sha256)),
        ("import_source_url", json!(r.source_url)),
        ("import_table_prefix", json!(r.table_prefix)),
        ("import_max_bytes", json!(max)),
        ("import_dir", json!(IMPORT_DIR)),
    ] {
        v.insert(k.into(), val);
    }
    if r.source_type == "ssh" {
        super::adopt::job_vars(rt, &r, v, secrets).await?;
    }
    if let Some(pre) = match &r.pre_backup_id {
        Some(b) => resources::backup_by_id(&rt.db, b).await?,
        None => None,
    }
    .filter(|b| b.deleted_at.is_none() && b.deletion_requested_at.is_none())
    {
        super::backup::storage_vars(rt, &pre, "backup_", v, secrets).await?;
        if pre.completed_at.is_some() {
            v.insert("rollback_storage_path".into(), json!(pre.storage_path));
            v.insert("rollback_manifest".into(), super::backup::manifest_of(&pre));
        } else {
            // not stored yet: the job takes it first (beside staging), then it is the rollback point
            v.insert("pre_backup_id".into(), json!(pre.id));
            v.insert("pre_backup_storage_path".into(), json!(pre.storage_path));
        }
    }
    Ok(())
}

/// Stores what `site_import` reported, in the executor's transaction: the import's result, its
/// release (healthy and current, or unhealthy with the reason) and the environment's health.
pub(super) async fn record_facts(
    db: &impl ConnectionTrait,
    job: &job_rows::Model,
    ok: bool,
    facts: &Value,
) -> Result<()> {
    let Some(imp) = store_i::by_id(db, &job.resource_id).await? else {
        return Ok(());
    };
    // the pre-import backup, when the job took it (stored and verified even if the import failed)
    if let (Some(pre_id), Some(pre)) = (&imp.pre_backup_id, facts.get("pre_backup")) {
        if pre.get("backup_id").and_then(Value::as_str) == Some(pre_id.as_str()) {
            super::backup::record_completed(db, pre_id, pre).await?;
        }
    }
    let mut summary = facts.clone();
    if let Some(o) = summary.as_object_mut() {
        o.remove("health_checks");
        // the backup's manifest lives with the backup
        if let Some(pre) = o.get_mut("pre_backup").and_then(Value::as_object_mut) {
            pre.remove("backup_manifest");
        }
    }
    store_i::set_result(db, &imp.id, &summary.to_string()).await?;
    let Some(env) = resources::environment_by_id(db, &imp.environment_id).await? else {
        return Ok(());
    };
    let mut f: EnvFacts = observed::parse(env.observed.as_deref());
    let details = json!({
        "import_id": imp.id,
        "size_bytes": facts.get("import_size_bytes").cloned().unwrap_or(Value::Null),
        "sha256": facts.get("import_sha256").cloned().unwrap_or(Value::Null),
        "database_sha256": facts.get("import_database_sha256").cloned().unwrap_or(Value::Null),
        "content_sha256": facts.get("import_content_sha256").cloned().unwrap_or(Value::Null),
        "table_prefix": facts.get("import_table_prefix").cloned().unwrap_or(Value::Null),
        "source_url": facts.get("import_source_url").cloned().unwrap_or(Value::Null),
        "files": facts.get("import_files").cloned().unwrap_or(Value::Null),
    })
    .to_string();
    if let Some(release_id) = imp.release_id.as_deref() {
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
        } else if facts.get("error_code").is_some() || job.error_code.is_some() {
            let why = match (
                facts.get("error_code").and_then(Value::as_str),
                facts.get("error").and_then(Value::as_str),
            ) {
                (Some(c), Some(e)) => format!("{c}: {e}"),
                _ => "the import failed".into(),
            };
            releases::record_outcome(
                db,
                release_id,
                releases::UNHEALTHY,
                Some(why),
                Some(details),
                None,
            )
            .await?;
        }
    }
    if ok {
        f.healthy = Some(true);
        f.http_failures = 0;
    } else if let (Some(true), Some(h)) = (
        facts.get("import_changed").and_then(Value::as_bool),
        facts.get("healthy").and_then(Value::as_bool),
    ) {
        // the environment as the import (or its rollback) left it
        f.healthy = Some(h);
    }
    // The generation declared nothing but this release: judged, it is applied.
    if env.release_generation == Some(env.generation)
        && f.applied_generation == Some(env.generation - 1)
        && (ok || facts.get("error_code").is_some())
    {
        f.applied_generation = Some(env.generation);
    }
    resources::record_environment_observed(db, &env.id, observed::render(&f)).await?;
    Ok(())
}
