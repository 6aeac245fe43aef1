//! GitOps benchmark (issue 9): the time to validate and plan (`POST /api/apply/plan`, the dry run)
//! a set of 1,000 resources, in process on a fresh embedded SQLite database, against an empty
//! installation and against one where half of the set already exists.
//!
//! Run with `cargo bench --bench apply`. Knobs: `BENCH_SITES` (250: each site brings a
//! production environment, a staging environment and a domain = 4 resources), `BENCH_ROUNDS` (5).
//! Then the apply (`POST /api/apply`, one transaction) of the whole set on a fresh installation
//! each round, and the same set applied again (a no-op). Targets (issue 9): dry run ≤ 1 s, apply
//! ≤ 3 s.
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use poem::http::{Method, StatusCode};
use serde_json::json;

const DRY_RUN_MAX: Duration = Duration::from_secs(1);
const APPLY_MAX: Duration = Duration::from_secs(3);

fn manifests(sites: usize) -> String {
    let mut docs = Vec::with_capacity(sites * 4);
    for i in 0..sites {
        let s = format!("site-{i:04}");
        docs.push(format!(
            "{{apiVersion: pressluft.dev/v1, kind: Site, metadata: {{name: {s}, labels: {{team: t{}}}}}, spec: {{display_name: Site {i}}}}}",
            i % 7
        ));
        docs.push(format!(
            "{{apiVersion: pressluft.dev/v1, kind: Environment, metadata: {{name: production}}, spec: {{site: {s}, type: production, fastcgi_cache_enabled: {}}}}}",
            i % 2 == 0
        ));
        docs.push(format!(
            "{{apiVersion: pressluft.dev/v1, kind: Environment, metadata: {{name: staging}}, spec: {{site: {s}, type: staging, source_environment: production}}}}"
        ));
        docs.push(format!(
            "{{apiVersion: pressluft.dev/v1, kind: Domain, metadata: {{name: www.{s}.example.com}}, spec: {{site: {s}, environment: production, primary: true}}}}"
        ));
    }
    docs.join("\n---\n")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sites = env_usize("BENCH_SITES", 250);
    let rounds = env_usize("BENCH_ROUNDS", 5).max(1);
    let app = common::TestApp::new().await;
    let who = app.token().await;
    let text = manifests(sites);
    println!(
        "manifests: {} resources, {} KiB",
        sites * 4,
        text.len() / 1024
    );

    let plan = |label: &'static str| {
        let app = &app;
        let who = who.clone();
        let body = json!({"manifests": text.clone(), "apply_set": "bench"});
        async move {
            let mut times = Vec::new();
            let mut summary = serde_json::Value::Null;
            for _ in 0..rounds {
                let t = Instant::now();
                let r = app
                    .call(Method::POST, "/api/apply/plan", Some(body.clone()), &who)
                    .await;
                times.push(t.elapsed());
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                summary = r.body["summary"].clone();
            }
            times.sort();
            let median = times[times.len() / 2];
            let max = *times.last().unwrap();
            println!(
                "dry run, {label}: median {:.1} ms, max {:.1} ms over {rounds} rounds; plan {summary}; target <= {} ms: {}",
                median.as_secs_f64() * 1000.0,
                max.as_secs_f64() * 1000.0,
                DRY_RUN_MAX.as_millis(),
                if median <= DRY_RUN_MAX { "PASS" } else { "FAIL" }
            );
        }
    };
    plan("empty installation").await;

    // Half of the set exists: the sites (with their production environments) through the API.
    let t = Instant::now();
    for i in 0..sites {
        let r = app
            .call(
                Method::POST,
                "/api/sites",
                Some(json!({"name": format!("Site {i}"), "slug": format!("site-{i:04}")})),
                &who,
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    }
    println!(
        "declared {sites} sites through the API in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    plan("half of it existing").await;
    drop(app);

    let (mut applies, mut again) = (Vec::new(), Vec::new());
    let body = json!({"manifests": text, "apply_set": "bench"});
    for _ in 0..rounds {
        let app = common::TestApp::new().await;
        let who = app.token().await;
        let t = Instant::now();
        let r = app
            .call(Method::POST, "/api/apply", Some(body.clone()), &who)
            .await;
        applies.push(t.elapsed());
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["plan"]["summary"]["create"], sites * 4);
        let t = Instant::now();
        let r = app
            .call(Method::POST, "/api/apply", Some(body.clone()), &who)
            .await;
        again.push(t.elapsed());
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["plan"]["in_sync"], true);
    }
    for (label, mut times) in [
        ("apply, fresh installation", applies),
        ("apply again (no change)", again),
    ] {
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "{label}: median {:.1} ms, max {:.1} ms over {rounds} rounds; target <= {} ms: {}",
            median.as_secs_f64() * 1000.0,
            times.last().unwrap().as_secs_f64() * 1000.0,
            APPLY_MAX.as_millis(),
            if median <= APPLY_MAX { "PASS" } else { "FAIL" }
        );
    }
}
