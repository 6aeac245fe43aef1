//! Page cache purge: a node query (one fixed command over SSH, 10-s cap, no job) that deletes
//! the cached pages of one environment — its own FastCGI cache directory, so no other site's
//! pages are touched — or only the entries of one URL. Audited.
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::auth::Auth;
use super::error::ApiError;
use super::magic_login::{is_uuid, ssh_error, target, QUERY_TIMEOUT};
use super::{state, validate, AppState, Tag};
use crate::error_response;
use crate::store::entity::environments;
use crate::store::{self, resources};

/// Where an environment's page cache lives on its node (`<dir>/<environment id>`).
const CACHE_ROOT: &str = "/var/cache/nginx/pressluft";
pub const AUDIT_ACTION: &str = "environment.cache_purge";

#[derive(Debug, Object)]
pub struct CachePurged {
    /// Cached pages deleted (0 when the cache is off or empty).
    pub purged_pages: u64,
}

error_response!(CachePurgeError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    BadGateway = 502,
});

pub struct CachePurgeApi;

#[OpenApi(prefix_path = "/environments", tag = "Tag::Environments")]
impl CachePurgeApi {
    /// Purge the environment's page cache.
    ///
    /// Deletes every cached page of this environment on its node (a node query over SSH with a
    /// 10-s limit, no job); the next request of each page is a MISS. 502 `node_unreachable`
    /// when SSH fails. Audited as `environment.cache_purge`.
    #[oai(
        path = "/:id/cache/purge",
        method = "post",
        operation_id = "purgeEnvironmentCache"
    )]
    async fn purge(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        /// Purge only this page (`http(s)://host/path?query` on one of the environment's hosts):
        /// its GET and HEAD entries.
        url: Query<Option<String>>,
    ) -> Result<Json<CachePurged>, CachePurgeError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let env = resources::environment_by_id(&st.db, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        let files = match url.0.as_deref() {
            None => None,
            Some(u) => Some(url_entries(st, &env, u).await?),
        };
        let result = purge(st, &env, files.as_deref()).await;
        let outcome = if result.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        let tx = st.begin().await?;
        store::audit::append(
            &tx,
            &auth.principal().actor(),
            AUDIT_ACTION,
            "environment",
            &env.id,
            outcome,
        )
        .await
        .map_err(ApiError::from)?;
        st.commit(tx).await?;
        Ok(Json(result?))
    }
}

/// The cache files of one URL: nginx names an entry by the MD5 of its key
/// (`$scheme$request_method$host$request_uri`) under `levels=1:2` directories.
async fn url_entries(
    st: &AppState,
    env: &environments::Model,
    url: &str,
) -> Result<Vec<String>, ApiError> {
    let bad = || ApiError::invalid("url", "url must be http(s)://host/path of this environment");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https")
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    let (host, uri) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let preview = env
        .preview_url
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let mut hosts = vec![preview];
    hosts.extend(
        resources::domains_of(&st.db, &env.id)
            .await?
            .into_iter()
            .map(|d| d.hostname),
    );
    if !hosts.iter().any(|h| h == host) {
        return Err(ApiError::invalid(
            "url",
            format!("{host} is not a host of this environment"),
        ));
    }
    Ok(cache_files(scheme, host, uri))
}

pub fn cache_files(scheme: &str, host: &str, uri: &str) -> Vec<String> {
    ["GET", "HEAD"]
        .iter()
        .map(|m| {
            let h = format!("{:x}", md5::compute(format!("{scheme}{m}{host}{uri}")));
            let n = h.len();
            format!("{}/{}/{h}", &h[n - 1..], &h[n - 3..n - 1])
        })
        .collect()
}

async fn purge(
    st: &AppState,
    env: &environments::Model,
    files: Option<&[String]>,
) -> Result<CachePurged, ApiError> {
    let node = store::nodes::by_id(&st.db, &env.node_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("node {} is gone", env.node_id).into()))?;
    let command = match files {
        None => purge_command(&env.id, node.ssh_user != "root")?,
        Some(files) => purge_files_command(&env.id, files, node.ssh_user != "root")?,
    };
    let target = target(st, &node).await?;
    let out = crate::ssh::exec(&target, &command, QUERY_TIMEOUT)
        .await
        .map_err(|e| ssh_error(&node, e))?;
    let purged_pages = out
        .stdout
        .trim()
        .parse()
        .ok()
        .filter(|_| out.exit_status == 0)
        .ok_or_else(|| {
            tracing::warn!(environment = %env.id, exit_status = out.exit_status, "cache purge: unexpected answer");
            ApiError::NodeUnreachable("the node did not complete the cache purge".into())
        })?;
    tracing::info!(environment = %env.id, purged_pages, "page cache purged");
    Ok(CachePurged { purged_pages })
}

/// The one remote command; its only variable part is the environment id, checked to be a UUID.
fn purge_command(env_id: &str, sudo: bool) -> Result<String, ApiError> {
    if !is_uuid(env_id) {
        return Err(ApiError::Internal(
            format!("refusing an environment id {env_id:?}").into(),
        ));
    }
    Ok(format!(
        "{}find '{CACHE_ROOT}/{env_id}' -type f -delete -print 2>/dev/null | wc -l",
        if sudo { "sudo -n " } else { "" }
    ))
}

/// Deletes the named entries (generated hex paths, checked) of the environment's cache.
fn purge_files_command(env_id: &str, files: &[String], sudo: bool) -> Result<String, ApiError> {
    let ok = |f: &String| f.chars().all(|c| c.is_ascii_hexdigit() || c == '/');
    if !is_uuid(env_id) || !files.iter().all(ok) {
        return Err(ApiError::Internal("refusing a generated cache path".into()));
    }
    let paths: Vec<String> = files
        .iter()
        .map(|f| format!("'{CACHE_ROOT}/{env_id}/{f}'"))
        .collect();
    Ok(format!(
        "{}find {} -maxdepth 0 -type f -delete -print 2>/dev/null | wc -l",
        if sudo { "sudo -n " } else { "" },
        paths.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_entries_are_nginx_cache_file_names() {
        // nginx: levels=1:2 → <last hex digit>/<the two before it>/<md5 of the key>
        let f = cache_files("https", "shop.example.com", "/a?b=1");
        let h = format!("{:x}", md5::compute("httpsGETshop.example.com/a?b=1"));
        assert_eq!(f[0], format!("{}/{}/{h}", &h[31..], &h[29..31]));
        assert_eq!(f.len(), 2, "GET and HEAD");
        let c = purge_files_command("01a20882-8ec1-70ec-b907-21a2ff7705a2", &f, false).unwrap();
        assert!(
            c.starts_with("find '/var/cache/nginx/pressluft/01a20882-8ec1-70ec-b907-21a2ff7705a2/")
        );
        assert!(purge_files_command(
            "01a20882-8ec1-70ec-b907-21a2ff7705a2",
            &["../x".into()],
            false
        )
        .is_err());
    }

    #[test]
    fn the_command_names_only_the_environments_directory() {
        let c = purge_command("01a20882-8ec1-70ec-b907-21a2ff7705a2", false).unwrap();
        assert_eq!(
            c,
            "find '/var/cache/nginx/pressluft/01a20882-8ec1-70ec-b907-21a2ff7705a2' -type f -delete -print 2>/dev/null | wc -l"
        );
        assert!(purge_command("01a20882-8ec1-70ec-b907-21a2ff7705a2", true)
            .unwrap()
            .starts_with("sudo -n find "));
        assert!(purge_command("x'; rm -rf /", false).is_err());
        assert!(purge_command("../../etc", false).is_err());
    }
}
