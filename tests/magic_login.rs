//! Magic login (`POST /api/environments/{id}/magic-login`) against the in-process API: its error
//! codes, the hard SSH timeout, and the audit entry. The success path needs a real node with
//! WordPress: `tests/e2e.rs`.
mod common;

use std::time::{Duration, Instant};

use common::{As, TestApp};
use poem::http::{Method, StatusCode};
use serde_json::Value;

/// Any valid ed25519 public key: no server on the test's ports presents it.
const SOME_HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFKeLpPWLvi7j+H2Px1wj0oaO55OxjH9A1/qRHbOhdHE";

const READY: &str =
    r#"[{"type":"Ready","status":"True","last_transition_at":"2026-01-01T00:00:00.000Z"}]"#;

async fn magic_login(app: &TestApp, env_id: &str, who: &As) -> common::Reply {
    app.call(
        Method::POST,
        &format!("/api/environments/{env_id}/magic-login"),
        None,
        who,
    )
    .await
}

/// A site whose production environment is forced `active` + Ready, on the local node.
async fn active_environment(app: &TestApp, who: &As, slug: &str) -> String {
    let site = app.create_site(who, slug).await;
    let env_id = site["primary_environment_id"].as_str().unwrap().to_string();
    app.exec(&format!(
        "UPDATE environments SET status='active', conditions='{READY}' WHERE id='{env_id}'"
    ))
    .await;
    env_id
}

async fn audit_of(app: &TestApp, who: &As, env_id: &str) -> Vec<Value> {
    let r = app
        .call(
            Method::GET,
            &format!("/api/audit?resource_id={env_id}"),
            None,
            who,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "environment.magic_login")
        .cloned()
        .collect()
}

fn assert_no_low_level_output(body: &Value) {
    let msg = body["message"].as_str().unwrap_or("");
    for leak in [
        "os error",
        "connection refused",
        "russh",
        "127.0.0.1",
        "ssh-ed25519",
    ] {
        assert!(
            !msg.to_ascii_lowercase().contains(leak),
            "low-level detail in {body}"
        );
    }
    assert!(
        body.as_object()
            .unwrap()
            .keys()
            .all(|k| ["code", "message", "details"].contains(&k.as_str())),
        "{body}"
    );
}

#[tokio::test]
async fn request_errors() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let site = app.create_site(&who, "alpha").await;
    let env_id = site["primary_environment_id"].as_str().unwrap().to_string();

    // 401 without credentials
    let r = magic_login(&app, &env_id, &As::Nobody).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthorized");

    // 400 for a malformed id
    let r = magic_login(&app, "not-a-uuid", &who).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.code(), "bad_request");

    // 404 for an unknown environment
    let r = magic_login(&app, "01950000-0000-7000-8000-00000000abcd", &who).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(r.code(), "not_found");

    // 409 while the environment is still being provisioned
    let r = app
        .call(
            Method::GET,
            &format!("/api/environments/{env_id}"),
            None,
            &who,
        )
        .await;
    assert_eq!(r.body["status"], "provisioning", "{:?}", r.body);
    let r = magic_login(&app, &env_id, &who).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "environment_not_active");

    // active but not Ready: still 409
    app.exec(&format!(
        "UPDATE environments SET status='active', conditions='[]' WHERE id='{env_id}'"
    ))
    .await;
    let r = magic_login(&app, &env_id, &who).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "environment_not_active");

    // A session cookie needs the CSRF proof, as for every write.
    let cookie = app.login().await;
    let r = magic_login(
        &app,
        &env_id,
        &As::Cookie {
            value: cookie,
            csrf: false,
        },
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);

    // Refused requests never reached the node: nothing to audit, and no job was created.
    assert!(audit_of(&app, &who, &env_id).await.is_empty());
    let r = app
        .call(
            Method::GET,
            &format!("/api/jobs?environment_id={env_id}"),
            None,
            &who,
        )
        .await;
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["job_type"] != "magic_login"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn closed_port_is_node_unreachable_and_audited() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let env_id = active_environment(&app, &who, "alpha").await;
    app.exec(&format!(
        "UPDATE nodes SET ssh_port=1, host_key='{SOME_HOST_KEY}'"
    ))
    .await;

    let t = Instant::now();
    let r = magic_login(&app, &env_id, &who).await;
    let took = t.elapsed();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert_eq!(r.code(), "node_unreachable");
    assert_no_low_level_output(&r.body);
    assert!(took < Duration::from_secs(11), "took {took:?}");

    let entries = audit_of(&app, &who, &env_id).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["result"], "failed");
    assert_eq!(entries[0]["resource_type"], "environment");
    assert!(entries[0]["user_id"].is_string());
    assert!(entries[0]["api_token_id"].is_string());

    // Synchronous: no job was queued for it.
    let r = app
        .call(
            Method::GET,
            &format!("/api/jobs?environment_id={env_id}"),
            None,
            &who,
        )
        .await;
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["job_type"] != "magic_login"),
        "{:?}",
        r.body
    );
}

/// A server that accepts TCP but never speaks SSH: the query gives up at its 10-s limit.
#[tokio::test]
async fn silent_node_times_out_at_ten_seconds() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let env_id = active_environment(&app, &who, "alpha").await;
    // The kernel completes the handshakes (backlog); nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    app.exec(&format!(
        "UPDATE nodes SET hostname='127.0.0.1', ssh_port={port}, host_key='{SOME_HOST_KEY}'"
    ))
    .await;

    let t = Instant::now();
    let r = magic_login(&app, &env_id, &who).await;
    let took = t.elapsed();
    drop(silent);
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert_eq!(r.code(), "node_unreachable");
    assert_no_low_level_output(&r.body);
    assert!(
        took >= Duration::from_millis(9_500) && took < Duration::from_secs(13),
        "expected the 10-s limit, took {took:?}"
    );
    let entries = audit_of(&app, &who, &env_id).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["result"], "failed");
}

/// No pinned host key: refused without trust on first use.
#[tokio::test]
async fn unpinned_host_key_is_refused() {
    let app = TestApp::new().await;
    let who = app.token().await;
    let env_id = active_environment(&app, &who, "alpha").await;
    app.exec("UPDATE nodes SET ssh_port=1, host_key=NULL").await;
    let r = magic_login(&app, &env_id, &who).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert_eq!(r.code(), "node_unreachable");
    assert_no_low_level_output(&r.body);
    // still not pinned: a magic login never pins a key
    let r = app.call(Method::GET, "/api/nodes", None, &who).await;
    assert!(r.body["items"][0]["host_key"].is_null(), "{:?}", r.body);
    let entries = audit_of(&app, &who, &env_id).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["result"], "failed");
}
