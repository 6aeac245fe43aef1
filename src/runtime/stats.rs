//! Counters the runtime keeps in memory for the metrics endpoints (since the process started):
//! [`RuntimeStats`] per runtime (`/api/metrics`), and the process-wide [`Metrics`] (histograms
//! and counters rendered in Prometheus' text format by `/metrics`).
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct RuntimeStats {
    resync_rounds: AtomicU64,
    probe_rounds: AtomicU64,
    last_probe: Mutex<Option<ProbeRound>>,
    queues: QueueSource,
}

/// The work queues' depths, read when the metrics are rendered.
#[derive(Default)]
struct QueueSource(OnceLock<Box<dyn Fn() -> Vec<QueueDepth> + Send + Sync>>);

impl std::fmt::Debug for QueueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueSource")
    }
}

/// One work queue (a resource kind) at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    pub kind: &'static str,
    /// Keys due now, not yet handed to a worker.
    pub ready: usize,
    /// Keys waiting for a later time (backoff, next slot).
    pub delayed: usize,
    /// Keys a worker is on.
    pub running: usize,
    /// How long the longest-waiting due key has been due.
    pub oldest_ready: Duration,
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

    pub(super) fn set_queue_source(&self, f: Box<dyn Fn() -> Vec<QueueDepth> + Send + Sync>) {
        let _ = self.queues.0.set(f);
    }

    pub fn queue_depths(&self) -> Vec<QueueDepth> {
        self.queues.0.get().map(|f| f()).unwrap_or_default()
    }

    pub(super) fn probe_done(&self, round: ProbeRound) {
        global()
            .probe_round
            .observe(Duration::from_millis(round.wall_ms).as_secs_f64());
        self.probe_rounds.fetch_add(1, Ordering::Relaxed);
        *self.last_probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(round);
    }
}

/// A Prometheus histogram (cumulative buckets in seconds, sum, count).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

const API_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const PASS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
const JOB_BUCKETS: &[f64] = &[0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0];
const PROBE_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn add(&mut self, secs: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// A histogram behind a lock (observations are rare next to the work they measure).
#[derive(Debug)]
pub struct Timed(Mutex<Histogram>);

impl Timed {
    fn new(bounds: &'static [f64]) -> Self {
        Timed(Mutex::new(Histogram::new(bounds)))
    }

    pub fn observe(&self, secs: f64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).add(secs);
    }
}

/// Process-wide metrics (all runtimes and the API of this process).
#[derive(Debug)]
pub struct Metrics {
    /// (kind, result) → reconcile pass duration
    reconcile: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    /// (job type, outcome: succeeded | cancelled | error code) → job duration
    jobs: Mutex<BTreeMap<(String, String), Histogram>>,
    /// (method, route template, status class) → request duration
    api: Mutex<BTreeMap<(String, String, &'static str), Histogram>>,
    probe_round: Timed,
    /// scope (pass | run | scheduler) → leases taken / found held by another replica
    lease_acquired: Mutex<BTreeMap<&'static str, u64>>,
    lease_busy: Mutex<BTreeMap<&'static str, u64>>,
    lease_handovers: AtomicU64,
    lease_reclaimed: AtomicU64,
    lease_lost: AtomicU64,
}

pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        reconcile: Default::default(),
        jobs: Default::default(),
        api: Default::default(),
        probe_round: Timed::new(PROBE_BUCKETS),
        lease_acquired: Default::default(),
        lease_busy: Default::default(),
        lease_handovers: AtomicU64::new(0),
        lease_reclaimed: AtomicU64::new(0),
        lease_lost: AtomicU64::new(0),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A label value in the text format: backslash, quote and newline escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn reconcile_done(&self, kind: &str, took: Duration, ok: bool) {
        lock(&self.reconcile)
            .entry((kind.to_string(), if ok { "ok" } else { "error" }))
            .or_insert_with(|| Histogram::new(PASS_BUCKETS))
            .add(took.as_secs_f64());
    }

    pub fn job_done(&self, job_type: &str, outcome: &str, took: Duration) {
        lock(&self.jobs)
            .entry((job_type.to_string(), outcome.to_string()))
            .or_insert_with(|| Histogram::new(JOB_BUCKETS))
            .add(took.as_secs_f64());
    }

    pub fn api_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        lock(&self.api)
            .entry((method.to_string(), route.to_string(), class))
            .or_insert_with(|| Histogram::new(API_BUCKETS))
            .add(took.as_secs_f64());
    }

    pub fn lease_acquired(&self, scope: &'static str) {
        *lock(&self.lease_acquired).entry(scope).or_default() += 1;
    }

    pub fn lease_busy(&self, scope: &'static str) {
        *lock(&self.lease_busy).entry(scope).or_default() += 1;
    }

    /// A lease taken over from another replica's holder.
    pub fn lease_handover(&self) {
        self.lease_handovers.fetch_add(1, Ordering::Relaxed);
    }

    /// A dead or stalled replica's job reclaimed by the reaper.
    pub fn lease_reclaimed(&self) {
        self.lease_reclaimed.fetch_add(1, Ordering::Relaxed);
    }

    /// This replica found a lease it held lost (its result was not committed).
    pub fn lease_lost(&self) {
        self.lease_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub fn lease_handovers(&self) -> u64 {
        self.lease_handovers.load(Ordering::Relaxed)
    }

    pub fn leases_lost(&self) -> u64 {
        self.lease_lost.load(Ordering::Relaxed)
    }

    /// The in-memory part of `/metrics` (Prometheus text format 0.0.4).
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP pressluft_reconcile_duration_seconds Duration of reconcile passes by resource kind and result.");
        let _ = writeln!(out, "# TYPE pressluft_reconcile_duration_seconds histogram");
        for ((kind, result), h) in lock(&self.reconcile).iter() {
            h.render(
                out,
                "pressluft_reconcile_duration_seconds",
                &format!("kind=\"{}\",result=\"{result}\"", esc(kind)),
            );
        }
        let _ = writeln!(out, "# HELP pressluft_job_duration_seconds Jobs (playbook runs and probes) run by this process, by job type and outcome (succeeded, cancelled, or the failure's error code).");
        let _ = writeln!(out, "# TYPE pressluft_job_duration_seconds histogram");
        for ((job_type, outcome), h) in lock(&self.jobs).iter() {
            h.render(
                out,
                "pressluft_job_duration_seconds",
                &format!(
                    "job_type=\"{}\",outcome=\"{}\"",
                    esc(job_type),
                    esc(outcome)
                ),
            );
        }
        let _ = writeln!(out, "# HELP pressluft_http_request_duration_seconds API request latency by method, route (operation) and status class.");
        let _ = writeln!(
            out,
            "# TYPE pressluft_http_request_duration_seconds histogram"
        );
        for ((method, route, class), h) in lock(&self.api).iter() {
            h.render(
                out,
                "pressluft_http_request_duration_seconds",
                &format!(
                    "method=\"{}\",route=\"{}\",status=\"{class}\"",
                    esc(method),
                    esc(route)
                ),
            );
        }
        let _ = writeln!(
            out,
            "# HELP pressluft_probe_round_seconds Wall time of a probe round against one node."
        );
        let _ = writeln!(out, "# TYPE pressluft_probe_round_seconds histogram");
        lock(&self.probe_round.0).render(out, "pressluft_probe_round_seconds", "");
        let _ = writeln!(out, "# HELP pressluft_lease_acquisitions_total Leases taken by this process (pass: a reconcile pass, run: a running job, scheduler: the backup scheduler).");
        let _ = writeln!(out, "# TYPE pressluft_lease_acquisitions_total counter");
        for (scope, n) in lock(&self.lease_acquired).iter() {
            let _ = writeln!(
                out,
                "pressluft_lease_acquisitions_total{{scope=\"{scope}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pressluft_lease_busy_total Leases found held by another replica."
        );
        let _ = writeln!(out, "# TYPE pressluft_lease_busy_total counter");
        for (scope, n) in lock(&self.lease_busy).iter() {
            let _ = writeln!(out, "pressluft_lease_busy_total{{scope=\"{scope}\"}} {n}");
        }
        for (name, help, v) in [
            ("pressluft_lease_handovers_total", "Job and scheduler leases this process took over from another replica.", &self.lease_handovers),
            ("pressluft_lease_reclaims_total", "Jobs of a dead or stalled replica marked interrupted by this process after their lease expired.", &self.lease_reclaimed),
            ("pressluft_lease_lost_total", "Leases this process lost while working (its result was not committed).", &self.lease_lost),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
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
