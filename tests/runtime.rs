//! The runtime against a scripted node (a stand-in for ansible-playbook whose exit status the test
//! sets): provisioning, a site converging to Ready, retries with backoff ending in `failed` with
//! `Stalled`, recovery by reset, cancelling a running job, deletion as a finalizer.
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{As, TestApp};
use poem::http::{Method, StatusCode};
use pressluft::runner::Runner;
use pressluft::runtime::{Runtime, RuntimeConfig};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn set(&self, file: &str, v: &str) {
        std::fs::write(self.dir.path().join(file), v).unwrap();
    }
    fn calls(&self) -> Vec<String> {
        self.lines("calls")
    }
    /// Runs that have read `sleep` and are sleeping.
    fn sleeping(&self) -> Vec<String> {
        self.lines("sleeping")
    }
    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

async fn start(app: &TestApp) -> (Fake, Arc<Runtime>, CancellationToken) {
    let fake = Fake {
        dir: tempfile::tempdir().unwrap(),
    };
    std::env::set_var("PRESSLUFT_FAKE_NODE_DIR", fake.dir.path());
    // The local node's host key is pinned as at registration (any valid key; the fake never
    // connects).
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
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let runner = Runner {
        ansible_dir: repo.join("ansible"),
        ansible_playbook: repo.join("tests/fixtures/fake-node.sh"),
        work_dir: fake.dir.path().join("run"),
        forkserver: None,
    };
    std::fs::create_dir_all(&runner.work_dir).unwrap();
    let cfg = RuntimeConfig {
        resync: Duration::from_secs(2),
        max_attempts: 3,
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_millis(400),
        job_timeout: Duration::from_secs(60),
        node_job_limit: 4,
        shutdown_grace: Duration::from_secs(5),
        probe_interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let rt = Runtime::new(
        app.db.clone(),
        app.state.secrets.clone(),
        app.state.notifier.clone(),
        Some(Arc::new(runner)),
        cfg,
        common::ADMIN_EMAIL.into(),
        stop.clone(),
    );
    rt.start();
    (fake, rt, stop)
}

async fn wait_for(
    app: &TestApp,
    who: &As,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn condition(v: &Value, t: &str) -> (String, String) {
    let c = v["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == t).cloned())
        .unwrap_or(Value::Null);
    (
        c["status"].as_str().unwrap_or("").to_string(),
        c["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converge_fail_stall_reset_cancel_delete() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let (fake, _rt, stop) = start(&app).await;

    // The local node is provisioned by a node_provision job and becomes active.
    let nodes = app.call(Method::GET, "/api/nodes", None, &me).await.body;
    let node_id = nodes["items"][0]["id"].as_str().unwrap().to_string();
    let node = wait_for(
        &app,
        &me,
        &format!("/api/nodes/{node_id}"),
        "node active",
        |v| v["status"] == "active",
    )
    .await;
    assert_eq!(condition(&node, "Ready").0, "True");
    assert_eq!(
        condition(&node, "Prerequisites"),
        ("True".into(), "Met".into())
    );
    assert_eq!(node["observed_generation"], node["generation"]);

    // A site converges: site_create runs once; phase active, Ready=True, observed = generation.
    let site = app.create_site(&me, "fake").await;
    let env_id = site["primary_environment_id"].as_str().unwrap().to_string();
    let env = wait_for(
        &app,
        &me,
        &format!("/api/environments/{env_id}"),
        "env ready",
        |v| v["status"] == "active",
    )
    .await;
    assert_eq!(condition(&env, "Ready"), ("True".into(), "Healthy".into()));
    assert_eq!(env["observed_generation"], env["generation"]);
    wait_for(
        &app,
        &me,
        &format!("/api/sites/{}", site["id"].as_str().unwrap()),
        "site active",
        |v| v["status"] == "active",
    )
    .await;
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| *c == "site-create.yml")
            .count(),
        1
    );

    // A converged resource yields no further work, even across resyncs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| *c == "site-create.yml")
            .count(),
        1,
        "converged: no new job"
    );

    // The node stops answering: a spec change is retried with backoff, then the environment is
    // failed with Stalled and the last error code.
    fake.set("exit", "4");
    let v = env["state_version"].as_i64().unwrap();
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/environments/{env_id}"),
            Some(json!({"state_version": v, "redis_cache_enabled": false})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let env = wait_for(
        &app,
        &me,
        &format!("/api/environments/{env_id}"),
        "env failed",
        |v| v["status"] == "failed",
    )
    .await;
    assert_eq!(
        condition(&env, "Stalled"),
        ("True".into(), "AttemptsExhausted".into())
    );
    let jobs = app
        .call(
            Method::GET,
            &format!("/api/jobs?environment_id={env_id}&status=failed"),
            None,
            &me,
        )
        .await
        .body;
    let failed = jobs["items"].as_array().unwrap();
    assert_eq!(failed.len(), 3, "three attempts: {jobs}");
    assert!(failed
        .iter()
        .all(|j| j["error_code"] == "ANSIBLE_HOST_UNREACHABLE"));
    let attempts: Vec<i64> = failed
        .iter()
        .map(|j| j["attempt_count"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [3, 2, 1]);
    wait_for(
        &app,
        &me,
        &format!("/api/sites/{}", site["id"].as_str().unwrap()),
        "site failed",
        |v| v["status"] == "failed",
    )
    .await;
    // Stalled means no more attempts by themselves.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let jobs = app
        .call(
            Method::GET,
            &format!("/api/jobs?environment_id={env_id}&status=failed"),
            None,
            &me,
        )
        .await
        .body;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 3);

    // Corrected and reset: it converges.
    fake.set("exit", "0");
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env_id}/reset"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let env = wait_for(
        &app,
        &me,
        &format!("/api/environments/{env_id}"),
        "env active again",
        |v| v["status"] == "active" && v["observed_generation"] == v["generation"],
    )
    .await;
    assert_eq!(condition(&env, "Stalled").0, "False");
    assert_eq!(env["redis_cache_enabled"], false);
    assert_eq!(env["observed_generation"], env["generation"]);

    // Cancel a running job: it stops, is recorded cancelled, and the work runs again.
    fake.set("sleep", "30");
    let v = env["state_version"].as_i64().unwrap();
    app.call(
        Method::PATCH,
        &format!("/api/environments/{env_id}"),
        Some(json!({"state_version": v, "redis_cache_enabled": true})),
        &me,
    )
    .await;
    let running = wait_for(
        &app,
        &me,
        &format!("/api/jobs?environment_id={env_id}&status=running"),
        "a running job",
        |v| !v["items"].as_array().unwrap().is_empty(),
    )
    .await;
    let job_id = running["items"][0]["id"].as_str().unwrap().to_string();
    // the run has read its 30 s: the next runs may be quick (a run that had not read it yet
    // would finish at once, before the cancel)
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.sleeping().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the running job's run never started sleeping"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.set("sleep", "0");
    let started = Instant::now();
    let r = app
        .call(
            Method::POST,
            &format!("/api/jobs/{job_id}/cancel"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.body, json!({"success": true, "status": "running"}));
    let job = wait_for(
        &app,
        &me,
        &format!("/api/jobs/{job_id}"),
        "job cancelled",
        |v| v["status"] == "cancelled",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the cancelled run was stopped, not waited for"
    );
    assert!(job["finished_at"].is_string());
    wait_for(
        &app,
        &me,
        &format!("/api/environments/{env_id}"),
        "env active after cancel",
        |v| v["status"] == "active" && v["observed_generation"] == v["generation"],
    )
    .await;

    // Deleting the site runs env_delete, then the rows go.
    let sv = app
        .call(
            Method::GET,
            &format!("/api/sites/{}", site["id"].as_str().unwrap()),
            None,
            &me,
        )
        .await
        .body["state_version"]
        .as_i64()
        .unwrap();
    let r = app
        .call(
            Method::DELETE,
            &format!(
                "/api/sites/{}?state_version={sv}",
                site["id"].as_str().unwrap()
            ),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .call(
            Method::GET,
            &format!("/api/sites/{}", site["id"].as_str().unwrap()),
            None,
            &me,
        )
        .await
        .status
        != StatusCode::NOT_FOUND
    {
        assert!(Instant::now() < deadline, "site not finalized");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.calls().contains(&"env-delete.yml".to_string()));
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/api/environments/{env_id}"),
            None,
            &me
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let events = app
        .call(
            Method::GET,
            &format!("/api/events?resource_id={env_id}&limit=1000"),
            None,
            &me,
        )
        .await
        .body;
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    for r in [
        "ConditionChanged",
        "Created",
        "JobSucceeded",
        "JobFailed",
        "PhaseChanged",
        "ResetRequested",
        "JobCancelled",
        "Deleted",
    ] {
        assert!(reasons.contains(&r), "event {r} missing: {reasons:?}");
    }
    stop.cancel();
}
