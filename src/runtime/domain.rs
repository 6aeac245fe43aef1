//! The domain loop: check the DNS answer (before any ACME request), read the installed
//! certificate, ask the pure reconciler, store the derived status, act on the plan.
use std::sync::Arc;
use std::time::Duration;

use reconcilers::domain::{CertificateState, DomainObserved, DomainSpec, TlsMode};
use reconcilers::{Action, Context};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::observed::{self, DnsFacts, DomainFacts, EnvFacts, NodeFacts};
use super::{attempts, conditions_of, job_observation, jobs, Result, Runtime};
use crate::clock;
use crate::notify::Kind;
use crate::settings;
use crate::store::entity::{domains, environments};
use crate::store::{self, events::NewEvent, nodes, resources};

/// A DNS answer is reused for this long (the reconciler re-asks every `DNS_RECHECK_MS` anyway).
const DNS_TTL_SECS: i64 = 20;

pub(super) async fn reconcile(rt: &Arc<Runtime>, id: &str) -> Result<Option<Duration>> {
    let Some(d) = resources::domain_by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    let Some(env) = resources::environment_by_id(&rt.db, &d.environment_id).await? else {
        return Ok(None);
    };
    let node = nodes::by_id(&rt.db, &env.node_id).await?;
    let node_facts: Option<NodeFacts> = node
        .as_ref()
        .map(|n| observed::parse(n.observed.as_deref()));
    let node_ready = node_facts
        .as_ref()
        .is_some_and(|f| f.provisioned_generation.is_some() && f.reachable == Some(true));
    let all = store::settings::all(&rt.db).await?;
    let renew_before_days = all
        .get("tls_renew_before_days")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(settings::DEFAULT_TLS_RENEW_BEFORE_DAYS);
    let tls_mode: TlsMode = d.tls_mode.parse().map_err(|_| {
        super::RuntimeError::Inconsistent(format!("domain {id}: bad tls_mode {}", d.tls_mode))
    })?;
    let mut facts: DomainFacts = observed::parse(d.observed.as_deref());
    let deleting = d.deletion_requested_at.is_some() || env.deletion_requested_at.is_some();

    // DNS: only asked while an ACME certificate is still to be obtained for this generation.
    let needs_dns = !deleting
        && tls_mode == TlsMode::Acme
        && facts
            .certificate
            .as_ref()
            .is_none_or(|c| c.generation < d.generation);
    if needs_dns {
        let fresh = facts.dns.as_ref().is_some_and(|f| {
            clock::parse(&f.checked_at).is_some_and(|t| {
                time::OffsetDateTime::now_utc() - t < time::Duration::seconds(DNS_TTL_SECS)
            })
        });
        if !fresh {
            let resolver = all.get("dns_resolver").and_then(|r| r.parse().ok());
            let answer = crate::dns::resolve(&d.hostname, resolver).await;
            let node_ip = node.as_ref().and_then(|n| n.public_ip.as_deref());
            let (points, detail) = answer.verdict(&d.hostname, node_ip);
            facts.dns = Some(DnsFacts {
                addresses: answer.addresses.iter().map(ToString::to_string).collect(),
                points_to_node: points,
                detail,
                checked_at: clock::now(),
            });
        }
    }

    let env_facts: EnvFacts = observed::parse(env.observed.as_deref());
    let served = env_facts.served_domains.iter().any(|s| s == id);
    let now = time::OffsetDateTime::now_utc();
    let certificate = facts.certificate.as_ref().map(|c| CertificateState {
        generation: c.generation,
        expires_in_secs: clock::parse(&c.not_after).map_or(0, |t| (t - now).whole_seconds()),
        secs_since_renewal: c
            .renewed_at
            .as_deref()
            .and_then(clock::parse)
            .map(|t| (now - t).whole_seconds()),
    });
    let latest = jobs::latest_for(&rt.db, "domain", id).await?;
    let att = attempts(rt, "domain", id, d.generation, None, latest.as_ref()).await?;
    let spec = DomainSpec {
        generation: d.generation,
        tls_mode,
        deletion_requested: deleting,
        renew_before_secs: renew_before_days * 86_400,
    };
    let obs = DomainObserved {
        node_ready,
        dns_points_to_node: facts.dns.as_ref().map(|f| f.points_to_node),
        dns_detail: facts
            .dns
            .as_ref()
            .map(|f| f.detail.clone())
            .unwrap_or_default(),
        certificate,
        served,
        latest_job: latest.as_ref().and_then(job_observation),
        conditions: conditions_of(&d.conditions),
    };
    let ctx = Context {
        now: clock::now(),
        max_attempts: rt.cfg.max_attempts,
        failed_attempts: att.failed,
        retry_delay_ms: att.retry_delay_ms,
        retry_due: att.retry_due,
        resync_after_ms: rt.cfg.resync.as_millis() as u64,
    };
    let plan = reconcilers::domain::reconcile(&spec, &obs, &ctx);

    let dns_gated = !deleting
        && tls_mode == TlsMode::Acme
        && obs.certificate.is_none()
        && obs.dns_points_to_node == Some(false);
    let last_error = if dns_gated {
        Some("DNS_NOT_POINTING".to_string())
    } else {
        latest
            .as_ref()
            .filter(|j| j.status == "failed")
            .and_then(|j| j.error_code.clone())
    };
    let phase = plan.phase.as_str();
    let conditions = serde_json::to_string(&plan.conditions).unwrap_or_else(|_| "[]".into());
    let observed_json = observed::render(&facts);
    let changed = d.status != phase
        || d.conditions != conditions
        || d.observed_generation != plan.observed_generation
        || d.observed.as_deref() != Some(observed_json.as_str())
        || d.last_error_code != last_error;
    if changed {
        let tx = crate::store::begin_write(&rt.db).await?;
        domains::Entity::update_many()
            .col_expr(domains::Column::Status, Expr::value(phase))
            .col_expr(domains::Column::Conditions, Expr::value(conditions))
            .col_expr(
                domains::Column::ObservedGeneration,
                Expr::value(plan.observed_generation),
            )
            .col_expr(domains::Column::Observed, Expr::value(observed_json))
            .col_expr(domains::Column::ObservedAt, Expr::value(clock::now()))
            .col_expr(domains::Column::LastErrorCode, Expr::value(last_error))
            .col_expr(
                domains::Column::ReconcileAttempts,
                Expr::value(att.failed as i64),
            )
            .filter(domains::Column::Id.eq(id))
            .exec(&tx)
            .await?;
        for message in super::condition_changes(&d.conditions, &plan.conditions) {
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "domain",
                    resource_id: id,
                    site_id: Some(&env.site_id),
                    environment_id: Some(&env.id),
                    reason: "ConditionChanged",
                    message: format!("{}: {message}", d.hostname),
                },
            )
            .await?;
        }
        super::fence_check(rt, &tx).await?;
        tx.commit().await?;
    }

    match plan.action {
        Action::RunJob { job_type } => {
            rt.start_env_job(
                &env,
                job_type,
                reconcilers::domain::run_reason(&spec, &obs, att.failed),
                ("domain", id, d.generation),
                att.failed,
            )
            .await?;
        }
        Action::Finalize => {
            finalize(rt, &d, &env).await?;
            return Ok(None);
        }
        Action::Nothing | Action::Wait { .. } => {}
    }
    Ok(plan.requeue_after_ms.map(Duration::from_millis))
}

/// The node no longer has the domain: remove the row (and its secrets); a primary falls back to
/// the preview URL (the environment renders its routes again).
async fn finalize(rt: &Arc<Runtime>, d: &domains::Model, env: &environments::Model) -> Result<()> {
    let tx = crate::store::begin_write(&rt.db).await?;
    if env.primary_domain_id.as_deref() == Some(d.id.as_str()) {
        environments::Entity::update_many()
            .col_expr(
                environments::Column::PrimaryDomainId,
                Expr::value(Option::<String>::None),
            )
            .filter(environments::Column::Id.eq(env.id.as_str()))
            .exec(&tx)
            .await?;
    }
    domains::Entity::delete_by_id(d.id.clone())
        .exec(&tx)
        .await?;
    store::secrets::delete_prefix(&tx, &format!("domain/{}/", d.id)).await?;
    store::events::append(
        &tx,
        NewEvent {
            resource_type: "domain",
            resource_id: &d.id,
            site_id: Some(&env.site_id),
            environment_id: Some(&env.id),
            reason: "Deleted",
            message: format!("domain {} removed from its node and deleted", d.hostname),
        },
    )
    .await?;
    super::fence_check(rt, &tx).await?;
    tx.commit().await?;
    rt.enqueue(Kind::Environment, &env.id);
    Ok(())
}
