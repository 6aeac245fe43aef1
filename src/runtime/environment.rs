//! The environment loop: read desired and observed, ask the pure reconciler, store the derived
//! status, act on the plan.
use std::sync::Arc;
use std::time::Duration;

use reconcilers::environment::{EnvObserved, EnvSpec};
use reconcilers::{Action, ConditionStatus, ConditionType, Context};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::observed::{self, EnvFacts, NodeFacts};
use super::{attempts, conditions_of, job_observation, jobs, Result, Runtime};
use crate::clock;
use crate::notify::Kind;
use crate::store::entity::{backups, environments};
use crate::store::{self, events::NewEvent, nodes, resources};

pub(super) async fn reconcile(rt: &Arc<Runtime>, id: &str) -> Result<Option<Duration>> {
    let Some(mut env) = resources::environment_by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    // A temporary environment whose expiry passed: its deletion is requested like an operator's.
    if env.deletion_requested_at.is_none()
        && env
            .expires_at
            .as_deref()
            .is_some_and(|e| e <= clock::now().as_str())
        && resources::expire_environment(&rt.db, id).await?
    {
        store::events::append(
            &rt.db,
            NewEvent {
                resource_type: "environment",
                resource_id: id,
                site_id: Some(&env.site_id),
                environment_id: Some(id),
                reason: "Expired",
                message: format!(
                    "environment '{}' expired at {}: deletion requested",
                    env.slug,
                    env.expires_at.as_deref().unwrap_or("")
                ),
            },
        )
        .await?;
        let Some(e) = resources::environment_by_id(&rt.db, id).await? else {
            return Ok(None);
        };
        env = e;
    }
    let node = nodes::by_id(&rt.db, &env.node_id).await?;
    let node_facts: Option<NodeFacts> = node
        .as_ref()
        .map(|n| observed::parse(n.observed.as_deref()));
    let node_ready = node
        .as_ref()
        .zip(node_facts.as_ref())
        .is_some_and(|(n, f)| {
            n.deletion_requested_at.is_none()
                && f.provisioned_generation.is_some()
                && f.services_down.is_empty()
                && f.reachable == Some(true)
        });
    let node_unreachable = node_facts
        .as_ref()
        .is_some_and(|f| f.reachable == Some(false));
    let latest = jobs::latest_for(&rt.db, "environment", id).await?;
    let mut facts: EnvFacts = observed::parse(env.observed.as_deref());
    let att = attempts(
        rt,
        "environment",
        id,
        env.generation,
        facts.handled_reset_at.as_deref(),
        latest.as_ref(),
    )
    .await?;
    let spec = EnvSpec {
        generation: env.generation,
        environment_type: env.environment_type.parse().map_err(|_| {
            super::RuntimeError::Inconsistent(format!("environment {id}: bad type"))
        })?,
        created_from_source: env.source_environment_id.is_some(),
        deletion_requested: env.deletion_requested_at.is_some(),
        reset_requested_at: env.reset_requested_at.clone(),
        fastcgi_cache_enabled: env.fastcgi_cache_enabled,
        redis_cache_enabled: env.redis_cache_enabled,
        release_generation: env.release_generation,
        desired_release: desired_release(rt, &env).await?,
        drift_check_requested_at: env.drift_check_requested_at.clone(),
        has_drift_baseline: env.drift_baseline_id.is_some(),
    };
    // Routes (domains, certificates, primary) changed since the last converge: render again.
    let routes_outdated = env.deletion_requested_at.is_none() && {
        let want = super::routes::desired(&rt.db, &env).await?.digest();
        let have = facts
            .routes_digest
            .clone()
            .unwrap_or_else(|| super::routes::Routes::preview_only(&env).digest());
        want != have
    };
    let obs = EnvObserved {
        node_ready,
        ever_ready: facts.ever_ready,
        applied_generation: facts.applied_generation,
        healthy: facts.healthy,
        exists_on_node: facts.exists_on_node,
        latest_job: latest.as_ref().and_then(job_observation),
        handled_reset_at: facts.handled_reset_at.clone(),
        data_missing: facts.data_missing.clone(),
        routes_outdated,
        current_release: facts.current_release.clone(),
        handled_drift_check_at: facts.handled_drift_check_at.clone(),
        conditions: conditions_of(&env.conditions),
    };
    let ctx = Context {
        now: clock::now(),
        max_attempts: rt.cfg.max_attempts,
        failed_attempts: att.failed,
        retry_delay_ms: att.retry_delay_ms,
        retry_due: att.retry_due,
        resync_after_ms: rt.cfg.resync.as_millis() as u64,
    };
    let mut plan = reconcilers::environment::reconcile(&spec, &obs, &ctx);
    if node_unreachable && !spec.deletion_requested {
        // What serves the site cannot be seen or changed: say so on the environment too.
        let mut c = reconcilers::Conditions::from_vec(plan.conditions);
        c.set(
            ConditionType::Degraded,
            ConditionStatus::True,
            "NodeUnreachable",
            "the node does not answer over SSH; the environment cannot be checked or changed",
            env.generation,
            &ctx.now,
        );
        plan.conditions = c.into_vec();
    }
    // A restore of this environment in progress: the phase says so, and no converge runs meanwhile
    // (the restore's job replaces files and database). Drills restore into a scratch environment
    // that must converge first.
    if let Some(r) = crate::store::backups::active_restore(&rt.db, id)
        .await?
        .filter(|r| !r.drill && !spec.deletion_requested)
    {
        if plan.phase == reconcilers::Phase::Active {
            plan.phase = reconcilers::Phase::Restoring;
        }
        if matches!(plan.action, Action::RunJob { .. }) {
            tracing::debug!(environment = %id, restore = %r.id, "converge held back while restoring");
            plan.action = Action::Wait {
                reason: reconcilers::WaitReason::JobInProgress,
            };
        }
    }
    // An import into this environment in progress: the same (spec: `restoring` while an Import is
    // pending or running).
    if let Some(i) = crate::store::imports::active_for(&rt.db, id)
        .await?
        .filter(|_| !spec.deletion_requested)
    {
        if plan.phase == reconcilers::Phase::Active {
            plan.phase = reconcilers::Phase::Restoring;
        }
        // An adoption declares its site in the same request: the environment's first converge
        // (creating it on the node) runs; the import waits for it (TargetNotCreated).
        let created = facts.ever_ready || facts.applied_generation.is_some();
        if matches!(plan.action, Action::RunJob { .. }) && created {
            tracing::debug!(environment = %id, import = %i.id, "converge held back while importing");
            plan.action = Action::Wait {
                reason: reconcilers::WaitReason::JobInProgress,
            };
        }
    }
    // A promotion into this environment in progress: it shows Reconciling, and no converge or
    // release work runs meanwhile (the promotion's own jobs change files and database).
    if let Some(pr) = crate::store::promotions::active_for(&rt.db, id)
        .await?
        .filter(|pr| pr.target_environment_id == id && !spec.deletion_requested)
    {
        let mut c = reconcilers::Conditions::from_vec(plan.conditions);
        c.set(
            ConditionType::Reconciling,
            ConditionStatus::True,
            "Promoting",
            format!("promotion {} into this environment is in progress", pr.id),
            env.generation,
            &clock::now(),
        );
        plan.conditions = c.into_vec();
        if matches!(plan.action, Action::RunJob { .. }) {
            tracing::debug!(environment = %id, promotion = %pr.id, "work held back while promoting");
            plan.action = Action::Wait {
                reason: reconcilers::WaitReason::JobInProgress,
            };
        }
    }
    // A clone is copied by its first converge: it waits while its source exists but has never
    // been Ready (a source that is gone fails the job with a clear message, see the executor).
    if matches!(plan.action, Action::RunJob { .. }) && !facts.ever_ready && !spec.deletion_requested
    {
        if let Some(src_id) = &env.source_environment_id {
            if let Some(src) = resources::environment_by_id(&rt.db, src_id).await? {
                let src_facts: EnvFacts = observed::parse(src.observed.as_deref());
                if src.deletion_requested_at.is_none() && !src_facts.ever_ready {
                    tracing::debug!(environment = %id, source = %src_id, "clone waits for its source");
                    plan.action = Action::Wait {
                        reason: reconcilers::WaitReason::JobInProgress,
                    };
                }
            }
        }
    }

    let ready = plan
        .conditions
        .iter()
        .any(|c| c.type_ == ConditionType::Ready && c.status == ConditionStatus::True);
    facts.ever_ready |= ready;
    if let Some(h) = &plan.handled_reset_at {
        facts.handled_reset_at = Some(h.clone());
    }
    let last_error = latest
        .as_ref()
        .filter(|j| j.status == "failed")
        .and_then(|j| j.error_code.clone());
    let phase = plan.phase.as_str();
    let conditions = serde_json::to_string(&plan.conditions).unwrap_or_else(|_| "[]".into());
    let observed_json = observed::render(&facts);
    let changed = env.status != phase
        || env.conditions != conditions
        || env.observed_generation != plan.observed_generation
        || env.observed.as_deref() != Some(observed_json.as_str())
        || env.last_error_code != last_error;
    if changed {
        let tx = crate::store::begin_write(&rt.db).await?;
        environments::Entity::update_many()
            .col_expr(environments::Column::Status, Expr::value(phase))
            .col_expr(environments::Column::Conditions, Expr::value(conditions))
            .col_expr(
                environments::Column::ObservedGeneration,
                Expr::value(plan.observed_generation),
            )
            .col_expr(environments::Column::Observed, Expr::value(observed_json))
            .col_expr(environments::Column::ObservedAt, Expr::value(clock::now()))
            .col_expr(
                environments::Column::LastErrorCode,
                Expr::value(last_error.clone()),
            )
            .col_expr(
                environments::Column::ReconcileAttempts,
                Expr::value(att.failed as i64),
            )
            .filter(environments::Column::Id.eq(id))
            .exec(&tx)
            .await?;
        for message in super::condition_changes(&env.conditions, &plan.conditions) {
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "environment",
                    resource_id: id,
                    site_id: Some(&env.site_id),
                    environment_id: Some(id),
                    reason: "ConditionChanged",
                    message,
                },
            )
            .await?;
        }
        if env.status != phase {
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "environment",
                    resource_id: id,
                    site_id: Some(&env.site_id),
                    environment_id: Some(id),
                    reason: "PhaseChanged",
                    message: format!(
                        "{} → {phase}{}",
                        env.status,
                        last_error
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    ),
                },
            )
            .await?;
        }
        super::fence_check(rt, &tx).await?;
        tx.commit().await?;
        rt.enqueue(Kind::Site, &env.site_id);
    }

    // An update runs once its rollback point (a fresh full backup) is completed.
    if let Action::RunJob {
        job_type: reconcilers::JobType::EnvUpdate,
    } = plan.action
    {
        if !super::release::update_gate(rt, &env).await? {
            return Ok(Some(Duration::from_secs(2)));
        }
    }
    match plan.action {
        Action::RunJob {
            job_type: reconcilers::JobType::DriftCheck,
        } => {
            requested_drift_check(rt, &env, &spec, &obs, att.failed).await?;
        }
        Action::RunJob { job_type } => {
            rt.start_env_job(
                &env,
                job_type,
                reconcilers::environment::run_reason(&spec, &obs, att.failed),
                ("environment", id, env.generation),
                att.failed,
            )
            .await?;
        }
        Action::Finalize => {
            finalize(rt, &env).await?;
            return Ok(None);
        }
        Action::Nothing | Action::Wait { .. } => {}
    }
    Ok(plan.requeue_after_ms.map(Duration::from_millis))
}

/// A requested drift check: one `drift_check` job against the site's production (the job's
/// environment; its resource is this one), then the request is recorded as handled, so it runs
/// once. With production gone there is nothing to check: handled, and an event says so.
async fn requested_drift_check(
    rt: &Arc<Runtime>,
    env: &environments::Model,
    spec: &EnvSpec,
    obs: &EnvObserved,
    failed: u32,
) -> Result<()> {
    let Some(at) = reconcilers::environment::pending_drift_check(spec, obs).map(str::to_string)
    else {
        return Ok(());
    };
    let job_type = reconcilers::JobType::DriftCheck;
    let job = match super::promotion::drift_check_target(&rt.db, env).await? {
        Some(prod) => Some(
            super::create_job(
                rt,
                jobs::NewJob {
                    job_type: job_type.as_str(),
                    reason: reconcilers::environment::run_reason(spec, obs, failed),
                    playbook: job_type.playbook(),
                    site_id: Some(&prod.site_id),
                    environment_id: Some(&prod.id),
                    node_id: Some(&prod.node_id),
                    resource_type: "environment",
                    resource_id: &env.id,
                    generation: env.generation,
                    attempt: 1,
                    max_attempts: 1,
                },
            )
            .await?,
        ),
        None => None,
    };
    // Recorded after the job row (a crash in between runs the read-only check twice, never
    // zero times) and before the job starts (its outcome rewrites the observed state).
    let tx = crate::store::begin_write(&rt.db).await?;
    if let Some(cur) = resources::environment_by_id(&tx, &env.id).await? {
        let mut f: EnvFacts = observed::parse(cur.observed.as_deref());
        f.handled_drift_check_at = Some(at.clone());
        resources::record_environment_observed(&tx, &env.id, observed::render(&f)).await?;
    }
    if job.is_none() {
        store::events::append(
            &tx,
            NewEvent {
                resource_type: "environment",
                resource_id: &env.id,
                site_id: Some(&env.site_id),
                environment_id: Some(&env.id),
                reason: "DriftCheckFailed",
                message: "the drift check could not run: the site's production environment \
                          of this environment's baseline is gone"
                    .into(),
            },
        )
        .await?;
    }
    super::fence_check(rt, &tx).await?;
    tx.commit().await?;
    match job {
        Some(job) => rt.spawn_job(job.id),
        None => rt.enqueue(Kind::Environment, &env.id),
    }
    Ok(())
}

/// The environment's desired release as the reconciler sees it.
async fn desired_release(
    rt: &Arc<Runtime>,
    env: &environments::Model,
) -> Result<Option<reconcilers::environment::DesiredRelease>> {
    use reconcilers::environment::{DesiredRelease, ReleaseHealth};
    let Some(id) = env.desired_release_id.as_deref() else {
        return Ok(None);
    };
    let Some(r) = store::releases::by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    let health = match r.health_status.as_str() {
        "healthy" => ReleaseHealth::Healthy,
        "unhealthy" => ReleaseHealth::Unhealthy,
        _ => ReleaseHealth::Pending,
    };
    Ok(Some(DesiredRelease {
        id: r.id,
        health,
        notes: r.notes,
        job_type: if r.source_type == "update" {
            reconcilers::JobType::EnvUpdate
        } else {
            reconcilers::JobType::EnvDeploy
        },
        built_elsewhere: matches!(r.source_type.as_str(), "promotion" | "import"),
    }))
}

/// Teardown is done on the node: remove the rows (and the environment's secrets).
async fn finalize(rt: &Arc<Runtime>, env: &environments::Model) -> Result<()> {
    let tx = crate::store::begin_write(&rt.db).await?;
    store::releases::delete_of_environment(&tx, &env.id).await?;
    backups::Entity::delete_many()
        .filter(backups::Column::EnvironmentId.eq(env.id.as_str()))
        .exec(&tx)
        .await?;
    environments::Entity::delete_by_id(env.id.clone())
        .exec(&tx)
        .await?;
    store::secrets::delete_prefix(&tx, &format!("env/{}/", env.id)).await?;
    store::events::append(
        &tx,
        NewEvent {
            resource_type: "environment",
            resource_id: &env.id,
            site_id: Some(&env.site_id),
            environment_id: Some(&env.id),
            reason: "Deleted",
            message: format!(
                "environment '{}' removed from its node and deleted",
                env.slug
            ),
        },
    )
    .await?;
    super::fence_check(rt, &tx).await?;
    tx.commit().await?;
    rt.enqueue(Kind::Site, &env.site_id);
    Ok(())
}
