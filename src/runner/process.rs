//! The ansible-playbook child process: its process group and its merged output.
//!
//! ansible-playbook forks workers, and those start `ssh`; killing only the direct child would leave
//! them running (still changing the node, still holding our pipes open). The child therefore
//! starts its own process group and every stop — timeout, cancellation, or the run future being
//! dropped — sends SIGKILL to the whole group.
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// How much lower than Pressluft's own the CPU priority of playbook runs is (`nice`): on a small
/// machine a burst of runs must not slow the API and the reconcile loops down, which are short
/// and latency-bound while a run is long either way.
const RUN_NICENESS: i32 = 10;

/// Starts `cmd` at a lower CPU priority (see [`RUN_NICENESS`]).
pub fn lower_priority(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls nice(2), which
    // is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::nice(RUN_NICENESS);
            Ok(())
        });
    }
}

/// Kills a process group when dropped, unless disarmed.
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: i32,
    armed: bool,
}

impl ProcessGroup {
    /// `pid` of a child spawned with `process_group(0)`, so the group id equals it.
    pub fn new(pid: u32) -> Self {
        Self {
            pgid: pid as i32,
            armed: pid > 0,
        }
    }

    /// SIGKILL to every process of the group.
    pub fn kill(&self) {
        if self.armed && self.pgid > 0 {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
        }
    }

    /// Kills what is left of the group and stops guarding it.
    pub fn finish(mut self) {
        self.kill();
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Forwards `reader`'s lines (without their line ending, invalid UTF-8 replaced) to `tx`.
pub fn forward_lines<R>(reader: R, tx: mpsc::Sender<String>) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut r = BufReader::new(reader);
        let mut buf = Vec::with_capacity(256);
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            }
        }
    })
}
