//! The CLI's HTTP client: the API with a bearer token kept in the user's config directory.
use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// Manifests the server refused, with every problem (`details.problems`).
    #[error("{code}: {message}")]
    InvalidManifests {
        code: String,
        message: String,
        details: Value,
    },
    #[error("cannot reach {0}: {1}")]
    Transport(String, reqwest::Error),
    #[error("not logged in: run `pressluft login` first (or set PRESSLUFT_TOKEN)")]
    NotLoggedIn,
    #[error("config file {0}: {1}")]
    Config(String, String),
    /// A local file (a download's output).
    #[error("{0}: {1}")]
    File(String, String),
    /// A manifest's `{env: VAR}` names a variable that is not set.
    #[error("the manifests refer to the environment variable {0}, which is not set")]
    MissingEnv(String),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Default)]
pub struct CliConfig {
    pub server: Option<String>,
    pub token: Option<String>,
}

pub fn config_path() -> PathBuf {
    if let Ok(p) = std::env::var("PRESSLUFT_CONFIG") {
        return PathBuf::from(p);
    }
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pressluft")
        .join("config.json")
}

pub fn load_config() -> CliConfig {
    std::fs::read_to_string(config_path())
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

pub fn save_config(c: &CliConfig) -> Result<(), ClientError> {
    let p = config_path();
    let shown = p.display().to_string();
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ClientError::Config(shown.clone(), e.to_string()))?;
    }
    let body = serde_json::to_vec_pretty(c)
        .map_err(|e| ClientError::Config(shown.clone(), e.to_string()))?;
    crate::secrets::write_private(&p, &body).map_err(|e| ClientError::Config(shown, e.to_string()))
}

pub struct Client {
    http: reqwest::Client,
    pub server: String,
    token: Option<String>,
}

impl Client {
    pub fn new(server: String, token: Option<String>) -> Self {
        Client {
            http: reqwest::Client::builder()
                .build()
                .expect("an HTTP client with default settings builds"),
            server: server.trim_end_matches('/').to_string(),
            token,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let token = self.token.as_deref().ok_or(ClientError::NotLoggedIn)?;
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.server))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.finish(rb).await
    }

    pub async fn text(&self, path: &str) -> Result<String, ClientError> {
        let token = self.token.as_deref().ok_or(ClientError::NotLoggedIn)?;
        let resp = self
            .http
            .get(format!("{}{path}", self.server))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| ClientError::Transport(self.server.clone(), e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Transport(self.server.clone(), e))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(api_error(status, &text))
        }
    }

    /// `POST path` with the file at `file` as the body, streamed from disk.
    pub async fn upload(
        &self,
        path: &str,
        file: &std::path::Path,
    ) -> Result<(u16, Value), ClientError> {
        let token = self.token.as_deref().ok_or(ClientError::NotLoggedIn)?;
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| ClientError::File(file.display().to_string(), e.to_string()))?;
        let len = f.metadata().await.map(|m| m.len()).ok();
        let mut rb = self
            .http
            .post(format!("{}{path}", self.server))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::from(f));
        if let Some(n) = len {
            rb = rb.header("content-length", n);
        }
        self.finish(rb).await
    }

    /// `GET path` whose successful answer is read by the caller (a download, chunk by chunk);
    /// an error answer becomes the usual [`ClientError::Api`].
    pub async fn get_stream(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        let token = self.token.as_deref().ok_or(ClientError::NotLoggedIn)?;
        let resp = self
            .http
            .get(format!("{}{path}", self.server))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| ClientError::Transport(self.server.clone(), e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Transport(self.server.clone(), e))?;
        Err(api_error(status, &text))
    }

    async fn finish(&self, rb: reqwest::RequestBuilder) -> Result<(u16, Value), ClientError> {
        let resp = rb
            .send()
            .await
            .map_err(|e| ClientError::Transport(self.server.clone(), e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Transport(self.server.clone(), e))?;
        if status.is_success() {
            Ok((
                status.as_u16(),
                serde_json::from_str(&text).unwrap_or(Value::Null),
            ))
        } else {
            Err(api_error(status, &text))
        }
    }

    /// Logs in with e-mail and password and creates an API token for this CLI.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        token_name: &str,
    ) -> Result<String, ClientError> {
        let resp = self
            .http
            .post(format!("{}/api/login", self.server))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .map_err(|e| ClientError::Transport(self.server.clone(), e))?;
        let status = resp.status();
        let cookie = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.split(';')
                    .next()
                    .filter(|kv| kv.starts_with("session_token="))
            })
            .map(str::to_string);
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Transport(self.server.clone(), e))?;
        if !status.is_success() {
            return Err(api_error(status, &text));
        }
        let cookie = cookie.ok_or_else(|| ClientError::Api {
            status: 500,
            code: "internal".into(),
            message: "login answered without a session cookie".into(),
        })?;
        let rb = self
            .http
            .post(format!("{}/api/tokens", self.server))
            .header(reqwest::header::COOKIE, cookie.clone())
            .header("X-Pressluft-CSRF", "1")
            .json(&serde_json::json!({ "name": token_name }));
        let (_, v) = self.finish(rb).await?;
        // The CLI keeps the token, not the session: end the session right away.
        let _ = self
            .http
            .post(format!("{}/api/logout", self.server))
            .header(reqwest::header::COOKIE, cookie)
            .header("X-Pressluft-CSRF", "1")
            .send()
            .await;
        v.get("token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ClientError::Api {
                status: 500,
                code: "internal".into(),
                message: "token missing in answer".into(),
            })
    }
}

fn api_error(status: StatusCode, text: &str) -> ClientError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if v.get("code").and_then(Value::as_str) == Some("invalid_manifests") {
        return ClientError::InvalidManifests {
            code: "invalid_manifests".into(),
            message: v["message"].as_str().unwrap_or_default().to_string(),
            details: v.get("details").cloned().unwrap_or(Value::Null),
        };
    }
    ClientError::Api {
        status: status.as_u16(),
        code: v
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("http_error")
            .to_string(),
        message: v
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}")),
    }
}
