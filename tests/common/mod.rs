//! Shared test fixtures: an API on a fresh SQLite database, called in-process.
#![allow(dead_code)]
use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderMap, Method, StatusCode};
use poem::{Endpoint, EndpointExt, Request};
use pressluft::api::{self, ApiSettings, AppState};
use pressluft::notify::Notifier;
use pressluft::secrets::SecretBox;
use pressluft::server;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{json, Value};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub db: DatabaseConnection,
    pub state: AppState,
    pub ep: BoxEndpoint<'static, poem::Response>,
    _dir: tempfile::TempDir,
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum As {
    Nobody,
    Token(String),
    /// Session cookie; `csrf` adds the dashboard's CSRF header.
    Cookie {
        value: String,
        csrf: bool,
    },
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        // PRESSLUFT_TEST_POSTGRES_URL (`postgres://user:password@host:port`): every test app gets a
        // fresh database on that server instead of an SQLite file.
        let url = match fresh_postgres_database().await {
            Some(url) => url,
            None => format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
        };
        let db = server::open_database(&url).await.unwrap();
        std::env::set_var("PRESSLUFT_ADMIN_EMAIL", ADMIN_EMAIL);
        std::env::set_var("PRESSLUFT_ADMIN_PASSWORD", ADMIN_PASSWORD);
        server::bootstrap_admin(&db).await.unwrap();
        server::register_local_node(&db, Some("203.0.113.5"))
            .await
            .unwrap();
        let state = AppState {
            db: db.clone(),
            secrets: SecretBox::from_key(&[9u8; 32]),
            notifier: Notifier::default(),
            settings: Arc::new(ApiSettings {
                default_public_ip: "127.0.0.1".into(),
            }),
            credentials: Default::default(),
            runtime_stats: Default::default(),
        };
        let ep = api::app(state.clone(), None).map_to_response().boxed();
        TestApp {
            db,
            state,
            ep,
            _dir: dir,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>, who: &As) -> Reply {
        let raw = body.map(|b| b.to_string());
        self.call_raw(method, path, raw.as_deref(), who, &[]).await
    }

    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        who: &As,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(path.parse().unwrap());
        match who {
            As::Nobody => {}
            As::Token(t) => b = b.header("authorization", format!("Bearer {t}")),
            As::Cookie { value, csrf } => {
                b = b.header("cookie", format!("session_token={value}"));
                if *csrf {
                    b = b.header("x-pressluft-csrf", "1");
                }
            }
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(s) => b.content_type("application/json").body(s.to_string()),
            None => b.finish(),
        };
        let resp = self.ep.call(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().into_vec().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Logs in and returns the session cookie's value.
    pub async fn login(&self) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/login",
                Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
                &As::Nobody,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let cookie = r
            .headers
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("session_token=")
            .to_string()
    }

    /// Logs in and creates an API token.
    pub async fn token(&self) -> As {
        let c = self.login().await;
        let r = self
            .call(
                Method::POST,
                "/api/tokens",
                Some(json!({"name": "test"})),
                &As::Cookie {
                    value: c,
                    csrf: true,
                },
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        As::Token(r.body["token"].as_str().unwrap().to_string())
    }

    pub async fn create_site(&self, who: &As, slug: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                "/api/sites",
                Some(json!({"name": format!("Site {slug}"), "slug": slug})),
                who,
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        r.body
    }

    pub async fn exec(&self, sql: &str) {
        self.db.execute_unprepared(sql).await.unwrap();
    }

    /// Row counts of every table a write could touch: the "nothing was written" check.
    pub async fn snapshot(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for t in [
            "sites",
            "environments",
            "nodes",
            "domains",
            "backups",
            "events",
            "audit_logs",
            "settings",
            "secrets",
            "api_tokens",
            "jobs",
        ] {
            let row = self
                .db
                .query_one_raw(sea_orm::Statement::from_string(
                    self.db.get_database_backend(),
                    format!("SELECT COUNT(*) AS n FROM {t}"),
                ))
                .await
                .unwrap()
                .unwrap();
            let n: i64 = row.try_get("", "n").unwrap();
            out.push((t.to_string(), n));
        }
        // Spec versions too: an update that half-applied would move them.
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                "SELECT CAST(COALESCE(SUM(state_version),0) AS BIGINT) AS n FROM sites".to_string(),
            ))
            .await
            .unwrap()
            .unwrap();
        out.push(("sites.state_version".into(), row.try_get("", "n").unwrap()));
        out
    }
}

/// With PRESSLUFT_TEST_POSTGRES_URL (`postgres://user:password@host:port`): the URL of a fresh,
/// empty database on that server (scripts/test-postgres.sh drops them afterwards); else None.
pub async fn fresh_postgres_database() -> Option<String> {
    postgres_database(&pressluft::ids::new_id().replace('-', "")).await
}

/// With PRESSLUFT_TEST_POSTGRES_URL: the URL of the database `pl_test_<suffix>` on that server,
/// created when it does not exist yet (a restarted server finds its data again); else None.
pub async fn postgres_database(suffix: &str) -> Option<String> {
    let base = std::env::var("PRESSLUFT_TEST_POSTGRES_URL").ok()?;
    assert!(suffix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let name = format!("pl_test_{}", suffix.to_ascii_lowercase());
    let admin = sea_orm::Database::connect(format!("{base}/postgres"))
        .await
        .unwrap();
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        ))
        .await
        .unwrap()
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    }
    admin.close().await.unwrap();
    Some(format!("{base}/{name}"))
}
