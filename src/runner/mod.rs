//! Runs one `ansible-playbook` against one node (spec node-runtime §8).
//!
//! Every node mutation is an Ansible run launched as a local subprocess. The runner owns the
//! mechanics the reconcilers must not care about: a private run directory with the inventory, key,
//! pinned known_hosts and extra-vars (removed afterwards), the child's process group (killed on
//! timeout or cancellation), merged and redacted output streamed line by line, the exit code
//! mapped to a [`JobErrorCode`], and the facts the playbook reported through the
//! `pressluft_facts` callback plugin.
mod forkserver;
mod process;
mod redact;
mod workspace;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reconcilers::error_code::JobErrorCode;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use forkserver::Forkserver;
pub use redact::{Redactor, MASK};

use process::{forward_lines, lower_priority, ProcessGroup};
use workspace::RunDir;

/// How long output may keep arriving after ansible-playbook exited before the remaining
/// processes of its group are killed (a straggler holding the pipes open must not hang the run).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Where and with what ansible-playbook runs.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The repository's `ansible/` directory (holds `ansible.cfg`, `playbooks/`, roles, plugins).
    pub ansible_dir: PathBuf,
    /// The `ansible-playbook` executable, e.g. `<data>/ansible-venv/bin/ansible-playbook`.
    pub ansible_playbook: PathBuf,
    /// Private directory for per-run files, e.g. `<data>/run` (created 0700 when missing).
    pub work_dir: PathBuf,
    /// Runs go through this pre-started ansible-playbook when set (see [`Forkserver`]).
    pub forkserver: Option<std::sync::Arc<Forkserver>>,
}

/// The environment every ansible-playbook gets: `ansible.cfg` is the only Ansible configuration
/// (spec §8.2), so inherited `ANSIBLE_*` overrides are removed.
fn ansible_environment(cmd: &mut tokio::process::Command, ansible_dir: &std::path::Path) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ANSIBLE_") {
            cmd.env_remove(&k);
        }
    }
    cmd.current_dir(ansible_dir)
        .env("ANSIBLE_CONFIG", ansible_dir.join("ansible.cfg"))
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("PYTHONUNBUFFERED", "1");
}

/// The node a run (or an SSH command) goes to.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub hostname: String,
    pub port: u16,
    pub user: String,
    /// Pressluft's private key in OpenSSH format. Secret.
    pub private_key_openssh: String,
    /// The pinned host key, `"ssh-ed25519 AAAA…"`. `None` only before the key has been pinned:
    /// then host key checking is off.
    pub host_key: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("hostname", &self.hostname)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("private_key_openssh", &"<redacted>")
            .field("host_key", &self.host_key)
            .finish()
    }
}

/// One playbook run.
pub struct RunRequest {
    /// File name below `ansible/playbooks/`, e.g. `"site-create.yml"`.
    pub playbook: String,
    pub target: Target,
    /// Extra-vars, flat (spec §8.3).
    pub vars: Map<String, Value>,
    /// Values scrubbed from every output line (see [`Redactor`]).
    pub secrets: Vec<String>,
    /// Hard limit for the whole subprocess; exceeding it kills it (`ANSIBLE_TIMEOUT`).
    pub timeout: Duration,
    /// Cancelling kills the run (`cancelled = true`).
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for RunRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // extra-vars carry secrets: show only their names
        f.debug_struct("RunRequest")
            .field("playbook", &self.playbook)
            .field("target", &self.target)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a run that started produced. A failed playbook is an outcome, not an error.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The exit status; `None` when the process was killed by a signal (timeout, cancel).
    pub exit_code: Option<i32>,
    /// `None` on success and on cancellation.
    pub error_code: Option<JobErrorCode>,
    /// The merged `pressluft_facts` the playbook reported (without `_stats`); empty when none.
    pub facts: Map<String, Value>,
    /// `_stats` from the facts file: `{"changed", "failed", "unreachable"}`.
    pub stats: Option<Value>,
    /// The whole merged stdout+stderr, redacted, one `\n`-terminated line per output line.
    pub log: String,
    pub duration: Duration,
    pub cancelled: bool,
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        self.error_code.is_none() && !self.cancelled
    }
}

/// Failures to start a run at all. These are configuration or programming errors, never the
/// playbook's.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(
        "ansible-playbook not found at {0} (create the virtualenv with scripts/ansible-venv.sh \
         or set PRESSLUFT_ANSIBLE_PLAYBOOK)"
    )]
    MissingBinary(PathBuf),
    #[error("invalid run request: {0}")]
    InvalidRequest(String),
    #[error("run directory {0}: {1}")]
    WorkDir(PathBuf, std::io::Error),
    #[error("cannot start {0}: {1}")]
    Spawn(PathBuf, std::io::Error),
    #[error("waiting for ansible-playbook: {0}")]
    Wait(std::io::Error),
}

/// Why the runner stopped the process itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout,
    Cancel,
}

impl Runner {
    /// Runs `req.playbook` against `req.target`. `on_log` receives every redacted output line
    /// (`\n`-terminated) as it arrives, plus a `pressluft: …` line when the runner kills the run.
    pub async fn run(
        &self,
        req: RunRequest,
        mut on_log: impl FnMut(&str) + Send,
    ) -> Result<RunOutcome, RunnerError> {
        if !self.ansible_playbook.is_file() {
            return Err(RunnerError::MissingBinary(self.ansible_playbook.clone()));
        }
        let playbook = self.playbook_path(&req.playbook)?;
        let redactor = Redactor::new(&req.secrets);
        let dir = RunDir::create(&self.work_dir)?;
        dir.write_files(&req.target, &req.vars)?;

        let mut cmd = match &self.forkserver {
            Some(fs) => fs.command(&self.ansible_playbook),
            None => tokio::process::Command::new(&self.ansible_playbook),
        };
        ansible_environment(&mut cmd, &self.ansible_dir);
        lower_priority(&mut cmd);
        cmd.env("PRESSLUFT_FACTS_FILE", dir.facts())
            .arg("-i")
            .arg(dir.inventory())
            .arg("-e")
            .arg(format!("@{}", dir.vars().display()))
            .arg(&playbook)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);

        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| RunnerError::Spawn(self.ansible_playbook.clone(), e))?;
        let group = ProcessGroup::new(child.id().unwrap_or(0));
        tracing::debug!(playbook = %req.playbook, host = %req.target.hostname, "ansible-playbook started");

        let (tx, mut rx) = mpsc::channel::<String>(1024);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(forward_lines(out, tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(forward_lines(err, tx.clone()));
        }
        drop(tx);

        let mut log = String::new();
        let mut emit = |line: &str, log: &mut String| {
            let mut l = redactor.redact(line);
            l.push('\n');
            on_log(&l);
            log.push_str(&l);
        };

        // `None` (no limit) only for absurd timeouts that overflow the clock
        let deadline = tokio::time::Instant::from_std(started).checked_add(req.timeout);
        let mut status = None;
        let mut stopped: Option<Stop> = None;
        let mut readers_done = false;
        let mut drain_deadline = None;
        while status.is_none() || !readers_done {
            tokio::select! {
                line = rx.recv(), if !readers_done => match line {
                    Some(line) => emit(&line, &mut log),
                    None => readers_done = true,
                },
                st = child.wait(), if status.is_none() => {
                    status = Some(st.map_err(RunnerError::Wait)?);
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                }
                _ = sleep_until_opt(deadline), if status.is_none() && stopped.is_none() => {
                    group.kill();
                    stopped = Some(Stop::Timeout);
                    emit(
                        &format!("pressluft: ansible-playbook killed: timeout after {:?}", req.timeout),
                        &mut log,
                    );
                }
                _ = req.cancel.cancelled(), if status.is_none() && stopped.is_none() => {
                    group.kill();
                    stopped = Some(Stop::Cancel);
                    emit("pressluft: ansible-playbook killed: run cancelled", &mut log);
                }
                _ = sleep_until_opt(drain_deadline), if drain_deadline.is_some() && !readers_done => {
                    // Something outside ansible-playbook still holds the pipes: stop reading.
                    group.kill();
                    for r in &readers {
                        r.abort();
                    }
                    while let Ok(line) = rx.try_recv() {
                        emit(&line, &mut log);
                    }
                    readers_done = true;
                }
            }
        }
        group.finish();
        let duration = started.elapsed();
        let status = status.expect("loop ends only after the child was reaped");

        let exit_code = status.code();
        let error_code = match (stopped, exit_code) {
            (Some(Stop::Timeout), _) => Some(JobErrorCode::AnsibleTimeout),
            (Some(Stop::Cancel), _) => None,
            (None, Some(code)) => JobErrorCode::from_exit_code(code),
            // killed by a signal somebody else sent
            (None, None) => Some(JobErrorCode::AnsibleUnknownExit),
        };
        let (facts, stats) = read_facts(&dir.facts());
        // A playbook that knows why it failed says so in its facts (`error_code`, one of the
        // registered codes): that code replaces the generic one of the exit status.
        let error_code = match error_code {
            Some(generic) if stopped.is_none() => Some(
                facts
                    .get("error_code")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|c| c.parse::<JobErrorCode>().ok())
                    .unwrap_or(generic),
            ),
            other => other,
        };
        tracing::debug!(
            playbook = %req.playbook,
            exit = ?exit_code,
            error_code = ?error_code,
            elapsed_ms = duration.as_millis() as u64,
            "ansible-playbook finished"
        );
        drop(dir);
        Ok(RunOutcome {
            exit_code,
            error_code,
            facts,
            stats,
            log,
            duration,
            cancelled: stopped == Some(Stop::Cancel),
        })
    }

    /// The last `bytes` bytes of `log`, starting on a character boundary (what a failed job keeps:
    /// the final 10 KB, spec §8.6).
    pub fn tail(log: &str, bytes: usize) -> String {
        if log.len() <= bytes {
            return log.to_string();
        }
        let mut start = log.len() - bytes;
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_string()
    }

    /// `playbooks/<name>` relative to the ansible dir; the name must be a plain `.yml` file name
    /// that exists (a typo is a programming error, not a retryable play error).
    fn playbook_path(&self, name: &str) -> Result<PathBuf, RunnerError> {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name.ends_with(".yml")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            return Err(RunnerError::InvalidRequest(format!(
                "playbook {name:?} is not a file name in playbooks/"
            )));
        }
        let rel = PathBuf::from("playbooks").join(name);
        if !self.ansible_dir.join(&rel).is_file() {
            return Err(RunnerError::InvalidRequest(format!(
                "playbook {} does not exist",
                self.ansible_dir.join(&rel).display()
            )));
        }
        Ok(rel)
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The facts file written by the `pressluft_facts` callback: `_stats` split off, the rest as facts.
/// A missing or unreadable file means no facts (the playbook may have failed before its end).
fn read_facts(path: &std::path::Path) -> (Map<String, Value>, Option<Value>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, "cannot read the facts file");
            }
            return (Map::new(), None);
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(mut m)) => {
            let stats = m.remove("_stats");
            (m, stats)
        }
        Ok(_) | Err(_) => {
            tracing::warn!("facts file is not a JSON object; ignoring it");
            (Map::new(), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_cuts_on_a_char_boundary() {
        assert_eq!(Runner::tail("abc", 10), "abc");
        assert_eq!(Runner::tail("abcdef", 3), "def");
        // "é" is two bytes: cutting inside it moves forward
        assert_eq!(Runner::tail("aéb", 2), "b");
        assert_eq!(Runner::tail("aéb", 3), "éb");
        assert_eq!(Runner::tail("", 3), "");
    }
}
