//! Magic login: a one-time WordPress administrator login link for an environment (spec
//! `operations.md` §5.7). This is a node query (`node-runtime.md` §12), not a job: one fixed
//! command over SSH, hard 10-s timeout, no locks, the answer inline.
//!
//! The remote command is built only from ids and names Pressluft generated; every piece is still
//! checked against a strict pattern and single-quoted, so nothing a client sends reaches a shell.
//! The login URL (it carries the token) is never logged, audited or stored.
use std::time::{Duration, Instant};

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use super::auth::Auth;
use super::error::ApiError;
use super::{state, validate, AppState, Tag};
use crate::error_response;
use crate::runner::Target;
use crate::ssh::SshError;
use crate::store::entity::{environments, nodes};
use crate::store::{self, resources};

/// Hard cap of the whole SSH round trip: connect, authenticate, run, read.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of a login token, in seconds.
pub const TOKEN_TTL_SECS: i64 = 60;

/// The lifetime in use: [`TOKEN_TTL_SECS`], or `PRESSLUFT_MAGIC_LOGIN_TTL` (seconds, 10 to 3600;
/// the end-to-end tests shorten it to see a link expire without waiting a minute).
pub fn token_ttl_secs() -> i64 {
    static TTL: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *TTL.get_or_init(|| {
        std::env::var("PRESSLUFT_MAGIC_LOGIN_TTL")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|s| (10..=3600).contains(s))
            .unwrap_or(TOKEN_TTL_SECS)
    })
}
/// Where node-provision installs the PHP helper.
const HELPER: &str = "/usr/local/lib/pressluft/pressluft-helper.php";
/// The audit action of a magic login.
pub const AUDIT_ACTION: &str = "environment.magic_login";

/// A one-time login link.
#[derive(Debug, Object)]
pub struct MagicLoginResponse {
    /// One-time URL on the environment's preview host (`uri`); it signs in as the environment's
    /// WordPress administrator and is refused on a second use.
    pub login_url: String,
    /// When the link stops working (`date-time`, RFC 3339): 60 s after it was issued.
    pub expires_at: String,
}

error_response!(MagicLoginError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
    BadGateway = 502,
});

pub struct MagicLoginApi;

#[OpenApi(prefix_path = "/environments", tag = "Tag::Environments")]
impl MagicLoginApi {
    /// Create a one-time WordPress admin login link.
    ///
    /// The link signs in as the environment's WordPress administrator once, within 60 s. A
    /// synchronous node query: one command over SSH with a 10-s limit, no job, no locks.
    /// 409 `environment_not_active` unless the environment is active and Ready; 502
    /// `node_unreachable` when SSH fails or times out; 502 `wp_cli_error` when the WordPress
    /// helper fails. Audited as `environment.magic_login`.
    #[oai(
        path = "/:id/magic-login",
        method = "post",
        operation_id = "createMagicLogin"
    )]
    async fn magic_login(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
    ) -> Result<Json<MagicLoginResponse>, MagicLoginError> {
        let st = state(req)?.clone();
        let id = validate::uuid("id", &id.0)?;
        let env = resources::environment_by_id(&st.db, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        if !is_active(&env) {
            return Err(ApiError::EnvironmentNotActive.into());
        }
        let actor = auth.principal().actor();
        // The query runs to its end (and is audited) even when the client goes away meanwhile.
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let result = query(&st, &env).await;
            let outcome = if result.is_ok() {
                "succeeded"
            } else {
                "failed"
            };
            match &result {
                Ok(_) => tracing::info!(
                    environment = %env.id,
                    node = %env.node_id,
                    ms = started.elapsed().as_millis() as u64,
                    "magic login link issued"
                ),
                Err(e) => tracing::warn!(
                    environment = %env.id,
                    node = %env.node_id,
                    code = e.code(),
                    ms = started.elapsed().as_millis() as u64,
                    "magic login failed"
                ),
            }
            let audited = audit(&st, &actor, &env.id, outcome).await;
            match (result, audited) {
                (Ok(r), Ok(())) => Ok(r),
                // No link without its audit entry; the token expires unused.
                (Ok(_), Err(e)) => Err(e),
                (Err(e), Err(a)) => {
                    tracing::error!(environment = %env.id, error = %a, "audit of a failed magic login not written");
                    Err(e)
                }
                (Err(e), Ok(())) => Err(e),
            }
        });
        let r = task.await.map_err(ApiError::internal)??;
        Ok(Json(r))
    }
}

async fn audit(
    st: &AppState,
    actor: &store::audit::Actor,
    env_id: &str,
    outcome: &str,
) -> Result<(), ApiError> {
    let tx = st.begin().await?;
    store::audit::append(&tx, actor, AUDIT_ACTION, "environment", env_id, outcome).await?;
    st.commit(tx).await
}

/// `active` with `Ready=True`: the only state in which the environment's WordPress is known to be
/// installed and serving.
fn is_active(env: &environments::Model) -> bool {
    env.status == "active"
        && env.deletion_requested_at.is_none()
        && super::model::parse_conditions(&env.conditions)
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn query(st: &AppState, env: &environments::Model) -> Result<MagicLoginResponse, ApiError> {
    let node = store::nodes::by_id(&st.db, &env.node_id)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(
                format!("node {} of environment {} is gone", env.node_id, env.id).into(),
            )
        })?;
    let command = login_command(env, &node)?;
    let origin = preview_origin(&env.preview_url).ok_or_else(|| {
        ApiError::Internal(format!("environment {} has an unusable preview URL", env.id).into())
    })?;
    let target = target(st, &node).await?;
    // The token is minted on the node no earlier than this; its lifetime is counted from here, so
    // the expiry we report is never later than the real one.
    let issued = time::OffsetDateTime::now_utc();
    let out = crate::ssh::exec(&target, &command, QUERY_TIMEOUT)
        .await
        .map_err(|e| ssh_error(&node, e))?;
    let token = match parse_helper_output(out.exit_status, &out.stdout) {
        Ok(t) => t,
        Err(why) => {
            // The helper's own error text and stderr are safe to log (no token was issued when it
            // failed); stdout of a "successful" run is not logged because it may carry a token.
            tracing::warn!(
                environment = %env.id,
                exit_status = out.exit_status,
                error = %why,
                stderr = %tail(&out.stderr, 300),
                "the PHP helper did not return a login URL"
            );
            return Err(ApiError::WpCliError(
                "the WordPress helper on the node could not create a login link".into(),
            ));
        }
    };
    Ok(MagicLoginResponse {
        login_url: format!("{origin}{}?pressluft_login={}", token.path, token.token),
        expires_at: crate::clock::format(issued + time::Duration::seconds(token_ttl_secs())),
    })
}

/// SSH to the node with Pressluft's key and the pinned host key (never trust on first use here).
pub(super) async fn target(st: &AppState, node: &nodes::Model) -> Result<Target, ApiError> {
    let port = u16::try_from(node.ssh_port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::NodeUnreachable("the node's SSH port is invalid".into()))?;
    let key = crate::ssh::control_key(&st.db, &st.secrets)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(Target {
        hostname: node.hostname.clone(),
        port,
        user: node.ssh_user.clone(),
        private_key_openssh: key.private_openssh,
        host_key: node.host_key.clone(),
    })
}

/// Maps an SSH failure to `node_unreachable` with Pressluft's own words; the low-level cause
/// goes to the server log only.
pub(super) fn ssh_error(node: &nodes::Model, e: SshError) -> ApiError {
    tracing::warn!(node = %node.id, host = %node.hostname, port = node.ssh_port, error = %e, "magic login: SSH failed");
    let msg = match e {
        SshError::Timeout(_) => "the node did not answer over SSH within 10 seconds",
        SshError::Connect(_) => "the node could not be reached over SSH",
        SshError::HostKeyMismatch { .. } => {
            "the node presented an SSH host key other than the pinned one"
        }
        SshError::HostKeyNotPinned => "the node has no pinned SSH host key yet",
        SshError::AuthFailed { .. } => "the node refused Pressluft's SSH key",
        SshError::Key(_) | SshError::Protocol(_) => "SSH to the node failed",
        SshError::Store(e) => return ApiError::from(e),
    };
    ApiError::NodeUnreachable(msg.into())
}

// ------------------------------------------------------------------ the remote command ---------

/// The one remote command: the helper's `login-token` as the environment's Linux user, with the
/// PHP CLI of its pool. Every piece is validated and single-quoted.
fn login_command(env: &environments::Model, node: &nodes::Model) -> Result<String, ApiError> {
    let bad = |what: &str| {
        ApiError::Internal(
            format!(
                "environment {}: {what} does not have the expected form; refusing to build a remote command",
                env.id
            )
            .into(),
        )
    };
    if !is_uuid(&env.id) {
        return Err(bad("the environment id"));
    }
    if !is_uuid(&env.site_id) {
        return Err(bad("the site id"));
    }
    let user = linux_user(&env.id);
    if !is_linux_user(&user) {
        return Err(bad("the Linux user"));
    }
    if !is_admin_login(&env.wp_admin_login) {
        return Err(bad("the WordPress administrator login"));
    }
    let php = php_binary(env, node);
    if !is_php_binary(&php) {
        return Err(bad("the PHP binary"));
    }
    let path = format!("--path=/var/www/sites/{}/{}/current", env.site_id, env.id);
    let argv = [
        "runuser",
        "-u",
        &user,
        "--",
        &php,
        HELPER,
        &path,
        "login-token",
        "--user",
        &env.wp_admin_login,
        "--ttl",
        &token_ttl_secs().to_string(),
    ]
    .map(quote)
    .join(" ");
    // runuser needs root: a non-root SSH user (as in Ansible's `become`) goes through sudo.
    let sudo = if node.ssh_user == "root" {
        ""
    } else {
        "sudo -n "
    };
    // From `/`: the SSH user's home is not readable by the environment's user.
    Ok(format!("cd / && {sudo}{argv} </dev/null"))
}

/// `pl_` + the last 16 hex digits of the environment id (as the environment module names it).
fn linux_user(env_id: &str) -> String {
    let hex: String = env_id.chars().filter(|c| *c != '-').collect();
    let tail = &hex[hex.len().saturating_sub(16)..];
    format!("pl_{}", tail.to_ascii_lowercase())
}

/// The PHP CLI matching the environment's pool: its reported `php_version`, else the node's,
/// else plain `php`.
fn php_binary(env: &environments::Model, node: &nodes::Model) -> String {
    let observed = |s: Option<&str>| -> Value {
        s.and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null)
    };
    let env_version = observed(env.observed.as_deref())["facts"]["php_version"].clone();
    let node_version = observed(node.observed.as_deref())["php_version"].clone();
    [env_version, node_version]
        .iter()
        .filter_map(Value::as_str)
        .find(|v| is_php_version(v))
        .map(|v| format!("php{v}"))
        .unwrap_or_else(|| "php".into())
}

/// Single-quotes one shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn all_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Lower-case hyphenated UUID: `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`.
pub(super) fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && all_hex(p))
}

/// `^pl_[0-9a-f]{16}$`
fn is_linux_user(s: &str) -> bool {
    s.strip_prefix("pl_")
        .is_some_and(|h| h.len() == 16 && all_hex(h))
}

/// `^pl-admin-[0-9a-f]{8}$`
fn is_admin_login(s: &str) -> bool {
    s.strip_prefix("pl-admin-")
        .is_some_and(|h| h.len() == 8 && all_hex(h))
}

/// `^[0-9]{1,2}\.[0-9]{1,2}$`
fn is_php_version(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|p| (1..=2).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
    })
}

/// `^php([0-9]{1,2}\.[0-9]{1,2})?$`
fn is_php_binary(s: &str) -> bool {
    s.strip_prefix("php")
        .is_some_and(|v| v.is_empty() || is_php_version(v))
}

// ------------------------------------------------------------------ the answer -----------------

/// What is kept of the helper's URL: its path and the token. The origin is always the
/// environment's preview URL.
#[derive(Debug, PartialEq, Eq)]
struct LoginToken {
    path: String,
    token: String,
}

/// `scheme://host` of the preview URL (`^https?://[a-z0-9.-]+(:port)?/?$`), without a slash.
fn preview_origin(preview_url: &str) -> Option<String> {
    let (scheme, rest) = preview_url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    (host_ok && port_ok).then(|| format!("{scheme}://{authority}"))
}

/// Reads the helper's answer: exit 0 and a JSON line `{"ok": true, "url": ".../wp-login.php?
/// pressluft_login=<64 hex>"}`. The error says why not (never quoting the URL).
fn parse_helper_output(exit_status: u32, stdout: &str) -> Result<LoginToken, String> {
    let result: Option<Value> = stdout
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(Value::is_object);
    let Some(result) = result else {
        return Err(format!("no JSON result (exit status {exit_status})"));
    };
    if exit_status != 0 || result.get("ok") != Some(&Value::Bool(true)) {
        let err = result
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        return Err(format!(
            "helper failed (exit status {exit_status}): {}",
            tail(err, 300)
        ));
    }
    let url = result
        .get("url")
        .and_then(Value::as_str)
        .ok_or("the result has no url")?;
    login_token_of(url).ok_or_else(|| "the url is not a login URL with a token".to_string())
}

/// Splits `http(s)://host/path?...pressluft_login=<token>...` into a safe path and the token.
fn login_token_of(url: &str) -> Option<LoginToken> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = rest.split('#').next()?;
    let (before_query, query) = rest.split_once('?')?;
    let path = before_query.find('/').map(|i| &before_query[i..])?;
    let token = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "pressluft_login")
        .map(|(_, v)| v)?;
    if token.len() != 64 || !all_hex(token) {
        return None;
    }
    let path_ok = path.len() <= 200
        && !path.contains("..")
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~'));
    Some(LoginToken {
        path: if path_ok {
            path.to_string()
        } else {
            "/wp-login.php".into()
        },
        token: token.to_string(),
    })
}

/// The last `max` characters of a text, for logs.
fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    let n = s.chars().count();
    s.chars().skip(n.saturating_sub(max)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> environments::Model {
        environments::Model {
            id: "01950000-aaaa-7bbb-8ccc-0123456789ab".into(),
            site_id: "01950000-1111-7222-8333-444455556666".into(),
            name: "Production".into(),
            slug: "production".into(),
            environment_type: "production".into(),
            node_id: "01950000-0000-7000-8000-000000000001".into(),
            source_environment_id: None,
            promotion_preset: "content-protect".into(),
            preview_url: "http://456789ab.127-0-0-1.sslip.io".into(),
            primary_domain_id: None,
            desired_release_id: None,
            current_release_id: None,
            wp_admin_login: "pl-admin-0a1b2c3d".into(),
            drift_baseline_id: None,
            drift_status: "unknown".into(),
            drift_checked_at: None,
            last_drift_check_id: None,
            fastcgi_cache_enabled: true,
            redis_cache_enabled: false,
            fastcgi_cache_ttl_seconds: 3600,
            update_scope: None,
            update_requested_at: None,
            cache_purge_requested_at: None,
            drift_check_requested_at: None,
            reset_requested_at: None,
            generation: 1,
            observed_generation: 1,
            status: "active".into(),
            conditions: r#"[{"type":"Ready","status":"True","last_transition_at":"2026-01-01T00:00:00.000Z"}]"#.into(),
            state_version: 1,
            deletion_requested_at: None,
            reconcile_attempts: 0,
            last_error_code: None,
            observed: Some(r#"{"facts":{"php_version":"8.2"}}"#.into()),
            observed_at: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: None,
            release_generation: None,
        }
    }

    fn node(user: &str) -> nodes::Model {
        nodes::Model {
            id: "01950000-0000-7000-8000-000000000001".into(),
            name: "local".into(),
            hostname: "127.0.0.1".into(),
            public_ip: None,
            ssh_port: 22,
            ssh_user: user.into(),
            is_local: true,
            host_key: None,
            last_seen_at: None,
            provision_requested_at: None,
            generation: 1,
            observed_generation: 1,
            status: "active".into(),
            conditions: "[]".into(),
            state_version: 1,
            deletion_requested_at: None,
            reconcile_attempts: 0,
            last_error_code: None,
            observed: Some(r#"{"php_version":"8.3"}"#.into()),
            observed_at: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn command_is_fixed_and_quoted() {
        let c = login_command(&env(), &node("root")).unwrap();
        assert_eq!(
            c,
            "cd / && 'runuser' '-u' 'pl_8ccc0123456789ab' '--' 'php8.2' \
             '/usr/local/lib/pressluft/pressluft-helper.php' \
             '--path=/var/www/sites/01950000-1111-7222-8333-444455556666/01950000-aaaa-7bbb-8ccc-0123456789ab/current' \
             'login-token' '--user' 'pl-admin-0a1b2c3d' '--ttl' '60' </dev/null"
        );
        let c = login_command(&env(), &node("deploy")).unwrap();
        assert!(c.starts_with("cd / && sudo -n 'runuser' "), "{c}");
    }

    #[test]
    fn php_version_falls_back_to_the_node_then_plain_php() {
        let mut e = env();
        e.observed = None;
        assert_eq!(php_binary(&e, &node("root")), "php8.3");
        let mut n = node("root");
        n.observed = Some(r#"{"php_version":"8.3; rm -rf /"}"#.into());
        assert_eq!(php_binary(&e, &n), "php");
        e.observed = Some(r#"{"facts":{"php_version":"'8.2'"}}"#.into());
        assert_eq!(php_binary(&e, &n), "php");
        e.observed = Some(r#"{"ever_ready":true,"facts":{"php_version":"8.4"}}"#.into());
        assert_eq!(php_binary(&e, &n), "php8.4");
    }

    #[test]
    fn refuses_unexpected_names() {
        let cases: [fn(&mut environments::Model); 5] = [
            |e| e.wp_admin_login = "admin".into(),
            |e| e.wp_admin_login = "pl-admin-0a1b2c3d' ; id '".into(),
            |e| e.wp_admin_login = "pl-admin-0A1B2C3D".into(),
            |e| e.site_id = "../../etc".into(),
            |e| e.id = "01950000-aaaa-7bbb-8ccc-0123456789a'".into(),
        ];
        for f in cases {
            let mut e = env();
            f(&mut e);
            assert!(login_command(&e, &node("root")).is_err(), "{e:?}");
        }
        assert!(is_linux_user("pl_0123456789abcdef"));
        assert!(!is_linux_user("pl_0123456789abcde"));
        assert!(!is_linux_user("root"));
        assert!(is_php_binary("php") && is_php_binary("php8.2") && !is_php_binary("php8"));
    }

    #[test]
    fn reads_the_helper_answer() {
        let token = "ab".repeat(32);
        let ok = format!(
            "{{\"ok\":true,\"url\":\"http://other.example/wp-login.php?pressluft_login={token}\",\"user\":\"pl-admin-0a1b2c3d\",\"expires_at\":\"2026-01-01T00:01:00Z\",\"command\":\"login-token\"}}\n"
        );
        assert_eq!(
            parse_helper_output(0, &format!("PHP noise\n{ok}")).unwrap(),
            LoginToken {
                path: "/wp-login.php".into(),
                token: token.clone()
            }
        );
        // failure exit, ok:false, no JSON, bad token: all refused, never quoting the URL
        assert!(parse_helper_output(1, &ok).is_err());
        let e = parse_helper_output(
            1,
            "{\"ok\":false,\"error\":\"no WordPress user pl-admin-x\"}\n",
        )
        .unwrap_err();
        assert!(e.contains("no WordPress user"), "{e}");
        assert!(parse_helper_output(0, "").is_err());
        assert!(parse_helper_output(0, "{\"ok\":true}").is_err());
        let short = ok.replace(&token, "abc");
        let e = parse_helper_output(0, &short).unwrap_err();
        assert!(!e.contains("abc"), "{e}");
        // an odd path falls back to wp-login.php
        let odd = ok.replace("/wp-login.php", "/a/../x");
        assert_eq!(parse_helper_output(0, &odd).unwrap().path, "/wp-login.php");
    }

    #[test]
    fn origin_is_the_preview_url() {
        assert_eq!(
            preview_origin("http://456789ab.127-0-0-1.sslip.io").as_deref(),
            Some("http://456789ab.127-0-0-1.sslip.io")
        );
        assert_eq!(
            preview_origin("https://a.preview.example.com/").as_deref(),
            Some("https://a.preview.example.com")
        );
        assert_eq!(preview_origin("ftp://x"), None);
        assert_eq!(preview_origin("http://x/y"), None);
        assert_eq!(preview_origin("http://x:0"), None);
    }

    #[test]
    fn active_means_phase_and_ready() {
        assert!(is_active(&env()));
        let mut e = env();
        e.status = "provisioning".into();
        assert!(!is_active(&e));
        let mut e = env();
        e.conditions = "[]".into();
        assert!(!is_active(&e));
    }
}
