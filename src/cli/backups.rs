//! `pressluft backup`, `restore`, `schedule-backups` and `drill`: declare, then (with `--wait`)
//! follow the resource until it ends.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Client, ClientError};

/// `1h`, `30m`, `2d` or plain minutes → minutes.
pub fn parse_every(s: &str) -> Result<i64, ClientError> {
    let bad = || ClientError::Api {
        status: 400,
        code: "bad_request".into(),
        message: format!("--every {s:?}: use e.g. 30m, 1h, 1d"),
    };
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "m"),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    let factor = match unit {
        "m" | "min" => 1,
        "h" => 60,
        "d" => 1440,
        _ => return Err(bad()),
    };
    Ok(n * factor).and_then(|m| if m >= 1 { Ok(m) } else { Err(bad()) })
}

/// Polls `path` until `status` is one of `done`; fails when it is one of `failed`.
async fn wait(
    c: &Client,
    path: &str,
    done: &[&str],
    failed: &[&str],
) -> Result<Value, ClientError> {
    loop {
        let (_, v) = c.request(Method::GET, path, None).await?;
        let status = v["status"].as_str().unwrap_or_default().to_string();
        if done.contains(&status.as_str()) {
            return Ok(v);
        }
        if failed.contains(&status.as_str()) {
            let code = v["last_error_code"]
                .as_str()
                .or(v["error_code"].as_str())
                .unwrap_or("failed")
                .to_string();
            return Err(ClientError::Api {
                status: 0,
                code,
                message: format!("{path} is {status}"),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn summary(kind: &str, v: &Value) -> String {
    let mut line = format!(
        "{kind} {} {}",
        v["id"].as_str().unwrap_or_default(),
        v["status"].as_str().unwrap_or_default()
    );
    if let Some(n) = v["size_bytes"].as_i64() {
        line.push_str(&format!(" ({n} bytes)"));
    }
    if let Some(p) = v["pre_backup_id"].as_str() {
        line.push_str(&format!(" (pre-restore backup {p})"));
    }
    line
}

pub async fn backup(
    c: &Client,
    env: &str,
    scope: &str,
    follow: bool,
) -> Result<String, ClientError> {
    let (_, v) = c
        .request(
            Method::POST,
            &format!("/api/environments/{env}/backups"),
            Some(&json!({ "backup_scope": scope })),
        )
        .await?;
    if !follow {
        return Ok(summary("backup", &v));
    }
    let id = v["id"].as_str().unwrap_or_default();
    let v = wait(
        c,
        &format!("/api/backups/{id}"),
        &["completed"],
        &["failed", "expired"],
    )
    .await?;
    Ok(summary("backup", &v))
}

pub async fn restore(
    c: &Client,
    env: &str,
    backup: &str,
    follow: bool,
) -> Result<String, ClientError> {
    let (_, v) = c
        .request(
            Method::POST,
            &format!("/api/environments/{env}/restores"),
            Some(&json!({ "backup_id": backup })),
        )
        .await?;
    if !follow {
        return Ok(summary("restore", &v));
    }
    let id = v["id"].as_str().unwrap_or_default();
    let v = wait(
        c,
        &format!("/api/restores/{id}"),
        &["succeeded"],
        &["failed"],
    )
    .await?;
    Ok(summary("restore", &v))
}

/// `pressluft import ENV --archive-url URL …`: declares the import; `--wait` follows it to the end.
/// Uploads a local file to the environment's node for an import: its `file://` URL and SHA-256.
pub async fn upload_for_import(
    c: &Client,
    env: &str,
    file: &std::path::Path,
) -> Result<(Option<String>, Option<String>), ClientError> {
    let name: String = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_') {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim_start_matches('.');
    let name = if name.is_empty() { "upload" } else { name };
    let (_, v) = c
        .upload(
            &format!("/api/environments/{env}/import-uploads?name={name}"),
            file,
        )
        .await?;
    eprintln!(
        "uploaded {} ({} bytes, sha256 {})",
        file.display(),
        v["size_bytes"],
        v["sha256"].as_str().unwrap_or("?")
    );
    Ok((
        v["url"].as_str().map(str::to_string),
        v["sha256"].as_str().map(str::to_string),
    ))
}

pub async fn import(
    c: &Client,
    env: &str,
    mut body: serde_json::Value,
    follow: bool,
) -> Result<String, ClientError> {
    if let Some(o) = body.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let (_, v) = c
        .request(
            Method::POST,
            &format!("/api/environments/{env}/imports"),
            Some(&body),
        )
        .await?;
    if !follow {
        return Ok(summary("import", &v));
    }
    let id = v["id"].as_str().unwrap_or_default();
    let v = wait(
        c,
        &format!("/api/imports/{id}"),
        &["succeeded"],
        &["failed"],
    )
    .await?;
    Ok(summary("import", &v))
}

pub async fn drill(c: &Client, backup: &str, follow: bool) -> Result<String, ClientError> {
    let (_, v) = c
        .request(Method::POST, &format!("/api/backups/{backup}/drill"), None)
        .await?;
    if !follow {
        return Ok(summary("drill", &v));
    }
    let id = v["id"].as_str().unwrap_or_default();
    let v = wait(
        c,
        &format!("/api/restores/{id}"),
        &["succeeded"],
        &["failed"],
    )
    .await?;
    Ok(summary("drill", &v))
}

/// `pressluft download BACKUP ARTIFACT -o FILE`: streams the artifact into `FILE.partial`,
/// checks its size and SHA-256 against the answer's headers, then renames it to `FILE` (`-o -`:
/// standard output, unchecked until the end, where a mismatch is an error).
pub async fn download(
    c: &Client,
    backup: &str,
    artifact: &str,
    out: &std::path::Path,
) -> Result<String, ClientError> {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    let mut resp = c
        .get_stream(&format!(
            "/api/backups/{backup}/artifacts/{}",
            super::urlencode(artifact)
        ))
        .await?;
    let header = |k: &str| {
        resp.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let expected_sha = header("x-pressluft-sha256");
    let expected_len = resp.content_length();
    let to_stdout = out.as_os_str() == "-";
    let shown = out.display().to_string();
    let partial = out.with_file_name(format!(
        ".{}.partial",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "download".into())
    ));
    let file_err = |p: &std::path::Path, e: std::io::Error| {
        ClientError::File(p.display().to_string(), e.to_string())
    };
    let mut sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&partial).map_err(|e| file_err(&partial, e))?,
        ))
    };
    let mut sha = Sha256::new();
    let mut n: u64 = 0;
    let result = async {
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ClientError::Transport(c.server.clone(), e))?
        {
            sha.update(&chunk);
            n += chunk.len() as u64;
            sink.write_all(&chunk).map_err(|e| file_err(&partial, e))?;
        }
        sink.flush().map_err(|e| file_err(&partial, e))?;
        Ok::<(), ClientError>(())
    }
    .await;
    drop(sink);
    let digest = hex::encode(sha.finalize());
    let mismatch = |what: String| ClientError::Api {
        status: 0,
        code: "download_incomplete".into(),
        message: what,
    };
    let checked = result.and_then(|()| {
        if expected_len.is_some_and(|l| l != n) {
            return Err(mismatch(format!(
                "received {n} of {} bytes",
                expected_len.unwrap_or_default()
            )));
        }
        if expected_sha.as_deref().is_some_and(|s| s != digest) {
            return Err(mismatch(format!(
                "SHA-256 {digest} differs from the recorded {}",
                expected_sha.clone().unwrap_or_default()
            )));
        }
        Ok(())
    });
    if let Err(e) = checked {
        if !to_stdout {
            let _ = std::fs::remove_file(&partial);
        }
        return Err(e);
    }
    if !to_stdout {
        std::fs::rename(&partial, out).map_err(|e| file_err(out, e))?;
    }
    let line = format!("{artifact}: {n} bytes, sha256 {digest} (verified)");
    Ok(if to_stdout {
        eprintln!("{line}");
        String::new()
    } else {
        format!("{line} → {shown}")
    })
}

pub struct ScheduleArgs {
    pub every: Option<String>,
    pub cron: Option<String>,
    pub scope: String,
    pub keep_last: Option<i64>,
    pub keep_days: Option<i64>,
    pub drill: bool,
}

pub async fn schedule(c: &Client, env: &str, a: ScheduleArgs) -> Result<String, ClientError> {
    let mut body = json!({ "backup_scope": a.scope, "drill": a.drill });
    if let Some(e) = &a.every {
        body["interval_minutes"] = json!(parse_every(e)?);
    }
    if let Some(cron) = &a.cron {
        body["cron"] = json!(cron);
    }
    if let Some(n) = a.keep_last {
        body["keep_last"] = json!(n);
    }
    if let Some(n) = a.keep_days {
        body["keep_days"] = json!(n);
    }
    let (_, v) = c
        .request(
            Method::POST,
            &format!("/api/environments/{env}/backup-schedules"),
            Some(&body),
        )
        .await?;
    Ok(format!(
        "schedule {} created; next run at {}",
        v["id"].as_str().unwrap_or_default(),
        v["next_run_at"].as_str().unwrap_or("-")
    ))
}

/// `pressluft promote`: the plan (dry run), or a promotion declared (and followed with `--wait`).
pub async fn promote(
    c: &Client,
    env: &str,
    preset: Option<&str>,
    dry_run: bool,
    follow: bool,
) -> Result<String, ClientError> {
    let mut body = json!({});
    if let Some(p) = preset {
        body["preset"] = json!(p);
    }
    if dry_run {
        body["dry_run"] = json!(true);
    }
    let (_, v) = c
        .request(
            Method::POST,
            &format!("/api/environments/{env}/promote"),
            Some(&body),
        )
        .await?;
    if dry_run {
        let list = |k: &str| {
            let items: Vec<&str> = v[k]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if items.is_empty() {
                "-".to_string()
            } else {
                items.join(", ")
            }
        };
        let mut out = format!(
            "plan: promote {} to {} ({})\ndrift: {}{}\n",
            v["source_environment_id"].as_str().unwrap_or_default(),
            v["target_environment_id"].as_str().unwrap_or_default(),
            v["promotion_preset"].as_str().unwrap_or_default(),
            v["drift_status"].as_str().unwrap_or_default(),
            v["drift_reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        for (label, key) in [
            ("tables synced", "tables_synced"),
            ("tables protected", "tables_protected"),
            ("files added", "files_added"),
            ("files changed", "files_changed"),
            ("files removed", "files_removed"),
        ] {
            out.push_str(&format!("{label}: {}\n", list(key)));
        }
        return Ok(out.trim_end().to_string());
    }
    let line = |v: &Value| {
        let mut l = format!(
            "promotion {} {}",
            v["id"].as_str().unwrap_or_default(),
            v["status"].as_str().unwrap_or_default()
        );
        if let Some(c) = v["conditions"].as_array().and_then(|a| {
            a.iter()
                .find(|c| c["type"] == "DriftClean" && c["status"] == "False")
        }) {
            l.push_str(&format!(
                " ({}: {})",
                c["reason"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            ));
        }
        l
    };
    if !follow {
        return Ok(line(&v));
    }
    let id = v["id"].as_str().unwrap_or_default();
    let v = wait(
        c,
        &format!("/api/promotions/{id}"),
        &["succeeded"],
        &["failed", "blocked"],
    )
    .await?;
    Ok(line(&v))
}

/// `drift-check ENV [--wait]`: requests a drift check; with `--wait`, polls the environment until
/// a new check is recorded (or the request's job failed) and prints its verdict.
pub async fn drift_check(c: &Client, env: &str, follow: bool) -> Result<String, ClientError> {
    let path = format!("/api/environments/{env}");
    let (_, before) = c.request(Method::GET, &path, None).await?;
    let (_, v) = c
        .request(Method::POST, &format!("{path}/drift-check"), None)
        .await?;
    let line = |v: &Value| {
        format!(
            "environment {} drift {} (checked {}, check {})",
            v["id"].as_str().unwrap_or_default(),
            v["drift_status"].as_str().unwrap_or_default(),
            v["drift_checked_at"].as_str().unwrap_or("never"),
            v["last_drift_check_id"].as_str().unwrap_or("-")
        )
    };
    if !follow {
        return Ok(format!(
            "drift check requested at {}; {}",
            v["drift_check_requested_at"].as_str().unwrap_or_default(),
            line(&v)
        ));
    }
    let generation = v["generation"].as_i64().unwrap_or_default();
    loop {
        let (_, now) = c.request(Method::GET, &path, None).await?;
        if now["last_drift_check_id"] != before["last_drift_check_id"]
            && !now["last_drift_check_id"].is_null()
        {
            return Ok(line(&now));
        }
        if now["observed_generation"].as_i64().unwrap_or_default() >= generation {
            // the request was handled without a new check: its job failed
            return Err(ClientError::Api {
                status: 0,
                code: now["last_error_code"]
                    .as_str()
                    .unwrap_or("drift_check_failed")
                    .to_string(),
                message: "the drift check did not run to a verdict (see the events)".into(),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_every;

    #[test]
    fn intervals() {
        assert_eq!(parse_every("1h").unwrap(), 60);
        assert_eq!(parse_every("30m").unwrap(), 30);
        assert_eq!(parse_every("2d").unwrap(), 2880);
        assert_eq!(parse_every("15").unwrap(), 15);
        for bad in ["", "h", "0m", "1w", "-1h"] {
            assert!(parse_every(bad).is_err(), "{bad}");
        }
    }
}
