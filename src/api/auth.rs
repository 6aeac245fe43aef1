//! Authentication: session cookies for the dashboard, bearer tokens for the CLI and automation,
//! login throttling, and the tokens API.
use poem::Request;
use poem_openapi::auth::{ApiKey, Bearer};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};
use time::Duration;

use super::error::ApiError;
use super::model::ApiToken;
use super::text::Text;
use super::{validate, AppState, Tag};
use crate::error_response;
use crate::store::{self, audit::Actor};
use crate::{clock, ids, password};

pub const SESSION_COOKIE: &str = "session_token";
const SESSION_TTL: Duration = Duration::hours(24);
/// Failed logins inside this window count towards throttling.
const THROTTLE_WINDOW: Duration = Duration::minutes(15);
const MAX_FAILURES_PER_ACCOUNT: u64 = 5;
const MAX_FAILURES_PER_ADDRESS: u64 = 20;

/// Who is calling. Every protected operation takes one.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub api_token_id: Option<String>,
    pub session_id: Option<String>,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.user_id.clone()),
            api_token_id: self.api_token_id.clone(),
        }
    }
}

/// An API token: `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct BearerAuth(Principal);

/// The dashboard's session cookie.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "session_token",
    key_in = "cookie",
    checker = "check_cookie"
)]
pub struct CookieAuth(Principal);

/// A request is authenticated by its bearer token when it has an `Authorization` header (cookies
/// are then ignored), else by its session cookie.
#[derive(SecurityScheme)]
pub enum Auth {
    Bearer(BearerAuth),
    Cookie(CookieAuth),
}

impl Auth {
    pub fn principal(&self) -> &Principal {
        match self {
            Auth::Bearer(BearerAuth(p)) | Auth::Cookie(CookieAuth(p)) => p,
        }
    }
}

fn state(req: &Request) -> poem::Result<&AppState> {
    req.data::<AppState>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()).into())
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let st = state(req)?;
    let hash = ids::sha256_hex(&bearer.token);
    if let Some(p) = st.credentials.get(&hash) {
        return Ok(p);
    }
    let token = store::auth::live_token(&st.db, &hash)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::Unauthorized)?;
    // last_used_at is advisory: refresh it at most once a minute so reads stay reads.
    let stale = token
        .last_used_at
        .as_deref()
        .is_none_or(|t| t < clock::from_now(-Duration::minutes(1)).as_str());
    if stale {
        store::auth::touch_token(&st.db, &token.id)
            .await
            .map_err(ApiError::from)?;
    }
    let principal = Principal {
        user_id: token.user_id,
        api_token_id: Some(token.id),
        session_id: None,
    };
    st.credentials.put(hash, principal.clone(), None);
    Ok(principal)
}

async fn check_cookie(req: &Request, key: ApiKey) -> poem::Result<Principal> {
    if req
        .headers()
        .contains_key(poem::http::header::AUTHORIZATION)
    {
        return Err(ApiError::Unauthorized.into());
    }
    let st = state(req)?;
    let hash = ids::sha256_hex(&key.key);
    if let Some(p) = st.credentials.get(&hash) {
        return Ok(p);
    }
    let session = store::auth::live_session(&st.db, &hash)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::Unauthorized)?;
    let expires_in = clock::parse(&session.expires_at)
        .map(|t| (t - time::OffsetDateTime::now_utc()).unsigned_abs())
        .unwrap_or_default();
    let principal = Principal {
        user_id: session.user_id,
        api_token_id: None,
        session_id: Some(session.id),
    };
    st.credentials
        .put(hash, principal.clone(), Some(expires_in));
    Ok(principal)
}

impl From<ApiError> for poem::Error {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let body = e.body();
        poem::Error::from_response(
            poem::Response::builder()
                .status(status)
                .content_type("application/json")
                .body(serde_json::to_vec(&body).unwrap_or_default()),
        )
    }
}

/// The client's address; behind the node's own nginx (loopback) the forwarded address counts.
pub fn client_ip(req: &Request) -> String {
    let remote = req
        .remote_addr()
        .as_socket_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    if remote.is_loopback() {
        if let Some(fwd) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
        {
            let fwd = fwd.trim();
            if fwd.parse::<std::net::IpAddr>().is_ok() {
                return fwd.to_string();
            }
        }
    }
    remote.to_string()
}

/// HTTPS as the browser sees it: behind the node's own nginx (a loopback peer) its
/// `X-Forwarded-Proto` counts; from anyone else the header is ignored.
fn served_over_tls(req: &Request) -> bool {
    let from_loopback = req
        .remote_addr()
        .as_socket_addr()
        .is_some_and(|a| a.ip().is_loopback());
    req.uri().scheme_str() == Some("https")
        || (from_loopback
            && req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https")))
}

fn session_cookie(value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: Text,
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub password: Text,
}

#[derive(Debug, Object)]
pub struct SuccessResponse {
    pub success: bool,
}

#[derive(ApiResponse)]
pub enum LoginOk {
    /// Logged in; the session cookie is set.
    #[oai(status = 200)]
    Ok(Json<SuccessResponse>, #[oai(header = "Set-Cookie")] String),
}

error_response!(LoginError {
    BadRequest = 400,
    Unauthorized = 401,
    TooManyAttempts = 429,
});

#[derive(ApiResponse)]
pub enum LogoutOk {
    /// Logged out; the session is revoked and the cookie cleared.
    #[oai(status = 200)]
    Ok(Json<SuccessResponse>, #[oai(header = "Set-Cookie")] String),
}

error_response!(AuthOnlyError {
    Unauthorized = 401,
    Forbidden = 403,
});

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// The operator's label for the token.
    pub name: Text,
}

/// The token itself appears only in this answer.
#[derive(Debug, Object)]
pub struct ApiTokenCreated {
    pub id: String,
    pub name: String,
    pub token: String,
    pub created_at: String,
}

error_response!(TokenCreateError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
});

error_response!(TokenRevokeError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
});

pub struct AuthApi;

#[OpenApi(tag = "Tag::Auth")]
impl AuthApi {
    /// Log in with e-mail and password; sets the `session_token` cookie (24 h).
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(&self, req: &Request, body: Json<LoginRequest>) -> Result<LoginOk, LoginError> {
        let st = state(req).map_err(|_| ApiError::Internal("state".into()))?;
        let ip = client_ip(req);
        let email = body.0.email.trim().to_ascii_lowercase();
        if email.is_empty() || email.len() > 254 {
            return Err(ApiError::invalid("email", "email must be an e-mail address").into());
        }
        let since = clock::from_now(-THROTTLE_WINDOW);
        let (by_account, by_address) = store::auth::recent_failures(&st.db, &email, &ip, &since)
            .await
            .map_err(ApiError::from)?;
        if by_account >= MAX_FAILURES_PER_ACCOUNT || by_address >= MAX_FAILURES_PER_ADDRESS {
            tracing::warn!(client = %ip, "login throttled");
            return Err(ApiError::TooManyAttempts.into());
        }
        let user = store::auth::user_by_email(&st.db, &email)
            .await
            .map_err(ApiError::from)?;
        let verified = match &user {
            Some(u) if u.is_active => password::verify(&body.0.password, &u.password_hash).await,
            // Spend the same time on unknown accounts so timing does not reveal which exist.
            _ => {
                password::burn(&body.0.password).await;
                false
            }
        };
        let Some(user) = user.filter(|_| verified) else {
            store::auth::record_login_attempt(&st.db, &email, &ip, false)
                .await
                .map_err(ApiError::from)?;
            let actor = Actor::default();
            let _ = store::audit::append(&st.db, &actor, "login", "user", &email, "denied").await;
            return Err(ApiError::Unauthorized.into());
        };
        let token = ids::random_token(32);
        let session = store::auth::create_session(
            &st.db,
            &user.id,
            &token,
            clock::from_now(SESSION_TTL),
            Some(ip),
        )
        .await
        .map_err(ApiError::from)?;
        store::auth::clear_failures(&st.db, &email)
            .await
            .map_err(ApiError::from)?;
        let actor = Actor {
            user_id: Some(user.id.clone()),
            api_token_id: None,
        };
        store::audit::append(&st.db, &actor, "login", "session", &session.id, "succeeded")
            .await
            .map_err(ApiError::from)?;
        Ok(LoginOk::Ok(
            Json(SuccessResponse { success: true }),
            session_cookie(&token, SESSION_TTL.whole_seconds(), served_over_tls(req)),
        ))
    }

    /// Revoke the current session and clear its cookie.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, req: &Request, auth: Auth) -> Result<LogoutOk, AuthOnlyError> {
        let st = state(req).map_err(|_| ApiError::Internal("state".into()))?;
        let p = auth.principal();
        if let Some(sid) = &p.session_id {
            store::auth::revoke_session(&st.db, sid)
                .await
                .map_err(ApiError::from)?;
            st.credentials.evict_session(sid);
            store::audit::append(&st.db, &p.actor(), "logout", "session", sid, "succeeded")
                .await
                .map_err(ApiError::from)?;
        }
        Ok(LogoutOk::Ok(
            Json(SuccessResponse { success: true }),
            session_cookie("", 0, served_over_tls(req)),
        ))
    }

    /// Create an API token. The token is shown once, in this answer; only its hash is stored.
    #[oai(path = "/tokens", method = "post", operation_id = "createToken")]
    async fn create_token(
        &self,
        req: &Request,
        auth: Auth,
        body: Json<NewTokenRequest>,
    ) -> Result<Json<ApiTokenCreated>, TokenCreateError> {
        let st = state(req).map_err(|_| ApiError::Internal("state".into()))?;
        let name = validate::name("name", &body.0.name)?;
        let p = auth.principal();
        let token = format!("plt_{}", ids::random_token(32));
        let tx = st.begin().await?;
        let row = store::auth::create_token(&tx, &p.user_id, &name, &token)
            .await
            .map_err(ApiError::from)?;
        store::audit::append(
            &tx,
            &p.actor(),
            "token.create",
            "api_token",
            &row.id,
            "succeeded",
        )
        .await
        .map_err(ApiError::from)?;
        st.commit(tx).await?;
        Ok(Json(ApiTokenCreated {
            id: row.id,
            name: row.name,
            token,
            created_at: row.created_at,
        }))
    }

    /// List API tokens (never the tokens themselves).
    #[oai(path = "/tokens", method = "get", operation_id = "listTokens")]
    async fn list_tokens(
        &self,
        req: &Request,
        auth: Auth,
    ) -> Result<Json<Vec<ApiToken>>, AuthOnlyError> {
        let st = state(req).map_err(|_| ApiError::Internal("state".into()))?;
        let rows = store::auth::list_tokens(&st.db, &auth.principal().user_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(rows.into_iter().map(Into::into).collect()))
    }

    /// Revoke an API token (revoking twice is a no-op).
    #[oai(path = "/tokens/:id", method = "delete", operation_id = "revokeToken")]
    async fn revoke_token(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
    ) -> Result<Json<ApiToken>, TokenRevokeError> {
        let st = state(req).map_err(|_| ApiError::Internal("state".into()))?;
        let id = validate::uuid("id", &id.0)?;
        let p = auth.principal();
        let tx = st.begin().await?;
        let row = store::auth::token_by_id(&tx, &id)
            .await
            .map_err(ApiError::from)?
            .filter(|t| t.user_id == p.user_id)
            .ok_or_else(|| ApiError::NotFound("API token not found".into()))?;
        if row.revoked_at.is_none() {
            store::auth::revoke_token(&tx, &id)
                .await
                .map_err(ApiError::from)?;
            store::audit::append(
                &tx,
                &p.actor(),
                "token.revoke",
                "api_token",
                &id,
                "succeeded",
            )
            .await
            .map_err(ApiError::from)?;
        }
        let row = store::auth::token_by_id(&tx, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("API token not found".into()))?;
        st.commit(tx).await?;
        st.credentials.evict_token(&id);
        Ok(Json(row.into()))
    }
}
