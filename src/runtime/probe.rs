//! The probe loop: every node is probed each `probe_interval`; what differs from the stored
//! observed state is written and its resource is reconciled at once (drift repair without an
//! operator, and no playbook when nothing differs).
use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::observed::{self, EnvFacts, NodeFacts};
use super::Runtime;
use crate::notify::Kind;
use crate::prober::{self, Probed};
use crate::store;
use crate::store::entity::{environments, nodes};

pub(super) async fn probe_loop(rt: Arc<Runtime>) {
    loop {
        tokio::time::sleep(rt.cfg.probe_interval).await;
        let Ok(all) = nodes::Entity::find().all(&rt.db).await else {
            continue;
        };
        for node in all {
            if node.deletion_requested_at.is_some() || node.host_key.is_none() {
                continue;
            }
            let facts: NodeFacts = observed::parse(node.observed.as_deref());
            if facts.provisioned_generation.is_none() {
                continue;
            }
            // Replicas: one probe round per node and interval across all of them (the lease is
            // kept, not released, and lapses just before the next round is due).
            let ttl = time::Duration::try_from(rt.cfg.probe_interval.mul_f64(0.9))
                .unwrap_or(time::Duration::seconds(27));
            let key = format!("probe/{}", node.id);
            match crate::store::gated(
                &rt.db,
                super::lease::acquire(&rt.db, &key, &rt.worker_id, ttl),
            )
            .await
            {
                Ok(true) => {}
                _ => continue,
            }
            if let Err(e) = probe_node(&rt, &node).await {
                tracing::warn!(node = %node.id, error = %e, "probe round failed");
            }
        }
    }
}

async fn probe_node(rt: &Arc<Runtime>, node: &nodes::Model) -> Result<(), super::RuntimeError> {
    // What a job finished after this moment wrote is newer than anything this round sees.
    let round_started = crate::clock::now();
    let envs = environments::Entity::find()
        .filter(environments::Column::NodeId.eq(node.id.as_str()))
        .filter(environments::Column::DeletionRequestedAt.is_null())
        .all(&rt.db)
        .await?;
    let now = std::time::Instant::now();
    let probed: Vec<Probed> = {
        let due = rt.http_due.lock().expect("http_due lock");
        envs.iter()
            .map(|e| {
                let f: EnvFacts = observed::parse(e.observed.as_deref());
                // The URL the environment serves WordPress on: its site URL as the last converge
                // rendered it (a primary domain over HTTPS), else the preview URL.
                let url = f
                    .facts
                    .get("site_url")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or(&e.preview_url);
                Probed {
                    environment_id: e.id.clone(),
                    site_id: e.site_id.clone(),
                    host: url
                        .split("://")
                        .nth(1)
                        .unwrap_or("")
                        .split(['/', ':'])
                        .next()
                        .unwrap_or("")
                        .to_string(),
                    https: url.starts_with("https://"),
                    http: http_due(due.get(&e.id), now, &f),
                }
            })
            .collect()
    };
    let key = match crate::ssh::control_key(&rt.db, &rt.secrets).await {
        Ok(k) => k,
        Err(e) => return Err(super::RuntimeError::Inconsistent(e.to_string())),
    };
    let target = crate::runner::Target {
        hostname: node.hostname.clone(),
        port: node.ssh_port as u16,
        user: node.ssh_user.clone(),
        private_key_openssh: key.private_openssh,
        host_key: node.host_key.clone(),
    };
    let mut nf: NodeFacts = observed::parse(node.observed.as_deref());
    let before = nf.clone();
    let (started, cpu_before) = (std::time::Instant::now(), super::stats::process_cpu_ms());
    let result = prober::probe(&target, &probed).await;
    if let Ok(p) = &result {
        let round = super::stats::ProbeRound {
            node_id: node.id.clone(),
            environments: probed.len(),
            http_checked: p.environments.values().filter(|e| e.http_checked).count(),
            wall_ms: started.elapsed().as_millis() as u64,
            node_cpu_ms: p.cpu_ms,
            controller_cpu_ms: super::stats::process_cpu_ms()
                .zip(cpu_before)
                .map(|(a, b)| a.saturating_sub(b)),
        };
        tracing::debug!(node = %round.node_id, environments = round.environments, wall_ms = round.wall_ms, node_cpu_ms = ?round.node_cpu_ms, "probe round");
        rt.stats.probe_done(round);
    }
    match &result {
        Ok(p) => {
            nf.reachable = Some(true);
            nf.services_down = p.services_down();
            nf.disk_free_bytes = Some(p.disk_free_bytes);
            nf.disk_total_bytes = Some(p.disk_total_bytes);
        }
        Err(prober::ProbeError::Ssh(e)) if e.is_unreachable() => nf.reachable = Some(false),
        Err(e) => tracing::warn!(node = %node.id, error = %e, "probe"),
    }
    // Free disk space moves all the time: it alone is no reason to write or to reconcile.
    let mut comparable = nf.clone();
    comparable.disk_free_bytes = before.disk_free_bytes;
    comparable.disk_total_bytes = before.disk_total_bytes;
    let disk_moved = match (before.disk_free_bytes, nf.disk_free_bytes) {
        (Some(a), Some(b)) => a.abs_diff(b) > 256 * 1024 * 1024,
        (a, b) => a != b,
    };
    if comparable != before || disk_moved {
        store::gated(
            &rt.db,
            store::nodes::record_observed(
                &rt.db,
                &node.id,
                observed::render(&nf),
                nf.reachable == Some(true),
            ),
        )
        .await?;
        if comparable != before {
            tracing::info!(node = %node.id, reachable = ?nf.reachable, services_down = ?nf.services_down, "probe: node changed");
            rt.enqueue(Kind::Node, &node.id);
        }
    }
    let Ok(p) = result else { return Ok(()) };
    rt.http_due
        .lock()
        .expect("http_due lock")
        .retain(|id, _| p.environments.contains_key(id));
    for (id, ep) in &p.environments {
        if ep.http_checked {
            rt.http_checked_now(id);
        }
    }
    for env in envs {
        let Some(ep) = p.environments.get(&env.id) else {
            continue;
        };
        // While a job runs the node is in flux; a job that finished during this round changed
        // the node after the probe looked (its own facts are newer): judge the next round.
        if let Some(j) = super::jobs::latest_for(&rt.db, "environment", &env.id).await? {
            if matches!(j.status.as_str(), "queued" | "running")
                || j.finished_at.as_deref() >= Some(round_started.as_str())
            {
                continue;
            }
        }
        // The row as it is now, not as the round began: never write back older facts.
        let Some(env) = store::resources::environment_by_id(&rt.db, &env.id)
            .await?
            .filter(|e| e.deletion_requested_at.is_none())
        else {
            continue;
        };
        let mut f: EnvFacts = observed::parse(env.observed.as_deref());
        // Only environments that were converged once.
        if f.applied_generation.is_none() {
            continue;
        }
        let before = f.clone();
        let config_matches = config_matches(&f, ep);
        let serving = if ep.http_checked {
            f.http_failures = if ep.serving() {
                0
            } else {
                f.http_failures.saturating_add(1)
            };
            // One failed request (a PHP-FPM reload of another site, a busy node) is not drift:
            // like a liveness probe's failure threshold, only consecutive failures count.
            ep.serving() || (f.http_failures < HTTP_FAILURE_THRESHOLD && f.healthy == Some(true))
        } else {
            f.healthy == Some(true)
        };
        f.exists_on_node = Some(ep.present() && config_matches);
        f.healthy = Some(ep.present() && config_matches && serving);
        f.data_missing = ep.missing_data().map(str::to_string);
        if ep.current_release.is_some() {
            f.current_release = ep.current_release.clone();
        }
        if f != before {
            // compare-and-set: a job's outcome written since the read above wins
            let written = store::gated(
                &rt.db,
                store::resources::record_environment_observed_if(
                    &rt.db,
                    &env.id,
                    env.observed.as_deref(),
                    observed::render(&f),
                ),
            )
            .await?;
            if !written {
                continue;
            }
        }
        if f.current_release != before.current_release && before.current_release.is_some() {
            // `current` switched outside Pressluft: the reconciler compares it with the desired
            // release and repairs it
            crate::store::gated(
                &rt.db,
                store::events::append(
                    &rt.db,
                    store::events::NewEvent {
                        resource_type: "environment",
                        resource_id: &env.id,
                        site_id: Some(&env.site_id),
                        environment_id: Some(&env.id),
                        reason: "ReleaseDrift",
                        message: format!(
                            "probe: current points to {} (was {})",
                            f.current_release.as_deref().unwrap_or("-"),
                            before.current_release.as_deref().unwrap_or("-")
                        ),
                    },
                ),
            )
            .await?;
            rt.enqueue(Kind::Environment, &env.id);
        }
        let state = |f: &EnvFacts| (f.exists_on_node, f.healthy, f.data_missing.clone());
        if state(&f) != state(&before) {
            let what = describe(ep, config_matches);
            crate::store::gated(
                &rt.db,
                store::events::append(
                    &rt.db,
                    store::events::NewEvent {
                        resource_type: "environment",
                        resource_id: &env.id,
                        site_id: Some(&env.site_id),
                        environment_id: Some(&env.id),
                        reason: "DriftDetected",
                        message: format!("probe: {what}"),
                    },
                ),
            )
            .await?;
            rt.enqueue(Kind::Environment, &env.id);
        }
    }
    Ok(())
}

impl Runtime {
    /// The environment's preview URL was just requested: next time after 5–10 probe intervals,
    /// spread so that rounds stay even.
    pub(super) fn http_checked_now(&self, environment_id: &str) {
        let spread = 5.0 + rand::random::<f64>() * 5.0;
        self.http_due.lock().expect("http_due lock").insert(
            environment_id.to_string(),
            std::time::Instant::now() + self.cfg.probe_interval.mul_f64(spread),
        );
    }
}

/// Consecutive failed preview-URL requests after which a converged environment is unhealthy.
const HTTP_FAILURE_THRESHOLD: u32 = 3;

/// Whether this round requests the environment's preview URL. Every file, service and database
/// check runs each round; the HTTP request bootstraps WordPress (~50 ms of CPU on a small node),
/// so a healthy environment has it every 5–10 probe intervals (spread over the rounds), one that
/// is not healthy, not seen yet, not converged or whose last request failed every round.
fn http_due(next: Option<&std::time::Instant>, now: std::time::Instant, f: &EnvFacts) -> bool {
    f.healthy != Some(true)
        || f.exists_on_node != Some(true)
        || f.http_failures > 0
        || next.is_none_or(|due| now >= *due)
}

/// The server block and pool on the node are what the last converge rendered (a hand edit is
/// drift like a deleted file). Environments converged before digests were recorded match.
fn config_matches(f: &EnvFacts, p: &prober::EnvProbe) -> bool {
    match (&f.config_hash, &p.config_hash) {
        (None, _) => true,
        (Some(want), Some(have)) => want == have,
        (Some(_), None) => !(p.server_block && p.pool),
    }
}

fn describe(p: &prober::EnvProbe, config_matches: bool) -> String {
    let mut parts = Vec::new();
    for (ok, what) in [
        (p.root, "environment root"),
        (p.current, "current release"),
        (p.server_block, "nginx server block"),
        (p.pool, "PHP-FPM pool"),
        (p.database, "database"),
        (p.uploads, "uploads"),
    ] {
        if !ok {
            parts.push(format!("{what} missing"));
        }
    }
    if !config_matches && p.server_block && p.pool {
        parts.push("nginx server block or PHP-FPM pool changed by hand".to_string());
    }
    if p.http_checked && !p.serving() {
        parts.push(format!("preview URL answered {}", p.http_status));
    }
    if parts.is_empty() {
        "everything matches again".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn preview_url_requested_when_due_or_not_healthy() {
        let now = Instant::now();
        let healthy = EnvFacts {
            healthy: Some(true),
            exists_on_node: Some(true),
            ..Default::default()
        };
        assert!(http_due(None, now, &healthy), "never requested yet");
        let later = now + Duration::from_secs(60);
        assert!(!http_due(Some(&later), now, &healthy), "healthy, not due");
        assert!(http_due(Some(&now), now, &healthy), "due");
        let unhealthy = EnvFacts {
            healthy: Some(false),
            ..healthy.clone()
        };
        assert!(http_due(Some(&later), now, &unhealthy));
        let drifted = EnvFacts {
            exists_on_node: Some(false),
            ..healthy
        };
        assert!(http_due(Some(&later), now, &drifted));
        let failed_once = EnvFacts {
            healthy: Some(true),
            exists_on_node: Some(true),
            http_failures: 1,
            ..Default::default()
        };
        assert!(
            http_due(Some(&later), now, &failed_once),
            "re-checked at once"
        );
    }

    #[test]
    fn a_hand_edit_is_a_config_mismatch() {
        let f = EnvFacts {
            config_hash: Some("a".into()),
            ..Default::default()
        };
        let mut p = prober::EnvProbe {
            server_block: true,
            pool: true,
            config_hash: Some("a".into()),
            ..Default::default()
        };
        assert!(config_matches(&f, &p));
        p.config_hash = Some("b".into());
        assert!(!config_matches(&f, &p));
        assert!(describe(&p, false).contains("changed by hand"));
        assert!(
            config_matches(&EnvFacts::default(), &p),
            "no digest recorded yet"
        );
    }
}
