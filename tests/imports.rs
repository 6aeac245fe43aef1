//! Issue 12: imports through the API (validation, 404s, 409s, URLs with credentials never shown,
//! the environment `restoring` while one is pending, the audit entry and the event).
mod common;

use common::TestApp;
use poem::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn import_requests_are_validated_recorded_and_redacted() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let s = app.create_site(&me, "moving-in").await;
    let site = s["id"].as_str().unwrap().to_string();
    let env = s["primary_environment_id"].as_str().unwrap().to_string();
    let import = |path: String, body: serde_json::Value| {
        let app = &app;
        let me = &me;
        async move { app.call(Method::POST, &path, Some(body), me).await }
    };
    let on_env = format!("/api/environments/{env}/imports");

    // 400: bad URLs, checksums, prefixes, unknown fields, malformed ids
    for body in [
        json!({}),
        json!({"archive_url": ""}),
        json!({"archive_url": "ftp://example.test/site.tgz"}),
        json!({"archive_url": "file:///etc/passwd"}),
        json!({"archive_url": "file:///var/lib/pressluft/imports/../../../etc/shadow"}),
        json!({"archive_url": "https://example.test/a b.tgz"}),
        json!({"archive_url": 5}),
        json!({"archive_url": "https://example.test/site.tgz", "sha256": "abc"}),
        json!({"archive_url": "https://example.test/site.tgz", "table_prefix": "my-site"}),
        json!({"archive_url": "https://example.test/site.tgz", "source_url": "javascript:alert(1)"}),
        json!({"archive_url": "https://example.test/site.tgz", "extra": true}),
    ] {
        let r = import(on_env.clone(), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
    }
    let r = import(
        "/api/environments/nope/imports".into(),
        json!({"archive_url": "https://example.test/site.tgz"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // 404: unknown environment, site, or an environment of another site
    let unknown = "0190a5d1-0000-7000-8000-000000000000";
    let r = import(
        format!("/api/environments/{unknown}/imports"),
        json!({"archive_url": "https://example.test/site.tgz"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = import(
        format!("/api/sites/{unknown}/import"),
        json!({"archive_url": "https://example.test/site.tgz"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let other = app.create_site(&me, "elsewhere").await;
    let other_env = other["primary_environment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = import(
        format!("/api/sites/{site}/import"),
        json!({"archive_url": "https://example.test/site.tgz", "environment_id": other_env}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);

    // 202 through the site (default: production); credentials and signatures never shown
    let secret_url =
        "https://mover:hunter2secret@files.example.test/site.tar.gz?X-Amz-Signature=deadbeef";
    let r = import(
        format!("/api/sites/{site}/import"),
        json!({
            "archive_url": secret_url,
            "sha256": "AB".repeat(32),
            "source_url": "https://old.example.test/",
            "table_prefix": "mysite_",
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["environment_id"], env.as_str());
    assert_eq!(r.body["status"], "pending");
    assert_eq!(
        r.body["archive_url"],
        "https://****@files.example.test/site.tar.gz?****"
    );
    assert_eq!(r.body["sha256"], "ab".repeat(32));
    assert_eq!(r.body["source_url"], "https://old.example.test");
    assert_eq!(r.body["table_prefix"], "mysite_");

    // 409 resource_in_use: a second import, a restore, a change of the environment
    let r = import(
        on_env.clone(),
        json!({"archive_url": "https://example.test/again.tgz"}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "resource_in_use"),
        "{:?}",
        r.body
    );
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/environments/{env}"),
            Some(json!({"state_version": 1, "name": "Renamed"})),
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "resource_in_use")
    );
    // another environment is free
    let r = import(
        format!("/api/environments/{other_env}/imports"),
        json!({"archive_url": "file:///var/lib/pressluft/imports/site.tgz"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);

    // reads
    let r = app
        .call(Method::GET, &format!("/api/imports/{id}"), None, &me)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], id.as_str());
    let r = app
        .call(Method::GET, &format!("/api/imports/{unknown}"), None, &me)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call(Method::GET, &on_env, None, &me).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{:?}", r.body);
    let r = app.call(Method::GET, "/api/imports", None, &me).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let r = app
        .call(
            Method::GET,
            &format!("/api/environments/{unknown}/imports"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // nothing anywhere shows the credentials: events, audit log
    for path in ["/api/events?limit=100", "/api/audit?limit=100"] {
        let r = app.call(Method::GET, path, None, &me).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let text = r.body.to_string();
        assert!(
            !text.contains("hunter2secret") && !text.contains("deadbeef"),
            "{path}: {text}"
        );
    }
    let r = app
        .call(Method::GET, "/api/audit?limit=100", None, &me)
        .await;
    assert!(r.body.to_string().contains("import.create"), "{:?}", r.body);

    // the environment is `restoring` once its reconciler looked (the API does not set phases):
    // the spec fields are untouched
    let r = app
        .call(Method::GET, &format!("/api/environments/{env}"), None, &me)
        .await;
    assert_eq!(r.body["generation"], 1, "{:?}", r.body);
    // settings: the archive limit
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({"import_max_bytes": 0})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({"import_max_bytes": 1048576})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["import_max_bytes"], 1048576);
}

/// Issue 12: `kind: Import` through `POST /api/apply` (the same write as the API): declared
/// once (a re-apply changes nothing), credentials refused, fields immutable.
#[tokio::test]
async fn import_manifests_declare_once() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let set = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: moving}, spec: {display_name: Moving in}}
- {apiVersion: pressluft.dev/v1, kind: Import, metadata: {name: first}, spec: {site: moving, archive_url: "https://files.example.test/site.tgz", table_prefix: mysite_}}
"#;
    let body = json!({"manifests": set, "apply_set": "moving"});
    let r = app
        .call(Method::POST, "/api/apply", Some(body.clone()), &me)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["plan"]["summary"]["create"], 2, "{:#}", r.body);
    let r = app.call(Method::GET, "/api/imports", None, &me).await;
    let items = r.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{:?}", r.body);
    assert_eq!(items[0]["table_prefix"], "mysite_");
    // re-applying declares nothing again
    let r = app
        .call(Method::POST, "/api/apply", Some(body.clone()), &me)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["plan"]["summary"]["create"], 0, "{:#}", r.body);
    let r = app.call(Method::GET, "/api/imports", None, &me).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    // a changed archive of the same import: immutable
    let changed = set.replace("site.tgz", "other.tgz");
    let r = app
        .call(
            Method::POST,
            "/api/apply/plan",
            Some(json!({"manifests": changed})),
            &me,
        )
        .await;
    assert!(
        r.body.to_string().contains("immutable_field"),
        "{:?}",
        r.body
    );
    // credentials never in manifests
    let secret = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: moving}, spec: {display_name: Moving in}}
- {apiVersion: pressluft.dev/v1, kind: Import, metadata: {name: second}, spec: {site: moving, archive_url: "https://u:pw@files.example.test/site.tgz"}}
"#;
    let r = app
        .call(
            Method::POST,
            "/api/apply",
            Some(json!({"manifests": secret})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(!r.body.to_string().contains("pw@"), "{:?}", r.body);
}
