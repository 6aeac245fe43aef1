//! The private per-run directory: inventory, private key, known_hosts, extra-vars and facts file.
//!
//! Everything a run needs on disk lives in one fresh directory (mode 0700, files 0600) under the
//! runner's work dir, and the directory is removed when the guard drops: on success, failure,
//! timeout, cancellation and panic alike. The private key and the extra-vars (which carry secrets,
//! spec §8.3) therefore exist on disk only while Ansible runs, readable by Pressluft's user only.
//!
//! SSH connection sharing (ControlPersist in ansible.cfg) is kept, but the control socket lives in
//! `<work_dir>/cp/` under a name derived from host, port, user, pinned host key and private key:
//! a later run reuses a master connection only when it would have made the very same connection,
//! so a changed pin or key is never bypassed through a master opened earlier.
use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{RunnerError, Target};
use crate::secrets::write_private;

/// A run directory, removed (recursively) on drop.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    control_dir: PathBuf,
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove run directory");
            }
        }
    }
}

impl RunDir {
    /// Creates a fresh private directory below `work_dir` (itself created 0700 when missing).
    pub fn create(work_dir: &Path) -> Result<Self, RunnerError> {
        let werr = |e| RunnerError::WorkDir(work_dir.to_path_buf(), e);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(work_dir)
            .map_err(werr)?;
        std::fs::set_permissions(work_dir, std::fs::Permissions::from_mode(0o700)).map_err(werr)?;
        let control_dir = work_dir.join("cp");
        match std::fs::DirBuilder::new().mode(0o700).create(&control_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(werr(e)),
        }
        for _ in 0..16 {
            let path = work_dir.join(format!("run-{:016x}", rand::random::<u64>()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let dir = RunDir {
                        path,
                        control_dir: control_dir.clone(),
                    };
                    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o700))
                        .map_err(werr)?;
                    check_safe_path(&dir.path)?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(werr(e)),
            }
        }
        Err(werr(std::io::Error::other("no free run directory name")))
    }

    pub fn inventory(&self) -> PathBuf {
        self.path.join("inventory.ini")
    }
    pub fn key(&self) -> PathBuf {
        self.path.join("id")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.path.join("known_hosts")
    }
    pub fn vars(&self) -> PathBuf {
        self.path.join("vars.json")
    }
    pub fn facts(&self) -> PathBuf {
        self.path.join("facts.json")
    }

    /// The SSH control socket for `t` (see the module docs). Short: socket paths are limited to
    /// about 100 bytes and ssh appends a temporary suffix.
    pub fn control_path(&self, t: &Target) -> PathBuf {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [
            t.hostname.as_bytes(),
            &t.port.to_be_bytes(),
            t.user.as_bytes(),
            t.host_key.as_deref().unwrap_or("").as_bytes(),
            t.private_key_openssh.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        self.control_dir.join(hex::encode(&h.finalize()[..8]))
    }

    /// Writes the key, known_hosts, inventory and extra-vars files (all 0600).
    pub fn write_files(
        &self,
        target: &Target,
        vars: &Map<String, Value>,
    ) -> Result<(), RunnerError> {
        check_target(target)?;
        let werr = |e| RunnerError::WorkDir(self.path.clone(), e);
        let mut key = target.private_key_openssh.trim_end().to_string();
        key.push('\n'); // OpenSSH refuses a key file without its final newline
        write_private(&self.key(), key.as_bytes()).map_err(werr)?;
        let known = match &target.host_key {
            Some(k) => known_hosts_line(&target.hostname, target.port, k)?,
            None => String::new(),
        };
        write_private(&self.known_hosts(), known.as_bytes()).map_err(werr)?;
        write_private(&self.inventory(), self.inventory_text(target)?.as_bytes()).map_err(werr)?;
        let json = serde_json::to_vec(&Value::Object(vars.clone()))
            .map_err(|e| RunnerError::InvalidRequest(format!("extra-vars: {e}")))?;
        write_private(&self.vars(), &json).map_err(werr)?;
        Ok(())
    }

    /// The single-host INI inventory (spec §8.3). With a pinned host key, OpenSSH checks the
    /// server strictly against our own known_hosts file; without one (only when the caller has
    /// not pinned yet) host key checking is off and nothing is remembered.
    pub fn inventory_text(&self, t: &Target) -> Result<String, RunnerError> {
        check_target(t)?;
        let ssh_args = match t.host_key {
            Some(_) => format!(
                "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
                self.known_hosts().display()
            ),
            None => {
                "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o IdentitiesOnly=yes"
                    .to_string()
            }
        };
        // An IPv6 address cannot be an INI inventory host name (`host:port` syntax); the
        // address always travels in ansible_host, so the name is only a label there.
        let name = if t.hostname.contains(':') {
            "node"
        } else {
            &t.hostname
        };
        let mut s = String::from("[target]\n");
        let _ = writeln!(
            s,
            "{name} ansible_host={} ansible_port={} ansible_user={} ansible_ssh_private_key_file={} \
             ansible_control_path={} ansible_ssh_common_args='{ssh_args}'",
            t.hostname,
            t.port,
            t.user,
            self.key().display(),
            self.control_path(t).display(),
        );
        Ok(s)
    }
}

/// `host keytype base64` (port 22) or `[host]:port keytype base64`, as OpenSSH looks it up.
pub fn known_hosts_line(host: &str, port: u16, host_key: &str) -> Result<String, RunnerError> {
    let mut it = host_key.split_whitespace();
    let (Some(kind), Some(blob)) = (it.next(), it.next()) else {
        return Err(RunnerError::InvalidRequest(
            "pinned host key is not in OpenSSH format (\"ssh-ed25519 AAAA…\")".into(),
        ));
    };
    russh::keys::PublicKey::from_openssh(&format!("{kind} {blob}"))
        .map_err(|e| RunnerError::InvalidRequest(format!("pinned host key does not parse: {e}")))?;
    Ok(if port == 22 {
        format!("{host} {kind} {blob}\n")
    } else {
        format!("[{host}]:{port} {kind} {blob}\n")
    })
}

/// The inventory is parsed by Ansible with shell-like splitting, so values that could break out
/// of their field (spaces, quotes, `=`, newlines) are refused rather than escaped.
fn check_target(t: &Target) -> Result<(), RunnerError> {
    let host_ok = !t.hostname.is_empty()
        && !t.hostname.starts_with('-')
        && t.hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_' | '%'));
    if !host_ok {
        return Err(RunnerError::InvalidRequest(format!(
            "target hostname {:?} is not a host name or IP address",
            t.hostname
        )));
    }
    let user_ok = !t.user.is_empty()
        && !t.user.starts_with('-')
        && t.user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !user_ok {
        return Err(RunnerError::InvalidRequest(format!(
            "target user {:?} is not a valid user name",
            t.user
        )));
    }
    Ok(())
}

/// Paths end up unquoted in the inventory and in ssh arguments.
fn check_safe_path(p: &Path) -> Result<(), RunnerError> {
    let s = p.to_string_lossy();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@' | ','))
    {
        Ok(())
    } else {
        Err(RunnerError::InvalidRequest(format!(
            "run directory {s:?} contains characters that cannot appear unquoted in an Ansible \
             inventory; choose a data directory without spaces or quotes"
        )))
    }
}
