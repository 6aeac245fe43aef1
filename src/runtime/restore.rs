//! The restore loop: gates (backup completed, pre-restore backup of the target taken), then
//! `env_restore`; drills restore into a scratch environment, mark the backup verified and remove
//! the scratch environment through the normal deletion path.
use std::sync::Arc;
use std::time::Duration;

use reconcilers::restore::{BackupState, OperationStatus, RestoreObserved, RestoreSpec, Step};
use reconcilers::Context;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{attempts, conditions_of, job_observation, jobs, Result, Runtime};
use crate::clock;
use crate::notify::Kind;
use crate::store::entity::{backups, environments, restores};
use crate::store::{self, events::NewEvent, resources};

/// How a backup looks to a restore that needs it.
pub(crate) fn backup_state(b: Option<&backups::Model>, now: &str) -> BackupState {
    match b {
        None => BackupState::Gone,
        Some(b) if b.deleted_at.is_some() || b.deletion_requested_at.is_some() => BackupState::Gone,
        Some(b) if b.completed_at.is_some() => {
            if b.retention_until.as_str() <= now {
                BackupState::Gone
            } else {
                BackupState::Completed
            }
        }
        Some(b) if b.status == "failed" => {
            BackupState::Failed(b.last_error_code.as_deref().and_then(|c| c.parse().ok()))
        }
        Some(_) => BackupState::InProgress,
    }
}

pub(crate) fn is_ready(env: &environments::Model) -> bool {
    env.status == "active"
        && conditions_of(&env.conditions).iter().any(|c| {
            c.type_ == reconcilers::ConditionType::Ready
                && c.status == reconcilers::ConditionStatus::True
        })
}

pub(super) async fn reconcile(rt: &Arc<Runtime>, id: &str) -> Result<Option<Duration>> {
    let Some(r) = store::backups::restore_by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    let status: OperationStatus = r.status.parse().unwrap_or(OperationStatus::Failed);
    let env = resources::environment_by_id(&rt.db, &r.environment_id).await?;
    if matches!(status, OperationStatus::Succeeded | OperationStatus::Failed) {
        return Ok(None);
    }
    let now = clock::now();
    let backup = resources::backup_by_id(&rt.db, &r.backup_id).await?;
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
    let target_ready = env
        .as_ref()
        .is_some_and(|e| e.deletion_requested_at.is_none() && (!r.drill || is_ready(e)));
    let latest = jobs::latest_for(&rt.db, "restore", id).await?;
    let att = attempts(rt, "restore", id, r.generation, None, latest.as_ref()).await?;
    let spec = RestoreSpec {
        generation: r.generation,
        drill: r.drill,
    };
    let obs = RestoreObserved {
        status,
        backup: backup_state(backup.as_ref(), &now),
        pre_backup: pre,
        target_ready,
        node_ready,
        latest_job: latest.as_ref().and_then(job_observation),
        conditions: conditions_of(&r.conditions),
    };
    let ctx = Context {
        now: now.clone(),
        max_attempts: rt.cfg.max_attempts,
        failed_attempts: att.failed,
        retry_delay_ms: att.retry_delay_ms,
        retry_due: att.retry_due,
        resync_after_ms: rt.cfg.resync.as_millis() as u64,
    };
    let mut plan = reconcilers::restore::reconcile(&spec, &obs, &ctx);
    if env.is_none() && !matches!(plan.step, Step::Finish { .. } | Step::Nothing) {
        plan = reconcilers::restore::reconcile(
            &spec,
            &RestoreObserved {
                backup: BackupState::Gone,
                ..obs
            },
            &ctx,
        );
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
        store::operations::record_pass::<restores::Entity>(
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
                    resource_type: "restore",
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
        if let Step::Finish { status, .. } = &plan.step {
            if r.drill {
                if *status == OperationStatus::Succeeded {
                    store::backups::set_verified(&tx, &r.backup_id, &now).await?;
                }
                // The scratch environment goes by the normal deletion path either way.
                if let Some(e) = env.as_ref().filter(|e| e.deletion_requested_at.is_none()) {
                    resources::mark_environment_deleted(&tx, &e.id, e.state_version).await?;
                }
            }
        }
        super::fence_check(rt, &tx).await?;
        tx.commit().await?;
        rt.enqueue(Kind::Environment, &r.environment_id);
        if r.drill {
            rt.enqueue(Kind::Backup, &r.backup_id);
        }
    }
    match &plan.step {
        Step::DeclarePreBackup => {
            let Some(env) = env.as_ref() else {
                return Ok(Some(Duration::from_secs(5)));
            };
            let tx = store::begin_write(&rt.db).await?;
            let Some(b) = declare_rollback_backup(
                &tx,
                env,
                "pre_restore",
                &format!("pre-restore backup for restore {id}"),
            )
            .await?
            else {
                return Ok(Some(Duration::from_secs(30)));
            };
            restores::Entity::update_many()
                .col_expr(restores::Column::PreBackupId, Expr::value(b.id.clone()))
                .filter(restores::Column::Id.eq(id))
                .exec(&tx)
                .await?;
            super::fence_check(rt, &tx).await?;
            tx.commit().await?;
            rt.enqueue(Kind::Backup, &b.id);
            rt.enqueue(Kind::Restore, id);
        }
        Step::RunJob { job_type } => {
            let Some(env) = env.as_ref() else {
                return Ok(Some(Duration::from_secs(5)));
            };
            rt.start_env_job(
                env,
                *job_type,
                if att.failed > 0 { "retry" } else { "create" },
                ("restore", id, r.generation),
                att.failed,
            )
            .await?;
        }
        _ => {}
    }
    Ok(plan.requeue_after_ms.map(Duration::from_millis))
}

/// Declares a full backup of `env` as the rollback point of an operation (restores, promotions),
/// with its `Created` event, in the caller's transaction. `None` when the backup storage settings
/// are unusable (logged; the caller looks again later).
pub(super) async fn declare_rollback_backup(
    tx: &impl sea_orm::ConnectionTrait,
    env: &environments::Model,
    reason: &str,
    message: &str,
) -> Result<Option<backups::Model>> {
    let storage = match crate::settings::backup_storage(tx).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(environment = %env.id, error = %e, "rollback backup: storage settings");
            return Ok(None);
        }
    };
    let b = resources::create_backup(
        tx,
        resources::NewBackup {
            environment_id: &env.id,
            backup_scope: "full",
            storage_type: storage.storage_type,
            storage_base: &storage.base,
            site_id: &env.site_id,
            retention_until: clock::from_now(time::Duration::days(30)),
            reason,
            schedule_id: None,
        },
    )
    .await?;
    store::events::append(
        tx,
        NewEvent {
            resource_type: "backup",
            resource_id: &b.id,
            site_id: Some(&env.site_id),
            environment_id: Some(&env.id),
            reason: "Created",
            message: message.to_string(),
        },
    )
    .await?;
    Ok(Some(b))
}
