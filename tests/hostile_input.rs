//! Every write endpoint against malformed and hostile input: each answers 4xx with a stable code
//! and the database is left exactly as it was.
mod common;

use common::{As, TestApp};
use poem::http::{Method, StatusCode};
use serde_json::{json, Value};

const HOSTILE: [&str; 8] = [
    "../../etc/passwd",
    "a; rm -rf / #",
    "$(id)",
    "`reboot`",
    "' OR '1'='1' --",
    "x\"; DROP TABLE sites; --",
    "<script>alert(1)</script>",
    "\u{0}nul",
];

struct Endpoint {
    method: Method,
    path: String,
    /// A valid body; each test breaks it in one way.
    body: Value,
    /// Fields with a syntax (slugs, host names, ids, enums): hostile strings must be refused.
    strict_fields: Vec<&'static str>,
}

async fn endpoints(app: &TestApp, me: &As) -> Vec<Endpoint> {
    let site = app.create_site(me, "target").await;
    let site_id = site["id"].as_str().unwrap().to_string();
    let env = site["primary_environment_id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env}/domains"),
            Some(json!({"hostname": "a.example.com"})),
            me,
        )
        .await;
    let domain = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::POST,
            &format!("/api/environments/{env}/backups"),
            Some(json!({"backup_scope": "db"})),
            me,
        )
        .await;
    let backup = r.body["id"].as_str().unwrap().to_string();
    let node = app.call(Method::GET, "/api/nodes", None, me).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    vec![
        Endpoint {
            method: Method::POST,
            path: "/api/login".into(),
            body: json!({"email": "admin@example.com", "password": "x"}),
            strict_fields: vec![],
        },
        Endpoint {
            method: Method::POST,
            path: "/api/tokens".into(),
            body: json!({"name": "t"}),
            strict_fields: vec![],
        },
        Endpoint {
            method: Method::POST,
            path: "/api/sites".into(),
            body: json!({"name": "S", "slug": "s-new"}),
            strict_fields: vec!["slug", "node_id"],
        },
        Endpoint {
            method: Method::PATCH,
            path: format!("/api/sites/{site_id}"),
            body: json!({"state_version": 1, "name": "N"}),
            strict_fields: vec![],
        },
        Endpoint {
            method: Method::POST,
            path: format!("/api/sites/{site_id}/environments"),
            body: json!({"name": "E", "slug": "e-new", "type": "staging", "promotion_preset": "content-protect"}),
            strict_fields: vec!["slug", "type", "promotion_preset", "source_environment_id"],
        },
        Endpoint {
            method: Method::PATCH,
            path: format!("/api/environments/{env}"),
            body: json!({"state_version": 1, "name": "E"}),
            strict_fields: vec!["promotion_preset"],
        },
        Endpoint {
            method: Method::POST,
            path: "/api/nodes".into(),
            body: json!({"name": "n", "hostname": "10.1.1.1"}),
            strict_fields: vec!["hostname", "public_ip", "ssh_user"],
        },
        Endpoint {
            method: Method::PATCH,
            path: format!("/api/nodes/{node}"),
            body: json!({"state_version": 1, "name": "n"}),
            strict_fields: vec!["hostname", "public_ip", "ssh_user"],
        },
        Endpoint {
            method: Method::POST,
            path: format!("/api/environments/{env}/domains"),
            body: json!({"hostname": "b.example.com"}),
            strict_fields: vec!["hostname"],
        },
        Endpoint {
            method: Method::PATCH,
            path: format!("/api/domains/{domain}"),
            body: json!({"state_version": 1, "hostname": "c.example.com"}),
            strict_fields: vec!["hostname"],
        },
        Endpoint {
            method: Method::POST,
            path: format!("/api/environments/{env}/backups"),
            body: json!({"backup_scope": "full"}),
            strict_fields: vec!["backup_scope"],
        },
        Endpoint {
            method: Method::PATCH,
            path: format!("/api/backups/{backup}"),
            body: json!({"state_version": 1, "retention_until": "2099-01-01T00:00:00Z"}),
            strict_fields: vec!["retention_until"],
        },
        Endpoint {
            method: Method::PATCH,
            path: "/api/settings".into(),
            body: json!({"backup_local_dir": "/srv/backups"}),
            strict_fields: vec![
                "backup_local_dir",
                "preview_domain",
                "control_plane_domain",
                "backup_storage_type",
                "backup_s3_endpoint",
                "dns01_provider",
            ],
        },
    ]
}

fn wrong_type(v: &Value) -> Vec<Value> {
    match v {
        Value::String(_) => vec![json!(42), json!(["x"]), json!({"a": 1}), json!(true)],
        Value::Number(_) => vec![json!("1"), json!([1]), json!(1.5), json!(-1e300)],
        Value::Bool(_) => vec![json!("true"), json!(1)],
        _ => vec![json!("x")],
    }
}

#[tokio::test]
async fn malformed_and_hostile_bodies_change_nothing() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let eps = endpoints(&app, &me).await;
    let before = app.snapshot().await;
    let mut checked = 0;
    for ep in &eps {
        let who = if ep.path == "/api/login" {
            As::Nobody
        } else {
            me.clone()
        };
        let mut cases: Vec<(String, String)> = vec![
            ("invalid JSON".into(), "{\"name\": ".into()),
            ("not an object".into(), "[1,2,3]".into()),
            ("empty body".into(), String::new()),
            ("trailing garbage".into(), format!("{} xx", ep.body)),
        ];
        let obj = ep.body.as_object().unwrap();
        let mut unknown = ep.body.clone();
        unknown["evil"] = json!("1");
        cases.push(("unknown field".into(), unknown.to_string()));
        for (k, v) in obj {
            for w in wrong_type(v) {
                let mut b = ep.body.clone();
                b[k] = w.clone();
                cases.push((format!("{k} = {w}"), b.to_string()));
            }
        }
        for f in &ep.strict_fields {
            for h in HOSTILE {
                let mut b = ep.body.clone();
                b[*f] = json!(h);
                cases.push((format!("{f} = {h:?}"), b.to_string()));
            }
        }
        // Oversized: far above the body limit.
        let mut big = ep.body.clone();
        big["padding"] = json!("x".repeat(400 * 1024));
        cases.push(("oversized".into(), big.to_string()));
        for (what, body) in cases {
            let r = app
                .call_raw(ep.method.clone(), &ep.path, Some(&body), &who, &[])
                .await;
            assert!(
                r.status.is_client_error(),
                "{} {} with {what}: got {} {:?}",
                ep.method,
                ep.path,
                r.status,
                r.body
            );
            let code = r.code();
            assert!(
                [
                    "bad_request",
                    "payload_too_large",
                    "unauthorized",
                    "conflict"
                ]
                .contains(&code),
                "{} {} with {what}: code {code:?}",
                ep.method,
                ep.path
            );
            assert_ne!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
            checked += 1;
        }
    }
    // Throttling rows from the login cases aside, nothing was written.
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused request wrote to the database"
    );
    assert!(checked > 300, "only {checked} cases ran");
}

#[tokio::test]
async fn hostile_path_ids_are_refused() {
    let app = TestApp::new().await;
    let me = app.token().await;
    let before = app.snapshot().await;
    for h in ["..%2F..%2Fetc%2Fpasswd", "1%20OR%201%3D1", "%24(id)", "x'y"] {
        for (m, p) in [
            (Method::GET, format!("/api/sites/{h}")),
            (Method::PATCH, format!("/api/sites/{h}")),
            (Method::DELETE, format!("/api/sites/{h}?state_version=1")),
            (Method::GET, format!("/api/environments/{h}")),
            (Method::DELETE, format!("/api/nodes/{h}?state_version=1")),
            (Method::POST, format!("/api/jobs/{h}/cancel")),
            (Method::DELETE, format!("/api/tokens/{h}")),
        ] {
            let body = (m == Method::PATCH).then(|| json!({"state_version": 1}));
            let r = app.call(m.clone(), &p, body, &me).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{m} {p}: {:?}", r.body);
            assert_eq!(r.code(), "bad_request");
        }
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn free_text_is_stored_verbatim_and_harmlessly() {
    let app = TestApp::new().await;
    let me = app.token().await;
    for (i, h) in HOSTILE.iter().filter(|h| !h.contains('\u{0}')).enumerate() {
        let r = app
            .call(
                Method::POST,
                "/api/sites",
                Some(json!({"name": h, "slug": format!("h{i}")})),
                &me,
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{h}");
        let id = r.body["id"].as_str().unwrap();
        let r = app
            .call(Method::GET, &format!("/api/sites/{id}"), None, &me)
            .await;
        assert_eq!(r.body["name"], json!(h));
    }
    // The sites table is intact (no injected DROP or OR took effect).
    let r = app.call(Method::GET, "/api/sites", None, &me).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), HOSTILE.len() - 1);
}
