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
