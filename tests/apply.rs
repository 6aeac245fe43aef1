//! GitOps over the API: manifests validated as a whole set and planned against the current
//! desired state (`POST /api/apply/plan`), on a fresh SQLite database.
mod common;

use common::TestApp;
use poem::http::{Method, StatusCode};
use serde_json::{json, Value};

const SITE_SET: &str = r#"
apiVersion: pressluft.dev/v1
kind: Site
metadata: {name: shop}
spec: {display_name: Shop}
---
apiVersion: pressluft.dev/v1
kind: Environment
metadata: {name: production}
spec: {site: shop, type: production, fastcgi_cache_enabled: false}
---
apiVersion: pressluft.dev/v1
kind: Domain
metadata: {name: shop.example.com}
spec: {site: shop, environment: production, primary: true}
"#;

fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["resource"].as_str().unwrap().to_string(),
                s["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn plans_create_change_and_unchanged_against_the_current_state() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let plan = |body: Value| {
        let app = &app;
        let who = who.clone();
        async move {
            app.call(Method::POST, "/api/apply/plan", Some(body), &who)
                .await
        }
    };

    let r = plan(json!({"manifests": SITE_SET})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        actions(&r.body),
        vec![
            ("Site/shop".into(), "create".into()),
            ("Environment/shop/production".into(), "create".into()),
            ("Domain/shop.example.com".into(), "create".into()),
        ]
    );
    assert_eq!(r.body["in_sync"], false);

    // The site declared through the API: its production environment matches except the cache.
    app.create_site(&who, "shop").await;
    let before = app.snapshot().await;
    let r = plan(json!({"manifests": SITE_SET})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        actions(&r.body),
        vec![
            ("Site/shop".into(), "change".into()),
            ("Environment/shop/production".into(), "change".into()),
            ("Domain/shop.example.com".into(), "create".into()),
        ]
    );
    assert_eq!(
        r.body["steps"][0]["changes"],
        json!([{"field": "display_name", "from": "Site shop", "to": "Shop"}])
    );
    assert_eq!(
        r.body["steps"][1]["changes"],
        json!([{"field": "fastcgi_cache_enabled", "from": true, "to": false}])
    );
    assert_eq!(app.snapshot().await, before, "a plan writes nothing");

    // What the API already says plans as unchanged; so does an empty settings manifest and the
    // default storage type.
    let same = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: shop}, spec: {display_name: Site shop}}
- {apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: production}, spec: {site: shop, type: production, fastcgi_cache_enabled: true}}
- {apiVersion: pressluft.dev/v1, kind: Settings, metadata: {name: settings}, spec: {backup_storage_type: local}}
"#;
    let r = plan(json!({"manifests": same})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["in_sync"], true, "{:?}", r.body);
    assert_eq!(r.body["summary"]["unchanged"], 3);

    // Immutable fields refuse the plan with the document and path.
    let moved = r#"{apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: production}, spec: {site: shop, type: staging}}"#;
    let r = plan(json!({"manifests": moved})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let codes: Vec<&str> = r.body["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"conflicting_resources"), "{codes:?}");

    // Prune needs an apply set; apply sets are slugs.
    let r = plan(json!({"manifests": SITE_SET, "prune": true})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = plan(json!({"manifests": SITE_SET, "apply_set": "Web Set"})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
}

/// The issue's acceptance: twenty different mistakes, all reported in one answer with paths,
/// nothing written.
#[tokio::test]
async fn twenty_mistakes_in_one_answer_and_nothing_written() {
    let app = TestApp::new().await;
    let who = app.token().await;
    app.create_site(&who, "shop").await;
    let bad = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: Bad_Slug}, spec: {}}
- {apiVersion: pressluft.dev/v1, kind: Sight, metadata: {name: x}, spec: {}}
- {apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: stage}, spec: {type: staging}}
- {apiVersion: pressluft.dev/v1, kind: Domain, metadata: {name: a.example.com}, spec: {site: ghost, environment: production}}
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: blog}, spec: {node: nowhere}}
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: blog}, spec: {}}
- {apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: live}, spec: {site: shop, type: production}}
- {apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: qa}, spec: {site: shop, type: stagin}}
- {apiVersion: v2, kind: Node, metadata: {name: n1}, spec: {hostname: "10.0.0.1", ssh_port: 70000}}
- {apiVersion: pressluft.dev/v1, kind: Node, metadata: {name: n2, owner: me}, spec: {hostname: "a b", colour: blue}}
- {apiVersion: pressluft.dev/v1, kind: BackupSchedule, metadata: {name: s}, spec: {site: shop, environment: production, interval_minutes: 60, cron: "0 3 * * *", keep_last: "7"}}
- {apiVersion: pressluft.dev/v1, kind: Domain, metadata: {name: "*.example.com"}, spec: {site: shop, environment: production}}
- {apiVersion: pressluft.dev/v1, kind: Promotion, metadata: {name: p}, spec: {site: shop, source_environment: production}}
- {apiVersion: pressluft.dev/v1, kind: Settings, metadata: {name: settings}, spec: {backup_s3_secret_access_key: plain-text-secret, acme_email: nope}}
- just a string
"#;
    let before = app.snapshot().await;
    let r = app
        .call(
            Method::POST,
            "/api/apply/plan",
            Some(json!({"manifests": bad})),
            &who,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "invalid_manifests");
    let problems = r.body["details"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 20, "{problems:#?}");
    for p in problems {
        assert!(p["document"].is_u64() && p["code"].is_string() && p["message"].is_string());
    }
    let paths: Vec<String> = problems
        .iter()
        .map(|p| format!("{}:{}", p["document"], p["path"].as_str().unwrap()))
        .collect();
    assert!(paths.contains(&"2:spec.site".to_string()), "{paths:?}");
    assert!(
        paths.contains(&"10:spec.keep_last".to_string()),
        "{paths:?}"
    );
    assert!(!r.body.to_string().contains("plain-text-secret"));
    assert_eq!(app.snapshot().await, before, "nothing is written");
}

/// export → plan the export: no changes (the round trip `pressluft export | pressluft diff -f -`).
#[tokio::test]
async fn an_export_plans_as_in_sync() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let site = app.create_site(&who, "shop").await;
    let prod = site["primary_environment_id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::POST,
            &format!("/api/sites/{}/environments", site["id"].as_str().unwrap()),
            Some(
                json!({"name": "Staging", "slug": "staging", "type": "staging",
                        "source_environment_id": prod, "promotion_preset": "commerce-protect"}),
            ),
            &who,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let r = app.call(Method::GET, "/api/apply/export", None, &who).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let text = r.body["manifests"].as_str().unwrap().to_string();
    for want in [
        "kind: Node\nmetadata:\n  name: local\n",
        "kind: Site\nmetadata:\n  name: shop\n",
        "  source_environment: production\n",
        "  promotion_preset: commerce-protect\n",
        "kind: Settings\n",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let r = app
        .call(
            Method::POST,
            "/api/apply/plan",
            Some(json!({"manifests": text})),
            &who,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["in_sync"], true, "{:#?}", r.body["steps"]);
    // The export is stable.
    let again = app.call(Method::GET, "/api/apply/export", None, &who).await;
    assert_eq!(again.body["manifests"].as_str().unwrap(), text);
}

const FULL_SET: &str = r#"
apiVersion: pressluft.dev/v1
kind: Site
metadata: {name: shop, labels: {team: web}}
spec: {display_name: Shop}
---
apiVersion: pressluft.dev/v1
kind: Environment
metadata: {name: production}
spec: {site: shop, type: production, fastcgi_cache_enabled: false, fastcgi_cache_ttl_seconds: 600}
---
apiVersion: pressluft.dev/v1
kind: Environment
metadata: {name: staging}
spec: {site: shop, type: staging, source_environment: production, promotion_preset: commerce-protect, redis_cache_enabled: false}
---
apiVersion: pressluft.dev/v1
kind: Domain
metadata: {name: shop.example.com}
spec: {site: shop, environment: production, www_redirect: true}
---
apiVersion: pressluft.dev/v1
kind: BackupSchedule
metadata: {name: nightly}
spec: {site: shop, environment: production, cron: "0 3 * * *", keep_last: 7}
---
apiVersion: pressluft.dev/v1
kind: Settings
metadata: {name: settings}
spec:
  backup_storage_type: s3
  backup_s3_endpoint: https://s3.example.com
  backup_s3_bucket: backups
  backup_s3_access_key_id: AKIAEXAMPLE
  backup_s3_secret_access_key: {env: PL_TEST_S3_SECRET}
"#;

const SECRET: &str = "s3-secret-value-never-echoed";

async fn get_json(app: &TestApp, who: &common::As, path: &str) -> Value {
    let r = app.call(Method::GET, path, None, who).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
    r.body
}

/// `POST /api/apply`: the whole set written in one transaction through the API's rules; the
/// receipt says what happened and can be read back; re-applying the same set (and applying its
/// export) writes nothing: no generation bump, no event, no audit entry.
#[tokio::test]
async fn apply_writes_the_set_and_reapplying_it_changes_nothing() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let body = json!({"manifests": FULL_SET, "apply_set": "shop",
                      "secrets": {"PL_TEST_S3_SECRET": SECRET}});

    // A dry run writes nothing.
    let before = app.snapshot().await;
    let mut dry = body.clone();
    dry["dry_run"] = json!(true);
    let r = app.call(Method::POST, "/api/apply", Some(dry), &who).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["id"], Value::Null);
    assert_eq!(r.body["plan"]["summary"]["create"], 5, "{:#?}", r.body);
    assert_eq!(app.snapshot().await, before, "a dry run writes nothing");

    let r = app
        .call(Method::POST, "/api/apply", Some(body.clone()), &who)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(!r.body.to_string().contains(SECRET), "the secret is echoed");
    let receipt = r.body.clone();
    let id = receipt["id"].as_str().expect("a receipt id").to_string();
    assert_eq!(receipt["plan"]["summary"]["create"], 5, "{receipt:#}");
    assert_eq!(receipt["plan"]["summary"]["change"], 1, "{receipt:#}"); // settings
    assert_eq!(receipt["generations"]["Site/shop"], 1, "{receipt:#}");
    assert!(receipt["generations"]["Environment/shop/production"].as_i64() >= Some(2));

    // What the API shows is what the set declared.
    let sites = get_json(&app, &who, "/api/sites").await;
    let site = &sites["items"][0];
    assert_eq!(
        (site["slug"].as_str(), site["name"].as_str()),
        (Some("shop"), Some("Shop"))
    );
    let envs = get_json(
        &app,
        &who,
        &format!("/api/environments?site_id={}", site["id"].as_str().unwrap()),
    )
    .await;
    let env = |slug: &str| {
        envs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["slug"] == slug)
            .unwrap_or_else(|| panic!("no environment {slug}: {envs:#}"))
            .clone()
    };
    let prod = env("production");
    let staging = env("staging");
    assert_eq!(prod["fastcgi_cache_enabled"], false);
    assert_eq!(prod["fastcgi_cache_ttl_seconds"], 600);
    assert_eq!(staging["environment_type"], "staging");
    assert_eq!(staging["source_environment_id"], prod["id"]);
    assert_eq!(staging["promotion_preset"], "commerce-protect");
    assert_eq!(staging["redis_cache_enabled"], false);
    let domains = get_json(
        &app,
        &who,
        &format!("/api/environments/{}/domains", prod["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(domains["items"][0]["hostname"], "shop.example.com");
    assert_eq!(domains["items"][0]["primary"], true, "{domains:#}");
    assert_eq!(domains["items"][0]["www_redirect"], true);
    let schedules = get_json(
        &app,
        &who,
        &format!(
            "/api/environments/{}/backup-schedules",
            prod["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(schedules["items"][0]["cron"], "0 3 * * *");
    assert_eq!(schedules["items"][0]["keep_last"], 7);
    let settings = get_json(&app, &who, "/api/settings").await;
    assert_eq!(settings["backup_storage_type"], "s3");
    assert_eq!(settings["backup_s3_secret_access_key_set"], true);
    assert!(!settings.to_string().contains(SECRET));

    // The receipt can be read back.
    let again = get_json(&app, &who, &format!("/api/apply/receipts/{id}")).await;
    assert_eq!(again["plan"], receipt["plan"]);
    assert_eq!(again["generations"], receipt["generations"]);

    // Re-applying writes nothing but its receipt.
    let before = app.snapshot().await;
    let r = app
        .call(Method::POST, "/api/apply", Some(body.clone()), &who)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["plan"]["in_sync"], true, "{:#}", r.body["plan"]);
    assert_eq!(r.body["generations"], receipt["generations"]);
    assert_eq!(app.snapshot().await, before, "re-applying wrote something");

    // The export applies as no change either.
    let export = get_json(&app, &who, "/api/apply/export").await;
    let r = app
        .call(
            Method::POST,
            "/api/apply",
            Some(
                json!({"manifests": export["manifests"], "secrets": {"PL_TEST_S3_SECRET": SECRET}}),
            ),
            &who,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["plan"]["in_sync"], true, "{:#}", r.body["plan"]);
    assert_eq!(
        app.snapshot().await,
        before,
        "applying the export wrote something"
    );
}

/// A step that breaks an API rule refuses the whole apply: nothing of the set is written.
#[tokio::test]
async fn a_refused_step_writes_nothing() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let other = app.create_site(&who, "other").await;
    let r = app
        .call(
            Method::POST,
            &format!(
                "/api/environments/{}/domains",
                other["primary_environment_id"].as_str().unwrap()
            ),
            Some(json!({"hostname": "taken.example.com"})),
            &who,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let before = app.snapshot().await;
    let set = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: shop}, spec: {}}
- {apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: staging}, spec: {site: shop, type: staging}}
- {apiVersion: pressluft.dev/v1, kind: Domain, metadata: {name: taken.example.com}, spec: {site: shop, environment: production}}
"#;
    let r = app
        .call(
            Method::POST,
            "/api/apply",
            Some(json!({"manifests": set})),
            &who,
        )
        .await;
    // The plan sees an existing domain (names are global) and refuses to move it to another
    // environment; either way nothing is written.
    assert!(
        r.status == StatusCode::CONFLICT || r.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{:?} {:?}",
        r.status,
        r.body
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused apply wrote something"
    );
    let sites = get_json(&app, &who, "/api/sites").await;
    assert_eq!(sites["items"].as_array().unwrap().len(), 1);

    // A secret reference without its value is refused too.
    let set = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: shop}, spec: {}}
- {apiVersion: pressluft.dev/v1, kind: Settings, metadata: {name: settings}, spec: {backup_s3_secret_access_key: {env: PL_MISSING}}}
"#;
    let r = app
        .call(
            Method::POST,
            "/api/apply",
            Some(json!({"manifests": set})),
            &who,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(r.body.to_string().contains("PL_MISSING"), "{:?}", r.body);
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused apply wrote something"
    );
}

/// `prune` deletes what the apply set held before and no longer holds, and nothing else.
#[tokio::test]
async fn prune_deletes_what_the_set_no_longer_holds() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let untouched = app.create_site(&who, "untouched").await;
    let first = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: shop}, spec: {}}
- {apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: staging}, spec: {site: shop, type: staging}}
- {apiVersion: pressluft.dev/v1, kind: Domain, metadata: {name: staging.example.com}, spec: {site: shop, environment: staging}}
"#;
    let r = app
        .call(
            Method::POST,
            "/api/apply",
            Some(json!({"manifests": first, "apply_set": "shop"})),
            &who,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let second = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: shop}, spec: {}}
"#;
    let r = app
        .call(
            Method::POST,
            "/api/apply",
            Some(json!({"manifests": second, "apply_set": "shop", "prune": true})),
            &who,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let pruned: Vec<&str> = r.body["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "prune")
        .map(|s| s["resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        pruned,
        vec!["Domain/staging.example.com", "Environment/shop/staging"]
    );
    let envs = get_json(&app, &who, "/api/environments").await;
    for e in envs["items"].as_array().unwrap() {
        let marked = !e["deletion_requested_at"].is_null();
        assert_eq!(marked, e["slug"] == "staging", "{e:#}");
    }
    let site = get_json(
        &app,
        &who,
        &format!("/api/sites/{}", untouched["id"].as_str().unwrap()),
    )
    .await;
    assert!(site["deletion_requested_at"].is_null());
    // Planned again: in sync (pruned resources left the set).
    let r = app
        .call(
            Method::POST,
            "/api/apply/plan",
            Some(json!({"manifests": second, "apply_set": "shop", "prune": true})),
            &who,
        )
        .await;
    assert_eq!(r.body["in_sync"], true, "{:#}", r.body);
}

/// An apply set's sync status (its last apply planned again) and health (its resources' phases
/// and conditions).
#[tokio::test]
async fn apply_sets_report_sync_and_health() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let set = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: shop}, spec: {display_name: Shop}}
- {apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: staging}, spec: {site: shop, type: staging}}
"#;
    let body = json!({"manifests": set, "apply_set": "shop"});
    let r = app
        .call(Method::POST, "/api/apply", Some(body.clone()), &who)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let receipt = r.body["id"].clone();

    let status = get_json(&app, &who, "/api/apply/sets/shop").await;
    assert_eq!(status["sync"], "synced", "{status:#}");
    assert_eq!(status["last_receipt_id"], receipt);
    // Nothing reconciles in this test: declared, not Ready yet.
    assert_eq!(status["health"], "progressing", "{status:#}");
    let names: Vec<&str> = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Environment/shop/staging", "Site/shop"]);
    let all = get_json(&app, &who, "/api/apply/sets").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);

    // A change through the API puts the set out of sync; applying it again syncs it.
    let sites = get_json(&app, &who, "/api/sites").await;
    let site = &sites["items"][0];
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/sites/{}", site["id"].as_str().unwrap()),
            Some(json!({"state_version": site["state_version"], "name": "Renamed"})),
            &who,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let status = get_json(&app, &who, "/api/apply/sets/shop").await;
    assert_eq!(status["sync"], "out-of-sync", "{status:#}");
    assert_eq!(status["out_of_sync"], json!(["Site/shop"]));
    let r = app.call(Method::POST, "/api/apply", Some(body), &who).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let status = get_json(&app, &who, "/api/apply/sets/shop").await;
    assert_eq!(status["sync"], "synced", "{status:#}");

    // Health follows the resources: all Ready → healthy; one Degraded → degraded.
    let ready = r#"[{"type":"Ready","status":"True","reason":"Converged","message":"","last_transition_at":"2026-12-05T00:00:00Z"}]"#;
    app.exec(&format!(
        "UPDATE sites SET conditions = '{ready}', observed_generation = generation"
    ))
    .await;
    app.exec(&format!(
        "UPDATE environments SET conditions = '{ready}', observed_generation = generation"
    ))
    .await;
    let status = get_json(&app, &who, "/api/apply/sets/shop").await;
    assert_eq!(status["health"], "healthy", "{status:#}");
    app.exec(
        r#"UPDATE environments SET conditions = '[{"type":"Degraded","status":"True","reason":"ProbeFailed","message":"HTTP 500","last_transition_at":"2026-12-05T00:00:00Z"}]' WHERE slug = 'staging'"#,
    )
    .await;
    let status = get_json(&app, &who, "/api/apply/sets/shop").await;
    assert_eq!(status["health"], "degraded", "{status:#}");
    let staging = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "Environment/shop/staging")
        .unwrap();
    assert!(
        staging["reason"].as_str().unwrap().contains("ProbeFailed"),
        "{staging:#}"
    );
    let r = app
        .call(Method::GET, "/api/apply/sets/nope", None, &who)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Issue 9's property through the real write path: random valid sets, applied in two random
/// orders to two fresh installations, leave the same desired state (their exports are equal),
/// and re-applying a set writes nothing.
#[tokio::test]
async fn random_sets_applied_in_any_order_converge() {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    for seed in 0..12u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut docs = Vec::new();
        for i in 0..rng.gen_range(1..4) {
            let s = format!("s{i}");
            docs.push(format!("{{apiVersion: pressluft.dev/v1, kind: Site, metadata: {{name: {s}, labels: {{n: '{i}'}}}}, spec: {{display_name: Site {i}}}}}"));
            if rng.gen_bool(0.5) {
                docs.push(format!("{{apiVersion: pressluft.dev/v1, kind: Environment, metadata: {{name: production}}, spec: {{site: {s}, type: production, redis_cache_enabled: {}}}}}", rng.gen_bool(0.5)));
            }
            for e in 0..rng.gen_range(0..3) {
                docs.push(format!("{{apiVersion: pressluft.dev/v1, kind: Environment, metadata: {{name: e{e}}}, spec: {{site: {s}, type: {}, source_environment: production, fastcgi_cache_ttl_seconds: {}}}}}",
                    if e == 0 { "staging" } else { "clone" }, 60 * rng.gen_range(1..30)));
            }
            let domains = rng.gen_range(0..3);
            let primary = rng.gen_range(0..=domains);
            for d in 0..domains {
                docs.push(format!("{{apiVersion: pressluft.dev/v1, kind: Domain, metadata: {{name: d{d}.{s}.example.com}}, spec: {{site: {s}, environment: production{}}}}}",
                    if d == primary { ", primary: true" } else { "" }));
            }
            if rng.gen_bool(0.5) {
                docs.push(format!("{{apiVersion: pressluft.dev/v1, kind: BackupSchedule, metadata: {{name: nightly}}, spec: {{site: {s}, environment: production, interval_minutes: {}}}}}", rng.gen_range(60..600)));
            }
        }
        let mut exports = Vec::new();
        for _ in 0..2 {
            docs.shuffle(&mut rng);
            let text = format!("[{}]", docs.join(",\n"));
            let app = TestApp::new().await;
            let who = app.token().await;
            let body = json!({"manifests": text, "apply_set": "prop"});
            let r = app
                .call(Method::POST, "/api/apply", Some(body.clone()), &who)
                .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "seed {seed}: {:?}\n{text}",
                r.body
            );
            let before = app.snapshot().await;
            let r = app.call(Method::POST, "/api/apply", Some(body), &who).await;
            assert_eq!(r.body["plan"]["in_sync"], true, "seed {seed}: {:#}", r.body);
            assert_eq!(
                app.snapshot().await,
                before,
                "seed {seed}: re-applying wrote"
            );
            exports.push(get_json(&app, &who, "/api/apply/export").await["manifests"].clone());
        }
        assert_eq!(
            exports[0], exports[1],
            "seed {seed}: the order changed the result"
        );
    }
}
