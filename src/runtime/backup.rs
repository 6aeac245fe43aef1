//! The backup loop: read the backup, its latest job and its node, ask the pure reconciler, store
//! phase and conditions, act (queue `backup_create` / `backup_cleanup`). Also the extra-vars of
//! the backup jobs (storage, S3 credentials from the secret store) and the facts they report.
use std::sync::Arc;
use std::time::Duration;

use reconcilers::backup::{BackupObserved, BackupSpec};
use reconcilers::{Action, Context};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{json, Map, Value};

use super::observed::{self, NodeFacts};
use super::{attempts, conditions_of, job_observation, jobs, Result, Runtime, RuntimeError};
use crate::clock;
use crate::notify::Kind;
use crate::store::entity::{backups, jobs as job_rows};
use crate::store::{self, events::NewEvent, resources};

/// Whether the node can take work (provisioned, reachable, services up, not being removed).
pub(super) async fn node_ready(rt: &Runtime, node_id: &str) -> Result<bool> {
    let Some(n) = store::nodes::by_id(&rt.db, node_id).await? else {
        return Ok(false);
    };
    let f: NodeFacts = observed::parse(n.observed.as_deref());
    Ok(n.deletion_requested_at.is_none()
        && f.provisioned_generation.is_some()
        && f.services_down.is_empty()
        && f.reachable == Some(true))
}

pub(super) async fn reconcile(rt: &Arc<Runtime>, id: &str) -> Result<Option<Duration>> {
    // The gating operation's job before the backup: that job completes the backup in the
    // transaction that ends it, so a job seen over here means a backup read after it shows its
    // outcome. Read the other way round, a job ending in between would leave the backup looking
    // neither taken nor completed, and a second, needless backup_create job would start.
    let taken = taken_by_import_job(rt, id).await?;
    let Some(b) = resources::backup_by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    let Some(env) = resources::environment_by_id(&rt.db, &b.environment_id).await? else {
        return Ok(None);
    };
    let node_ready = node_ready(rt, &env.node_id).await?;
    let latest = jobs::latest_for(&rt.db, "backup", id).await?;
    let att = attempts(rt, "backup", id, b.generation, None, latest.as_ref()).await?;
    let now = clock::now();
    let spec = BackupSpec {
        generation: b.generation,
        deletion_requested: b.deletion_requested_at.is_some(),
        retention_passed: b.retention_until.as_str() <= now.as_str(),
    };
    let obs = BackupObserved {
        node_ready,
        completed: b.completed_at.is_some(),
        deleted: b.deleted_at.is_some(),
        latest_job: latest.as_ref().and_then(job_observation),
        observed_generation: b.observed_generation,
        conditions: conditions_of(&b.conditions),
        taken_by_job: b.completed_at.is_none() && taken,
    };
    let ctx = Context {
        now: now.clone(),
        max_attempts: rt.cfg.max_attempts,
        failed_attempts: att.failed,
        retry_delay_ms: att.retry_delay_ms,
        retry_due: att.retry_due,
        resync_after_ms: rt.cfg.resync.as_millis() as u64,
    };
    let plan = reconcilers::backup::reconcile(&spec, &obs, &ctx);
    let phase = plan.phase.as_str();
    let last_error = latest
        .as_ref()
        .filter(|j| j.status == "failed")
        .and_then(|j| j.error_code.clone())
        .or_else(|| b.last_error_code.clone().filter(|_| phase == "failed"));
    let conditions = serde_json::to_string(&plan.conditions).unwrap_or_else(|_| "[]".into());
    if b.status != phase
        || b.conditions != conditions
        || b.observed_generation != plan.observed_generation
        || b.last_error_code != last_error
    {
        let tx = store::begin_write(&rt.db).await?;
        backups::Entity::update_many()
            .col_expr(backups::Column::Status, Expr::value(phase))
            .col_expr(backups::Column::Conditions, Expr::value(conditions))
            .col_expr(
                backups::Column::ObservedGeneration,
                Expr::value(plan.observed_generation),
            )
            .col_expr(
                backups::Column::LastErrorCode,
                Expr::value(last_error.clone()),
            )
            .col_expr(
                backups::Column::ReconcileAttempts,
                Expr::value(att.failed as i64),
            )
            .col_expr(backups::Column::ObservedAt, Expr::value(now.clone()))
            .filter(backups::Column::Id.eq(id))
            .exec(&tx)
            .await?;
        if b.status != phase {
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "backup",
                    resource_id: id,
                    site_id: Some(&env.site_id),
                    environment_id: Some(&env.id),
                    reason: "PhaseChanged",
                    message: format!(
                        "{} → {phase}{}",
                        b.status,
                        last_error
                            .as_deref()
                            .filter(|_| phase == "failed")
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    ),
                },
            )
            .await?;
        }
        super::fence_check(rt, &tx).await?;
        tx.commit().await?;
        if b.status != phase {
            // Restores wait for their backups; schedules apply retention once one completes.
            for r in store::backups::restores_waiting_on(&rt.db, id).await? {
                rt.enqueue(Kind::Restore, &r);
            }
            for i in store::imports::waiting_on(&rt.db, id).await? {
                rt.enqueue(Kind::Import, &i);
            }
            if let Some(s) = &b.schedule_id {
                rt.enqueue(Kind::Schedule, s);
            }
        }
    }
    match plan.action {
        Action::RunJob { job_type } => {
            let create = job_type == reconcilers::JobType::BackupCreate;
            let job = super::create_job(
                rt,
                jobs::NewJob {
                    job_type: job_type.as_str(),
                    reason: if spec.deletion_requested || spec.retention_passed {
                        "delete"
                    } else if att.failed > 0 {
                        "retry"
                    } else {
                        "create"
                    },
                    playbook: job_type.playbook(),
                    // Cleanup is node-wide work that needs no environment; creating a backup
                    // is site work (one mutation per site at a time).
                    site_id: create.then_some(env.site_id.as_str()),
                    environment_id: create.then_some(env.id.as_str()),
                    node_id: Some(&env.node_id),
                    resource_type: "backup",
                    resource_id: id,
                    generation: b.generation,
                    attempt: att.failed as i64 + 1,
                    max_attempts: rt.cfg.max_attempts as i64,
                },
            )
            .await?;
            rt.spawn_job(job.id);
        }
        Action::Finalize => {
            // Nothing was ever stored: the artifacts are "removed" without node work.
            store::gated(&rt.db, mark_deleted(&rt.db, id)).await?;
            rt.enqueue(Kind::Backup, id);
        }
        Action::Nothing | Action::Wait { .. } => {}
    }
    Ok(plan.requeue_after_ms.map(Duration::from_millis))
}

/// Whether the `site_import` / `site_adopt` job of an import this backup gates is queued or
/// running: that job takes the backup itself (reconcilers::import).
async fn taken_by_import_job(rt: &Runtime, backup_id: &str) -> Result<bool> {
    for import_id in store::imports::waiting_on(&rt.db, backup_id).await? {
        if jobs::latest_for(&rt.db, "import", &import_id)
            .await?
            .is_some_and(|j| j.status == "queued" || j.status == "running")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A backup stored and verified on its node: `completed_at`, checksum, size and manifest from the
/// facts of the job that took it (`backup_create`, or an import's job for its pre-import
/// backup). Never completed without a verified checksum and its manifest: false then.
pub(super) async fn record_completed(
    db: &impl ConnectionTrait,
    backup_id: &str,
    facts: &Value,
) -> Result<bool> {
    let checksum = facts.get("backup_checksum").and_then(Value::as_str);
    let manifest = facts.get("backup_manifest").filter(|m| m.is_object());
    let (Some(checksum), Some(manifest)) = (checksum, manifest) else {
        return Ok(false);
    };
    backups::Entity::update_many()
        .col_expr(backups::Column::CompletedAt, Expr::value(clock::now()))
        .col_expr(backups::Column::Checksum, Expr::value(checksum))
        .col_expr(
            backups::Column::SizeBytes,
            Expr::value(facts.get("backup_size_bytes").and_then(Value::as_i64)),
        )
        .col_expr(backups::Column::Manifest, Expr::value(manifest.to_string()))
        .filter(backups::Column::Id.eq(backup_id))
        .filter(backups::Column::CompletedAt.is_null())
        .exec(db)
        .await?;
    Ok(true)
}

async fn mark_deleted(db: &impl ConnectionTrait, id: &str) -> store::Result<()> {
    backups::Entity::update_many()
        .col_expr(backups::Column::DeletedAt, Expr::value(clock::now()))
        .filter(backups::Column::Id.eq(id))
        .filter(backups::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// The storage extra-vars shared by every backup job (`prefix` = "" or "backup_" for restores'
/// `backup_storage_type` / `backup_storage_path`). S3 credentials come from the settings and the
/// secret store and are pushed to `secrets` so the runner redacts them.
pub(super) async fn storage_vars(
    rt: &Runtime,
    b: &backups::Model,
    prefix: &str,
    v: &mut Map<String, Value>,
    secrets: &mut Vec<String>,
) -> Result<()> {
    v.insert(format!("{prefix}storage_type"), json!(b.storage_type));
    v.insert(format!("{prefix}storage_path"), json!(b.storage_path));
    if b.storage_type == "s3" && !v.contains_key("s3_bucket") {
        let all = store::settings::all(&rt.db).await?;
        let get = |k: &str| all.get(k).cloned().unwrap_or_default();
        let secret = store::secrets::get(
            &rt.db,
            &rt.secrets,
            &crate::settings::secret_id("backup_s3_secret_access_key"),
        )
        .await?
        .unwrap_or_default();
        let key_id = get("backup_s3_access_key_id");
        for s in [&secret, &key_id] {
            if !s.is_empty() {
                secrets.push(s.clone());
            }
        }
        let region = Some(get("backup_s3_region"))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into());
        for (k, val) in [
            ("s3_endpoint", json!(get("backup_s3_endpoint"))),
            ("s3_bucket", json!(get("backup_s3_bucket"))),
            ("s3_region", json!(region)),
            ("s3_access_key_id", json!(key_id)),
            ("s3_secret_access_key", json!(secret)),
            (
                "s3_path_style",
                json!(all
                    .get("backup_s3_force_path_style")
                    .is_some_and(|x| x == "true")),
            ),
        ] {
            v.insert(k.into(), val);
        }
    }
    Ok(())
}

pub(super) fn manifest_of(b: &backups::Model) -> Value {
    b.manifest
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null)
}

/// Extra-vars of `backup_create`, `backup_cleanup` and `env_restore` on top of the environment's
/// (node interface of issue 7).
pub(super) async fn job_vars(
    rt: &Runtime,
    job: &job_rows::Model,
    v: &mut Map<String, Value>,
    secrets: &mut Vec<String>,
) -> Result<()> {
    let gone = |what: &str, id: &str| RuntimeError::Inconsistent(format!("{what} {id} is gone"));
    if let Some(url) = v.get("preview_url").cloned() {
        v.entry("site_url").or_insert(url);
    }
    match job.resource_type.as_str() {
        "backup" => {
            let b = resources::backup_by_id(&rt.db, &job.resource_id)
                .await?
                .ok_or_else(|| gone("backup", &job.resource_id))?;
            v.insert("backup_id".into(), json!(b.id));
            v.insert("backup_scope".into(), json!(b.backup_scope));
            storage_vars(rt, &b, "", v, secrets).await?;
        }
        "restore" => {
            let r = store::backups::restore_by_id(&rt.db, &job.resource_id)
                .await?
                .ok_or_else(|| gone("restore", &job.resource_id))?;
            let b = resources::backup_by_id(&rt.db, &r.backup_id)
                .await?
                .ok_or_else(|| gone("backup", &r.backup_id))?;
            v.insert("restore_id".into(), json!(r.id));
            v.insert("backup_manifest".into(), manifest_of(&b));
            storage_vars(rt, &b, "backup_", v, secrets).await?;
            if let Some(pre) = match &r.pre_backup_id {
                Some(p) => resources::backup_by_id(&rt.db, p).await?,
                None => None,
            }
            .filter(|p| p.completed_at.is_some() && p.deleted_at.is_none())
            {
                v.insert("rollback_storage_path".into(), json!(pre.storage_path));
                v.insert("rollback_manifest".into(), manifest_of(&pre));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Stores what a backup or restore job reported, in the job's transaction.
pub(super) async fn record_facts(
    db: &impl ConnectionTrait,
    job: &job_rows::Model,
    ok: bool,
    facts: &Value,
) -> Result<()> {
    match (job.job_type.as_str(), ok) {
        ("backup_create", true) => {
            let stored = record_completed(db, &job.resource_id, facts).await?;
            if !stored {
                tracing::warn!(backup = %job.resource_id, "backup_create succeeded without checksum or manifest");
            }
        }
        ("backup_cleanup", true) => mark_deleted(db, &job.resource_id).await?,
        ("env_restore", _) => {
            // The environment's health as the restore (or its rollback) left it.
            let healthy = facts.get("healthy").and_then(Value::as_bool);
            if let (Some(env_id), Some(h)) = (&job.environment_id, healthy) {
                if let Some(env) = resources::environment_by_id(db, env_id).await? {
                    let mut f: observed::EnvFacts = observed::parse(env.observed.as_deref());
                    f.healthy = Some(h);
                    resources::record_environment_observed(db, env_id, observed::render(&f))
                        .await?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Every backup that may still need work (not finished, or removal pending).
pub(super) async fn ids_to_watch(db: &impl ConnectionTrait) -> store::Result<Vec<String>> {
    use sea_orm::QuerySelect;
    Ok(backups::Entity::find()
        .select_only()
        .column(backups::Column::Id)
        .filter(backups::Column::DeletedAt.is_null())
        .into_tuple::<String>()
        .all(db)
        .await?)
}
