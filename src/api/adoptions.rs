//! Adoptions (issue 12, item 2): a WordPress site on a server Pressluft reaches over SSH, copied
//! into a new site. An adoption is an import whose source is the SSH location (the import's
//! pipeline: pre-import backup, staging, prefix rename, URL rewrite, health gate, rollback,
//! recorded as an `import` release); `GET /api/imports/{id}` shows it.
//!
//! `POST /adoptions` first runs the dry run (a node query: the adoption module as a script on the
//! target node, 60-s cap; the adoption key's private part on the SSH session's stdin) which pins
//! the source's host key (trust on first use, or the `host_key` the caller confirmed) and reports
//! what is there. `dry_run: true` answers that report and stores nothing; otherwise the site, its
//! production environment and the import are declared in one transaction.
use std::time::Duration;

use futures_util::StreamExt;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use reconcilers::error_code::JobErrorCode;

use super::auth::Auth;
use super::error::ApiError;
use super::imports::Import;
use super::magic_login::{ssh_error, target};
use super::text::Text;
use super::write::Write;
use super::{state, validate, AppState, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::{imports, nodes as node_rows};
use crate::store::events::NewEvent;
use crate::store::{self, adoptions::AdoptSource, imports::NewImport, nodes};

const DRY_RUN_TIMEOUT: Duration = Duration::from_secs(60);
const ANSWER_LIMIT: usize = 1 << 20;

/// The key Pressluft adopts sites with: authorize it for the source user.
#[derive(Debug, Object)]
pub struct AdoptionKey {
    /// `ssh-ed25519 AAAA… pressluft-adoption`: one line for `~/.ssh/authorized_keys` of the user
    /// that owns the WordPress files on the source.
    pub public_key: String,
    pub fingerprint: String,
}

/// An adoption's source, as `GET /imports/{id}` shows it (no secrets).
#[derive(Debug, Clone, Object)]
pub struct AdoptionSource {
    pub ssh_host: String,
    pub ssh_port: i32,
    pub ssh_user: String,
    /// The WordPress root on the source.
    pub source_path: String,
    /// The source's SSH host key pinned when the adoption was declared.
    pub host_key: Option<String>,
    pub host_key_fingerprint: Option<String>,
}

impl AdoptionSource {
    pub fn of(m: &imports::Model) -> Option<Self> {
        if m.source_type != "ssh" {
            return None;
        }
        Some(AdoptionSource {
            ssh_host: m.ssh_host.clone().unwrap_or_default(),
            ssh_port: m.ssh_port.unwrap_or(22),
            ssh_user: m.ssh_user.clone().unwrap_or_default(),
            source_path: m.source_path.clone().unwrap_or_default(),
            host_key: m.source_host_key.clone(),
            host_key_fingerprint: m
                .source_host_key
                .as_deref()
                .and_then(crate::adopt::fingerprint),
        })
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateAdoption {
    /// The new site's display name.
    pub site_name: Text,
    /// The new site's slug; default: derived from `site_name`.
    pub slug: Option<Text>,
    /// The node of the new site (the node that reaches the source); default: the local node.
    pub node_id: Option<Text>,
    /// Host name or IP address of the source server.
    pub ssh_host: Text,
    /// Default 22.
    pub ssh_port: Option<i64>,
    /// The Linux user on the source that can read the WordPress files (the adoption public key
    /// is authorized for it).
    pub ssh_user: Text,
    /// The WordPress root on the source (absolute, the directory holding wp-config.php).
    pub source_path: Text,
    /// The source's host key (`ssh-ed25519 AAAA…`) as a dry run showed it: the source must
    /// present exactly this key. Default: the key it presents now is pinned (trust on first use).
    pub host_key: Option<Text>,
    /// Only report what is at the source (nothing is stored).
    pub dry_run: Option<bool>,
}

/// What a dry run found at the source.
#[derive(Debug, Object)]
pub struct AdoptionReport {
    /// WordPress and PHP versions, plugins, mu_plugins and themes (slug, name, version),
    /// files_bytes, files_count, database_bytes, database_tables, table_prefix, multisite, home,
    /// siteurl, database_name, database_host, host_key, host_key_fingerprint.
    pub report: serde_json::Value,
    /// The source's host key: give it back as `host_key` to pin exactly this one.
    pub host_key: String,
    pub host_key_fingerprint: Option<String>,
}

/// A declared adoption: the new site and the import that copies the source into it.
#[derive(Debug, Object)]
pub struct Adoption {
    pub site_id: String,
    pub environment_id: String,
    pub import: Import,
}

#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)] // one response per request
pub enum AdoptionCreated {
    /// The dry run's report (nothing stored).
    #[oai(status = 200)]
    Report(Json<AdoptionReport>),
    /// Declared; follow `GET /imports/{import.id}`.
    #[oai(status = 202)]
    Accepted(Json<Adoption>),
}

error_response!(KeyError { Unauthorized = 401 });
error_response!(CreateError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    Conflict = 409,
    UnprocessableEntity = 422,
    BadGateway = 502,
});

/// The checked SSH location of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub path: String,
    pub host_key: Option<String>,
}

/// Checks the SSH location (400 with the field).
pub fn validate_location(b: &CreateAdoption) -> Result<Location, ApiError> {
    let host = validate::node_address("ssh_host", b.ssh_host.trim())?;
    let port = validate::port("ssh_port", b.ssh_port.unwrap_or(22))? as u16;
    let user = validate::unix_user("ssh_user", b.ssh_user.trim())?;
    let path = b.source_path.trim();
    if !crate::adopt::is_source_path(path) {
        return Err(ApiError::invalid(
            "source_path",
            "source_path must be an absolute path without .. or control characters",
        ));
    }
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    }
    .to_string();
    let host_key = match b.host_key.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(k) => {
            // a pasted line may carry a comment: only type and key are pinned
            let k = k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            if !crate::adopt::is_host_key(&k) {
                return Err(ApiError::invalid(
                    "host_key",
                    "host_key must be an OpenSSH public key line (`ssh-ed25519 AAAA…`)",
                ));
            }
            Some(k)
        }
    };
    Ok(Location {
        host,
        port,
        user,
        path,
        host_key,
    })
}

/// A slug from a display name: lower-case letters and digits, other runs as one hyphen.
fn slug_of(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s: String = s.trim_end_matches('-').chars().take(50).collect();
    s.trim_end_matches('-').to_string()
}

pub struct AdoptionsApi;

#[OpenApi(tag = "Tag::Sites")]
impl AdoptionsApi {
    /// The public key Pressluft adopts sites with. Authorize it for the source user
    /// (`~/.ssh/authorized_keys`) before an adoption; it is the same for every adoption.
    #[oai(
        path = "/adoptions/public-key",
        method = "get",
        operation_id = "getAdoptionKey"
    )]
    async fn public_key(&self, req: &Request, _auth: Auth) -> Result<Json<AdoptionKey>, KeyError> {
        let st = state(req)?;
        let key = crate::adopt::key(&st.db, &st.secrets)
            .await
            .map_err(ApiError::internal)?;
        Ok(Json(AdoptionKey {
            fingerprint: crate::adopt::fingerprint(&key.public_openssh).unwrap_or_default(),
            public_key: key.public_openssh,
        }))
    }

    /// Adopt a WordPress site from a server reachable over SSH into a new site. The source is
    /// read first (WordPress and PHP versions, plugins, themes, sizes, table prefix; its host
    /// key pinned); `dry_run: true` answers only that report. Otherwise the site, its production
    /// environment and an import with the SSH source are declared: once the environment exists,
    /// a full backup of it is taken (the rollback point), the source's database is dumped on the
    /// source and wp-content copied, and the import's pipeline runs. The source is never changed.
    /// Refusals of the source: 422 with `ADOPT_SOURCE_UNREACHABLE`, `ADOPT_NOT_WORDPRESS`,
    /// `ADOPT_DATABASE_UNREACHABLE`, `ADOPT_MULTISITE_UNSUPPORTED`, `ADOPT_HOST_KEY_MISMATCH`.
    #[oai(path = "/adoptions", method = "post", operation_id = "createAdoption")]
    async fn create(
        &self,
        req: &Request,
        auth: Auth,
        body: Json<CreateAdoption>,
    ) -> Result<AdoptionCreated, CreateError> {
        let st = state(req)?;
        let b = body.0;
        let loc = validate_location(&b)?;
        let name = validate::name("site_name", &b.site_name)?;
        let slug = match b.slug.as_deref() {
            Some(s) => validate::slug("slug", s)?,
            None => validate::slug("site_name", &slug_of(&name)).map_err(|_| {
                ApiError::invalid(
                    "slug",
                    "no slug can be derived from site_name: give one (lower-case letters, digits, hyphens)",
                )
            })?,
        };
        let node_id = b
            .node_id
            .as_deref()
            .map(|n| validate::uuid("node_id", n))
            .transpose()?;
        let node = match &node_id {
            Some(id) => nodes::by_id(&st.db, id)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| ApiError::invalid("node_id", "node_id names no node"))?,
            None => nodes::default_for_new_sites(&st.db)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| {
                    ApiError::Conflict("no node to place the site on: register a node first".into())
                })?,
        };
        let found = dry_run(st, &node, &loc).await?;
        if b.dry_run == Some(true) {
            return Ok(AdoptionCreated::Report(Json(found)));
        }
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        crate::settings::backup_storage(&tx)
            .await
            .map_err(ApiError::from)?;
        let (site, env) =
            super::sites::create_site_in(&mut w, &name, &slug, Some(&node.id)).await?;
        let m = store::imports::create(
            &tx,
            NewImport {
                environment_id: &env.id,
                archive_url: "",
                sha256: None,
                source_url: None,
                table_prefix: None,
                parts: None,
            },
        )
        .await
        .map_err(ApiError::from)?;
        let report = found.report.to_string();
        store::adoptions::set_source(
            &tx,
            &m.id,
            &AdoptSource {
                host: &loc.host,
                port: loc.port,
                user: &loc.user,
                path: &loc.path,
                host_key: &found.host_key,
                report: &report,
            },
        )
        .await
        .map_err(ApiError::from)?;
        w.event(NewEvent {
            resource_type: "import",
            resource_id: &m.id,
            site_id: Some(&site.id),
            environment_id: Some(&env.id),
            reason: "Created",
            message: format!(
                "adoption of ssh://{}@{}:{}{} requested (host key {})",
                loc.user,
                loc.host,
                loc.port,
                loc.path,
                found.host_key_fingerprint.as_deref().unwrap_or("?")
            ),
        })
        .await?;
        w.audit("adoption.create", "import", &m.id).await?;
        w.wake(Kind::Import, &m.id);
        w.wake(Kind::Environment, &env.id);
        let wakes = w.into_wakes();
        let m = store::imports::by_id(&tx, &m.id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::Internal("the adoption vanished".into()))?;
        st.commit_and_wake(tx, wakes).await?;
        Ok(AdoptionCreated::Accepted(Json(Adoption {
            site_id: site.id,
            environment_id: env.id,
            import: m.into(),
        })))
    }
}

/// The dry run on the node: the adoption module as a script (JSON on stdin, one JSON line out).
async fn dry_run(
    st: &AppState,
    node: &node_rows::Model,
    loc: &Location,
) -> Result<AdoptionReport, ApiError> {
    let key = crate::adopt::key(&st.db, &st.secrets)
        .await
        .map_err(ApiError::internal)?;
    let sudo = if node.ssh_user != "root" {
        "sudo -n "
    } else {
        ""
    };
    let command = format!(
        "{sudo}python3 -c {} report",
        shell_quote(crate::adopt::ADOPT_SCRIPT)
    );
    let input = serde_json::json!({
        "host": loc.host,
        "port": loc.port,
        "user": loc.user,
        "path": loc.path,
        "host_key": loc.host_key,
        "private_key": key.private_openssh,
    });
    let target = target(st, node).await?;
    let opts = crate::ssh::StreamOptions {
        start_timeout: Duration::from_secs(15),
        idle_timeout: DRY_RUN_TIMEOUT,
        stall_timeout: DRY_RUN_TIMEOUT,
        stdin: serde_json::to_vec(&input).unwrap_or_default(),
        redact: vec![key.private_openssh.clone()],
        label: format!("adoption dry run of {}@{}", loc.user, loc.host),
    };
    let run = async {
        let mut stream = crate::ssh::exec_stream(&target, &command, opts)
            .await
            .map_err(|e| ssh_error(node, e))?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) if out.len() + c.len() <= ANSWER_LIMIT => out.extend_from_slice(&c),
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(node = %node.id, error = %e, "adoption dry run failed on the node");
                    break;
                }
            }
        }
        Ok::<_, ApiError>(out)
    };
    let out = tokio::time::timeout(DRY_RUN_TIMEOUT, run)
        .await
        .map_err(|_| {
            ApiError::NodeUnreachable(
                "the node did not answer the dry run within 60 seconds".into(),
            )
        })??;
    let answer: serde_json::Value = String::from_utf8_lossy(&out)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            ApiError::NodeUnreachable("the node did not answer the adoption dry run".into())
        })?;
    interpret(answer)
}

/// The script's answer as a report or an error with its code.
fn interpret(answer: serde_json::Value) -> Result<AdoptionReport, ApiError> {
    if answer["ok"] != serde_json::Value::Bool(true) {
        let msg = answer["error"]
            .as_str()
            .unwrap_or("the dry run failed")
            .to_string();
        return Err(
            match answer["error_code"]
                .as_str()
                .and_then(|c| c.parse::<JobErrorCode>().ok())
            {
                Some(code) => ApiError::Source {
                    code: code.as_str(),
                    message: msg,
                },
                None => ApiError::BadRequest(msg),
            },
        );
    }
    let host_key = answer["host_key"]
        .as_str()
        .filter(|k| crate::adopt::is_host_key(k))
        .ok_or_else(|| ApiError::NodeUnreachable("the dry run pinned no host key".into()))?
        .to_string();
    Ok(AdoptionReport {
        report: answer["report"].clone(),
        host_key_fingerprint: crate::adopt::fingerprint(&host_key),
        host_key,
    })
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(host: &str, port: Option<i64>, user: &str, path: &str) -> CreateAdoption {
        CreateAdoption {
            site_name: Text("x".into()),
            slug: None,
            node_id: None,
            ssh_host: Text(host.into()),
            ssh_port: port,
            ssh_user: Text(user.into()),
            source_path: Text(path.into()),
            host_key: None,
            dry_run: None,
        }
    }

    #[test]
    fn locations_are_validated() {
        let l = validate_location(&body(
            "Old.Example.test",
            None,
            "pladopt",
            "/home/pladopt/www/",
        ))
        .unwrap();
        assert_eq!(
            (l.host.as_str(), l.port, l.user.as_str(), l.path.as_str()),
            ("old.example.test", 22, "pladopt", "/home/pladopt/www")
        );
        for (b, field) in [
            (body("-oProxyCommand=x", None, "u", "/w"), "ssh_host"),
            (body("a b", None, "u", "/w"), "ssh_host"),
            (body("h", Some(0), "u", "/w"), "ssh_port"),
            (body("h", Some(65536), "u", "/w"), "ssh_port"),
            (body("h", None, "Root", "/w"), "ssh_user"),
            (body("h", None, "-u", "/w"), "ssh_user"),
            (body("h", None, "u", "www"), "source_path"),
            (body("h", None, "u", "/home/../etc"), "source_path"),
        ] {
            let e = validate_location(&b).unwrap_err();
            assert_eq!(e.body().details.unwrap()["field"], field);
        }
        let mut b = body("::1", Some(2222), "u", "/w");
        b.host_key = Some(Text("ssh-ed25519 AAAAC3Nza comment".into()));
        assert_eq!(
            validate_location(&b).unwrap().host_key.as_deref(),
            Some("ssh-ed25519 AAAAC3Nza")
        );
        b.host_key = Some(Text("ssh-ed25519".into()));
        assert!(validate_location(&b).is_err());
    }

    #[test]
    fn slugs_and_answers() {
        assert_eq!(slug_of("My Old Blog!"), "my-old-blog");
        assert_eq!(slug_of("  --  "), "");
        let e = interpret(serde_json::json!({"ok": false, "error_code": "ADOPT_MULTISITE_UNSUPPORTED", "error": "multisite"}))
            .unwrap_err();
        assert_eq!(e.code(), "ADOPT_MULTISITE_UNSUPPORTED");
        assert_eq!(e.status().as_u16(), 422);
        let e =
            interpret(serde_json::json!({"ok": false, "error_code": "bad_request", "error": "x"}))
                .unwrap_err();
        assert_eq!(e.code(), "bad_request");
        let r = interpret(serde_json::json!({"ok": true, "report": {"table_prefix": "a_"},
            "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}))
        .unwrap();
        assert!(r.host_key_fingerprint.unwrap().starts_with("SHA256:"));
    }
}
