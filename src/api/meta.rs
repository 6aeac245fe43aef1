//! Liveness and counters.
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::Auth;
use super::error::ApiError;
use super::{state, Tag};
use crate::error_response;
use crate::store;

#[derive(Debug, Object)]
pub struct Health {
    /// `ok` when the process answers and its database does.
    pub status: String,
    pub version: String,
}

#[derive(Debug, Object)]
pub struct Metrics {
    pub jobs_running: u64,
    pub jobs_queued: u64,
    pub nodes_active: u64,
    pub sites_total: u64,
    /// Playbook runs launched (one per job attempt), by job type and reason (`create`,
    /// `spec_change`, `drift`, `retry`, `reset`, `delete`, `provision`, …): a converged
    /// platform adds none.
    pub playbook_runs: Vec<PlaybookRuns>,
    /// Resync rounds (every resource enqueued) since this process started.
    pub resync_rounds: u64,
    /// Probe rounds (one SSH session per node) since this process started.
    pub probe_rounds: u64,
    /// The most recent probe round.
    pub last_probe_round: Option<ProbeRoundMetrics>,
}

#[derive(Debug, Object)]
pub struct ProbeRoundMetrics {
    pub node_id: String,
    pub environments: u64,
    /// Environments whose preview URL was requested in that round (each one every 5–10 rounds
    /// while healthy, every round otherwise).
    pub http_checked: u64,
    pub wall_ms: u64,
    /// CPU the probe used on the node.
    pub node_cpu_ms: Option<u64>,
    /// CPU the Pressluft process used during the round (all of its work, not only the probe).
    pub controller_cpu_ms: Option<u64>,
}

#[derive(Debug, Object)]
pub struct PlaybookRuns {
    pub job_type: String,
    pub reason: String,
    pub count: u64,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    #[oai(status = 200)]
    Ok(Json<Health>),
    /// The database does not answer.
    #[oai(status = 503)]
    Unavailable(Json<Health>),
}

error_response!(MetricsError { Unauthorized = 401 });

pub struct MetaApi;

#[OpenApi(tag = "Tag::Meta")]
impl MetaApi {
    /// Liveness: needs no authentication.
    #[oai(path = "/healthz", method = "get", operation_id = "health")]
    async fn health(&self, req: &Request) -> HealthResponse {
        let version = env!("CARGO_PKG_VERSION").to_string();
        let ok = match state(req) {
            Ok(st) => store::ping(&st.db).await.is_ok(),
            Err(_) => false,
        };
        if ok {
            HealthResponse::Ok(Json(Health {
                status: "ok".into(),
                version,
            }))
        } else {
            HealthResponse::Unavailable(Json(Health {
                status: "unavailable".into(),
                version,
            }))
        }
    }

    /// Counters computed from the database on demand.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, req: &Request, _auth: Auth) -> Result<Json<Metrics>, MetricsError> {
        let st = state(req)?;
        let db = &st.db;
        Ok(Json(Metrics {
            jobs_running: store::jobs::count_with_status(db, "running")
                .await
                .map_err(ApiError::from)?,
            jobs_queued: store::jobs::count_with_status(db, "queued")
                .await
                .map_err(ApiError::from)?,
            nodes_active: store::nodes::count_active(db)
                .await
                .map_err(ApiError::from)?,
            sites_total: store::resources::count_sites(db)
                .await
                .map_err(ApiError::from)?,
            playbook_runs: store::jobs::runs_by_reason(db)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .map(|(job_type, reason, count)| PlaybookRuns {
                    job_type,
                    reason,
                    count: count.max(0) as u64,
                })
                .collect(),
            resync_rounds: st.runtime_stats.resync_rounds(),
            probe_rounds: st.runtime_stats.probe_rounds(),
            last_probe_round: st.runtime_stats.last_probe().map(|r| ProbeRoundMetrics {
                node_id: r.node_id,
                environments: r.environments as u64,
                http_checked: r.http_checked as u64,
                wall_ms: r.wall_ms,
                node_cpu_ms: r.node_cpu_ms,
                controller_cpu_ms: r.controller_cpu_ms,
            }),
        }))
    }
}
