//! Backup download: one artifact of a completed backup, streamed from its storage target through
//! the environment's node over SSH to the HTTP client (`GET /api/backups/{id}/artifacts/{name}`).
//!
//! Nothing is held in memory beyond a few bounded buffers ([`crate::ssh::exec_stream`]): a slow
//! client slows the SSH session, which slows the remote `cat` / `rclone cat`. Local storage: `cat`
//! of the artifact under the backup's generated `storage_path` (checked, single-quoted). S3: a
//! fixed Python snippet reads the settings and credentials as one JSON line from the SSH
//! session's stdin, configures the rclone remote `pls3` through environment variables only (as
//! `pressluft_backup.py` does: no config file, `AWS_*` and other `RCLONE_*` variables removed)
//! and execs `rclone cat`; the credentials are never on a command line, in a log or an answer.
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use poem::{Body, Request};
use poem_openapi::param::Path;
use poem_openapi::payload::Binary;
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::Auth;
use super::error::ApiError;
use super::magic_login::{ssh_error, target, QUERY_TIMEOUT};
use super::{state, validate, AppState, Tag};
use crate::error_response;
use crate::ssh::{ExecStream, StreamOptions};
use crate::store::entity::backups;
use crate::store::{self, resources};
use crate::{clock, settings};

pub const AUDIT_ACTION: &str = "backup.download";
/// The artifacts a backup can have (`pressluft_backup.py`), and its manifest.
pub const ARTIFACTS: [&str; 3] = ["database.sql.zst", "files.tar.zst", "uploads.tar.zst"];
pub const MANIFEST: &str = "manifest.json";
/// manifest.json is read whole (it is checked against the backup's checksum before it is sent);
/// the node module caps it at the same size.
const MANIFEST_LIMIT: usize = 1024 * 1024;
/// The storage target sent nothing for this long: the download is aborted (rclone's own network
/// timeout is 2 min).
const IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// The HTTP client took nothing for this long: the download is aborted.
const STALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Reads `{endpoint, bucket, region, path_style, key, access_key_id, secret_access_key}` as one
/// JSON line from stdin and execs `rclone cat` on the object (single-quoted as a whole: no `'`).
const S3_CAT_SCRIPT: &str = r#"import json, os, shutil, sys
c = json.loads(sys.stdin.readline())
rclone = shutil.which("rclone")
if not rclone:
    sys.stderr.write("rclone is not installed on the node\n")
    sys.exit(127)
env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
p = "RCLONE_CONFIG_PLS3_"
env.update({"RCLONE_CONFIG": "/dev/null", p + "TYPE": "s3", p + "PROVIDER": "Other",
            p + "ENDPOINT": c["endpoint"], p + "REGION": c["region"],
            p + "ACCESS_KEY_ID": c["access_key_id"], p + "SECRET_ACCESS_KEY": c["secret_access_key"],
            p + "FORCE_PATH_STYLE": c["path_style"]})
n = os.open(os.devnull, os.O_RDONLY)
os.dup2(n, 0)
os.chdir("/")
os.execve(rclone, [rclone, "-q", "--low-level-retries", "3", "--retries", "1", "--contimeout", "10s",
                   "--timeout", "2m", "cat", "pls3:" + c["bucket"] + "/" + c["key"]], env)
"#;

#[derive(ApiResponse)]
pub enum ArtifactDownload {
    /// The artifact's bytes as stored on the backup's storage target, streamed. A failure after
    /// the headers were sent ends the body early (fewer bytes than `Content-Length`); check the
    /// SHA-256.
    #[oai(status = 200)]
    Ok(
        Binary<Body>,
        /// The artifact's size in bytes, as recorded in the backup's manifest.
        #[oai(header = "Content-Length")]
        u64,
        /// `attachment; filename="<backup id>-<name>"`.
        #[oai(header = "Content-Disposition")]
        String,
        /// The artifact's SHA-256 (hex) recorded when the backup completed (for manifest.json,
        /// the backup's `checksum`).
        #[oai(header = "X-Pressluft-SHA256")]
        String,
    ),
}

error_response!(DownloadError {
    BadRequest = 400,
    Unauthorized = 401,
    NotFound = 404,
    Conflict = 409,
    BadGateway = 502,
});

pub struct BackupDownloadApi;

#[OpenApi(tag = "Tag::Backups")]
impl BackupDownloadApi {
    /// Download one artifact of a completed backup.
    ///
    /// `name` is `database.sql.zst`, `files.tar.zst`, `uploads.tar.zst` (those in the backup's
    /// manifest) or `manifest.json`. The bytes are streamed from the storage target through the
    /// environment's node over SSH; the control plane holds none of it in memory. 400 for any
    /// other name, 404 for an artifact this backup does not have, 409 unless the backup is
    /// completed (not expired, not deleted), 502 `node_unreachable` when the node or the storage
    /// target cannot deliver it. Audited as `backup.download`.
    #[oai(
        path = "/backups/:id/artifacts/:name",
        method = "get",
        operation_id = "downloadBackupArtifact"
    )]
    async fn download(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        /// database.sql.zst, files.tar.zst, uploads.tar.zst or manifest.json.
        name: Path<String>,
    ) -> Result<ArtifactDownload, DownloadError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let name = artifact_name(&name.0)?;
        let b = resources::backup_by_id(&st.db, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("backup not found".into()))?;
        super::restores::check_restorable(&b, &clock::now())?;
        let (size, sha256) = recorded(&b, name)?;
        let actor = auth.principal().actor();
        let result = open(st, &b, name, size, sha256.clone()).await;
        let outcome = if result.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        // No byte leaves without its audit entry.
        let tx = st.begin().await?;
        store::audit::append(&tx, &actor, AUDIT_ACTION, "backup", &b.id, outcome)
            .await
            .map_err(ApiError::from)?;
        st.commit(tx).await?;
        let (body, size) = result?;
        Ok(ArtifactDownload::Ok(
            Binary(body),
            size,
            format!("attachment; filename=\"{}-{name}\"", b.id),
            sha256,
        ))
    }
}

/// One of the fixed names, else 400.
fn artifact_name(name: &str) -> Result<&'static str, ApiError> {
    ARTIFACTS
        .iter()
        .chain([&MANIFEST])
        .find(|a| **a == name)
        .copied()
        .ok_or_else(|| {
            ApiError::invalid(
                "name",
                "name must be database.sql.zst, files.tar.zst, uploads.tar.zst or manifest.json",
            )
        })
}

/// Size (None for manifest.json: read whole and checked) and SHA-256 recorded for `name`; 404
/// when the backup's manifest does not list it.
fn recorded(b: &backups::Model, name: &str) -> Result<(Option<u64>, String), ApiError> {
    let corrupt =
        || ApiError::Internal(format!("backup {} has no usable recorded manifest", b.id).into());
    if name == MANIFEST {
        let sum = b
            .checksum
            .clone()
            .filter(|s| is_sha256(s))
            .ok_or_else(corrupt)?;
        return Ok((None, sum));
    }
    let manifest: Value = b
        .manifest
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .ok_or_else(corrupt)?;
    let arts = manifest["artifacts"].as_array().ok_or_else(corrupt)?;
    let a = arts
        .iter()
        .find(|a| a["name"] == name)
        .ok_or_else(|| ApiError::NotFound(format!("backup {} has no artifact {name}", b.id)))?;
    match (a["size"].as_u64(), a["sha256"].as_str()) {
        (Some(size), Some(sum)) if is_sha256(sum) => Ok((Some(size), sum.to_string())),
        _ => Err(corrupt()),
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Starts the stream and waits for its first chunk, so that a failure to read the artifact at
/// all is an error answer rather than an empty body. Returns the body and its length.
async fn open(
    st: &AppState,
    b: &backups::Model,
    name: &'static str,
    size: Option<u64>,
    sha256: String,
) -> Result<(Body, u64), ApiError> {
    let env = resources::environment_by_id(&st.db, &b.environment_id)
        .await?
        .ok_or_else(|| ApiError::Conflict("the backup's environment is gone".into()))?;
    let node = store::nodes::by_id(&st.db, &env.node_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("node {} is gone", env.node_id).into()))?;
    let label = format!("backup {} {name}", b.id);
    let (command, stdin, redact) = match b.storage_type.as_str() {
        "local" => (
            local_command(&b.storage_path, name, node.ssh_user != "root")?,
            Vec::new(),
            Vec::new(),
        ),
        "s3" => {
            let (stdin, redact) = s3_request(st, &b.storage_path, name).await?;
            (s3_command(), stdin, redact)
        }
        other => {
            return Err(ApiError::Internal(
                format!("backup {} has storage type {other:?}", b.id).into(),
            ))
        }
    };
    let target = target(st, &node).await?;
    let opts = StreamOptions {
        start_timeout: QUERY_TIMEOUT,
        idle_timeout: IDLE_TIMEOUT,
        stall_timeout: STALL_TIMEOUT,
        stdin,
        redact,
        label,
    };
    let mut stream = crate::ssh::exec_stream(&target, &command, opts)
        .await
        .map_err(|e| ssh_error(&node, e))?;
    let unreadable = || {
        ApiError::NodeUnreachable(format!(
            "{name} of backup {} could not be read from its {} storage",
            b.id, b.storage_type
        ))
    };
    let Some(expected) = size else {
        // manifest.json: small; read whole and checked before anything is sent.
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| unreadable())?;
            if buf.len() + chunk.len() > MANIFEST_LIMIT {
                tracing::warn!(backup = %b.id, "manifest.json on the storage target is over 1 MiB");
                return Err(unreadable());
            }
            buf.extend_from_slice(&chunk);
        }
        if hex::encode(Sha256::digest(&buf)) != sha256 {
            tracing::warn!(backup = %b.id, "manifest.json on the storage target does not match the recorded checksum");
            return Err(ApiError::NodeUnreachable(format!(
                "manifest.json of backup {} on the storage target does not match its recorded checksum",
                b.id
            )));
        }
        let n = buf.len() as u64;
        return Ok((Body::from(buf), n));
    };
    let first = match stream.next().await {
        Some(Ok(chunk)) => Some(chunk),
        Some(Err(_)) => return Err(unreadable()),
        None if expected == 0 => None,
        None => {
            tracing::warn!(backup = %b.id, artifact = name, expected, "the storage target returned no bytes");
            return Err(unreadable());
        }
    };
    let checked = Checked {
        inner: stream,
        first,
        expected_size: expected,
        expected_sha: sha256,
        seen: 0,
        sha: Sha256::new(),
        backup_id: b.id.clone(),
        name,
        done: false,
    };
    Ok((Body::from_bytes_stream(checked), expected))
}

/// The body: passes the chunks on, counting and hashing them. More bytes than recorded, or fewer
/// when the stream ends, is an error (the client sees a short body); a digest that differs from
/// the manifest's is logged (the client checks it against `X-Pressluft-SHA256`).
struct Checked {
    inner: ExecStream,
    first: Option<Bytes>,
    expected_size: u64,
    expected_sha: String,
    seen: u64,
    sha: Sha256,
    backup_id: String,
    name: &'static str,
    done: bool,
}

impl Checked {
    fn pass(&mut self, chunk: Bytes) -> Option<std::io::Result<Bytes>> {
        self.seen += chunk.len() as u64;
        if self.seen > self.expected_size {
            self.done = true;
            tracing::warn!(backup = %self.backup_id, artifact = self.name, expected = self.expected_size, "the storage target sent more bytes than the manifest records; download cut");
            return Some(Err(std::io::Error::other(
                "more bytes than the manifest records",
            )));
        }
        self.sha.update(&chunk);
        Some(Ok(chunk))
    }

    fn finish(&mut self) -> Option<std::io::Result<Bytes>> {
        self.done = true;
        if self.seen != self.expected_size {
            tracing::warn!(backup = %self.backup_id, artifact = self.name, sent = self.seen, expected = self.expected_size, "download ended short");
            return Some(Err(std::io::Error::other(
                "fewer bytes than the manifest records",
            )));
        }
        let digest = hex::encode(std::mem::take(&mut self.sha).finalize());
        if digest == self.expected_sha {
            tracing::info!(backup = %self.backup_id, artifact = self.name, bytes = self.seen, "backup artifact downloaded");
        } else {
            tracing::warn!(backup = %self.backup_id, artifact = self.name, "downloaded artifact does not match the SHA-256 of the manifest (the stored object changed)");
        }
        None
    }
}

impl Stream for Checked {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(chunk) = self.first.take() {
            return Poll::Ready(self.pass(chunk));
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(self.pass(chunk)),
            Poll::Ready(Some(Err(e))) => {
                // already logged by the SSH stream, with the remote stderr
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(self.finish()),
        }
    }
}

// ------------------------------------------------------------------ the remote commands --------

/// An absolute directory of generated or validated names: `/a/b/c`, each part of
/// `[A-Za-z0-9._-]`, none `.` or `..`.
fn is_local_dir(p: &str) -> bool {
    p.len() <= 4096
        && p.strip_prefix('/').is_some_and(|rest| {
            rest.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            })
        })
}

/// `cat` of the artifact (the backup directory is root-only: sudo for another SSH user).
fn local_command(storage_path: &str, name: &'static str, sudo: bool) -> Result<String, ApiError> {
    if !is_local_dir(storage_path) {
        return Err(ApiError::Internal(
            format!("refusing a local backup path {storage_path:?}").into(),
        ));
    }
    Ok(format!(
        "{}cat -- '{storage_path}/{name}'",
        if sudo { "sudo -n " } else { "" }
    ))
}

/// The fixed remote command of an S3 download (everything variable comes on stdin).
fn s3_command() -> String {
    debug_assert!(!S3_CAT_SCRIPT.contains('\''));
    format!("python3 -c '{S3_CAT_SCRIPT}'")
}

/// A key prefix like the node module accepts: non-empty parts, none `.` or `..`, no control
/// characters.
fn is_s3_prefix(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 1024
        && !p.chars().any(char::is_control)
        && p.split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// The stdin line of the S3 command (it carries the credentials) and the strings to redact.
async fn s3_request(
    st: &AppState,
    storage_path: &str,
    name: &str,
) -> Result<(Vec<u8>, Vec<String>), ApiError> {
    let prefix = storage_path.trim_matches('/');
    if !is_s3_prefix(prefix) {
        return Err(ApiError::Internal(
            format!("refusing an S3 key prefix {storage_path:?}").into(),
        ));
    }
    let all = store::settings::all(&st.db).await?;
    let get = |k: &str| all.get(k).cloned().unwrap_or_default();
    let secret = store::secrets::get(
        &st.db,
        &st.secrets,
        &settings::secret_id("backup_s3_secret_access_key"),
    )
    .await?
    .unwrap_or_default();
    let (endpoint, bucket, key_id) = (
        get("backup_s3_endpoint"),
        get("backup_s3_bucket"),
        get("backup_s3_access_key_id"),
    );
    if endpoint.is_empty() || bucket.is_empty() || key_id.is_empty() || secret.is_empty() {
        return Err(ApiError::Conflict(
            "the S3 backup storage settings are incomplete".into(),
        ));
    }
    let region = Some(get("backup_s3_region"))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".into());
    let path_style = if get("backup_s3_force_path_style") == "true" {
        "true"
    } else {
        "false"
    };
    let line = json!({
        "endpoint": endpoint,
        "bucket": bucket,
        "region": region,
        "path_style": path_style,
        "key": format!("{prefix}/{name}"),
        "access_key_id": key_id,
        "secret_access_key": secret,
    });
    let mut stdin = line.to_string().into_bytes();
    stdin.push(b'\n');
    Ok((stdin, vec![secret, key_id]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_fixed_ones() {
        for n in [
            "database.sql.zst",
            "files.tar.zst",
            "uploads.tar.zst",
            "manifest.json",
        ] {
            assert_eq!(artifact_name(n).unwrap(), n);
        }
        for n in [
            "",
            "../manifest.json",
            "x",
            "manifest.json ",
            "DATABASE.SQL.ZST",
        ] {
            assert!(artifact_name(n).is_err(), "{n:?}");
        }
    }

    #[test]
    fn local_command_quotes_a_checked_path() {
        let p = "/var/backups/pressluft/0190a5d1-0000-7000-8000-000000000001/0190a5d1-0000-7000-8000-000000000002/0190a5d1-0000-7000-8000-000000000003";
        assert_eq!(
            local_command(p, "database.sql.zst", false).unwrap(),
            format!("cat -- '{p}/database.sql.zst'")
        );
        assert!(local_command(p, "files.tar.zst", true)
            .unwrap()
            .starts_with("sudo -n cat -- '/var/backups/"));
        for bad in [
            "relative/path",
            "/a/../etc",
            "/a//b",
            "/a/b'; rm -rf /",
            "/a/$(id)",
            "/",
            "/a/./b",
        ] {
            assert!(
                local_command(bad, "database.sql.zst", false).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_s3_command_is_fixed_and_carries_no_secret() {
        let c = s3_command();
        assert!(c.starts_with("python3 -c '") && c.ends_with('\''));
        assert_eq!(c.matches('\'').count(), 2, "the script is one quoted word");
        assert!(!c.contains("secret_access_key\": \""));
        assert!(is_s3_prefix("e2e-1/site/env/backup"));
        for bad in ["", "a//b", "a/../b", "a/./b", "a/\nb"] {
            assert!(!is_s3_prefix(bad), "{bad:?}");
        }
    }

    /// The S3 snippet is valid Python that reads its request from stdin and execs rclone with the
    /// credentials in the environment only: run it against a fake `rclone` that prints its argv
    /// and the variables it got.
    #[test]
    fn the_s3_snippet_configures_rclone_through_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("rclone");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"ARGS $*\"\nenv | grep -E '^(RCLONE_|AWS_)' | sort\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let line = json!({
            "endpoint": "http://127.0.0.1:9000", "bucket": "b", "region": "us-east-1",
            "path_style": "true", "key": "p/x/database.sql.zst",
            "access_key_id": "AKID", "secret_access_key": "s3cr3t",
        })
        .to_string()
            + "\n";
        let mut child = std::process::Command::new("python3")
            .args(["-c", S3_CAT_SCRIPT])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .env("AWS_SECRET_ACCESS_KEY", "leaked")
            .env("RCLONE_CONFIG_OTHER_TYPE", "local")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let out = String::from_utf8(out.stdout).unwrap();
        assert!(out.contains("ARGS -q --low-level-retries 3"), "{out}");
        assert!(out.contains(" cat pls3:b/p/x/database.sql.zst\n"), "{out}");
        assert!(
            !out.lines().next().unwrap().contains("s3cr3t"),
            "secret in argv"
        );
        assert!(out.contains("RCLONE_CONFIG_PLS3_SECRET_ACCESS_KEY=s3cr3t"));
        assert!(out.contains("RCLONE_CONFIG_PLS3_ACCESS_KEY_ID=AKID"));
        assert!(out.contains("RCLONE_CONFIG_PLS3_FORCE_PATH_STYLE=true"));
        assert!(out.contains("RCLONE_CONFIG=/dev/null"));
        assert!(!out.contains("AWS_") && !out.contains("OTHER"), "{out}");
    }
}
