//! The HTTP API: poem + poem-openapi. Handlers validate, record desired state (with an event and
//! an audit entry in the same transaction) and wake the reconcilers. They never touch a node and
//! never set a lifecycle phase.

// An OpenAPI operation takes each query parameter as an argument of its own.
#![allow(clippy::too_many_arguments)]
pub mod apply;
pub mod auth;
pub mod credentials;
pub mod error;
pub mod model;
pub mod text;
pub mod validate;

mod adoptions;
mod applier;
mod audit;
mod backup_download;
mod backups;
mod cache_purge;
mod domains;
mod environments;
mod events;
mod import_upload;
mod imports;
mod jobs;
mod magic_login;
mod meta;
mod nodes;
mod promotions;
mod releases;
mod restores;
mod schedules;
mod settings;
mod sites;
mod web;
mod write;

use std::sync::Arc;

use poem::http::{Method, StatusCode};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::{OpenApiService, Tags};
use sea_orm::DatabaseConnection;

use crate::store::WriteTx;

use crate::notify::Notifier;
use crate::secrets::SecretBox;
use error::ApiError;

/// Request bodies above this size are refused with 413 before they are read.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Manifests of a whole installation (1,000 resources and more) come in one request.
pub const MANIFEST_BODY_LIMIT: usize = 8 * 1024 * 1024;

#[derive(Tags)]
pub enum Tag {
    /// Login, logout and API tokens.
    Auth,
    /// Sites and their production environment.
    Sites,
    /// Production, staging and clone environments.
    Environments,
    /// Servers Pressluft manages.
    Nodes,
    /// Custom domains with TLS.
    Domains,
    /// Backups.
    Backups,
    /// Node work: read-only.
    Jobs,
    /// What happened, as it happens.
    Events,
    /// Who did what.
    Audit,
    /// Installation-wide settings.
    Settings,
    /// Health and counters.
    Meta,
    /// Manifests (GitOps): plan and apply.
    Apply,
}

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub secrets: SecretBox,
    pub notifier: Notifier,
    pub settings: Arc<ApiSettings>,
    pub credentials: Arc<credentials::CredentialCache>,
    /// The runtime's in-memory counters (a default, all zero, when no runtime runs here).
    pub runtime_stats: Arc<crate::runtime::stats::RuntimeStats>,
}

/// Process configuration the API needs.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Address used in sslip.io preview URLs when a node has no public IP.
    pub default_public_ip: String,
}

impl AppState {
    pub async fn begin(&self) -> Result<WriteTx, ApiError> {
        crate::store::begin_write(&self.db)
            .await
            .map_err(ApiError::from)
    }

    pub async fn commit(&self, tx: WriteTx) -> Result<(), ApiError> {
        tx.commit().await.map_err(ApiError::internal)
    }
}

/// Every API group, one per resource. poem-openapi implements `OpenApi` for tuples of at most 16
/// members, and a tuple of APIs is itself one: the groups nest, so each new API joins a group.
type Apis = (
    (
        auth::AuthApi,
        sites::SitesApi,
        environments::EnvironmentsApi,
        magic_login::MagicLoginApi,
        cache_purge::CachePurgeApi,
        nodes::NodesApi,
        domains::DomainsApi,
        releases::ReleasesApi,
    ),
    (
        backups::BackupsApi,
        backup_download::BackupDownloadApi,
        restores::RestoresApi,
        schedules::SchedulesApi,
        promotions::PromotionsApi,
        imports::ImportsApi,
        adoptions::AdoptionsApi,
    ),
    (
        apply::ApplyApi,
        import_upload::ImportUploadApi,
        jobs::JobsApi,
        events::EventsApi,
        audit::AuditApi,
        settings::SettingsApi,
        meta::MetaApi,
    ),
);

fn apis() -> Apis {
    (
        (
            auth::AuthApi,
            sites::SitesApi,
            environments::EnvironmentsApi,
            magic_login::MagicLoginApi,
            cache_purge::CachePurgeApi,
            nodes::NodesApi,
            domains::DomainsApi,
            releases::ReleasesApi,
        ),
        (
            backups::BackupsApi,
            backup_download::BackupDownloadApi,
            restores::RestoresApi,
            schedules::SchedulesApi,
            promotions::PromotionsApi,
            imports::ImportsApi,
            adoptions::AdoptionsApi,
        ),
        (
            apply::ApplyApi,
            import_upload::ImportUploadApi,
            jobs::JobsApi,
            events::EventsApi,
            audit::AuditApi,
            settings::SettingsApi,
            meta::MetaApi,
        ),
    )
}

pub fn api_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis(), "Pressluft", env!("CARGO_PKG_VERSION"))
        .description(
            "Pressluft records desired state; reconcilers make the nodes match. Writes answer 202 \
         (work pending) or 200 (nothing to do) with the resource; follow `status`, `conditions` \
         and `observed_generation` to see how far the system got.",
        )
        .server("/api")
}

/// The OpenAPI document as committed in `openapi/openapi.yaml`.
pub fn openapi_yaml() -> String {
    api_service().spec_yaml()
}

/// The whole HTTP application: `/api/*`, the OpenAPI document and its docs page, the dashboard.
pub fn app(state: AppState, web_dir: Option<std::path::PathBuf>) -> impl Endpoint {
    let service = api_service();
    let spec = service.spec();
    let docs = service.swagger_ui();
    Route::new()
        .nest("/api", service)
        .at(
            "/api/openapi.json",
            poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            }),
        )
        .nest("/api/docs", docs)
        // Prometheus text format (src/api/meta.rs)
        .at(
            "/metrics",
            poem::get(poem::endpoint::make(|req: poem::Request| async move {
                meta::prometheus(&req).await
            })),
        )
        .nest("/", web::Dashboard::new(web_dir))
        .around(guard)
        .around(meta::observe)
        .with(poem::middleware::CookieJarManager::new())
        .data(state)
}

/// Cross-cutting request rules: the CSRF proof for cookie-authenticated writes, and one error
/// shape for everything that fails before or outside a handler.
async fn guard<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    if let Err(e) = csrf_check(&req) {
        return Ok(e.into_response());
    }
    // The body limit holds with or without Content-Length (chunked bodies are read up to it).
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = if req.uri().path().starts_with("/api/apply") {
        MANIFEST_BODY_LIMIT
    } else {
        BODY_LIMIT
    };
    // Import uploads stream their body to the node (bounded there by `import_max_bytes`).
    let streamed = req.method() == Method::POST && req.uri().path().ends_with("/import-uploads");
    if declared.is_some_and(|n| n > limit) && !streamed {
        return Ok(ApiError::PayloadTooLarge.into_response());
    }
    if !streamed
        && matches!(
            *req.method(),
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
    {
        match req.take_body().into_bytes_limit(limit).await {
            Ok(bytes) => req.set_body(bytes),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return Ok(ApiError::PayloadTooLarge.into_response())
            }
            Err(_) => {
                return Ok(
                    ApiError::BadRequest("the request body could not be read".into())
                        .into_response(),
                )
            }
        }
    }
    let no_store = req.uri().path().starts_with("/api/");
    match ep.call(req).await {
        Ok(resp) => {
            let mut resp = resp.into_response();
            if no_store {
                resp.headers_mut().insert(
                    "cache-control",
                    poem::http::HeaderValue::from_static("no-store"),
                );
            }
            Ok(resp)
        }
        Err(e) => Ok(error::normalize(e)),
    }
}

/// A cookie-authenticated request that changes state must carry `X-Pressluft-CSRF: 1` or an
/// `Origin` equal to the panel's own. Token requests and login need no proof.
fn csrf_check(req: &Request) -> Result<(), ApiError> {
    let mutating = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !mutating || req.uri().path() == "/api/login" {
        return Ok(());
    }
    if req
        .headers()
        .contains_key(poem::http::header::AUTHORIZATION)
    {
        return Ok(());
    }
    let has_cookie = req.cookie().get(auth::SESSION_COOKIE).is_some();
    if !has_cookie {
        return Ok(());
    }
    let header_ok = req
        .headers()
        .get("x-pressluft-csrf")
        .is_some_and(|v| v.as_bytes() == b"1");
    if header_ok {
        return Ok(());
    }
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin = req
        .headers()
        .get(poem::http::header::ORIGIN)
        .and_then(|h| h.to_str().ok());
    if let (Some(host), Some(origin)) = (host, origin) {
        if origin == format!("http://{host}") || origin == format!("https://{host}") {
            return Ok(());
        }
    }
    Err(ApiError::Forbidden(
        "cookie-authenticated writes need the X-Pressluft-CSRF: 1 header".into(),
    ))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status: StatusCode = self.status();
        Response::builder()
            .status(status)
            .content_type("application/json")
            .body(serde_json::to_vec(&self.body()).unwrap_or_default())
    }
}

/// The application state, put on every request by [`app`].
pub fn state(req: &Request) -> Result<&AppState, ApiError> {
    req.data::<AppState>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))
}

/// Preview URLs use the configured preview domain, else sslip.io with the node's address (R6).
pub async fn preview_base(
    db: &impl sea_orm::ConnectionTrait,
    st: &AppState,
    node: &crate::store::entity::nodes::Model,
) -> Result<crate::store::resources::PreviewBase, ApiError> {
    use crate::store::resources::PreviewBase;
    if let Some(d) = crate::store::settings::get(db, "preview_domain").await? {
        return Ok(PreviewBase::Domain(d));
    }
    let ip = node
        .public_ip
        .clone()
        .unwrap_or_else(|| st.settings.default_public_ip.clone());
    Ok(PreviewBase::Sslip(ip))
}

/// The WordPress administrator Pressluft creates at install: `pl-admin-<8 hex>`.
pub fn new_wp_admin_login() -> String {
    format!("pl-admin-{}", crate::ids::random_token(4))
}

/// Page size: default 100, at most 1000.
pub fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    match limit {
        None => Ok(100),
        Some(l) if (1..=1000).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::invalid(
            "limit",
            "limit must be between 1 and 1000",
        )),
    }
}

/// Reads an optional cursor (an id) from the query.
pub fn cursor(c: Option<String>) -> Result<Option<String>, ApiError> {
    c.map(|c| validate::uuid("cursor", &c)).transpose()
}

/// The next cursor: the last id when the page is full.
pub fn next_cursor<T>(items: &[T], limit: u64, id: impl Fn(&T) -> &str) -> Option<String> {
    if items.len() as u64 == limit {
        items.last().map(|i| id(i).to_string())
    } else {
        None
    }
}
