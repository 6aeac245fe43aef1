//! Site creation benchmark (issue 4): the real `pressluft serve` release binary provisions this
//! machine as its local node over real SSH with real `ansible-playbook`, then creates WordPress
//! sites through the API. Printed, each figure next to its target:
//!
//! - per site and as median, `POST /api/sites` → environment `Ready=True` (polled every 20 ms),
//!   split into: the POST's own latency; queue pickup (POST answered → job row `created_at`, and
//!   job `created_at` → `started_at`); the playbook (job `started_at` → `finished_at`), with the
//!   health-check share taken from the facts the playbook reported (`_tasks`,
//!   `environment_timings_ms`, `health_checks`); the remainder (job finished → Ready seen);
//! - `scripts/bench-shell-site.sh` (the same node steps by hand, plain bash) on fresh ids in the
//!   same run, interleaved with the API sites (alternating which goes first; all deletions at the
//!   end), and the ratio of the medians against 2×;
//! - queue pickup of a burst of sites created back to back: the POST's answer → job
//!   `created_at` (both stored with millisecond precision by the server's clock), p50 / p99 / max
//!   against 50 ms.
//!
//! Everything it creates is removed again (API sites: DELETE and wait until gone; shell sites:
//! `bench-shell-site.sh --delete`). All traffic stays on 127.0.0.1; every loop is bounded.
//! Needs root, sshd on 127.0.0.1:22 and the node stack (`scripts/install-prereqs.sh`).
//!
//! Run with `scripts/bench-site-create.sh` (= `cargo bench --bench site_create`). Knobs
//! (environment): `BENCH_SITES` (5), `BENCH_BURST` (30), `BENCH_SERVER_LOG` (a file for the
//! server's log; default: a file in the temp dir, printed when something fails).
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_pressluft");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const ADMIN_EMAIL: &str = "bench@example.com";
const ADMIN_PASSWORD: &str = "bench-password-not-secret";
const VENV_PLAYBOOK: &str = "/var/lib/pressluft/ansible-venv/bin/ansible-playbook";

// Targets from issue 4.
const RATIO_MAX: f64 = 2.0;
const PICKUP_P99_MAX_MS: f64 = 50.0;

const POLL: Duration = Duration::from_millis(20);
const NODE_READY_LIMIT: Duration = Duration::from_secs(900);
const SITE_READY_LIMIT: Duration = Duration::from_secs(300);
const GONE_LIMIT: Duration = Duration::from_secs(600);
const SHELL_LIMIT: Duration = Duration::from_secs(120);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

fn sh_ok(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("must run as root (it provisions this machine as the local node)".into());
    }
    if std::net::TcpStream::connect(("127.0.0.1", 22)).is_err() {
        return Err("sshd is not answering on 127.0.0.1:22".into());
    }
    for bin in ["nginx", "mariadb", "curl", "runuser"] {
        if !sh_ok(&format!("command -v {bin} || test -x /usr/sbin/{bin}")) {
            return Err(format!(
                "{bin} is not installed (scripts/install-prereqs.sh)"
            ));
        }
    }
    if !sh_ok("ls /etc/php/*/fpm/pool.d") {
        return Err("PHP-FPM is not installed (scripts/install-prereqs.sh)".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// server and API

struct Server {
    child: Child,
    port: u16,
    data: std::path::PathBuf,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: a graceful stop ends running playbooks and releases leases.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = match std::env::var_os("BENCH_SERVER_LOG") {
        Some(p) => std::path::PathBuf::from(p),
        None => dir.path().join("server.log"),
    };
    let out = std::fs::File::create(&log).expect("server log file");
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(&data)
    // the playbooks of this checkout, whichever tree the binary in the target dir was built from
    .arg("--ansible-dir")
    .arg(std::path::Path::new(REPO).join("ansible"))
    .env("PRESSLUFT_ADMIN_EMAIL", ADMIN_EMAIL)
    .env("PRESSLUFT_ADMIN_PASSWORD", ADMIN_PASSWORD)
    .env("PRESSLUFT_LOG", "info")
    .env_remove("PRESSLUFT_SECRET_KEY")
    .env_remove("PRESSLUFT_DATABASE_URL")
    .env_remove("PRESSLUFT_DATA_DIR")
    .env_remove("PRESSLUFT_LISTEN_ADDR")
    .env_remove("PRESSLUFT_ANSIBLE_DIR")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::from(out));
    if std::path::Path::new(VENV_PLAYBOOK).exists()
        && std::env::var_os("PRESSLUFT_ANSIBLE_PLAYBOOK").is_none()
    {
        cmd.env("PRESSLUFT_ANSIBLE_PLAYBOOK", VENV_PLAYBOOK);
    }
    let mut child = cmd.spawn().expect("start pressluft serve");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("pressluft serve exited with {status}:\n{text}");
        }
        assert!(Instant::now() < deadline, "server did not start in 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        port,
        data,
        log,
        _dir: dir,
    }
}

struct Api {
    base: String,
    token: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Api {
    fn connect(port: u16) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let token = rt.block_on(async {
            let r = http
                .post(format!("{base}/api/login"))
                .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
                .send()
                .await
                .expect("login");
            assert_eq!(r.status(), 200, "login");
            let cookie = r.headers()["set-cookie"]
                .to_str()
                .expect("cookie")
                .split(';')
                .next()
                .expect("cookie")
                .to_string();
            let r = http
                .post(format!("{base}/api/tokens"))
                .header("cookie", cookie)
                .header("x-pressluft-csrf", "1")
                .json(&json!({"name": "bench-site-create"}))
                .send()
                .await
                .expect("token");
            r.json::<Value>().await.expect("token body")["token"]
                .as_str()
                .expect("token")
                .to_string()
        });
        Api {
            base,
            token,
            rt,
            http,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.rt.block_on(async {
            let mut rb = self
                .http
                .request(
                    method.parse().expect("method"),
                    format!("{}{path}", self.base),
                )
                .bearer_auth(&self.token);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            match rb.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    (
                        status,
                        serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    )
                }
                Err(e) => (0, Value::String(e.to_string())),
            }
        })
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        match self.call("GET", path, None) {
            (200, v) => Ok(v),
            (s, v) => Err(format!("GET {path}: {s} {v}")),
        }
    }

    /// Polls `path` every `every` until `done` holds; Err with the last answer after `limit`.
    fn wait_for(
        &self,
        what: &str,
        path: &str,
        every: Duration,
        limit: Duration,
        done: impl Fn(u16, &Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        loop {
            let (s, v) = self.call("GET", path, None);
            if done(s, &v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let jobs = self.call("GET", "/api/jobs?limit=5", None).1;
                return Err(format!(
                    "timed out waiting for {what}: last answer {s} {v}\nrecent jobs: {jobs}"
                ));
            }
            std::thread::sleep(every);
        }
    }
}

fn ready(v: &Value) -> bool {
    v["status"] == "active"
        && v["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

// ---------------------------------------------------------------------------------------------
// time

fn parse_ts(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()
}

fn wall(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

/// b - a in milliseconds (signed).
fn span_ms(a: OffsetDateTime, b: OffsetDateTime) -> f64 {
    (b - a).as_seconds_f64() * 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile.
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

// ---------------------------------------------------------------------------------------------
// measurements

struct SiteRun {
    total: f64,
    post: f64,
    pickup: f64,
    start: f64,
    playbook: f64,
    health: f64,
    health_checks: f64,
    after: f64,
    tasks: String,
}

/// The facts a job reported (`jobs.facts_json`; not part of the API).
fn job_facts(db_url: &str, rt: &tokio::runtime::Runtime, job_id: &str) -> Value {
    rt.block_on(async {
        let Ok(db) = Database::connect(db_url).await else {
            return Value::Null;
        };
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT facts_json FROM jobs WHERE id = ?",
                [job_id.into()],
            ))
            .await
            .ok()
            .flatten();
        let text: Option<String> = row.and_then(|r| r.try_get("", "facts_json").ok());
        let _ = db.close().await;
        text.and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    })
}

/// Health-check share of a run, from its facts: the health task when the playbook has one,
/// else the step the environment module timed; and the slowest of the checks themselves.
fn health_from_facts(f: &Value) -> (f64, f64) {
    let tasks = f["_tasks"].as_array().cloned().unwrap_or_default();
    let task_ms: f64 = tasks
        .iter()
        .filter(|t| {
            t["task"]
                .as_str()
                .is_some_and(|n| n.to_ascii_lowercase().contains("health"))
        })
        .filter_map(|t| t["ms"].as_f64())
        .sum();
    let step_ms = f["environment_timings_ms"]["health"].as_f64();
    let checks_ms = f["health_checks"]
        .as_object()
        .map(|c| {
            c.values()
                .filter_map(|c| c["elapsed_ms"].as_f64())
                .fold(f64::NAN, f64::max)
        })
        .unwrap_or(f64::NAN);
    // the module's own step when it runs the checks (one task for everything), else the
    // separate health task (its Ansible overhead included), else the checks themselves
    let share = match step_ms {
        Some(ms) => ms,
        None if task_ms > 0.0 => task_ms,
        None => checks_ms,
    };
    (share, checks_ms)
}

fn task_summary(f: &Value) -> String {
    let tasks = f["_tasks"].as_array().cloned().unwrap_or_default();
    let mut parts: Vec<String> = tasks
        .iter()
        .filter(|t| t["status"] != "skipped")
        .map(|t| {
            let name = t["task"].as_str().unwrap_or("?");
            let short: String = name.split_whitespace().next().unwrap_or("?").to_lowercase();
            format!("{short}={:.0}", t["ms"].as_f64().unwrap_or(f64::NAN))
        })
        .collect();
    if let Some(steps) = f["environment_timings_ms"].as_object() {
        let mut s: Vec<String> = steps.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.sort();
        parts.push(format!("[module ms: {}]", s.join(" ")));
    }
    parts.join(" ")
}

fn site_create_job(api: &Api, env_id: &str) -> Result<Option<Value>, String> {
    let jobs = api.get(&format!("/api/jobs?environment_id={env_id}&limit=50"))?;
    let mut found: Vec<Value> = jobs["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|j| j["job_type"] == "site_create")
        .collect();
    found.sort_by(|a, b| {
        a["created_at"]
            .as_str()
            .unwrap_or("")
            .cmp(b["created_at"].as_str().unwrap_or(""))
    });
    Ok(found.into_iter().next())
}

struct Created {
    sites: Vec<(String, String)>, // (site id, env id)
    shell: Vec<String>,           // env ids given to bench-shell-site.sh
}

fn create_site(api: &Api, slug: &str) -> Result<(Value, SystemTime, SystemTime), String> {
    let sent = SystemTime::now();
    let (s, site) = api.call(
        "POST",
        "/api/sites",
        Some(json!({"name": format!("Bench {slug}"), "slug": slug})),
    );
    let answered = SystemTime::now();
    if s != 202 {
        return Err(format!("POST /api/sites: {s} {site}"));
    }
    Ok((site, sent, answered))
}

fn measure_site(
    api: &Api,
    db_url: &str,
    created: &mut Created,
    slug: &str,
) -> Result<SiteRun, String> {
    let t0 = Instant::now();
    let (site, sent, answered) = create_site(api, slug)?;
    let site_id = site["id"].as_str().unwrap_or_default().to_string();
    let env_id = site["primary_environment_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    created.sites.push((site_id, env_id.clone()));
    api.wait_for(
        "the site's environment Ready",
        &format!("/api/environments/{env_id}"),
        POLL,
        SITE_READY_LIMIT,
        |_, v| ready(v),
    )?;
    let total = t0.elapsed().as_secs_f64() * 1000.0;
    let ready_at = SystemTime::now();
    let job = site_create_job(api, &env_id)?.ok_or("no site_create job")?;
    if job["status"] != "succeeded" {
        return Err(format!("site_create job did not succeed: {job}"));
    }
    let created_at = parse_ts(&job["created_at"]).ok_or("job created_at")?;
    let started_at = parse_ts(&job["started_at"]).ok_or("job started_at")?;
    let finished_at = parse_ts(&job["finished_at"]).ok_or("job finished_at")?;
    let facts = job_facts(db_url, &api.rt, job["id"].as_str().unwrap_or_default());
    let (health, health_checks) = health_from_facts(&facts);
    Ok(SiteRun {
        total,
        post: span_ms(wall(sent), wall(answered)),
        pickup: span_ms(wall(answered), created_at),
        start: span_ms(created_at, started_at),
        playbook: span_ms(started_at, finished_at),
        health,
        health_checks,
        after: span_ms(finished_at, wall(ready_at)),
        tasks: task_summary(&facts),
    })
}

fn shell_script() -> std::path::PathBuf {
    std::path::Path::new(REPO).join("scripts/bench-shell-site.sh")
}

/// Runs the command with a time limit; (success, stdout + stderr).
fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let tmp = tempfile::NamedTempFile::new().expect("temp file");
    let out = tmp.reopen().expect("temp file");
    let err = out.try_clone().expect("temp file");
    let Ok(mut child) = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
    else {
        return (false, "cannot start".into());
    };
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = std::fs::read_to_string(tmp.path()).unwrap_or_default();
    (status.is_some_and(|s| s.success()), text)
}

fn measure_shell(created: &mut Created) -> Result<f64, String> {
    let env_id = uuid::Uuid::now_v7().to_string();
    let hex = env_id.replace('-', "");
    let host = format!("shell-{}.127-0-0-1.sslip.io", &hex[hex.len() - 8..]);
    created.shell.push(env_id.clone());
    let t0 = Instant::now();
    let (ok, out) = run_bounded(
        Command::new("bash")
            .arg(shell_script())
            .args([&env_id, &host]),
        SHELL_LIMIT,
    );
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if !ok || !out.lines().any(|l| l.starts_with("ok ")) {
        return Err(format!(
            "bench-shell-site.sh {env_id} {host} failed:\n{out}"
        ));
    }
    Ok(ms)
}

fn delete_shell(env_id: &str) -> Result<(), String> {
    let (ok, out) = run_bounded(
        Command::new("bash")
            .arg(shell_script())
            .args(["--delete", env_id]),
        SHELL_LIMIT,
    );
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bench-shell-site.sh --delete {env_id} failed:\n{out}"
        ))
    }
}

/// DELETE every site (queued jobs of theirs cancelled: nothing ran yet, so there is little to
/// tear down) and wait until all are gone.
fn delete_sites(api: &Api, sites: &[(String, String)]) -> Result<(), String> {
    let mut errors = Vec::new();
    for (site_id, env_id) in sites {
        let (s, site) = api.call("GET", &format!("/api/sites/{site_id}"), None);
        if s == 404 {
            continue;
        }
        let sv = site["state_version"].as_i64().unwrap_or(0);
        let (s, v) = api.call(
            "DELETE",
            &format!("/api/sites/{site_id}?state_version={sv}"),
            None,
        );
        if s != 202 && s != 404 {
            errors.push(format!("DELETE site {site_id}: {s} {v}"));
        }
        if let Ok(jobs) = api.get(&format!("/api/jobs?environment_id={env_id}&status=queued")) {
            for j in jobs["items"].as_array().cloned().unwrap_or_default() {
                if j["job_type"] != "env_delete" {
                    let id = j["id"].as_str().unwrap_or_default();
                    api.call("POST", &format!("/api/jobs/{id}/cancel"), None);
                }
            }
        }
    }
    let deadline = Instant::now() + GONE_LIMIT;
    for (site_id, _) in sites {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = api.wait_for(
            "the site gone",
            &format!("/api/sites/{site_id}"),
            Duration::from_millis(200),
            left,
            |s, _| s == 404,
        ) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// Sites created back to back; pickup = the POST's answer → its job's `created_at` (like the
/// sequential figure: "pickup after an API write").
fn burst(api: &Api, created: &mut Created, n: usize, tag: &str) -> Result<Vec<f64>, String> {
    let first = created.sites.len();
    let t0 = Instant::now();
    let mut answered_at = Vec::new();
    for i in 0..n {
        let (site, _, answered) = create_site(api, &format!("{tag}-burst-{i}"))?;
        answered_at.push(answered);
        created.sites.push((
            site["id"].as_str().unwrap_or_default().to_string(),
            site["primary_environment_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
    }
    let writes = t0.elapsed();
    println!(
        "  {n} POST /api/sites back to back in {:.0} ms",
        writes.as_secs_f64() * 1000.0
    );
    let mut pickups = Vec::new();
    let mut from_request = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for ((_, env_id), answered) in created.sites[first..].iter().zip(&answered_at) {
        let env = api.get(&format!("/api/environments/{env_id}"))?;
        let env_created = parse_ts(&env["created_at"]).ok_or("environment created_at")?;
        let job = loop {
            if let Some(j) = site_create_job(api, env_id)? {
                break j;
            }
            if Instant::now() > deadline {
                return Err(format!("no site_create job for environment {env_id}"));
            }
            std::thread::sleep(POLL);
        };
        let job_created = parse_ts(&job["created_at"]).ok_or("job created_at")?;
        // The job may exist before the client has read the answer: 0 then.
        pickups.push(span_ms(wall(*answered), job_created).max(0.0));
        from_request.push(span_ms(env_created, job_created));
    }
    from_request.sort_by(f64::total_cmp);
    println!(
        "  (environment row built → job created, i.e. including the POST's own transaction: \
         p50 {:.0} ms, max {:.0} ms)",
        from_request[from_request.len() / 2],
        from_request.last().copied().unwrap_or(0.0)
    );
    Ok(pickups)
}

// ---------------------------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; a filter other than "site_create" skips this target.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| !a.starts_with('-') && !"site_create".contains(a.as_str()))
    {
        return;
    }
    if let Err(why) = prerequisites() {
        eprintln!("site_create benchmark not run: {why}");
        std::process::exit(2);
    }
    let n = env_usize("BENCH_SITES", 5).clamp(1, 50);
    let burst_n = env_usize("BENCH_BURST", 30).clamp(0, 200);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tag = format!("b{}", &uuid::Uuid::now_v7().simple().to_string()[24..]);

    println!(
        "Site creation benchmark (issue 4): {} cores, {n} sites, burst of {burst_n}, {}",
        cores,
        OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default()
    );
    let server = start_server();
    let db_url = format!(
        "sqlite://{}?mode=ro",
        server.data.join("pressluft.db").display()
    );
    let api = Api::connect(server.port);
    let mut created = Created {
        sites: Vec::new(),
        shell: Vec::new(),
    };
    let result = run(&api, &db_url, &mut created, n, burst_n, &tag);

    println!("\ncleanup");
    let mut clean = true;
    for env_id in created.shell.clone() {
        if let Err(e) = delete_shell(&env_id) {
            eprintln!("{e}");
            clean = false;
        }
    }
    let t = Instant::now();
    if let Err(e) = delete_sites(&api, &created.sites) {
        eprintln!("{e}");
        clean = false;
    }
    println!(
        "  {} API sites deleted and gone in {:.1} s, {} shell sites removed{}",
        created.sites.len(),
        t.elapsed().as_secs_f64(),
        created.shell.len(),
        if clean {
            ""
        } else {
            " (with errors, see above)"
        }
    );
    let log = server.log.clone();
    drop(api);
    drop(server);
    if let Err(e) = result {
        eprintln!("\nbenchmark failed: {e}\nserver log: {}", log.display());
        if std::env::var_os("BENCH_SERVER_LOG").is_none() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            for l in tail.into_iter().rev() {
                eprintln!("  {l}");
            }
        }
        std::process::exit(1);
    }
    if !clean {
        std::process::exit(1);
    }
}

fn run(
    api: &Api,
    db_url: &str,
    created: &mut Created,
    n: usize,
    burst_n: usize,
    tag: &str,
) -> Result<(), String> {
    // 1. the local node, provisioned over SSH on first start
    let t0 = Instant::now();
    let nodes = api.get("/api/nodes")?;
    let local = nodes["items"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["is_local"] == true).cloned())
        .ok_or("no local node registered (is this root with sshd running?)")?;
    let local_id = local["id"].as_str().unwrap_or_default().to_string();
    api.wait_for(
        "the local node active",
        &format!("/api/nodes/{local_id}"),
        Duration::from_millis(100),
        NODE_READY_LIMIT,
        |_, v| ready(v),
    )?;
    println!(
        "local node active after {:.1} s (first provision over SSH)",
        t0.elapsed().as_secs_f64()
    );

    // 2. sites through the API, interleaved with the shell script
    println!(
        "\nPOST /api/sites -> Ready, sequential (ms; poll every {} ms)",
        POLL.as_millis()
    );
    println!(
        "  {:<4} {:>7} {:>6} {:>7} {:>6} {:>9} {:>8} {:>7} {:>7}   {:>7}",
        "site",
        "total",
        "post",
        "pickup",
        "start",
        "playbook",
        "health",
        "checks",
        "after",
        "shell"
    );
    let mut runs = Vec::new();
    let mut shell = Vec::new();
    for i in 0..n {
        // Alternating order, so that neither side always runs right after the other (warm
        // caches, writeback); everything is deleted only at the end, outside the measurements.
        let (r, s) = if i % 2 == 0 {
            let r = measure_site(api, db_url, created, &format!("{tag}-{i}"))?;
            (r, measure_shell(created)?)
        } else {
            let s = measure_shell(created)?;
            (
                measure_site(api, db_url, created, &format!("{tag}-{i}"))?,
                s,
            )
        };
        println!(
            "  {:<4} {:>7.0} {:>6.0} {:>7.0} {:>6.0} {:>9.0} {:>8.0} {:>7.0} {:>7.0}   {:>7.0}",
            i + 1,
            r.total,
            r.post,
            r.pickup,
            r.start,
            r.playbook,
            r.health,
            r.health_checks,
            r.after,
            s
        );
        println!("       tasks: {}", r.tasks);
        runs.push(r);
        shell.push(s);
    }
    let col = |f: fn(&SiteRun) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let total = col(|r| r.total);
    let shell_median = median(&shell);
    println!(
        "  {:<4} {:>7.0} {:>6.0} {:>7.0} {:>6.0} {:>9.0} {:>8.0} {:>7.0} {:>7.0}   {:>7.0}",
        "med",
        total,
        col(|r| r.post),
        col(|r| r.pickup),
        col(|r| r.start),
        col(|r| r.playbook),
        col(|r| r.health),
        col(|r| r.health_checks),
        col(|r| r.after),
        shell_median
    );
    println!(
        "  total = POST→Ready; post = the POST's latency; pickup = POST answered → job created;\n  \
         start = job created → started; playbook = job started → finished (health = the health\n  \
         check's share, checks = the slowest check itself); after = job finished → Ready seen;\n  \
         shell = scripts/bench-shell-site.sh wall time (same node steps by hand, same run)"
    );
    let ratio = total / shell_median;
    println!(
        "\nPOST→Ready median {:.2} s, shell script median {:.2} s: ratio {ratio:.2}×   target <= {RATIO_MAX:.0}×   {}",
        total / 1000.0,
        shell_median / 1000.0,
        verdict(ratio <= RATIO_MAX)
    );
    let seq_pickups: Vec<f64> = runs.iter().map(|r| r.pickup).collect();
    println!(
        "queue pickup (sequential sites, POST answered → job created): median {:.0} ms, max {:.0} ms",
        median(&seq_pickups),
        seq_pickups.iter().copied().fold(f64::NAN, f64::max)
    );

    // 3. queue pickup of a burst
    if burst_n > 0 {
        println!("\nqueue pickup, burst (POST answered → job created)");
        let pickups = burst(api, created, burst_n, tag)?;
        let p99 = percentile(&pickups, 99.0);
        println!(
            "  p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms   target p99 <= {PICKUP_P99_MAX_MS:.0} ms   {}",
            percentile(&pickups, 50.0),
            p99,
            pickups.iter().copied().fold(f64::NAN, f64::max),
            verdict(p99 <= PICKUP_P99_MAX_MS)
        );
    }
    Ok(())
}
