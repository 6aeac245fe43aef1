//! Several replicas on one database (issue 11): leases with fencing (a stale holder's commit is
//! refused, an expired lease hands over), two runtimes sharing the work against a scripted node
//! (tests/fixtures/fake-node.sh), a replica that lost its lease stopping while another re-plans
//! its job, wake-ups and event streams across replicas (PostgreSQL: LISTEN/NOTIFY), and the
//! Prometheus `/metrics` endpoint. Runs on SQLite, and on PostgreSQL with
//! PRESSLUFT_TEST_POSTGRES_URL (scripts/test-postgres.sh).
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{As, TestApp};
use futures_util::StreamExt;
use poem::http::{Method, StatusCode};
use poem::Endpoint;
use pressluft::notify::Notifier;
use pressluft::runner::Runner;
use pressluft::runtime::lease::{self, Held};
use pressluft::runtime::{Runtime, RuntimeConfig};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_fence_and_hand_over() {
    let app = TestApp::new().await;
    let db = &app.db;
    let key = "run:site/test";
    // A takes the lease; B cannot while it lasts; A renews with the same fence.
    let fa = lease::acquire_fenced(db, key, "A", secs(1))
        .await
        .unwrap()
        .expect("A gets a free lease");
    assert_eq!(
        lease::acquire_fenced(db, key, "B", secs(1)).await.unwrap(),
        None
    );
    assert_eq!(
        lease::acquire_fenced(db, key, "A", secs(1)).await.unwrap(),
        Some(fa),
        "renewing keeps the fence"
    );
    let a = Held {
        key: key.into(),
        holder: "A".into(),
        fence: fa,
    };
    assert!(lease::check(db, &a, secs(1)).await.unwrap());

    // A stops renewing: after expiry B takes over with a higher fence.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let fb = lease::acquire_fenced(db, key, "B", secs(30))
        .await
        .unwrap()
        .expect("expired lease hands over");
    assert!(fb > fa, "fence grows on handover: {fa} -> {fb}");
    let b = Held {
        key: key.into(),
        holder: "B".into(),
        fence: fb,
    };

    // A's late commit is refused inside its transaction (and its write rolled back).
    let tx = pressluft::store::begin_write(db).await.unwrap();
    assert!(
        !lease::check(&tx, &a, secs(30)).await.unwrap(),
        "the stale holder's fencing check fails"
    );
    drop(tx);
    assert!(lease::check(db, &b, secs(30)).await.unwrap());
    // A cannot take it back while B holds it, even by renewing.
    assert_eq!(
        lease::acquire_fenced(db, key, "A", secs(1)).await.unwrap(),
        None
    );

    // Released: the next holder gets a fresh fence; the released holder's check fails.
    lease::release_held(db, &b).await.unwrap();
    let fa2 = lease::acquire_fenced(db, key, "A", secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(fa2 > fb);
    assert!(!lease::check(db, &b, secs(30)).await.unwrap());

    // The same holder coming back after its lease expired also gets a new fence, so an old
    // run of its own cannot commit either.
    let a2 = Held {
        key: key.into(),
        holder: "A".into(),
        fence: fa2,
    };
    lease::release_held(db, &a2).await.unwrap();
    let fa3 = lease::acquire_fenced(db, key, "A", secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(fa3 > fa2);
    assert!(!lease::check(db, &a2, secs(30)).await.unwrap());

    // Reclaiming an expired lease moves the fence on; an unexpired one is left alone.
    assert!(!lease::reclaim_expired(db, key, "reaper").await.unwrap());
    let k2 = "run:node/test";
    let f = lease::acquire_fenced(db, k2, "A", time::Duration::milliseconds(200))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lease::reclaim_expired(db, k2, "reaper").await.unwrap());
    assert!(
        !lease::check(
            db,
            &Held {
                key: k2.into(),
                holder: "A".into(),
                fence: f
            },
            secs(30)
        )
        .await
        .unwrap(),
        "a reclaimed holder is fenced off"
    );
}

struct Fake {
    dir: tempfile::TempDir,
    /// The scripted node is configured through the process environment: one test at a time.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

static FAKE_NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Fake {
    fn set(&self, file: &str, v: &str) {
        std::fs::write(self.dir.path().join(file), v).unwrap();
    }
}

async fn fake_node(app: &TestApp) -> Fake {
    let fake = Fake {
        _serial: FAKE_NODE.lock().await,
        dir: tempfile::tempdir().unwrap(),
    };
    std::env::set_var("PRESSLUFT_FAKE_NODE_DIR", fake.dir.path());
    let key = pressluft::ssh::control_key(&app.db, &app.state.secrets)
        .await
        .unwrap();
    let pub_key: String = key
        .public_openssh
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    app.exec(&format!("UPDATE nodes SET host_key = '{pub_key}'"))
        .await;
    fake
}

fn replica(app: &TestApp, fake: &Fake, notifier: Notifier) -> (Arc<Runtime>, CancellationToken) {
    replica_with(app, fake, notifier, |_| {}, true)
}

/// A replica with `tune` applied to its configuration; started or not.
fn replica_with(
    app: &TestApp,
    fake: &Fake,
    notifier: Notifier,
    tune: impl FnOnce(&mut RuntimeConfig),
    start: bool,
) -> (Arc<Runtime>, CancellationToken) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let work_dir = fake
        .dir
        .path()
        .join(format!("run-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&work_dir).unwrap();
    let runner = Runner {
        ansible_dir: repo.join("ansible"),
        ansible_playbook: repo.join("tests/fixtures/fake-node.sh"),
        work_dir,
        forkserver: None,
    };
    let cfg = RuntimeConfig {
        resync: Duration::from_secs(2),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_millis(400),
        job_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(2),
        probe_interval: Duration::from_secs(3600),
        lease_ttl: Duration::from_secs(3),
        ..Default::default()
    };
    let mut cfg = cfg;
    tune(&mut cfg);
    let stop = CancellationToken::new();
    let rt = Runtime::new(
        app.db.clone(),
        app.state.secrets.clone(),
        notifier,
        Some(Arc::new(runner)),
        cfg,
        common::ADMIN_EMAIL.into(),
        stop.clone(),
    );
    if start {
        rt.start();
    }
    (rt, stop)
}

async fn wait_for(
    app: &TestApp,
    who: &As,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = app.call(Method::GET, path, None, who).await;
        if done(&r.body) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rows(app: &TestApp, sql: &str) -> Vec<sea_orm::QueryResult> {
    let backend = app.db.get_database_backend();
    app.db
        .query_all_raw(Statement::from_string(backend, sql.to_string()))
        .await
        .unwrap()
}

/// From the job table: no site (and no node) ever had two jobs running at once, whichever
/// replica ran them.
async fn assert_no_overlap(app: &TestApp) -> std::collections::BTreeSet<String> {
    let mut by_scope: std::collections::BTreeMap<String, Vec<(String, String, String)>> =
        Default::default();
    let mut workers = std::collections::BTreeSet::new();
    for r in rows(
        app,
        "SELECT COALESCE(site_id, node_id), started_at, finished_at, locked_by FROM jobs \
         WHERE started_at IS NOT NULL ORDER BY started_at",
    )
    .await
    {
        let scope: String = r.try_get_by_index(0).unwrap();
        let started: String = r.try_get_by_index(1).unwrap();
        let finished: Option<String> = r.try_get_by_index(2).unwrap();
        let by: Option<String> = r.try_get_by_index(3).unwrap();
        workers.insert(by.clone().unwrap_or_default());
        by_scope.entry(scope).or_default().push((
            started,
            finished.unwrap_or_else(|| "9999".into()),
            by.unwrap_or_default(),
        ));
    }
    for (scope, jobs) in &by_scope {
        for w in jobs.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "two jobs of {scope} overlapped: {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
    workers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_work_and_a_lost_lease_hands_over() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let fake = fake_node(&app).await;
    // Replica A shares the API's notifier; B hears of writes through PostgreSQL's NOTIFY, or on
    // SQLite at its resync.
    let (a, stop_a) = replica(&app, &fake, app.state.notifier.clone());
    let (b, stop_b) = replica(&app, &fake, Notifier::default());
    assert_ne!(a.worker_id, b.worker_id);

    eprintln!("replicas: four sites converge");
    let mut envs = Vec::new();
    let mut sites = Vec::new();
    for i in 0..4 {
        let s = app.create_site(&me, &format!("rep{i}")).await;
        envs.push(s["primary_environment_id"].as_str().unwrap().to_string());
        sites.push(s["id"].as_str().unwrap().to_string());
    }
    for e in &envs {
        wait_for(
            &app,
            &me,
            &format!("/api/environments/{e}"),
            "env active",
            |v| v["status"] == "active",
        )
        .await;
    }
    let workers = assert_no_overlap(&app).await;
    eprintln!("replicas: jobs ran on {workers:?}");

    eprintln!("replicas: a running job's lease is taken away from its replica");
    fake.set("sleep", "8");
    let env_id = &envs[0];
    let env = app
        .call(
            Method::GET,
            &format!("/api/environments/{env_id}"),
            None,
            &me,
        )
        .await
        .body;
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/environments/{env_id}"),
            Some(json!({"state_version": env["state_version"], "redis_cache_enabled": false})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let running = wait_for(
        &app,
        &me,
        &format!("/api/jobs?environment_id={env_id}&status=running"),
        "job running",
        |v| v["items"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let job_id = running["items"][0]["id"].as_str().unwrap().to_string();
    let key = format!("run:site/{}", sites[0]);
    let lost_before = pressluft::runtime::stats::global().leases_lost();
    // An intruder holds it for two seconds (as if the replica had stalled past its lease and
    // another replica had taken it over).
    let until = pressluft::clock::from_now(secs(2));
    app.exec(&format!(
        "UPDATE leases SET holder = 'intruder', fence = fence + 1, expires_at = '{until}' \
         WHERE resource_key = '{key}'"
    ))
    .await;
    fake.set("sleep", "0");

    eprintln!("replicas: the job is marked interrupted, and the environment converges again");
    let job = wait_for(
        &app,
        &me,
        &format!("/api/jobs/{job_id}"),
        "job interrupted",
        |v| v["status"] == "cancelled",
    )
    .await;
    assert!(
        job["error_message"]
            .as_str()
            .is_some_and(|m| m.starts_with("interrupted")),
        "{job}"
    );
    wait_for(
        &app,
        &me,
        &format!("/api/environments/{env_id}"),
        "env converged after the handover",
        |v| v["status"] == "active" && v["observed_generation"] == v["generation"],
    )
    .await;
    let events = app
        .call(
            Method::GET,
            &format!("/api/events?resource_id={env_id}&limit=200"),
            None,
            &me,
        )
        .await
        .body;
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "JobInterrupted"),
        "{events}"
    );
    // The replica that lost the lease noticed, stopped, and committed nothing over the reaper's
    // record.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pressluft::runtime::stats::global().leases_lost() == lost_before {
        assert!(Instant::now() < deadline, "the stale replica never noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = app
        .call(Method::GET, &format!("/api/jobs/{job_id}"), None, &me)
        .await
        .body;
    assert!(
        job["error_message"]
            .as_str()
            .is_some_and(|m| m.starts_with("interrupted")),
        "the stale replica's outcome did not overwrite the record: {job}"
    );
    let succeeded = app
        .call(
            Method::GET,
            &format!("/api/jobs?environment_id={env_id}&status=succeeded"),
            None,
            &me,
        )
        .await
        .body;
    assert!(
        succeeded["items"].as_array().unwrap().len() >= 2,
        "{succeeded}"
    );
    assert_no_overlap(&app).await;
    let left: Vec<_> = rows(&app, "SELECT id FROM jobs WHERE status = 'running'").await;
    assert!(left.is_empty(), "no job stays running");
    stop_a.cancel();
    stop_b.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakeups_and_event_streams_cross_replicas() {
    if std::env::var("PRESSLUFT_TEST_POSTGRES_URL").is_err() {
        eprintln!("skipped: LISTEN/NOTIFY needs PostgreSQL (scripts/test-postgres.sh)");
        return;
    }
    let app = TestApp::new().await;
    let me = app.token().await;
    // Replica A: the test app. Replica B: its own notifier and API on the same database.
    tokio::spawn(pressluft::notify::bridge_postgres(
        app.db.clone(),
        app.state.notifier.clone(),
    ));
    let state_b = pressluft::api::AppState {
        notifier: Notifier::default(),
        credentials: Default::default(),
        ..app.state.clone()
    };
    tokio::spawn(pressluft::notify::bridge_postgres(
        app.db.clone(),
        state_b.notifier.clone(),
    ));
    let mut heard = state_b.notifier.subscribe();
    let ep_b = pressluft::api::app(state_b.clone(), None);
    tokio::time::sleep(Duration::from_millis(500)).await; // LISTEN connections up
    let As::Token(token) = &me else {
        unreachable!()
    };
    let resp = ep_b
        .call(
            poem::Request::builder()
                .uri("/api/events/stream".parse().unwrap())
                .header("authorization", format!("Bearer {token}"))
                .finish(),
        )
        .await
        .unwrap();
    let resp = poem::IntoResponse::into_response(resp);
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.into_body().into_bytes_stream();

    let t0 = Instant::now();
    let site = app.create_site(&me, "crossrep").await;
    let site_id = site["id"].as_str().unwrap().to_string();
    // B's notifier hears A's write.
    tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let c = heard.recv().await.unwrap();
            if c.id == site_id {
                return;
            }
        }
    })
    .await
    .expect("replica B was woken by A's write within a second");
    // B's event stream shows the event A wrote.
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(1), async {
        while !seen.contains(&site_id) {
            let chunk = stream.next().await.unwrap().unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("B's stream did not show A's event within a second: {seen}"));
    eprintln!("cross-replica event after {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let r = app.call(Method::GET, "/metrics", None, &As::Nobody).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.call(Method::GET, "/api/healthz", None, &As::Nobody)
        .await;
    app.call(Method::GET, "/api/sites", None, &me).await;
    let r = app.call(Method::GET, "/metrics", None, &me).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.body.as_str().expect("text body").to_string();
    let mut types = std::collections::BTreeMap::new();
    let mut samples: Vec<(String, String, f64)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram"].contains(&ty),
                "type {ty} of {name}"
            );
            types.insert(name.to_string(), ty.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                assert!(l.ends_with('}'), "{line}");
                (n, l.trim_end_matches('}'))
            }
            None => (series, ""),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample without TYPE: {line}");
        samples.push((name.to_string(), labels.to_string(), v));
    }
    let has = |name: &str, label: &str| {
        samples
            .iter()
            .any(|(n, l, _)| n == name && l.contains(label))
    };
    for family in [
        "pressluft_workqueue_depth",
        "pressluft_jobs",
        "pressluft_playbook_runs_total",
        "pressluft_playbook_failures_total",
        "pressluft_reconcile_duration_seconds",
        "pressluft_job_duration_seconds",
        "pressluft_http_request_duration_seconds",
        "pressluft_probe_round_seconds",
        "pressluft_lease_acquisitions_total",
        "pressluft_lease_handovers_total",
    ] {
        assert!(types.contains_key(family), "{family} missing:\n{text}");
    }
    assert!(
        has(
            "pressluft_http_request_duration_seconds_count",
            "route=\"listSites\",status=\"2xx\""
        ),
        "{text}"
    );
    assert!(has(
        "pressluft_http_request_duration_seconds_bucket",
        "route=\"health\""
    ));
    // The JSON counters stay.
    let r = app.call(Method::GET, "/api/metrics", None, &me).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["jobs_queued"].is_u64());
}

/// The most jobs that ever ran at once (from the job table's start and finish times), overall.
async fn max_concurrent(app: &TestApp) -> usize {
    let mut edges: Vec<(String, i32)> = Vec::new();
    for r in rows(
        app,
        "SELECT started_at, finished_at FROM jobs WHERE started_at IS NOT NULL",
    )
    .await
    {
        let started: String = r.try_get_by_index(0).unwrap();
        let finished: Option<String> = r.try_get_by_index(1).unwrap();
        edges.push((started, 1));
        edges.push((finished.unwrap_or_else(|| "9999".into()), -1));
    }
    // at equal times a finish comes before a start
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// Issue 11 item 3: the per-node job limit holds across replicas (slot leases), a replica runs
/// at most `max_playbooks` playbooks (more jobs stay queued), and slots held elsewhere (another
/// replica, or node-wide work waiting) keep new jobs queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_limit_across_replicas_and_playbook_bound() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let fake = fake_node(&app).await;
    fake.set("sleep", "1");
    let node_id: String = rows(&app, "SELECT id FROM nodes")
        .await
        .first()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();

    eprintln!(
        "node limit: another replica holds every slot of the node; a new site's job stays queued"
    );
    let tune = |c: &mut RuntimeConfig| {
        c.node_job_limit = 2;
        c.max_playbooks = 8;
    };
    let (a, stop_a) = replica_with(&app, &fake, app.state.notifier.clone(), tune, true);
    let (_b, stop_b) = replica_with(&app, &fake, Notifier::default(), tune, true);
    // after their start-up (on SQLite it frees the leases of holders not alive in this process)
    // and the node's provisioning (node-wide: it holds every slot while it runs)
    wait_for(
        &app,
        &me,
        &format!("/api/nodes/{node_id}"),
        "node active",
        |v| v["status"] == "active",
    )
    .await;
    for k in 0..2 {
        lease::acquire_fenced(
            &app.db,
            &format!("slot:node/{node_id}/{k}"),
            "other",
            secs(30),
        )
        .await
        .unwrap()
        .expect("free slot");
    }
    let first = app.create_site(&me, "slots0").await;
    let first_env = first["primary_environment_id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let queued = app
        .call(
            Method::GET,
            &format!("/api/jobs?environment_id={first_env}"),
            None,
            &me,
        )
        .await
        .body;
    assert!(
        queued["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "queued"),
        "no job may start while another replica holds the node's slots: {queued}"
    );

    eprintln!(
        "node limit: the other replica frees its slots; six sites on one node, two replicas, at most 2 jobs at once"
    );
    for k in 0..2 {
        lease::release(&app.db, &format!("slot:node/{node_id}/{k}"), "other")
            .await
            .unwrap();
    }
    let mut envs = vec![first_env];
    for i in 1..6 {
        let s = app.create_site(&me, &format!("slots{i}")).await;
        envs.push(s["primary_environment_id"].as_str().unwrap().to_string());
    }
    for e in &envs {
        wait_for(
            &app,
            &me,
            &format!("/api/environments/{e}"),
            "env active",
            |v| v["status"] == "active",
        )
        .await;
    }
    let most = max_concurrent(&app).await;
    assert!(most <= 2, "{most} jobs ran at once on a node limited to 2");
    assert_eq!(most, 2, "the two slots were used in parallel");
    let workers = assert_no_overlap(&app).await;
    eprintln!("node limit: jobs ran on {workers:?}, at most {most} at once");
    stop_a.cancel();
    stop_b.cancel();
    drop(a);

    eprintln!("playbook bound: one replica with --max-playbooks 1 runs one playbook at a time");
    app.exec("DELETE FROM jobs").await;
    let (_c, stop_c) = replica_with(
        &app,
        &fake,
        app.state.notifier.clone(),
        |c| {
            c.node_job_limit = 4;
            c.max_playbooks = 1;
        },
        true,
    );
    let mut more = Vec::new();
    for i in 0..3 {
        let s = app.create_site(&me, &format!("bound{i}")).await;
        more.push(s["primary_environment_id"].as_str().unwrap().to_string());
    }
    // while one runs, the others are queued (not running)
    let running = wait_for(
        &app,
        &me,
        "/api/jobs?status=running",
        "a job running",
        |v| v["items"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(running["items"].as_array().unwrap().len(), 1, "{running}");
    for e in &more {
        wait_for(
            &app,
            &me,
            &format!("/api/environments/{e}"),
            "env active",
            |v| v["status"] == "active",
        )
        .await;
    }
    assert_eq!(max_concurrent(&app).await, 1);
    stop_c.cancel();
}

/// Issue 11: the writes of a reconcile pass commit only while the pass holds its lease with the
/// fence it started with. A pass of a replica whose lease another replica took meanwhile commits
/// nothing (no job, no phase change, no event); with the current fence it goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_pass_writes_are_fenced() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let fake = fake_node(&app).await;
    // not started: the test runs the passes itself
    let (rt, _stop) = replica_with(&app, &fake, Notifier::default(), |_| {}, false);
    let site = app.create_site(&me, "fenced").await;
    let env_id = site["primary_environment_id"].as_str().unwrap().to_string();
    let site_id = site["id"].as_str().unwrap().to_string();
    let node_id: String = rows(&app, "SELECT id FROM nodes")
        .await
        .first()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let count = |sql: String| {
        let app = &app;
        async move { rows(app, &sql).await.len() }
    };
    let jobs_before = count("SELECT id FROM jobs".into()).await;
    let events_before = count("SELECT id FROM events".into()).await;
    let env_sql = format!("SELECT status FROM environments WHERE id = '{env_id}'");
    let env_status = || async {
        let r = rows(&app, &env_sql).await;
        r[0].try_get_by_index::<String>(0).unwrap()
    };
    let status_before = env_status().await;

    use pressluft::notify::Kind;
    for (kind, id) in [
        (Kind::Environment, env_id.clone()),
        (Kind::Site, site_id.clone()),
        (Kind::Node, node_id.clone()),
    ] {
        let key = format!("{}/{id}", kind.as_str());
        eprintln!("fenced pass: {key} with a lease another replica took over");
        let mine = lease::acquire_fenced(&app.db, &key, &rt.worker_id, secs(30))
            .await
            .unwrap()
            .unwrap();
        // another replica takes it over (as after a stall past the lease time)
        app.exec(&format!(
            "UPDATE leases SET holder = 'other', fence = fence + 1 WHERE resource_key = '{key}'"
        ))
        .await;
        let stale = Held {
            key: key.clone(),
            holder: rt.worker_id.clone(),
            fence: mine,
        };
        let r = rt.reconcile_as(kind, &id, stale).await;
        eprintln!("fenced pass: {key}: {r:?}");
        assert!(
            matches!(
                r,
                Err(pressluft::runtime::RuntimeError::LeaseLost(_)) | Ok(_)
            ),
            "{r:?}"
        );
        if kind == Kind::Environment {
            assert!(
                matches!(r, Err(pressluft::runtime::RuntimeError::LeaseLost(_))),
                "the environment's first pass writes (a job, its phase), so it must be refused: {r:?}"
            );
        }
        assert_eq!(
            count("SELECT id FROM jobs".into()).await,
            jobs_before,
            "no job"
        );
        assert_eq!(
            count("SELECT id FROM events".into()).await,
            events_before,
            "no event"
        );
        assert_eq!(env_status().await, status_before);
    }

    eprintln!("fenced pass: with the current fence the same pass commits");
    let row = lease::get(&app.db, &format!("environment/{env_id}"))
        .await
        .unwrap()
        .unwrap();
    let current = Held {
        key: format!("environment/{env_id}"),
        holder: "other".into(),
        fence: row.fence,
    };
    rt.reconcile_as(Kind::Environment, &env_id, current)
        .await
        .unwrap();
    assert!(
        count("SELECT id FROM events".into()).await > events_before,
        "the pass's events are recorded"
    );
    drop(rt);
}
