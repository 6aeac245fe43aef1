//! Issue 12, item 2: adoptions through the API (the public key, validation of the SSH location,
//! a node that cannot be asked answers 502 and nothing is declared). The real adoption over SSH
//! is the e2e test `adopt_a_wordpress_site_over_ssh`.
mod common;

use common::{As, TestApp};
use poem::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn adoption_key_and_requests_are_validated() {
    let app = TestApp::new().await;
    let me = app.token().await;

    // the public key: one ed25519 key, the same on every read, never the private part
    let r = app
        .call(Method::GET, "/api/adoptions/public-key", None, &As::Nobody)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let a = app
        .call(Method::GET, "/api/adoptions/public-key", None, &me)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let key = a.body["public_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("ssh-ed25519 AAAA"), "{key}");
    assert!(key.ends_with(" pressluft-adoption"), "{key}");
    assert!(a.body["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));
    assert!(!a.body.to_string().contains("PRIVATE"));
    let b = app
        .call(Method::GET, "/api/adoptions/public-key", None, &me)
        .await;
    assert_eq!(b.body["public_key"], key.as_str());

    let ok = json!({"site_name": "Old blog", "ssh_host": "old.example.test", "ssh_user": "wp",
                    "source_path": "/home/wp/www"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = ok.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        b
    };
    let r = app
        .call(
            Method::POST,
            "/api/adoptions",
            Some(ok.clone()),
            &As::Nobody,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // 400 with the field: hosts, ports, users, paths, host keys, slugs
    for (body, field) in [
        (
            with("ssh_host", json!("-oProxyCommand=touch /tmp/x")),
            Some("ssh_host"),
        ),
        (with("ssh_host", json!("a b")), Some("ssh_host")),
        (with("ssh_host", json!("")), Some("ssh_host")),
        (with("ssh_port", json!(0)), Some("ssh_port")),
        (with("ssh_port", json!(70000)), Some("ssh_port")),
        (with("ssh_user", json!("Root")), Some("ssh_user")),
        (with("ssh_user", json!("-oX")), Some("ssh_user")),
        (with("ssh_user", json!("a;b")), Some("ssh_user")),
        (with("source_path", json!("www")), Some("source_path")),
        (
            with("source_path", json!("/home/../etc")),
            Some("source_path"),
        ),
        (
            with("source_path", json!("/home/wp\n/www")),
            Some("source_path"),
        ),
        (with("host_key", json!("ssh-dss AAAA")), Some("host_key")),
        (with("slug", json!("Not A Slug")), Some("slug")),
        (with("site_name", json!("")), Some("site_name")),
        (with("node_id", json!("nope")), None),
        (with("ssh_host", serde_json::Value::Null), None),
        (with("extra", json!(true)), None),
    ] {
        let r = app
            .call(Method::POST, "/api/adoptions", Some(body.clone()), &me)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert_eq!(r.code(), "bad_request");
        if let Some(f) = field {
            assert_eq!(r.body["details"]["field"], f, "{body}: {:?}", r.body);
        }
    }
    // a valid request: the dry run needs the node, which cannot be asked here (no pinned host
    // key): 502, and nothing is declared, dry run or not
    for dry in [true, false] {
        let r = app
            .call(
                Method::POST,
                "/api/adoptions",
                Some(with("dry_run", json!(dry))),
                &me,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
        assert_eq!(r.code(), "node_unreachable");
    }
    let sites = app.call(Method::GET, "/api/sites", None, &me).await;
    assert_eq!(
        sites.body["items"].as_array().unwrap().len(),
        0,
        "{:?}",
        sites.body
    );
    let imports = app.call(Method::GET, "/api/imports", None, &me).await;
    assert_eq!(imports.body["items"].as_array().unwrap().len(), 0);
}
