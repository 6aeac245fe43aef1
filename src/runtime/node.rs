//! The node loop: provision until the node's generation is applied, probe its reachability, and
//! forget it once it hosts nothing.
use std::sync::Arc;
use std::time::Duration;

use reconcilers::node::{NodeObserved, NodeSpec};
use reconcilers::{Action, ConditionStatus, ConditionType, Context};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::observed::{self, NodeFacts};
use super::{attempts, conditions_of, job_observation, jobs, Result, Runtime};
use crate::clock;
use crate::notify::Kind;
use crate::store::entity::{environments, nodes};
use crate::store::{self, events::NewEvent};

pub(super) async fn reconcile(rt: &Arc<Runtime>, id: &str) -> Result<Option<Duration>> {
    let Some(node) = store::nodes::by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    let facts: NodeFacts = observed::parse(node.observed.as_deref());
    let latest = jobs::latest_for(&rt.db, "node", id).await?;
    let att = attempts(rt, "node", id, node.generation, None, latest.as_ref()).await?;
    let hosted: Vec<String> = environments::Entity::find()
        .select_only()
        .column(environments::Column::Id)
        .filter(environments::Column::NodeId.eq(id))
        .into_tuple()
        .all(&rt.db)
        .await?;
    // The local node serves the control plane: provisioned again when its panel changed.
    let panel = super::panel::desired(rt, &node).await?;
    let spec = NodeSpec {
        generation: node.generation,
        deletion_requested: node.deletion_requested_at.is_some(),
        provision_requested_at: node.provision_requested_at.clone(),
    };
    let obs = NodeObserved {
        // Stopped node services are drift from what provisioning set up: provision again.
        provisioned_generation: facts
            .provisioned_generation
            .filter(|_| facts.services_down.is_empty()),
        reachable: facts.reachable,
        latest_job: latest.as_ref().and_then(job_observation),
        hosts_environments: !hosted.is_empty(),
        conditions: conditions_of(&node.conditions),
        panel_stale: panel.as_ref().is_some_and(|p| p.stale(&facts)),
    };
    let ctx = Context {
        now: clock::now(),
        max_attempts: rt.cfg.max_attempts,
        failed_attempts: att.failed,
        retry_delay_ms: att.retry_delay_ms,
        retry_due: att.retry_due,
        resync_after_ms: rt.cfg.resync.as_millis() as u64,
    };
    let mut plan = reconcilers::node::reconcile(&spec, &obs, &ctx);
    if node.is_local {
        // What the start command could not set up shows on the node itself.
        let mut c = reconcilers::Conditions::from_vec(plan.conditions);
        let (status, reason, message) = if facts.problems.is_empty() {
            (
                ConditionStatus::True,
                "Met",
                "root, sshd and Ansible are available".to_string(),
            )
        } else {
            (ConditionStatus::False, "Missing", facts.problems.join("; "))
        };
        c.set(
            ConditionType::Prerequisites,
            status,
            reason,
            message,
            node.generation,
            &ctx.now,
        );
        plan.conditions = c.into_vec();
    }

    if let Some(p) = &panel {
        panel_dns_event(rt, &node, p.dns_waiting.as_deref()).await?;
    }

    if plan.action == Action::Finalize {
        let tx = crate::store::begin_write(&rt.db).await?;
        nodes::Entity::delete_by_id(id.to_string())
            .exec(&tx)
            .await?;
        store::events::append(
            &tx,
            NewEvent {
                resource_type: "node",
                resource_id: id,
                reason: "Deleted",
                message: format!("node '{}' forgotten", node.name),
                ..Default::default()
            },
        )
        .await?;
        super::fence_check(rt, &tx).await?;
        tx.commit().await?;
        return Ok(None);
    }

    let phase = plan.phase.as_str();
    let conditions = serde_json::to_string(&plan.conditions).unwrap_or_else(|_| "[]".into());
    let last_error = latest
        .as_ref()
        .filter(|j| j.status == "failed")
        .and_then(|j| j.error_code.clone());
    let changed = node.status != phase
        || node.conditions != conditions
        || node.observed_generation != plan.observed_generation
        || node.last_error_code != last_error;
    if changed {
        let tx = crate::store::begin_write(&rt.db).await?;
        nodes::Entity::update_many()
            .col_expr(nodes::Column::Status, Expr::value(phase))
            .col_expr(nodes::Column::Conditions, Expr::value(conditions))
            .col_expr(
                nodes::Column::ObservedGeneration,
                Expr::value(plan.observed_generation),
            )
            .col_expr(
                nodes::Column::LastErrorCode,
                Expr::value(last_error.clone()),
            )
            .col_expr(
                nodes::Column::ReconcileAttempts,
                Expr::value(att.failed as i64),
            )
            .filter(nodes::Column::Id.eq(id))
            .exec(&tx)
            .await?;
        for message in super::condition_changes(&node.conditions, &plan.conditions) {
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "node",
                    resource_id: id,
                    reason: "ConditionChanged",
                    message,
                    ..Default::default()
                },
            )
            .await?;
        }
        if node.status != phase {
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "node",
                    resource_id: id,
                    reason: "PhaseChanged",
                    message: format!(
                        "{} → {phase}{}",
                        node.status,
                        last_error
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    ),
                    ..Default::default()
                },
            )
            .await?;
        }
        super::fence_check(rt, &tx).await?;
        tx.commit().await?;
        // Environments waiting for this node look again.
        for e in &hosted {
            rt.enqueue(Kind::Environment, e);
        }
    }

    if let Action::RunJob { job_type } = plan.action {
        let job = super::create_job(
            rt,
            jobs::NewJob {
                job_type: job_type.as_str(),
                reason: reconcilers::node::run_reason(&spec, &obs, att.failed),
                playbook: job_type.playbook(),
                site_id: None,
                environment_id: None,
                node_id: Some(id),
                resource_type: "node",
                resource_id: id,
                generation: node.generation,
                attempt: att.failed as i64 + 1,
                max_attempts: rt.cfg.max_attempts as i64,
            },
        )
        .await?;
        rt.spawn_job(job.id);
    }
    let mut requeue = plan.requeue_after_ms.map(Duration::from_millis);
    if panel.as_ref().is_some_and(|p| p.dns_waiting.is_some()) {
        // the control plane's domain waits for its DNS: ask again soon, like a site domain
        requeue = Some(requeue.map_or(PANEL_DNS_RECHECK, |r| r.min(PANEL_DNS_RECHECK)));
    }
    Ok(requeue)
}

/// How soon a `control_plane_domain` whose DNS does not point at the node yet is looked at again.
const PANEL_DNS_RECHECK: Duration = Duration::from_secs(30);

/// `control_plane_domain` waits for its DNS (no ACME request before the name points at the
/// node): one event when that starts and one when it ends, not one per pass.
async fn panel_dns_event(
    rt: &Arc<Runtime>,
    node: &nodes::Model,
    waiting: Option<&str>,
) -> Result<()> {
    static LAST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let now = waiting.map(str::to_string);
    let before = std::mem::replace(&mut *LAST.lock().expect("panel dns"), now.clone());
    if before == now {
        return Ok(());
    }
    let (reason, message) = match (&now, &before) {
        (Some(detail), _) => (
            "PanelDnsNotPointing",
            format!("control_plane_domain is not served yet: {detail}"),
        ),
        (None, Some(_)) => (
            "PanelDnsPointing",
            "control_plane_domain points at the node: requesting its certificate".to_string(),
        ),
        (None, None) => return Ok(()),
    };
    let tx = crate::store::begin_write(&rt.db).await?;
    store::events::append(
        &tx,
        NewEvent {
            resource_type: "node",
            resource_id: &node.id,
            reason,
            message,
            ..Default::default()
        },
    )
    .await?;
    super::fence_check(rt, &tx).await?;
    tx.commit().await?;
    Ok(())
}
