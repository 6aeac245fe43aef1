//! A pre-started ansible-playbook (`ansible/forkserver.py`): one Python process that has imported
//! ansible-core forks a fresh `ansible-playbook` per run, which saves its start-up (~0.5 s of the
//! ~0.7 s it takes to start on a small machine) on every job.
//!
//! The runner still spawns one process per run — the script's small `run` client, with the same
//! arguments, environment and process group ansible-playbook would get — so timeouts, cancellation,
//! output streaming and exit codes work as before. The client hands its stdio to the server and
//! relays the child's exit status; when the client is killed the server kills the run. Without a
//! server (still importing, crashed, other configuration) the client executes the real
//! ansible-playbook itself.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use super::RunnerError;

#[derive(Debug)]
pub struct Forkserver {
    python: PathBuf,
    script: PathBuf,
    socket: PathBuf,
    /// Kept for its lifetime: the server ends when its stdin (this pipe) closes, also when this
    /// process dies without cleaning up.
    child: Mutex<Option<tokio::process::Child>>,
}

impl Forkserver {
    /// Starts the server for `ansible_playbook` (same interpreter, same Ansible configuration as
    /// [`super::Runner::run`] gives a run). It serves once it has imported ansible-core; runs
    /// before that start ansible-playbook the ordinary way.
    pub fn start(
        script: &Path,
        ansible_dir: &Path,
        ansible_playbook: &Path,
        socket: PathBuf,
    ) -> Result<Forkserver, RunnerError> {
        let python = interpreter_of(ansible_playbook).ok_or_else(|| {
            RunnerError::InvalidRequest(format!(
                "{}: no #! interpreter line",
                ansible_playbook.display()
            ))
        })?;
        if !script.is_file() {
            return Err(RunnerError::MissingBinary(script.to_path_buf()));
        }
        let _ = std::fs::remove_file(&socket);
        let mut cmd = tokio::process::Command::new(&python);
        super::ansible_environment(&mut cmd, ansible_dir);
        // the runs it forks inherit the lower priority
        super::process::lower_priority(&mut cmd);
        cmd.env("PRESSLUFT_FORKSERVER_EXECUTABLE", ansible_playbook)
            .arg(script)
            .arg("serve")
            .arg(&socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| RunnerError::Spawn(python.clone(), e))?;
        tracing::debug!(socket = %socket.display(), "ansible forkserver started");
        Ok(Forkserver {
            python,
            script: script.to_path_buf(),
            socket,
            child: Mutex::new(Some(child)),
        })
    }

    /// The command that runs `ansible_playbook` through the server (arguments follow).
    pub fn command(&self, ansible_playbook: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.python);
        // The client needs the standard library only: no site-packages, no PYTHON* variables.
        cmd.arg("-I")
            .arg("-S")
            .arg(&self.script)
            .arg("run")
            .arg(&self.socket)
            .arg(ansible_playbook);
        cmd
    }

    /// The server accepts runs (it has created its socket).
    pub fn serving(&self) -> bool {
        std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().ok()?.as_ref()?.id()
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Forkserver {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            if let Some(mut child) = c.take() {
                let _ = child.start_kill();
            }
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The interpreter of a Python entry-point script (`#!/venv/bin/python`).
fn interpreter_of(script: &Path) -> Option<PathBuf> {
    use std::io::BufRead;
    let f = std::fs::File::open(script).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(f).read_line(&mut line).ok()?;
    let interp = line.strip_prefix("#!")?.split_whitespace().next()?;
    let p = PathBuf::from(interp);
    (p.is_absolute() && p.is_file()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_from_the_shebang() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("ansible-playbook");
        std::fs::write(&s, "#!/bin/sh -e\nexit 0\n").unwrap();
        assert_eq!(interpreter_of(&s), Some(PathBuf::from("/bin/sh")));
        std::fs::write(&s, "no shebang\n").unwrap();
        assert_eq!(interpreter_of(&s), None);
        std::fs::write(&s, "#!relative/python\n").unwrap();
        assert_eq!(interpreter_of(&s), None);
    }
}
