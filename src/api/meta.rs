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

/// `GET /metrics`: Prometheus' text format (version 0.0.4). Authenticated by an API token
/// (`Authorization: Bearer …`, like the API): the numbers hold no secrets, but
/// resource counts and job outcomes are the operator's business, and the API port is often
/// public behind the load balancer. A Prometheus scrape job sets `authorization:
/// {credentials_file: …}` with an API token.
pub async fn prometheus(req: &poem::Request) -> poem::Response {
    use poem::IntoResponse;
    let Ok(st) = state(req) else {
        return ApiError::Internal("application state missing".into()).into_response();
    };
    // An API token (`Authorization: Bearer …`), checked like the API's bearer scheme.
    let token = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return ApiError::Unauthorized.into_response();
    };
    let hash = crate::ids::sha256_hex(token);
    if st.credentials.get(&hash).is_none() {
        match store::auth::live_token(&st.db, &hash).await {
            Ok(Some(_)) => {}
            Ok(None) => return ApiError::Unauthorized.into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    match render_prometheus(st).await {
        Ok(text) => poem::Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .header("cache-control", "no-store")
            .body(text),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Queue depths (this process's work queues and the job table), lease and reconcile
/// statistics, playbook runs and failures, probe rounds and API latency.
pub async fn render_prometheus(st: &super::AppState) -> Result<String, store::StoreError> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(16 * 1024);
    let _ = writeln!(out, "# HELP pressluft_workqueue_depth Keys in this process's work queue per resource kind (ready: due now; delayed: waiting for backoff or a slot; running: being reconciled).");
    let _ = writeln!(out, "# TYPE pressluft_workqueue_depth gauge");
    let depths = st.runtime_stats.queue_depths();
    for q in &depths {
        for (state, n) in [
            ("ready", q.ready),
            ("delayed", q.delayed),
            ("running", q.running),
        ] {
            let _ = writeln!(
                out,
                "pressluft_workqueue_depth{{kind=\"{}\",state=\"{state}\"}} {n}",
                q.kind
            );
        }
    }
    let _ = writeln!(out, "# HELP pressluft_workqueue_oldest_ready_seconds How long the longest-waiting due key of the work queue has waited.");
    let _ = writeln!(out, "# TYPE pressluft_workqueue_oldest_ready_seconds gauge");
    for q in &depths {
        let _ = writeln!(
            out,
            "pressluft_workqueue_oldest_ready_seconds{{kind=\"{}\"}} {}",
            q.kind,
            q.oldest_ready.as_secs_f64()
        );
    }
    // Jobs across all replicas (the database).
    let jobs = crate::runtime::jobs::open_by_type(&st.db).await?;
    let now = time::OffsetDateTime::now_utc();
    let _ = writeln!(
        out,
        "# HELP pressluft_jobs Jobs queued or running (all replicas) by job type and status."
    );
    let _ = writeln!(out, "# TYPE pressluft_jobs gauge");
    for (job_type, status, n, _) in &jobs {
        let _ = writeln!(
            out,
            "pressluft_jobs{{job_type=\"{job_type}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# HELP pressluft_jobs_oldest_age_seconds Age of the oldest queued or running job (all replicas) by job type and status.");
    let _ = writeln!(out, "# TYPE pressluft_jobs_oldest_age_seconds gauge");
    for (job_type, status, _, oldest) in &jobs {
        let age = crate::clock::parse(oldest)
            .map(|t| (now - t).as_seconds_f64().max(0.0))
            .unwrap_or(0.0);
        let _ = writeln!(
            out,
            "pressluft_jobs_oldest_age_seconds{{job_type=\"{job_type}\",status=\"{status}\"}} {age}"
        );
    }
    let _ = writeln!(out, "# HELP pressluft_playbook_runs_total Jobs recorded (all replicas, since the database was created) by job type, reason and final status.");
    let _ = writeln!(out, "# TYPE pressluft_playbook_runs_total counter");
    for (job_type, reason, status, n) in
        crate::runtime::jobs::runs_by_reason_and_status(&st.db).await?
    {
        let _ = writeln!(
            out,
            "pressluft_playbook_runs_total{{job_type=\"{job_type}\",reason=\"{reason}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# HELP pressluft_playbook_failures_total Failed jobs (all replicas) by job type and error code.");
    let _ = writeln!(out, "# TYPE pressluft_playbook_failures_total counter");
    for (job_type, code, n) in crate::runtime::jobs::failures_by_code(&st.db).await? {
        let _ = writeln!(
            out,
            "pressluft_playbook_failures_total{{job_type=\"{job_type}\",error_code=\"{code}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP pressluft_resync_rounds_total Resync rounds of this process."
    );
    let _ = writeln!(out, "# TYPE pressluft_resync_rounds_total counter");
    let _ = writeln!(
        out,
        "pressluft_resync_rounds_total {}",
        st.runtime_stats.resync_rounds()
    );
    let _ = writeln!(
        out,
        "# HELP pressluft_probe_rounds_total Probe rounds of this process."
    );
    let _ = writeln!(out, "# TYPE pressluft_probe_rounds_total counter");
    let _ = writeln!(
        out,
        "pressluft_probe_rounds_total {}",
        st.runtime_stats.probe_rounds()
    );
    crate::runtime::stats::global().render(&mut out);
    Ok(out)
}

/// Around every request: its latency by method, route (the OpenAPI operation id, or `other`)
/// and status class, for `/metrics`.
pub async fn observe<E: poem::Endpoint>(
    ep: std::sync::Arc<E>,
    req: poem::Request,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse;
    let started = std::time::Instant::now();
    let method = req.method().to_string();
    let path_static = if req.uri().path() == "/metrics" {
        Some("metrics")
    } else {
        None
    };
    let r = ep.call(req).await.map(IntoResponse::into_response);
    let (status, route) = match &r {
        Ok(resp) => (
            resp.status().as_u16(),
            resp.data::<poem_openapi::OperationId>().map(|o| o.0),
        ),
        Err(e) => (e.status().as_u16(), None),
    };
    let route = route.or(path_static).unwrap_or("other");
    crate::runtime::stats::global().api_request(&method, route, status, started.elapsed());
    r
}
