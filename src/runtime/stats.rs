//! Counters the runtime keeps in memory for the metrics endpoint (since the process started).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct RuntimeStats {
    resync_rounds: AtomicU64,
    probe_rounds: AtomicU64,
    last_probe: Mutex<Option<ProbeRound>>,
}

/// One probe round against one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRound {
    pub node_id: String,
    pub environments: usize,
    /// Of those, how many had their preview URL requested this round.
    pub http_checked: usize,
    /// From opening the SSH session to the parsed answer.
    pub wall_ms: u64,
    /// CPU the probe script used on the node (its own and its children's).
    pub node_cpu_ms: Option<u64>,
    /// CPU this process used meanwhile (all its threads, so other work running beside counts).
    pub controller_cpu_ms: Option<u64>,
}

impl RuntimeStats {
    pub fn resync_rounds(&self) -> u64 {
        self.resync_rounds.load(Ordering::Relaxed)
    }

    pub fn probe_rounds(&self) -> u64 {
        self.probe_rounds.load(Ordering::Relaxed)
    }

    pub fn last_probe(&self) -> Option<ProbeRound> {
        self.last_probe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn resync_done(&self) {
        self.resync_rounds.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn probe_done(&self, round: ProbeRound) {
        self.probe_rounds.fetch_add(1, Ordering::Relaxed);
        *self.last_probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(round);
    }
}

/// CPU time (user + system) of this process so far, from /proc (Linux); `None` elsewhere.
pub fn process_cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks * 1000 / hz as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_remembers_the_last_round() {
        let s = RuntimeStats::default();
        s.resync_done();
        s.resync_done();
        assert_eq!(s.resync_rounds(), 2);
        assert!(s.last_probe().is_none());
        let r = ProbeRound {
            node_id: "n".into(),
            environments: 50,
            http_checked: 5,
            wall_ms: 400,
            node_cpu_ms: Some(300),
            controller_cpu_ms: Some(5),
        };
        s.probe_done(r.clone());
        assert_eq!((s.probe_rounds(), s.last_probe()), (1, Some(r)));
    }

    #[test]
    fn process_cpu_is_read() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(process_cpu_ms().is_some_and(|ms| ms > 0));
    }
}
