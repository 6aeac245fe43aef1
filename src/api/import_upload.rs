//! Import uploads: a file sent in the request body streamed through to the environment's node
//! over SSH (`POST /api/environments/{id}/import-uploads`), into the node's import directory, for
//! an import by `file://` URL. The control plane holds a few chunks at a time: the SSH window
//! holds the HTTP body back when the node writes slower. The bytes are hashed and counted on the
//! way (at most the `import_max_bytes` setting); the file is written as `.part` and renamed only
//! after every byte arrived, so a broken-off upload never becomes a usable file.
use std::time::Duration;

use futures_util::StreamExt;
use poem::{Body, Request};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use sha2::{Digest, Sha256};

use super::auth::Auth;
use super::error::ApiError;
use super::magic_login::{ssh_error, target};
use super::{state, validate, Tag};
use crate::error_response;
use crate::store::{self, resources};

pub const AUDIT_ACTION: &str = "import.upload";
/// The directory on the node (the import module reads `file://` URLs only below it).
const DIR: &str = "/var/lib/pressluft/imports";
/// The node took nothing (or the client sent nothing) for this long: the upload is aborted.
const IDLE: Duration = Duration::from_secs(120);

#[derive(Debug, Object)]
pub struct ImportUpload {
    /// `file://` URL of the uploaded file on the environment's node: give it as `archive_url`,
    /// `database_url` or `content_url` of an import into this environment.
    pub url: String,
    /// SHA-256 of the bytes received (give it as the import's checksum).
    pub sha256: String,
    pub size_bytes: i64,
    /// The node holding the file.
    pub node_id: String,
}

#[derive(ApiResponse)]
pub enum UploadCreated {
    /// Stored on the node.
    #[oai(status = 201)]
    Created(Json<ImportUpload>),
}

error_response!(UploadError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
    PayloadTooLarge = 413,
    BadGateway = 502,
});

/// `name` made safe for a file name on the node: letters, digits, `.`, `-`, `_`; 1 to 100.
fn file_name(name: Option<&str>) -> Result<String, ApiError> {
    let n = name.unwrap_or("upload").trim();
    if n.is_empty()
        || n.len() > 100
        || n.starts_with('.')
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(ApiError::invalid(
            "name",
            "name must be 1 to 100 letters, digits, '.', '-' or '_', not starting with '.'",
        ));
    }
    Ok(n.to_string())
}

/// The remote commands: write stdin to the part file; rename it once complete. The paths are
/// built from a generated id and a checked name, single-quoted.
fn commands(upload_id: &str, name: &str, sudo: bool) -> (String, String, String) {
    let part = format!("{DIR}/.upload-{upload_id}.part");
    let done = format!("{DIR}/upload-{upload_id}-{name}");
    let s = if sudo { "sudo -n " } else { "" };
    (
        format!(
            "{s}sh -c 'umask 077 && mkdir -p {DIR} && chmod 0700 {DIR} && exec cat > \"$0\"' '{part}'"
        ),
        format!("{s}mv -f -- '{part}' '{done}'"),
        done,
    )
}

pub struct ImportUploadApi;

#[OpenApi(tag = "Tag::Sites")]
impl ImportUploadApi {
    /// Upload a file for an import into this environment (an archive, a `.sql[.gz]` dump or a
    /// wp-content tarball) as the request body (`application/octet-stream`, any length up to the
    /// `import_max_bytes` setting). It is streamed to the environment's node, hashed and counted
    /// on the way; the answer names it by a `file://` URL and its SHA-256, to be given to
    /// `POST /environments/{id}/imports`. 413 over the limit (nothing is kept), 502
    /// `node_unreachable` when the node cannot take it. Audited as `import.upload`.
    #[oai(
        path = "/environments/:id/import-uploads",
        method = "post",
        operation_id = "uploadImportFile"
    )]
    async fn upload(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        /// The file's name (kept in the stored name): letters, digits, `.`, `-`, `_`.
        name: Query<Option<String>>,
        body: Binary<Body>,
    ) -> Result<UploadCreated, UploadError> {
        let st = state(req)?;
        let env_id = validate::uuid("id", &id.0)?;
        let name = file_name(name.0.as_deref())?;
        let env = resources::environment_by_id(&st.db, &env_id)
            .await
            .map_err(ApiError::from)?
            .filter(|e| e.deletion_requested_at.is_none())
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        let node = store::nodes::by_id(&st.db, &env.node_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::Conflict("the environment's node is gone".into()))?;
        let limit = store::settings::all(&st.db)
            .await
            .map_err(ApiError::from)?
            .get("import_max_bytes")
            .and_then(|m| m.parse::<u64>().ok())
            .unwrap_or(crate::runtime::DEFAULT_IMPORT_MAX_BYTES as u64);
        if let Some(n) = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if n > limit {
                return Err(ApiError::PayloadTooLarge.into());
            }
        }
        let t = target(st, &node).await?;
        let upload_id = crate::ids::new_id();
        let (write, finish, path) = commands(&upload_id, &name, node.ssh_user != "root");
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut over = false;
        let stream = body.0.into_bytes_stream().map(|chunk| {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if size > limit {
                over = true;
                return Err(std::io::Error::other("larger than import_max_bytes"));
            }
            hasher.update(&chunk);
            Ok(chunk)
        });
        let sent = crate::ssh::exec_upload(&t, &write, stream, IDLE).await;
        let outcome = match &sent {
            Ok(o) if o.exit_status == 0 && !over => crate::ssh::exec(&t, &finish, IDLE)
                .await
                .map_err(|e| ssh_error(&node, e))
                .and_then(|o| {
                    if o.exit_status == 0 {
                        Ok(())
                    } else {
                        Err(ApiError::NodeUnreachable(
                            "the node could not keep the uploaded file".into(),
                        ))
                    }
                }),
            _ => {
                // the part file of a broken-off upload goes (best effort)
                let s = if node.ssh_user != "root" {
                    "sudo -n "
                } else {
                    ""
                };
                let _ = crate::ssh::exec(
                    &t,
                    &format!("{s}rm -f -- '{DIR}/.upload-{upload_id}.part'"),
                    Duration::from_secs(10),
                )
                .await;
                Err(if over {
                    ApiError::PayloadTooLarge
                } else {
                    match sent {
                        Ok(o) => {
                            tracing::warn!(node = %node.id, status = o.exit_status, stderr = %o.stderr.trim(), "import upload: the node refused the file");
                            ApiError::NodeUnreachable(
                                "the node could not store the uploaded file".into(),
                            )
                        }
                        Err(crate::ssh::SshError::Protocol(m)) if m.starts_with("the upload") => {
                            ApiError::BadRequest("the request body broke off".into())
                        }
                        Err(e) => ssh_error(&node, e),
                    }
                })
            }
        };
        let actor = auth.principal().actor();
        let tx = st.begin().await?;
        store::audit::append(
            &tx,
            &actor,
            AUDIT_ACTION,
            "environment",
            &env.id,
            if outcome.is_ok() {
                "succeeded"
            } else {
                "failed"
            },
        )
        .await
        .map_err(ApiError::from)?;
        st.commit(tx).await?;
        outcome?;
        Ok(UploadCreated::Created(Json(ImportUpload {
            url: format!("file://{path}"),
            sha256: hex::encode(hasher.finalize()),
            size_bytes: size as i64,
            node_id: node.id,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_commands() {
        assert_eq!(file_name(None).unwrap(), "upload");
        assert_eq!(file_name(Some("site.tar.gz")).unwrap(), "site.tar.gz");
        for bad in ["", "../x", "a/b", ".hidden", "a b", "x'y", &"a".repeat(101)] {
            assert!(file_name(Some(bad)).is_err(), "{bad}");
        }
        let (w, f, p) = commands("0190aa", "db.sql.gz", false);
        assert_eq!(p, "/var/lib/pressluft/imports/upload-0190aa-db.sql.gz");
        assert!(
            w.ends_with("'/var/lib/pressluft/imports/.upload-0190aa.part'"),
            "{w}"
        );
        assert_eq!(
            f,
            "mv -f -- '/var/lib/pressluft/imports/.upload-0190aa.part' '/var/lib/pressluft/imports/upload-0190aa-db.sql.gz'"
        );
        assert!(commands("0190aa", "x", true).1.starts_with("sudo -n mv"));
    }
}
