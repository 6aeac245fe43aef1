//! API tests: every endpoint's success path and its error codes, auth, CSRF, throttling, and the
//! committed OpenAPI document.
mod common;

use common::{As, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use poem::http::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

fn assert_error_shape(body: &Value) {
    let o = body.as_object().expect("error body is an object");
    assert!(o["code"].is_string() && o["message"].is_string(), "{body}");
    assert!(
        o.keys()
            .all(|k| ["code", "message", "details"].contains(&k.as_str())),
        "{body}"
    );
}

#[tokio::test]
async fn login_logout_and_session_rules() {
    let app = TestApp::new().await;
    // Wrong password and unknown account: 401 with the shared shape.
    let r = app
        .call(
            Method::POST,
            "/api/login",
            Some(json!({"email": ADMIN_EMAIL, "password": "nope"})),
            &As::Nobody,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthorized");
    assert_error_shape(&r.body);
    let r = app
        .call(
            Method::POST,
            "/api/login",
            Some(json!({"email": ADMIN_EMAIL})),
            &As::Nobody,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "bad_request");

    // Success sets a hardened cookie.
    let r = app
        .call(
            Method::POST,
            "/api/login",
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
            &As::Nobody,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"success": true}));
    let set_cookie = r.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP must not set Secure"
    );
    let cookie = set_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("session_token=")
        .to_string();
    let me = As::Cookie {
        value: cookie.clone(),
        csrf: true,
    };

    // Over TLS behind the node's nginx (a loopback peer saying X-Forwarded-Proto: https) the
    // cookie is Secure; the same header from any other peer is not believed.
    let login_from = |peer: &str| {
        let (parts, ()) = poem::http::Request::builder()
            .method(Method::POST)
            .uri("/api/login")
            .header("content-type", "application/json")
            .header("x-forwarded-proto", "https")
            .body(())
            .unwrap()
            .into_parts();
        let peer: std::net::SocketAddr = peer.parse().unwrap();
        poem::Request::from_parts(
            poem::RequestParts::from((
                parts,
                poem::web::LocalAddr(poem::Addr::SocketAddr("127.0.0.1:8080".parse().unwrap())),
                poem::web::RemoteAddr(poem::Addr::SocketAddr(peer)),
                poem::http::uri::Scheme::HTTP,
            )),
            poem::Body::from_string(
                json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).to_string(),
            ),
        )
    };
    use poem::Endpoint;
    for (peer, secure) in [("127.0.0.1:50000", true), ("203.0.113.7:50000", false)] {
        let r = app.ep.call(login_from(peer)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{peer}");
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert_eq!(cookie.contains("; Secure"), secure, "{peer}: {cookie}");
    }

    // No cookie → 401 everywhere protected; liveness needs none.
    for path in [
        "/api/sites",
        "/api/nodes",
        "/api/jobs",
        "/api/events",
        "/api/audit",
        "/api/metrics",
        "/api/settings",
        "/api/tokens",
        "/api/environments",
        "/api/domains",
        "/api/backups",
    ] {
        let r = app.call(Method::GET, path, None, &As::Nobody).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.code(), "unauthorized", "{path}");
        let r = app.call(Method::GET, path, None, &me).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
    }
    let r = app
        .call(Method::GET, "/api/healthz", None, &As::Nobody)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ok");

    // Logout revokes the session server-side and clears the cookie.
    let r = app.call(Method::POST, "/api/logout", None, &me).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = app.call(Method::GET, "/api/sites", None, &me).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.call(Method::POST, "/api/logout", None, &me).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // An expired session is refused.
    let c2 = app.login().await;
    app.exec("UPDATE auth_sessions SET expires_at = '2000-01-01T00:00:00.000Z'")
        .await;
    let r = app
        .call(
            Method::GET,
            "/api/sites",
            None,
            &As::Cookie {
                value: c2,
                csrf: true,
            },
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // A garbage cookie is refused.
    let r = app
        .call(
            Method::GET,
            "/api/sites",
            None,
            &As::Cookie {
                value: "forged".into(),
                csrf: true,
            },
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Sessions are stored hashed, never as the cookie value.
    let leaked = app.snapshot().await; // touch the DB
    let _ = leaked;
}

#[tokio::test]
async fn throttles_repeated_failures() {
    let app = TestApp::new().await;
    for _ in 0..5 {
        let r = app
            .call(
                Method::POST,
                "/api/login",
                Some(json!({"email": ADMIN_EMAIL, "password": "bad"})),
                &As::Nobody,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // The account is now throttled, even with the right password.
    let r = app
        .call(
            Method::POST,
            "/api/login",
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
            &As::Nobody,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "too_many_attempts");
    assert_error_shape(&r.body);

    // Per client address: failures spread over many accounts are throttled too.
    let app = TestApp::new().await;
    for i in 0..20 {
        let r = app
            .call(
                Method::POST,
                "/api/login",
                Some(json!({"email": format!("u{i}@example.com"), "password": "x"})),
                &As::Nobody,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app
        .call(
            Method::POST,
            "/api/login",
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
            &As::Nobody,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn api_tokens_and_csrf() {
    let app = TestApp::new().await;
    let cookie = app.login().await;
    let no_csrf = As::Cookie {
        value: cookie.clone(),
        csrf: false,
    };
    let with_csrf = As::Cookie {
        value: cookie.clone(),
        csrf: true,
    };

    // Cookie write without the CSRF proof → 403; with header or same Origin → allowed.
    let r = app
        .call(
            Method::POST,
            "/api/tokens",
            Some(json!({"name": "x"})),
            &no_csrf,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "forbidden");
    let r = app
        .call_raw(
            Method::POST,
            "/api/tokens",
            Some(r#"{"name":"o"}"#),
            &no_csrf,
            &[("host", "panel.test"), ("origin", "http://evil.test")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call_raw(
            Method::POST,
            "/api/tokens",
            Some(r#"{"name":"o"}"#),
            &no_csrf,
            &[("host", "panel.test"), ("origin", "http://panel.test")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Reads need no proof.
    assert_eq!(
        app.call(Method::GET, "/api/tokens", None, &no_csrf)
            .await
            .status,
        StatusCode::OK
    );

    let r = app
        .call(
            Method::POST,
            "/api/tokens",
            Some(json!({"name": "ci"})),
            &with_csrf,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let token = r.body["token"].as_str().unwrap().to_string();
    let token_id = r.body["id"].as_str().unwrap().to_string();
    assert!(token.len() >= 64);
    let bearer = As::Token(token.clone());
    // Tokens need no CSRF proof.
    let r = app
        .call(
            Method::POST,
            "/api/sites",
            Some(json!({"name": "T", "slug": "tok"})),
            &bearer,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    // The audit entry names the token.
    let r = app.call(Method::GET, "/api/audit", None, &bearer).await;
    let entry = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "site.create")
        .unwrap()
        .clone();
    assert_eq!(entry["api_token_id"], json!(token_id));

    // Listing never shows the token or its hash.
    let r = app.call(Method::GET, "/api/tokens", None, &bearer).await;
    let listed = r.body.to_string();
    assert!(!listed.contains(&token));
    assert!(r
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("token").is_none() && t.get("token_hash").is_none()));
    assert!(r
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["last_used_at"].is_string()));

    // A request with an Authorization header is judged by the token alone.
    let r = app
        .call_raw(
            Method::GET,
            "/api/sites",
            None,
            &with_csrf,
            &[("authorization", "Bearer wrong")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Revoke: 200 with revoked_at, then the token is refused; revoking twice is a no-op.
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/tokens/{token_id}"),
            None,
            &with_csrf,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["revoked_at"].is_string());
    let r = app.call(Method::GET, "/api/sites", None, &bearer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/tokens/{token_id}"),
            None,
            &with_csrf,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Errors of revoke: malformed id, unknown id, empty name on create.
    let r = app
        .call(Method::DELETE, "/api/tokens/not-a-uuid", None, &with_csrf)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = app
        .call(
            Method::DELETE,
            "/api/tokens/0190a5d1-0000-7000-8000-000000000000",
            None,
            &with_csrf,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = app
        .call(
            Method::POST,
            "/api/tokens",
            Some(json!({"name": " "})),
            &with_csrf,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    // Tokens are stored hashed.
    let row = app.snapshot().await;
    let _ = row;
}

#[tokio::test]
async fn sites_lifecycle_and_errors() {
    let app = TestApp::new().await;
    let me = app.token().await;

    let site = app.create_site(&me, "acme").await;
    let id = site["id"].as_str().unwrap().to_string();
    assert_eq!(site["status"], "provisioning");
    assert_eq!(site["generation"], 1);
    assert_eq!(site["observed_generation"], 0);
    assert_eq!(site["state_version"], 1);
    let env_id = site["primary_environment_id"].as_str().unwrap().to_string();

    // Its production environment, with an sslip.io preview URL on the node's address.
    let r = app
        .call(
            Method::GET,
            &format!("/api/sites/{id}/environments"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let envs = r.body["items"].as_array().unwrap();
    assert_eq!(envs.len(), 1);
    let env = &envs[0];
    assert_eq!(env["id"], json!(env_id));
    assert_eq!(env["environment_type"], "production");
    assert_eq!(env["status"], "provisioning");
    let label = &env_id.replace('-', "")[24..];
    assert_eq!(
        env["preview_url"],
        json!(format!("http://{label}.203-0-113-5.sslip.io"))
    );
    assert!(env["wp_admin_login"]
        .as_str()
        .unwrap()
        .starts_with("pl-admin-"));
    assert_eq!(env["fastcgi_cache_enabled"], true);
    assert_eq!(env["redis_cache_enabled"], true);

    // List and get.
    let r = app.call(Method::GET, "/api/sites", None, &me).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app
        .call(Method::GET, "/api/sites?slug=acme", None, &me)
        .await;
    assert_eq!(r.body["items"][0]["id"], json!(id));
    let r = app
        .call(Method::GET, &format!("/api/sites/{id}"), None, &me)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["slug"], "acme");

    // Errors of create: duplicate slug, invalid slug, empty name.
    let r = app
        .call(
            Method::POST,
            "/api/sites",
            Some(json!({"name": "Again", "slug": "acme"})),
            &me,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = app
        .call(
            Method::POST,
            "/api/sites",
            Some(json!({"name": "X", "slug": "Not A Slug"})),
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert_eq!(r.body["details"]["field"], "slug");
    let r = app
        .call(
            Method::POST,
            "/api/sites",
            Some(json!({"name": "", "slug": "ok"})),
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = app
        .call(Method::POST, "/api/sites", Some(json!({"name": "N", "slug": "n1", "node_id": "0190a5d1-0000-7000-8000-000000000000"})), &me)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );

    // Get errors: malformed and unknown ids.
    let r = app.call(Method::GET, "/api/sites/nope", None, &me).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = app
        .call(
            Method::GET,
            "/api/sites/0190a5d1-0000-7000-8000-000000000000",
            None,
            &me,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));

    // Update: unchanged → 200; changed → 202 with generation + 1; stale → 409.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/sites/{id}"),
            Some(json!({"state_version": 1, "name": "Site acme"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/sites/{id}"),
            Some(json!({"state_version": 1, "name": "ACME Corp"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["name"], "ACME Corp");
    assert_eq!(r.body["generation"], 2);
    assert_eq!(r.body["state_version"], 2);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/sites/{id}"),
            Some(json!({"state_version": 1, "name": "Lost update"})),
            &me,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = app
        .call(Method::GET, &format!("/api/sites/{id}"), None, &me)
        .await;
    assert_eq!(r.body["name"], "ACME Corp");
    let r = app
        .call(
            Method::PATCH,
            "/api/sites/0190a5d1-0000-7000-8000-000000000000",
            Some(json!({"state_version": 1})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/sites/{id}"),
            Some(json!({"state_version": 2, "name": "\u{7}"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Reset is only for failed sites.
    let r = app
        .call(Method::POST, &format!("/api/sites/{id}/reset"), None, &me)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "resource_not_failed")
    );

    // Delete: stale → 409; current → 202 marks site and environments; again → 200.
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/sites/{id}?state_version=1"),
            None,
            &me,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = app
        .call(Method::DELETE, &format!("/api/sites/{id}"), None, &me)
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "state_version is required"
    );
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/sites/{id}?state_version=2"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.body["deletion_requested_at"].is_string());
    let r = app
        .call(
            Method::GET,
            &format!("/api/environments/{env_id}"),
            None,
            &me,
        )
        .await;
    assert!(r.body["deletion_requested_at"].is_string());
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/sites/{id}?state_version=3"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A site being deleted takes no new environments or spec changes.
    let r = app
        .call(Method::POST, &format!("/api/sites/{id}/environments"), Some(json!({"name": "S", "slug": "s", "type": "staging", "promotion_preset": "content-protect"})), &me)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Events and audit were written with the changes.
    let r = app
        .call(Method::GET, &format!("/api/events?site_id={id}"), None, &me)
        .await;
    let reasons: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.starts_with(&["Created", "Created", "SpecChanged", "DeletionRequested"]),
        "{reasons:?}"
    );
    let r = app
        .call(
            Method::GET,
            &format!("/api/audit?resource_id={id}"),
            None,
            &me,
        )
        .await;
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["site.delete", "site.update", "site.create"]);
}

#[tokio::test]
async fn paging_lists() {
    let app = TestApp::new().await;
    let me = app.token().await;
    for i in 0..5 {
        app.create_site(&me, &format!("p{i}")).await;
    }
    let r = app.call(Method::GET, "/api/sites?limit=2", None, &me).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let c = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::GET,
            &format!("/api/sites?limit=2&cursor={c}"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.body["items"][0]["slug"], "p2");
    let r = app.call(Method::GET, "/api/sites?limit=0", None, &me).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call(Method::GET, "/api/sites?cursor=x", None, &me)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call(Method::GET, "/api/environments?limit=3", None, &me)
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 3);
    assert!(r.body["next_cursor"].is_string());
}

#[tokio::test]
async fn environments_crud_and_rules() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let a = app.create_site(&me, "alpha").await;
    let b = app.create_site(&me, "beta").await;
    let a_id = a["id"].as_str().unwrap();
    let a_prod = a["primary_environment_id"].as_str().unwrap();
    let b_prod = b["primary_environment_id"].as_str().unwrap();
    let path = format!("/api/sites/{a_id}/environments");

    // A staging copy of production → cloning; an empty one → provisioning.
    let r = app
        .call(Method::POST, &path, Some(json!({"name": "Staging", "slug": "staging", "type": "staging", "source_environment_id": a_prod, "promotion_preset": "commerce-protect"})), &me)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["status"], "cloning");
    assert_eq!(r.body["promotion_preset"], "commerce-protect");
    let staging = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .call(Method::POST, &path, Some(json!({"name": "Scratch", "slug": "scratch", "type": "clone", "promotion_preset": "content-protect"})), &me)
        .await;
    assert_eq!(r.body["status"], "provisioning");
    assert!(r.body["expires_at"].is_null());
    // A temporary clone carries its expiry (store format); one in the past or not a date is refused.
    let r = app
        .call(Method::POST, &path, Some(json!({"name": "Temp", "slug": "temp", "type": "clone", "source_environment_id": a_prod, "promotion_preset": "content-protect", "expires_at": "2999-01-02T03:04:05+01:00"})), &me)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["expires_at"], "2999-01-02T02:04:05.000Z");
    for bad in ["2001-01-01T00:00:00Z", "tomorrow"] {
        let r = app
            .call(Method::POST, &path, Some(json!({"name": "T2", "slug": "t2", "type": "clone", "promotion_preset": "content-protect", "expires_at": bad})), &me)
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }

    // Errors: a second production, a source from another site, duplicate slug, bad enum, unknown site.
    let r = app
        .call(Method::POST, &path, Some(json!({"name": "P2", "slug": "p2", "type": "production", "promotion_preset": "content-protect"})), &me)
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = app
        .call(Method::POST, &path, Some(json!({"name": "X", "slug": "x", "type": "clone", "source_environment_id": b_prod, "promotion_preset": "content-protect"})), &me)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = app
        .call(Method::POST, &path, Some(json!({"name": "Dup", "slug": "staging", "type": "clone", "promotion_preset": "content-protect"})), &me)
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = app
        .call(Method::POST, &path, Some(json!({"name": "E", "slug": "e", "type": "qa", "promotion_preset": "content-protect"})), &me)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = app
        .call(Method::POST, "/api/sites/0190a5d1-0000-7000-8000-000000000000/environments", Some(json!({"name": "E", "slug": "e", "type": "clone", "promotion_preset": "content-protect"})), &me)
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));

    // Filters.
    let r = app
        .call(
            Method::GET,
            &format!("/api/environments?site_id={a_id}"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 4); // production, staging, scratch, temp

    // Update: cache flags and preset; stale → 409; unchanged → 200.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/environments/{staging}"),
            Some(json!({"state_version": 1, "fastcgi_cache_enabled": false})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["fastcgi_cache_enabled"], false);
    assert_eq!(r.body["generation"], 2);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/environments/{staging}"),
            Some(json!({"state_version": 1, "name": "late"})),
            &me,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/environments/{staging}"),
            Some(json!({"state_version": 2, "fastcgi_cache_enabled": false})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/environments/{staging}"),
            Some(json!({"state_version": 2, "promotion_preset": "everything"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call(
            Method::GET,
            "/api/environments/0190a5d1-0000-7000-8000-000000000000",
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Reset only for failed environments.
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{staging}/reset"),
            None,
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "resource_not_failed")
    );
    // A failed environment with a running job: reset_validation_failed; without: accepted.
    app.exec(&format!(
        "UPDATE environments SET status = 'failed' WHERE id = '{staging}'"
    ))
    .await;
    let node_id = app
        .call(
            Method::GET,
            &format!("/api/environments/{staging}"),
            None,
            &me,
        )
        .await
        .body["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.exec(&format!(
        "INSERT INTO jobs (id, job_type, status, environment_id, node_id, resource_type, resource_id, generation, playbook, payload_json, attempt_count, max_attempts, created_at, updated_at) \
         VALUES ('0190a5d1-0000-7000-8000-00000000aaaa', 'env_create', 'running', '{staging}', '{node_id}', 'environment', '{staging}', 1, 'env-create.yml', '{{}}', 1, 3, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')"
    ))
    .await;
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{staging}/reset"),
            None,
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "reset_validation_failed")
    );
    app.exec("UPDATE jobs SET status = 'failed'").await;
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{staging}/reset"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(r.body["reset_requested_at"].is_string());

    // Delete: production only with its site; staging → 202.
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/environments/{a_prod}?state_version=1"),
            None,
            &me,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let v = app
        .call(
            Method::GET,
            &format!("/api/environments/{staging}"),
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
            &format!("/api/environments/{staging}?state_version={}", v - 1),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/environments/{staging}?state_version={v}"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.body["deletion_requested_at"].is_string());
}

#[tokio::test]
async fn nodes_crud_and_rules() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let r = app.call(Method::GET, "/api/nodes", None, &me).await;
    let local = r.body["items"][0].clone();
    assert_eq!(local["is_local"], true);
    let local_id = local["id"].as_str().unwrap();

    let r = app
        .call(Method::POST, "/api/nodes", Some(json!({"name": "web-2", "hostname": "10.0.0.7", "public_ip": "198.51.100.7", "ssh_port": 2222})), &me)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["ssh_user"], "root");
    assert_eq!(r.body["status"], "provisioning");
    let id = r.body["id"].as_str().unwrap().to_string();
    for bad in [
        json!({"name": "x", "hostname": "a;b"}),
        json!({"name": "x", "hostname": "h", "ssh_port": 70000}),
        json!({"name": "x", "hostname": "h", "ssh_user": "Root Admin"}),
        json!({"name": "x", "hostname": "h", "public_ip": "not-ip"}),
    ] {
        let r = app
            .call(Method::POST, "/api/nodes", Some(bad.clone()), &me)
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }

    let r = app
        .call(
            Method::PATCH,
            &format!("/api/nodes/{id}"),
            Some(json!({"state_version": 1, "ssh_port": 22})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["ssh_port"], 22);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/nodes/{id}"),
            Some(json!({"state_version": 1, "ssh_port": 23})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .call(
            Method::POST,
            &format!("/api/nodes/{id}/provision"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.body["provision_requested_at"].is_string());
    let r = app
        .call(Method::GET, &format!("/api/nodes/{id}"), None, &me)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.body["state_version"].as_i64().unwrap();

    // A node hosting environments cannot be deleted.
    app.create_site(&me, "hosted").await;
    let lv = app
        .call(Method::GET, &format!("/api/nodes/{local_id}"), None, &me)
        .await
        .body["state_version"]
        .as_i64()
        .unwrap();
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/nodes/{local_id}?state_version={lv}"),
            None,
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "resource_in_use")
    );
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/nodes/{id}?state_version={v}"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = app
        .call(
            Method::DELETE,
            "/api/nodes/0190a5d1-0000-7000-8000-000000000000?state_version=1",
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn domains_and_backups() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let s = app.create_site(&me, "shop").await;
    let env = s["primary_environment_id"].as_str().unwrap();

    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env}/domains"),
            Some(json!({"hostname": "shop.example.com."})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["hostname"], "shop.example.com");
    assert_eq!(r.body["tls_status"], "pending");
    assert_eq!(r.body["tls_issuer"], "letsencrypt");
    let did = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env}/domains"),
            Some(json!({"hostname": "shop.example.com"})),
            &me,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    for bad in [
        "Shop.Example.com",
        "*.example.com",
        "localhost",
        "1.2.3.4",
        "exa mple.com",
        "$(reboot).example.com",
    ] {
        let r = app
            .call(
                Method::POST,
                &format!("/api/environments/{env}/domains"),
                Some(json!({"hostname": bad})),
                &me,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = app
        .call(
            Method::GET,
            &format!("/api/environments/{env}/domains"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/domains/{did}"),
            Some(json!({"state_version": 1, "hostname": "www.example.com"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = app
        .call(Method::GET, &format!("/api/domains/{did}"), None, &me)
        .await;
    assert_eq!(r.body["hostname"], "www.example.com");
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/domains/{did}?state_version=1"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/domains/{did}?state_version=2"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.body["deletion_requested_at"].is_string());
    let r = app
        .call(
            Method::GET,
            "/api/domains/0190a5d1-0000-7000-8000-000000000000",
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Backups: local storage by default, retention 30 days, expired derived.
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env}/backups"),
            Some(json!({"backup_scope": "full"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["storage_type"], "local");
    assert!(r.body["storage_path"]
        .as_str()
        .unwrap()
        .starts_with("/var/backups/pressluft/"));
    let bid = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env}/backups"),
            Some(json!({"backup_scope": "everything"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call(
            Method::GET,
            &format!("/api/environments/{env}/backups"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/backups/{bid}"),
            Some(json!({"state_version": 1, "retention_until": "2099-01-01T00:00:00Z"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["retention_until"], "2099-01-01T00:00:00.000Z");
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/backups/{bid}"),
            Some(json!({"state_version": 2, "retention_until": "2001-01-01T00:00:00Z"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    app.exec(&format!("UPDATE backups SET status = 'completed', retention_until = '2001-01-01T00:00:00.000Z' WHERE id = '{bid}'")).await;
    let r = app
        .call(Method::GET, &format!("/api/backups/{bid}"), None, &me)
        .await;
    assert_eq!(r.body["status"], "expired");
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/backups/{bid}?state_version=2"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = app
        .call(
            Method::GET,
            "/api/backups/0190a5d1-0000-7000-8000-000000000000",
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // S3 storage must be complete before it is used.
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backup_storage_type": "s3"})),
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
}

#[tokio::test]
async fn jobs_events_audit_metrics_settings() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let s = app.create_site(&me, "j").await;
    let env = s["primary_environment_id"].as_str().unwrap();

    let r = app.call(Method::GET, "/api/metrics", None, &me).await;
    assert_eq!(r.body["sites_total"], 1);
    assert_eq!(r.body["jobs_queued"], 0);

    let node_id = app
        .call(Method::GET, &format!("/api/environments/{env}"), None, &me)
        .await
        .body["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (id, status) in [
        ("0190a5d1-0000-7000-8000-00000000000a", "queued"),
        ("0190a5d1-0000-7000-8000-00000000000b", "succeeded"),
    ] {
        app.exec(&format!(
            "INSERT INTO jobs (id, job_type, status, environment_id, node_id, resource_type, resource_id, generation, playbook, payload_json, attempt_count, max_attempts, created_at, updated_at) \
             VALUES ('{id}', 'site_create', '{status}', '{env}', '{node_id}', 'environment', '{env}', 1, 'site-create.yml', '{{}}', 0, 3, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')"
        ))
        .await;
    }
    app.exec("INSERT INTO job_logs (job_id, log, updated_at) VALUES ('0190a5d1-0000-7000-8000-00000000000b', 'PLAY [site] ok=3 changed=1', '2026-01-01T00:00:00.000Z')").await;
    let r = app.call(Method::GET, "/api/metrics", None, &me).await;
    assert_eq!(r.body["jobs_queued"], 1);
    let r = app
        .call(
            Method::GET,
            &format!("/api/jobs?environment_id={env}&status=queued"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app
        .call(Method::GET, "/api/jobs?status=bogus", None, &me)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call(
            Method::GET,
            "/api/jobs/0190a5d1-0000-7000-8000-00000000000b",
            None,
            &me,
        )
        .await;
    assert_eq!(r.body["status"], "succeeded");
    let r = app
        .call(
            Method::GET,
            "/api/jobs/0190a5d1-0000-7000-8000-00000000000b/log",
            None,
            &me,
        )
        .await;
    assert_eq!(r.body, json!("PLAY [site] ok=3 changed=1"));
    let r = app
        .call(
            Method::GET,
            "/api/jobs/0190a5d1-0000-7000-8000-0000000000ff",
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Cancel: queued → cancelled; finished → job_not_cancellable.
    let r = app
        .call(
            Method::POST,
            "/api/jobs/0190a5d1-0000-7000-8000-00000000000a/cancel",
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"success": true, "status": "cancelled"}));
    let r = app
        .call(
            Method::POST,
            "/api/jobs/0190a5d1-0000-7000-8000-00000000000a/cancel",
            None,
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "job_not_cancellable")
    );
    let r = app
        .call(
            Method::POST,
            "/api/jobs/0190a5d1-0000-7000-8000-0000000000ff/cancel",
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Events: cursor paging.
    let r = app
        .call(Method::GET, "/api/events?limit=1", None, &me)
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let c = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = app
        .call(Method::GET, &format!("/api/events?cursor={c}"), None, &me)
        .await;
    assert!(r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"].as_str().unwrap() > c.as_str()));
    // newest first: the latest page, then older pages through next_cursor
    let all = app
        .call(Method::GET, "/api/events?limit=1000", None, &me)
        .await;
    let ids: Vec<String> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 3, "{ids:?}");
    let r = app
        .call(Method::GET, "/api/events?order=desc&limit=2", None, &me)
        .await;
    let page: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [&ids[ids.len() - 1], &ids[ids.len() - 2]]);
    let c = r.body["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(c, ids[ids.len() - 2]);
    let r = app
        .call(
            Method::GET,
            &format!("/api/events?order=desc&limit=1&cursor={c}"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.body["items"][0]["id"], ids[ids.len() - 3]);
    let r = app
        .call(Method::GET, "/api/events?order=newest", None, &me)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );

    // Settings: defaults, validation, secrets redacted everywhere.
    let r = app.call(Method::GET, "/api/settings", None, &me).await;
    assert_eq!(r.body["backup_storage_type"], "local");
    assert_eq!(r.body["backup_fresh_window_minutes"], 60);
    let secret = "s3-SECRET-value-123";
    let r = app
        .call(Method::PATCH, "/api/settings", Some(json!({
            "backup_storage_type": "s3", "backup_s3_endpoint": "http://127.0.0.1:9000", "backup_s3_bucket": "b",
            "backup_s3_access_key_id": "AK", "backup_s3_secret_access_key": secret
        })), &me)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["backup_s3_secret_access_key_set"], true);
    assert!(!r.body.to_string().contains(secret));
    let r = app.call(Method::GET, "/api/settings", None, &me).await;
    assert!(!r.body.to_string().contains(secret));
    let r = app
        .call(Method::GET, "/api/events?limit=1000", None, &me)
        .await;
    assert!(!r.body.to_string().contains(secret));
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT ciphertext FROM secrets".to_string(),
        ))
        .await
        .unwrap()
        .unwrap();
    let ct: String = row.try_get("", "ciphertext").unwrap();
    assert!(!ct.contains(secret));
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({"preview_domain": "wp.example.com"})),
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backup_local_dir": "../etc"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backup_s3_secret_access_key": null})),
            &me,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "s3 storage without its key is refused"
    );
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backup_storage_type": "local", "backup_s3_secret_access_key": null})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["backup_s3_secret_access_key_set"], false);

    // Audit newest first and complete.
    let r = app.call(Method::GET, "/api/audit", None, &me).await;
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"job.cancel")
            && actions.contains(&"settings.update")
            && actions.contains(&"site.create"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let r = app.call(Method::GET, "/api/nothing-here", None, &me).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_error_shape(&r.body);
    let r = app.call(Method::PUT, "/api/sites", None, &me).await;
    assert!(r.status.is_client_error());
    assert_error_shape(&r.body);
}

#[test]
fn committed_openapi_document_is_current() {
    let generated = pressluft::api::openapi_yaml();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if std::env::var("PRESSLUFT_UPDATE_OPENAPI").is_ok() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    assert!(
        committed == generated,
        "openapi/openapi.yaml is stale: run `PRESSLUFT_UPDATE_OPENAPI=1 cargo test --test api committed_openapi` and commit it"
    );
}

/// Issue 6: primary (exactly one), www redirect clashes, TLS modes, wildcards, custom certificates
/// (the key is write-only), and the primary's deletion rule.
#[tokio::test]
async fn domain_rules() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let s = app.create_site(&me, "rules").await;
    let env = s["primary_environment_id"].as_str().unwrap().to_string();
    let post = |body: Value| {
        let app = &app;
        let me = &me;
        let env = env.clone();
        async move {
            app.call(
                Method::POST,
                &format!("/api/environments/{env}/domains"),
                Some(body),
                me,
            )
            .await
        }
    };
    // the first domain is primary, and cannot be declared otherwise
    let r = post(json!({"hostname": "a.example.com", "primary": false})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = post(json!({"hostname": "a.example.com", "www_redirect": true})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["primary"], true);
    assert_eq!(r.body["tls_mode"], "acme");
    assert_eq!(r.body["www_redirect"], true);
    let a = r.body["id"].as_str().unwrap().to_string();
    let e = app
        .call(Method::GET, &format!("/api/environments/{env}"), None, &me)
        .await;
    assert_eq!(e.body["primary_domain_id"], a.as_str());
    // www. of a redirecting domain is taken
    let r = post(json!({"hostname": "www.a.example.com"})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "conflict"),
        "{:?}",
        r.body
    );
    // a second domain is not primary unless asked; asking moves the primary
    let r = post(json!({"hostname": "b.example.com", "tls_mode": "none"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["primary"], false);
    let b = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/domains/{b}"),
            Some(json!({"state_version": 1, "primary": true})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["primary"], true);
    let r = app
        .call(Method::GET, &format!("/api/domains/{a}"), None, &me)
        .await;
    assert_eq!(r.body["primary"], false, "exactly one primary");
    // a primary cannot be unset, nor deleted while another domain remains
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/domains/{b}"),
            Some(json!({"state_version": 2, "primary": false})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/domains/{b}?state_version=2"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    // wildcards only with a custom certificate, never primary; bad modes and pairs refused
    for (body, field) in [
        (json!({"hostname": "*.example.org"}), "hostname"),
        (
            json!({"hostname": "*.example.org", "tls_mode": "custom", "certificate_pem": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n", "private_key_pem": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n", "primary": true}),
            "primary",
        ),
        (
            json!({"hostname": "c.example.com", "tls_mode": "letsencrypt"}),
            "tls_mode",
        ),
        (
            json!({"hostname": "c.example.com", "tls_mode": "custom"}),
            "certificate_pem",
        ),
        (
            json!({"hostname": "c.example.com", "certificate_pem": "-----BEGIN CERTIFICATE-----\n"}),
            "certificate_pem",
        ),
        (
            json!({"hostname": "c.example.com", "tls_mode": "custom", "certificate_pem": "nope", "private_key_pem": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"}),
            "certificate_pem",
        ),
        (
            json!({"hostname": "c.example.com", "tls_mode": "custom", "certificate_pem": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n", "private_key_pem": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----\n"}),
            "private_key_pem",
        ),
        (
            json!({"hostname": "www.c.example.com", "www_redirect": true}),
            "www_redirect",
        ),
    ] {
        let r = post(body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert_eq!(r.body["details"]["field"], field, "{body}: {:?}", r.body);
    }
    let key = "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";
    let r = post(json!({
        "hostname": "*.example.org",
        "tls_mode": "custom",
        "certificate_pem": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        "private_key_pem": key,
    }))
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["tls_mode"], "custom");
    let w = r.body["id"].as_str().unwrap().to_string();
    for path in [
        format!("/api/domains/{w}"),
        format!("/api/environments/{env}/domains"),
        "/api/events?limit=100".to_string(),
        "/api/audit?limit=100".to_string(),
    ] {
        let r = app.call(Method::GET, &path, None, &me).await;
        assert!(
            !r.body.to_string().contains("TOPSECRETKEYMATERIAL"),
            "the key leaked through {path}"
        );
    }
    let n: i64 = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM secrets WHERE id = 'domain/{w}/private_key'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    assert_eq!(n, 1, "the key is kept in the secret store");
    // deleting the non-primary first, then the primary, is fine
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/domains/{a}?state_version=1"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
}

/// Issue 7: restores (validation, same site only, 409 `resource_in_use` while one runs),
/// schedules (exactly one cadence, cron checked, keep rules, run), backup filters, drills.
#[tokio::test]
async fn restores_schedules_and_drills_rules() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let s = app.create_site(&me, "vault").await;
    let env = s["primary_environment_id"].as_str().unwrap().to_string();
    let other = app.create_site(&me, "other").await;
    let other_env = other["primary_environment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let backup_of = |env: String| {
        let app = &app;
        let me = &me;
        async move {
            let r = app
                .call(
                    Method::POST,
                    &format!("/api/environments/{env}/backups"),
                    Some(json!({"backup_scope": "full"})),
                    me,
                )
                .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
            assert_eq!(r.body["reason"], "operator");
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let bid = backup_of(env.clone()).await;
    let foreign = backup_of(other_env.clone()).await;
    let restore = |env: String, backup: String| {
        let app = &app;
        let me = &me;
        async move {
            app.call(
                Method::POST,
                &format!("/api/environments/{env}/restores"),
                Some(json!({"backup_id": backup})),
                me,
            )
            .await
        }
    };
    // not completed yet → 409 conflict; malformed → 400; unknown → 404; strict body
    let r = restore(env.clone(), bid.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "conflict"),
        "{:?}",
        r.body
    );
    let r = restore(env.clone(), "nope".into()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = restore(env.clone(), "0190a5d1-0000-7000-8000-000000000000".into()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env}/restores"),
            Some(json!({"backup_id": bid, "extra": 1})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let manifest =
        r#"{"format":1,"artifacts":[{"name":"database.sql.zst","size":3,"sha256":"ab"}]}"#;
    for b in [&bid, &foreign] {
        app.exec(&format!("UPDATE backups SET status = 'completed', completed_at = '2026-01-01T00:00:00.000Z', checksum = 'cafe', manifest = '{manifest}' WHERE id = '{b}'")).await;
    }
    // never across sites
    let r = restore(env.clone(), foreign.clone()).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    // backup read: manifest, filters
    let r = app
        .call(Method::GET, &format!("/api/backups/{bid}"), None, &me)
        .await;
    assert_eq!(
        r.body["manifest"]["artifacts"][0]["name"],
        "database.sql.zst"
    );
    let r = app
        .call(
            Method::GET,
            &format!("/api/backups?environment_id={env}&status=completed"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app
        .call(Method::GET, "/api/backups?status=broken", None, &me)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = restore(env.clone(), bid.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    let rid = r.body["id"].as_str().unwrap().to_string();
    // a restore in progress blocks the environment's other mutations
    let r = restore(env.clone(), bid.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "resource_in_use")
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
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env}/backups"),
            Some(json!({"backup_scope": "db"})),
            &me,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "resource_in_use")
    );
    let r = app
        .call(Method::GET, &format!("/api/restores/{rid}"), None, &me)
        .await;
    assert_eq!(
        (r.body["backup_id"].as_str(), r.body["drill"].as_bool()),
        (Some(bid.as_str()), Some(false))
    );
    let r = app
        .call(
            Method::GET,
            &format!("/api/restores?environment_id={env}"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);

    // drills: a scratch clone environment of the same site and a drill restore into it
    let r = app
        .call(
            Method::POST,
            &format!("/api/backups/{foreign}/drill"),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["drill"], true);
    let scratch = r.body["environment_id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::GET,
            &format!("/api/environments/{scratch}"),
            None,
            &me,
        )
        .await;
    assert_eq!(
        (
            r.body["environment_type"].as_str(),
            r.body["site_id"].as_str()
        ),
        (Some("clone"), other["id"].as_str())
    );
    let r = app
        .call(
            Method::GET,
            &format!("/api/environments/{other_env}"),
            None,
            &me,
        )
        .await;
    assert!(r.body["last_verified_backup_at"].is_null());

    // schedules
    let sched = |body: Value| {
        let app = &app;
        let me = &me;
        let path = format!("/api/environments/{other_env}/backup-schedules");
        async move { app.call(Method::POST, &path, Some(body), me).await }
    };
    for bad in [
        json!({}),
        json!({"interval_minutes": 60, "cron": "0 * * * *"}),
        json!({"interval_minutes": 0}),
        json!({"cron": "61 * * * *"}),
        json!({"cron": "0 0 30 2 *"}),
        json!({"interval_minutes": 60, "keep_last": 0}),
        json!({"interval_minutes": 60, "unknown": true}),
        json!({"interval_minutes": 60, "backup_scope": "all"}),
    ] {
        let r = sched(bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
    }
    let r =
        sched(json!({"cron": "30 2 * * *", "keep_last": 3, "keep_days": 7, "drill": true})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["backup_scope"], "full");
    assert!(
        r.body["next_run_at"]
            .as_str()
            .unwrap()
            .ends_with(":30:00.000Z"),
        "{:?}",
        r.body
    );
    let sid = r.body["id"].as_str().unwrap().to_string();
    let base = format!("/api/environments/{other_env}/backup-schedules");
    let r = app
        .call(
            Method::PATCH,
            &format!("{base}/{sid}"),
            Some(json!({"state_version": 1, "interval_minutes": 60})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["cron"].is_null() && r.body["interval_minutes"] == 60);
    let r = app
        .call(
            Method::PATCH,
            &format!("{base}/{sid}"),
            Some(json!({"state_version": 1, "keep_last": 2})),
            &me,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = app
        .call(Method::POST, &format!("{base}/{sid}/run"), None, &me)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(
        (r.body["reason"].as_str(), r.body["schedule_id"].as_str()),
        (Some("schedule"), Some(sid.as_str()))
    );
    let r = app.call(Method::GET, &base, None, &me).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert!(r.body["items"][0]["last_run_at"].is_string());
    let r = app
        .call(
            Method::GET,
            &format!("/api/environments/{env}/backup-schedules/{sid}"),
            None,
            &me,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a schedule is read under its own environment"
    );
    let r = app
        .call(Method::DELETE, &format!("{base}/{sid}"), None, &me)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // S3 credentials never come back
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({
                "backup_storage_type": "s3",
                "backup_s3_endpoint": "http://127.0.0.1:9",
                "backup_s3_bucket": "b",
                "backup_s3_access_key_id": "AKIDEXAMPLE",
                "backup_s3_secret_access_key": "very-secret-s3-key"
            })),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    backup_of(other_env.clone()).await;
    for path in [
        "/api/settings",
        "/api/backups",
        "/api/events?limit=1000",
        "/api/audit?limit=1000",
    ] {
        let r = app.call(Method::GET, path, None, &me).await;
        assert!(!r.body.to_string().contains("very-secret-s3-key"), "{path}");
    }
}

/// Issue 7: `GET /api/backups/{id}/artifacts/{name}`: the error paths (the download itself runs
/// end to end in `tests/e2e.rs`).
#[tokio::test]
async fn backup_download_error_paths() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let s = app.create_site(&me, "dl").await;
    let env = s["primary_environment_id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env}/backups"),
            Some(json!({"backup_scope": "db"})),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let bid = r.body["id"].as_str().unwrap().to_string();
    let get = |path: String, who: As| {
        let app = &app;
        async move { app.call(Method::GET, &path, None, &who).await }
    };
    let url = |b: &str, name: &str| format!("/api/backups/{b}/artifacts/{name}");

    // unauthenticated → 401
    let r = get(url(&bid, "database.sql.zst"), As::Nobody).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_error_shape(&r.body);
    // malformed id → 400; unknown backup → 404
    let r = get(url("nope", "database.sql.zst"), me.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = get(
        url("0190a5d1-0000-7000-8000-000000000000", "database.sql.zst"),
        me.clone(),
    )
    .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    assert_error_shape(&r.body);
    // not completed → 409
    let r = get(url(&bid, "database.sql.zst"), me.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "conflict"),
        "{:?}",
        r.body
    );
    assert_error_shape(&r.body);

    let sha = "ab".repeat(32);
    let manifest = format!(
        r#"{{"format":1,"scope":"db","artifacts":[{{"name":"database.sql.zst","size":3,"sha256":"{sha}"}}]}}"#
    );
    app.exec(&format!("UPDATE backups SET status = 'completed', completed_at = '2026-01-01T00:00:00.000Z', checksum = '{}', manifest = '{manifest}' WHERE id = '{bid}'", "cd".repeat(32))).await;
    // a name that is no artifact → 400; an artifact this backup does not have → 404
    for name in ["passwd", "..%2F..%2Fetc%2Fpasswd", "manifest.json.bak"] {
        let r = get(url(&bid, name), me.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{name}: {:?}",
            r.body
        );
        assert_error_shape(&r.body);
    }
    let r = get(url(&bid, "files.tar.zst"), me.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "not_found"),
        "{:?}",
        r.body
    );
    // the node cannot be reached (no pinned host key here) → 502, audited as failed
    app.exec("UPDATE nodes SET host_key = NULL").await;
    let r = get(url(&bid, "database.sql.zst"), me.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_GATEWAY, "node_unreachable"),
        "{:?}",
        r.body
    );
    assert_error_shape(&r.body);
    let r = get(format!("/api/audit?resource_id={bid}"), me.clone()).await;
    let entry = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "backup.download")
        .cloned()
        .expect("backup.download audited");
    assert_eq!(entry["result"], "failed", "{entry}");
    // expired or deleted → 409
    app.exec(&format!(
        "UPDATE backups SET retention_until = '2001-01-01T00:00:00.000Z' WHERE id = '{bid}'"
    ))
    .await;
    let r = get(url(&bid, "database.sql.zst"), me.clone()).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    app.exec(&format!("UPDATE backups SET retention_until = '2999-01-01T00:00:00.000Z', deleted_at = '2026-01-02T00:00:00.000Z' WHERE id = '{bid}'")).await;
    let r = get(url(&bid, "manifest.json"), me.clone()).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
}

#[tokio::test]
async fn drift_check_requests() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let a = app.create_site(&me, "drifty").await;
    let a_id = a["id"].as_str().unwrap();
    let prod = a["primary_environment_id"].as_str().unwrap();
    let r = app
        .call(Method::POST, &format!("/api/sites/{a_id}/environments"), Some(json!({"name": "Staging", "slug": "staging", "type": "staging", "source_environment_id": prod, "promotion_preset": "content-protect"})), &me)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let staging = r.body["id"].as_str().unwrap().to_string();
    let check = |id: &str| format!("/api/environments/{id}/drift-check");
    // production as {id} → 409 conflict; an environment without a baseline → 409 conflict
    for id in [prod, staging.as_str()] {
        let r = app.call(Method::POST, &check(id), None, &me).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "conflict"),
            "{id}: {:?}",
            r.body
        );
        assert_error_shape(&r.body);
    }
    // malformed and unknown ids
    let r = app.call(Method::POST, &check("nope"), None, &me).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = app
        .call(
            Method::POST,
            &check("0190a5d1-0000-7000-8000-000000000000"),
            None,
            &me,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    // with a baseline: 202, the request recorded with a generation bump that needs no converge
    app.exec(&format!(
        "INSERT INTO drift_baselines (id, environment_id, production_environment_id, promotion_preset, db_checksums_json, file_manifest_json, captured_at) VALUES ('0190a5d1-0000-7000-8000-0000000000b1', '{staging}', '{prod}', 'content-protect', '{{}}', '{{}}', '2026-12-05T00:00:00.000Z')"
    ))
    .await;
    app.exec(&format!(
        "UPDATE environments SET drift_baseline_id = '0190a5d1-0000-7000-8000-0000000000b1' WHERE id = '{staging}'"
    ))
    .await;
    let before = app
        .call(
            Method::GET,
            &format!("/api/environments/{staging}"),
            None,
            &me,
        )
        .await
        .body;
    let r = app.call(Method::POST, &check(&staging), None, &me).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(
        r.body["drift_check_requested_at"].is_string(),
        "{:?}",
        r.body
    );
    assert_eq!(
        r.body["generation"].as_i64().unwrap(),
        before["generation"].as_i64().unwrap() + 1
    );
    assert_eq!(
        r.body["state_version"].as_i64().unwrap(),
        before["state_version"].as_i64().unwrap() + 1
    );
    let r = app
        .call(
            Method::GET,
            &format!("/api/audit?resource_id={staging}"),
            None,
            &me,
        )
        .await;
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "environment.drift_check"),
        "{:?}",
        r.body
    );
    // while being deleted → 409
    let r = app
        .call(
            Method::DELETE,
            &format!(
                "/api/environments/{staging}?state_version={}",
                before["state_version"].as_i64().unwrap() + 1
            ),
            None,
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let r = app.call(Method::POST, &check(&staging), None, &me).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
}

/// `control_plane_domain` (issue 12, item 4): validated and normalized, desired state with an event
/// and an audit entry, and a change wakes the local node (its reconciler renders the panel);
/// a change of an unrelated setting does not.
#[tokio::test]
async fn control_plane_domain_is_validated_audited_and_wakes_the_local_node() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let local = app.call(Method::GET, "/api/nodes", None, &me).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut wakes = app.state.notifier.subscribe();
    for bad in ["not a domain", "203.0.113.5", "panel", "-x.example.com"] {
        let r = app
            .call(
                Method::PATCH,
                "/api/settings",
                Some(json!({ "control_plane_domain": bad })),
                &me,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
        assert_eq!(
            r.body["details"]["field"], "control_plane_domain",
            "{:?}",
            r.body
        );
    }
    assert!(wakes.try_recv().is_err(), "a refused change wakes nobody");
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({ "control_plane_domain": "Panel.Example.com." })),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["control_plane_domain"], "panel.example.com");
    let woken: Vec<_> = std::iter::from_fn(|| wakes.try_recv().ok()).collect();
    assert!(
        woken
            .iter()
            .any(|c| c.kind == pressluft::notify::Kind::Node && c.id == local),
        "the local node is woken: {woken:?}"
    );
    let r = app.call(Method::GET, "/api/settings", None, &me).await;
    assert_eq!(r.body["control_plane_domain"], "panel.example.com");
    // an unrelated setting: the node is left alone
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({ "releases_keep": 7 })),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let woken: Vec<_> = std::iter::from_fn(|| wakes.try_recv().ok()).collect();
    assert!(
        !woken
            .iter()
            .any(|c| c.kind == pressluft::notify::Kind::Node),
        "{woken:?}"
    );
    let r = app
        .call(
            Method::PATCH,
            "/api/settings",
            Some(json!({ "control_plane_domain": null })),
            &me,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["control_plane_domain"].is_null());
    let events = app
        .call(Method::GET, "/api/events?order=desc&limit=50", None, &me)
        .await;
    assert!(
        events.body.to_string().contains("control_plane_domain"),
        "{:?}",
        events.body
    );
    let audit = app.call(Method::GET, "/api/audit", None, &me).await;
    let updates = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "settings.update")
        .count();
    assert_eq!(updates, 3, "{:?}", audit.body);
}
