//! `pressluft deploy`, `rollback` and `get releases`: declare a release or choose an earlier one,
//! then (with `--wait`) follow it until it is judged.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Client, ClientError};

fn usage(message: &str) -> ClientError {
    ClientError::Api {
        status: 400,
        code: "bad_request".into(),
        message: message.into(),
    }
}

/// `deploy ENV --git URL#REF | --upload URL [--dry-run] [--wait]`.
pub async fn deploy(
    c: &Client,
    env: &str,
    git: Option<String>,
    upload: Option<String>,
    dry_run: bool,
    wait: bool,
) -> Result<String, ClientError> {
    let (source_type, source_ref) = match (git, upload) {
        (Some(g), None) => ("git", g),
        (None, Some(u)) => ("upload", u),
        _ => return Err(usage("give exactly one of --git URL#REF or --upload URL")),
    };
    let mut body = json!({"source_type": source_type, "source_ref": source_ref});
    if dry_run {
        body["dry_run"] = json!(true);
    }
    let (_, v) = c
        .request(
            Method::POST,
            &format!("/api/environments/{env}/deploy"),
            Some(&body),
        )
        .await?;
    if dry_run {
        return Ok(format!(
            "dry run ({} onto {}): {} files added, {} changed, {} removed\n{}",
            v["kind"].as_str().unwrap_or("?"),
            v["current_release"].as_str().unwrap_or("-"),
            v["files_added"],
            v["files_changed"],
            v["files_removed"],
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ));
    }
    let release = v["desired_release_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !wait {
        return Ok(format!("release {release} declared; deploying"));
    }
    judged(c, &release).await
}

/// `rollback ENV RELEASE [--wait]`.
pub async fn rollback(
    c: &Client,
    env: &str,
    release: &str,
    wait: bool,
) -> Result<String, ClientError> {
    c.request(
        Method::POST,
        &format!("/api/environments/{env}/rollback"),
        Some(&json!({ "release_id": release })),
    )
    .await?;
    if !wait {
        return Ok(format!("rollback to release {release} requested"));
    }
    loop {
        let (_, e) = c
            .request(Method::GET, &format!("/api/environments/{env}"), None)
            .await?;
        if e["current_release_id"] == release && e["status"] == "active" {
            return Ok(format!("release {release} is live again"));
        }
        let (_, r) = c
            .request(Method::GET, &format!("/api/releases/{release}"), None)
            .await?;
        if r["health_status"] == "unhealthy" {
            return Err(failed(&r));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn judged(c: &Client, release: &str) -> Result<String, ClientError> {
    loop {
        let (_, r) = c
            .request(Method::GET, &format!("/api/releases/{release}"), None)
            .await?;
        match r["health_status"].as_str() {
            Some("healthy") => {
                return Ok(format!(
                    "release {release} is live: {} files added, {} changed, {} removed",
                    r["details"]["files"]["added"],
                    r["details"]["files"]["changed"],
                    r["details"]["files"]["removed"]
                ))
            }
            Some("unhealthy") => return Err(failed(&r)),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

fn failed(r: &Value) -> ClientError {
    ClientError::Api {
        status: 409,
        code: "release_unhealthy".into(),
        message: format!(
            "release {} is unhealthy: {}",
            r["id"].as_str().unwrap_or("?"),
            r["notes"].as_str().unwrap_or("no reason recorded")
        ),
    }
}

/// `apply-updates ENV --scope S [--dry-run] [--wait]`.
pub async fn apply_updates(
    c: &Client,
    env: &str,
    scope: &str,
    dry_run: bool,
    wait: bool,
) -> Result<String, ClientError> {
    let mut body = json!({ "scope": scope });
    if dry_run {
        body["dry_run"] = json!(true);
    }
    let (_, v) = c
        .request(
            Method::POST,
            &format!("/api/environments/{env}/updates"),
            Some(&body),
        )
        .await?;
    if dry_run {
        let lines: Vec<String> = v["components"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        format!(
                            "{} {}: {} -> {}",
                            x["type"].as_str().unwrap_or(""),
                            x["slug"].as_str().unwrap_or(""),
                            x["from"].as_str().unwrap_or(""),
                            x["to"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if lines.is_empty() {
            return Ok("nothing to update".into());
        }
        return Ok(lines.join("\n"));
    }
    let release = v["desired_release_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !wait {
        return Ok(format!("release {release} declared; updating"));
    }
    judged(c, &release).await
}
