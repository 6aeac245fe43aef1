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
        }))
    }
}
