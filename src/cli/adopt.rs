//! `pressluft adopt`: adopt a WordPress site reached over SSH (`POST /api/adoptions`), with
//! `--dry-run` (the report only) and `--wait`; `pressluft adopt --public-key` prints the key to
//! authorize on the source.
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::client::{Client, ClientError};

pub struct AdoptArgs {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub node: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub path: Option<String>,
    pub host_key: Option<String>,
    pub dry_run: bool,
}

pub async fn public_key(c: &Client) -> Result<String, ClientError> {
    let (_, v) = c
        .request(Method::GET, "/api/adoptions/public-key", None)
        .await?;
    Ok(format!(
        "{}\n# {}: add this line to ~/.ssh/authorized_keys of the source user",
        v["public_key"].as_str().unwrap_or_default(),
        v["fingerprint"].as_str().unwrap_or_default()
    ))
}

pub async fn adopt(c: &Client, a: AdoptArgs, follow: bool) -> Result<String, ClientError> {
    let mut body = serde_json::json!({
        "site_name": a.name,
        "slug": a.slug,
        "node_id": a.node,
        "ssh_host": a.host,
        "ssh_port": a.port,
        "ssh_user": a.user,
        "source_path": a.path,
        "host_key": a.host_key,
        "dry_run": a.dry_run,
    });
    if let Some(o) = body.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let (_, v) = c
        .request(Method::POST, "/api/adoptions", Some(&body))
        .await?;
    if a.dry_run {
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let id = v["import"]["id"].as_str().unwrap_or_default().to_string();
    let head = format!(
        "adoption {id} into site {} (environment {})",
        v["site_id"].as_str().unwrap_or_default(),
        v["environment_id"].as_str().unwrap_or_default()
    );
    if !follow {
        return Ok(format!(
            "{head} {}",
            v["import"]["status"].as_str().unwrap_or_default()
        ));
    }
    loop {
        let (_, v) = c
            .request(Method::GET, &format!("/api/imports/{id}"), None)
            .await?;
        match v["status"].as_str().unwrap_or_default() {
            "succeeded" => return Ok(format!("{head} succeeded")),
            "failed" => {
                return Err(ClientError::Api {
                    status: 0,
                    code: v["error_code"].as_str().unwrap_or("failed").to_string(),
                    message: format!("adoption {id} failed: {}", summary(&v)),
                })
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

fn summary(v: &Value) -> String {
    v["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or("see GET /api/imports/{id}")
        .to_string()
}
