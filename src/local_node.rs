//! Making the control plane's own host usable as a node, at every start.
//!
//! The local node is reached over SSH to localhost exactly like a remote node (spec §1), so the
//! one start command has to make that path work: Pressluft's key must exist and be authorized
//! for root, sshd must answer, the host key must be pinned, and ansible-playbook must exist.
//! Each step is idempotent and cheap when already done. Nothing here stops the server from
//! starting: what cannot be fixed becomes an operator-facing line in [`LocalNodeReport::problems`]
//! (the node then shows up as unreachable instead of the process refusing to start).
use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::ConnectionTrait;

use crate::runner::Target;
use crate::secrets::SecretBox;
use crate::ssh;
use crate::store;

/// Overrides the ansible-playbook executable (skips the managed virtualenv).
pub const ANSIBLE_PLAYBOOK_ENV: &str = "PRESSLUFT_ANSIBLE_PLAYBOOK";
const VENV_DIR: &str = "ansible-venv";
const VENV_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const SSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalNodeReport {
    /// The ansible-playbook to run playbooks with; `None` when there is none (see problems).
    pub ansible_playbook: Option<PathBuf>,
    /// What is not working, phrased for the operator, with the fix when there is one.
    pub problems: Vec<String>,
}

/// Prepares the local node (see the module docs). Never fails; problems are returned for the
/// caller to log or show, not logged here.
pub async fn prepare(
    db: &impl ConnectionTrait,
    sb: &SecretBox,
    data_dir: &Path,
    repo_dir: &Path,
) -> LocalNodeReport {
    prepare_in(db, sb, data_dir, repo_dir, Path::new("/root")).await
}

/// [`prepare`] with root's home directory given (tests use a temporary one).
async fn prepare_in(
    db: &impl ConnectionTrait,
    sb: &SecretBox,
    data_dir: &Path,
    repo_dir: &Path,
    root_home: &Path,
) -> LocalNodeReport {
    let mut report = LocalNodeReport::default();
    prepare_ssh(db, sb, root_home, &mut report.problems).await;
    report.ansible_playbook = ensure_ansible(data_dir, repo_dir, &mut report.problems).await;
    report
}

async fn prepare_ssh(
    db: &impl ConnectionTrait,
    sb: &SecretBox,
    root_home: &Path,
    problems: &mut Vec<String>,
) {
    let key = match ssh::control_key(db, sb).await {
        Ok(k) => k,
        Err(e) => {
            problems.push(format!("cannot create or read Pressluft's SSH key: {e}"));
            return;
        }
    };

    // SAFETY: geteuid has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let authorized_keys = root_home.join(".ssh/authorized_keys");
    if is_root {
        match ssh::authorize_locally(&key.public_openssh, root_home) {
            Ok(true) => {
                tracing::info!(file = %authorized_keys.display(), "authorized Pressluft's SSH key for the local node")
            }
            Ok(false) => {}
            Err(e) => problems.push(format!(
                "cannot add Pressluft's SSH key to {}: {e}",
                authorized_keys.display()
            )),
        }
    } else {
        problems.push(format!(
            "not running as root: cannot authorize the SSH key for the local node; add this line \
             to {} yourself: {}",
            authorized_keys.display(),
            key.public_openssh
        ));
    }

    let node = match store::nodes::local(db).await {
        Ok(n) => n,
        Err(e) => {
            problems.push(format!("cannot read the local node: {e}"));
            return;
        }
    };
    let (host, port) = node
        .as_ref()
        .map(|n| (n.hostname.clone(), u16::try_from(n.ssh_port).unwrap_or(22)))
        .unwrap_or_else(|| ("127.0.0.1".to_string(), 22));

    if !ensure_sshd(&host, port, is_root).await {
        problems.push(format!(
            "sshd is not answering on {host}:{port}: install openssh-server \
             (scripts/install-prereqs.sh) and start it"
        ));
        return;
    }
    let Some(node) = node else {
        return; // no local node registered: nothing to pin or probe
    };

    let host_key = match node.host_key.as_deref().filter(|k| !k.trim().is_empty()) {
        Some(k) => k.to_string(),
        None => match ssh::fetch_host_key(&host, port, SSH_TIMEOUT).await {
            Ok(k) => {
                if let Err(e) = store::nodes::set_host_key(db, &node.id, &k).await {
                    problems.push(format!("cannot store the local node's host key: {e}"));
                    return;
                }
                tracing::info!(node = %node.id, host_key = %k, "pinned the local node's SSH host key");
                k
            }
            Err(e) => {
                problems.push(format!(
                    "cannot read the SSH host key of the local node at {host}:{port}: {e}"
                ));
                return;
            }
        },
    };

    // One login proves the whole path (key authorized, host key still the pinned one).
    let target = Target {
        hostname: host.clone(),
        port,
        user: node.ssh_user.clone(),
        private_key_openssh: key.private_openssh.clone(),
        host_key: Some(host_key),
    };
    match ssh::exec(&target, "true", SSH_TIMEOUT).await {
        Ok(out) if out.exit_status == 0 => {
            tracing::debug!(node = %node.id, "SSH login to the local node works")
        }
        Ok(out) => problems.push(format!(
            "SSH login as {}@{host}:{port} works, but `true` exited {}",
            node.ssh_user, out.exit_status
        )),
        Err(e @ ssh::SshError::HostKeyMismatch { .. }) => problems.push(format!(
            "the local node's SSH host key changed ({e}); if the host keys were regenerated on \
             purpose, clear the node's pinned host key"
        )),
        Err(e) => problems.push(format!(
            "SSH login as {}@{host}:{port} with Pressluft's key failed: {e}",
            node.ssh_user
        )),
    }
}

/// True when sshd answers; as root, tries `service ssh start` once when it does not.
async fn ensure_sshd(host: &str, port: u16, is_root: bool) -> bool {
    let answers = || ssh::port_open(host, port, Duration::from_secs(2));
    if answers().await {
        return true;
    }
    let Some(service) = find_in_path("service") else {
        return false;
    };
    if !is_root {
        return false;
    }
    tracing::info!("sshd is not answering; trying `service ssh start`");
    let started = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(service)
            .args(["ssh", "start"])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match started {
        Ok(Ok(out)) if out.status.success() => {}
        Ok(Ok(out)) => {
            tracing::warn!(status = %out.status, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "`service ssh start` failed")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot run `service ssh start`"),
        Err(_) => tracing::warn!("`service ssh start` did not finish within 30 s"),
    }
    for _ in 0..10 {
        if answers().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `$PRESSLUFT_ANSIBLE_PLAYBOOK`, else `<data>/ansible-venv/bin/ansible-playbook`, creating the
/// virtualenv with `scripts/ansible-venv.sh` when it is missing (first start; needs PyPI).
async fn ensure_ansible(
    data_dir: &Path,
    repo_dir: &Path,
    problems: &mut Vec<String>,
) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(ANSIBLE_PLAYBOOK_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if is_executable(&p) {
            return Some(p);
        }
        problems.push(format!(
            "{ANSIBLE_PLAYBOOK_ENV}={} is not an executable file",
            p.display()
        ));
        return None;
    }
    let venv = data_dir.join(VENV_DIR);
    let playbook = venv.join("bin/ansible-playbook");
    if is_executable(&playbook) {
        return Some(playbook);
    }
    let script = repo_dir.join("scripts/ansible-venv.sh");
    if !script.is_file() {
        problems.push(format!(
            "ansible-playbook is missing and {} does not exist to create it; set \
             {ANSIBLE_PLAYBOOK_ENV} or run scripts/install-prereqs.sh",
            script.display()
        ));
        return None;
    }
    tracing::info!(venv = %venv.display(), "creating the Ansible virtualenv (first start, takes a minute)");
    let run = tokio::time::timeout(
        VENV_TIMEOUT,
        tokio::process::Command::new(&script)
            .arg(&venv)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let failure = match run {
        Ok(Ok(out)) if out.status.success() && is_executable(&playbook) => {
            tracing::info!(ansible_playbook = %playbook.display(), "Ansible virtualenv ready");
            return Some(playbook);
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            format!(
                "{} ({})",
                crate::runner::Runner::tail(stderr.trim(), 1000),
                out.status
            )
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no result within {} minutes", VENV_TIMEOUT.as_secs() / 60),
    };
    problems.push(format!(
        "cannot create the Ansible virtualenv ({} {}): {failure}",
        script.display(),
        venv.display()
    ));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prepares_key_venv_and_host_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::test_database(dir.path()).await;
        crate::server::register_local_node(&db, None).await.unwrap();
        let sb = SecretBox::from_key(&[5u8; 32]);
        let data = dir.path().join("data");
        let bin = data.join("ansible-venv/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("ansible-playbook");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let home = dir.path().join("root-home");
        std::fs::create_dir(&home).unwrap();

        let report = prepare_in(&db, &sb, &data, Path::new("/nonexistent"), &home).await;
        if std::env::var_os(ANSIBLE_PLAYBOOK_ENV).is_none() {
            assert_eq!(report.ansible_playbook.as_deref(), Some(fake.as_path()));
        }
        let key = ssh::control_key(&db, &sb).await.unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let auth = std::fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap();
            assert_eq!(auth, format!("{}\n", key.public_openssh));
        } else {
            assert!(report
                .problems
                .iter()
                .any(|p| p.contains("not running as root")));
        }
        let node = store::nodes::local(&db).await.unwrap().unwrap();
        if ssh::port_open("127.0.0.1", 22, Duration::from_secs(2)).await {
            let pinned = node.host_key.expect("host key pinned");
            assert!(pinned.starts_with("ssh-"), "{pinned}");
            // the key went into a temporary home, not root's: the login probe must say so
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.contains("SSH login as root@127.0.0.1:22")),
                "{:?}",
                report.problems
            );
        } else {
            eprintln!("note: sshd not answering on 127.0.0.1:22; host key pinning not tested");
            assert!(report
                .problems
                .iter()
                .any(|p| p.contains("sshd is not answering")));
        }
        // second run: idempotent
        let again = prepare_in(&db, &sb, &data, Path::new("/nonexistent"), &home).await;
        assert_eq!(again.ansible_playbook, report.ansible_playbook);
        assert_eq!(
            std::fs::read_to_string(home.join(".ssh/authorized_keys"))
                .unwrap_or_default()
                .lines()
                .count(),
            usize::from(unsafe { libc::geteuid() } == 0)
        );
    }
}
