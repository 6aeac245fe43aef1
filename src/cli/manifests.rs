//! `pressluft diff -f FILE|DIR|-` and `pressluft export`: manifests read from files (a directory's
//! `*.yaml`, `*.yml` and `*.json`, sorted by name), planned by the server, printed
//! deterministically. `diff` exits like `kubectl diff`: 0 in sync, 1 changes, 2 errors.
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Client, ClientError};
use crate::manifest::plan::{Action, FieldChange, Step};
use crate::manifest::render;
use crate::manifest::Kind;

/// The manifests of the given paths, in order, with the file each document came from.
pub struct Sources {
    pub text: String,
    /// `(file, documents in it)`, in order.
    pub files: Vec<(String, usize)>,
}

pub fn read_sources(paths: &[PathBuf]) -> Result<Sources, ClientError> {
    let mut files = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| ClientError::File("-".into(), e.to_string()))?;
            files.push(("-".to_string(), s));
        } else if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| ClientError::File(p.display().to_string(), e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(
                            f.extension().and_then(|x| x.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect();
            entries.sort();
            for f in entries {
                files.push((f.display().to_string(), read(&f)?));
            }
        } else {
            files.push((p.display().to_string(), read(p)?));
        }
    }
    let mut text = String::new();
    let mut counted = Vec::new();
    for (name, content) in files {
        let n = crate::manifest::parse(&content).map_or(0, |d| d.len());
        counted.push((name, n));
        text.push_str("\n---\n");
        text.push_str(&content);
        text.push('\n');
    }
    Ok(Sources {
        text,
        files: counted,
    })
}

fn read(p: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(p)
        .map_err(|e| ClientError::File(p.display().to_string(), e.to_string()))
}

/// Where document `index` of the whole set came from: `file (document k)`.
fn origin(files: &[(String, usize)], index: usize) -> String {
    let mut start = 0;
    for (name, n) in files {
        if index < start + n {
            return format!("{name} (document {})", index - start);
        }
        start += n;
    }
    format!("document {index}")
}

/// What `diff` found.
pub enum DiffOutcome {
    InSync(String),
    Changes(String),
    Invalid(String),
}

pub async fn diff(
    c: &Client,
    paths: &[PathBuf],
    apply_set: Option<String>,
    prune: bool,
    verbose: bool,
) -> Result<DiffOutcome, ClientError> {
    let src = read_sources(paths)?;
    let body = json!({"manifests": src.text, "apply_set": apply_set, "prune": prune});
    match c
        .request(Method::POST, "/api/apply/plan", Some(&body))
        .await
    {
        Ok((_, plan)) => {
            let steps = steps_of(&plan);
            let text = render::plan_text(&steps, verbose);
            if plan["in_sync"] == Value::Bool(true) {
                Ok(DiffOutcome::InSync(text))
            } else {
                Ok(DiffOutcome::Changes(text))
            }
        }
        Err(ClientError::InvalidManifests { details, .. }) => {
            Ok(DiffOutcome::Invalid(problems_text(&src, &details)))
        }
        Err(e) => Err(e),
    }
}

/// The problems of a refused set, each traced back to its file and document.
fn problems_text(src: &Sources, details: &Value) -> String {
    let problems = details["problems"].as_array().cloned().unwrap_or_default();
    let mut text = String::new();
    for p in &problems {
        let at = origin(&src.files, p["document"].as_u64().unwrap_or(0) as usize);
        let path = p["path"].as_str().unwrap_or_default();
        let at = if path.is_empty() {
            at
        } else {
            format!("{at}, {path}")
        };
        text.push_str(&format!(
            "{at}: {}: {}\n",
            p["code"].as_str().unwrap_or_default(),
            p["message"].as_str().unwrap_or_default()
        ));
    }
    text.push_str(&format!(
        "{} problem{}; nothing was written.\n",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    ));
    text
}

/// The environment variables the manifests' `{env: VAR}` secret references name, read here:
/// the repository never holds the values, the server gets them only for this apply.
fn secret_values(text: &str) -> Result<serde_json::Map<String, Value>, ClientError> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let (Some(Value::String(var)), 1) = (m.get("env"), m.len()) {
                    out.push(var.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut vars = Vec::new();
    for doc in crate::manifest::parse(text).unwrap_or_default() {
        walk(&doc, &mut vars);
    }
    let mut out = serde_json::Map::new();
    for var in vars {
        match std::env::var(&var) {
            Ok(v) => {
                out.insert(var, Value::String(v));
            }
            Err(_) => return Err(ClientError::MissingEnv(var)),
        }
    }
    Ok(out)
}

/// What `apply` did.
pub enum ApplyOutcome {
    Applied(String),
    Invalid(String),
}

/// `pressluft apply`: the set applied in one transaction (or planned, with `dry_run`); prints
/// the plan and the receipt's id.
pub async fn apply(
    c: &Client,
    paths: &[PathBuf],
    apply_set: Option<String>,
    prune: bool,
    dry_run: bool,
    verbose: bool,
) -> Result<ApplyOutcome, ClientError> {
    let src = read_sources(paths)?;
    let secrets = secret_values(&src.text)?;
    let body = json!({"manifests": src.text, "apply_set": apply_set, "prune": prune,
                      "dry_run": dry_run, "secrets": secrets});
    match c.request(Method::POST, "/api/apply", Some(&body)).await {
        Ok((_, receipt)) => {
            let mut text = render::plan_text(&steps_of(&receipt["plan"]), verbose);
            match receipt["id"].as_str() {
                Some(id) => text.push_str(&format!("applied: receipt {id}\n")),
                None => text.push_str("dry run: nothing was written\n"),
            }
            Ok(ApplyOutcome::Applied(text))
        }
        Err(ClientError::InvalidManifests { details, .. }) => {
            Ok(ApplyOutcome::Invalid(problems_text(&src, &details)))
        }
        Err(e) => Err(e),
    }
}

pub async fn export(c: &Client) -> Result<String, ClientError> {
    let (_, v) = c.request(Method::GET, "/api/apply/export", None).await?;
    Ok(v["manifests"].as_str().unwrap_or_default().to_string())
}

fn steps_of(plan: &Value) -> Vec<Step> {
    plan["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .filter_map(|s| {
                    let action = match s["action"].as_str()? {
                        "create" => Action::Create,
                        "change" => Action::Change,
                        "prune" => Action::Prune,
                        _ => Action::Unchanged,
                    };
                    Some(Step {
                        action,
                        kind: Kind::parse(s["kind"].as_str()?)?,
                        resource: s["resource"].as_str()?.to_string(),
                        name: s["name"].as_str()?.to_string(),
                        site: s["site"].as_str().map(str::to_string),
                        document: s["document"].as_u64().map(|d| d as usize),
                        changes: s["changes"]
                            .as_array()
                            .map(|cs| {
                                cs.iter()
                                    .map(|c| FieldChange {
                                        field: c["field"].as_str().unwrap_or_default().into(),
                                        from: c["from"].clone(),
                                        to: c["to"].clone(),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `pressluft apply-sets [NAME]`: each apply set's sync and health, and its resources.
pub async fn sync_status(c: &Client, set: Option<&str>) -> Result<String, ClientError> {
    let sets = match set {
        Some(s) => vec![
            c.request(Method::GET, &format!("/api/apply/sets/{s}"), None)
                .await?
                .1,
        ],
        None => c.request(Method::GET, "/api/apply/sets", None).await?.1["items"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    let mut out = String::new();
    for s in &sets {
        out.push_str(&format!(
            "{}: {}, {} (last applied {}, receipt {})\n",
            s["apply_set"].as_str().unwrap_or_default(),
            s["sync"].as_str().unwrap_or_default(),
            s["health"].as_str().unwrap_or_default(),
            s["last_applied_at"].as_str().unwrap_or("never"),
            s["last_receipt_id"].as_str().unwrap_or("-"),
        ));
        for r in s["out_of_sync"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  out of sync: {}\n",
                r.as_str().unwrap_or_default()
            ));
        }
        for r in s["resources"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<12} {:<40} {}{}\n",
                r["health"].as_str().unwrap_or_default(),
                r["resource"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or("-"),
                r["reason"]
                    .as_str()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default()
            ));
        }
    }
    if sets.is_empty() {
        out.push_str("no apply sets\n");
    }
    Ok(out.trim_end().to_string())
}

/// `--timeout` values: `90s`, `5m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

/// The API path of `KIND/NAME` (`site/SLUG`, `environment/SITE/SLUG`, `domain/HOST`,
/// `node/NAME`, or any of them with an id instead of the name).
async fn locate(c: &Client, target: &str) -> Result<String, ClientError> {
    let bad = |m: String| ClientError::Api {
        status: 400,
        code: "bad_request".into(),
        message: m,
    };
    let not_found = |m: String| ClientError::Api {
        status: 404,
        code: "not_found".into(),
        message: m,
    };
    let parts: Vec<&str> = target.split('/').collect();
    let kind = parts[0].to_ascii_lowercase();
    let plural = match kind.trim_end_matches('s') {
        "site" => "sites",
        "environment" | "env" => "environments",
        "domain" => "domains",
        "node" => "nodes",
        "backup" => "backups",
        "promotion" => "promotions",
        _ => {
            return Err(bad(format!(
                "unknown kind in '{target}': site, environment, domain, node, backup or promotion"
            )))
        }
    };
    if parts.len() == 2 && uuid::Uuid::parse_str(parts[1]).is_ok() {
        return Ok(format!("/api/{plural}/{}", parts[1]));
    }
    let find = |items: &Value, field: &str, value: &str| {
        items["items"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i[field] == value))
            .and_then(|i| i["id"].as_str())
            .map(str::to_string)
    };
    let id = match (plural, parts.as_slice()) {
        ("sites", [_, slug]) => {
            let (_, v) = c
                .request(Method::GET, &format!("/api/sites?slug={slug}"), None)
                .await?;
            find(&v, "slug", slug)
        }
        ("environments", [_, site, slug]) => {
            let (_, v) = c
                .request(Method::GET, &format!("/api/sites?slug={site}"), None)
                .await?;
            match find(&v, "slug", site) {
                Some(site_id) => {
                    let (_, v) = c
                        .request(
                            Method::GET,
                            &format!("/api/environments?site_id={site_id}&limit=1000"),
                            None,
                        )
                        .await?;
                    find(&v, "slug", slug)
                }
                None => None,
            }
        }
        ("domains", [_, host]) => {
            let (_, v) = c
                .request(Method::GET, "/api/domains?limit=1000", None)
                .await?;
            find(&v, "hostname", host)
        }
        ("nodes", [_, name]) => {
            let (_, v) = c
                .request(Method::GET, "/api/nodes?limit=1000", None)
                .await?;
            find(&v, "name", name)
        }
        _ => {
            return Err(bad(format!(
                "'{target}': give KIND/NAME (environment/SITE/NAME) or KIND/ID"
            )))
        }
    };
    id.map(|id| format!("/api/{plural}/{id}"))
        .ok_or_else(|| not_found(format!("{target} not found")))
}

/// `pressluft wait --for=condition=TYPE[=STATUS] KIND/NAME --timeout D`: polls the resource until
/// the condition has the status (default `True`) at its current generation; an error when the
/// timeout passes first.
pub async fn wait(
    c: &Client,
    condition: &str,
    target: &str,
    timeout: std::time::Duration,
) -> Result<String, ClientError> {
    let bad = |m: String| ClientError::Api {
        status: 400,
        code: "bad_request".into(),
        message: m,
    };
    let spec = condition.strip_prefix("condition=").ok_or_else(|| {
        bad(format!(
            "--for must be condition=TYPE[=STATUS], not '{condition}'"
        ))
    })?;
    let (ctype, want) = spec.split_once('=').unwrap_or((spec, "True"));
    let path = locate(c, target).await?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (_, v) = c.request(Method::GET, &path, None).await?;
        let cond = v["conditions"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == ctype))
            .cloned();
        let current = v["observed_generation"].as_i64() >= v["generation"].as_i64();
        if current && cond.as_ref().is_some_and(|x| x["status"] == want) {
            return Ok(format!("{target} condition met: {ctype}={want}"));
        }
        if std::time::Instant::now() >= deadline {
            let now = cond
                .map(|x| {
                    format!(
                        "{ctype} {} ({}: {})",
                        x["status"].as_str().unwrap_or_default(),
                        x["reason"].as_str().unwrap_or_default(),
                        x["message"].as_str().unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| format!("no {ctype} condition"));
            return Err(ClientError::Api {
                status: 408,
                code: "timeout".into(),
                message: format!(
                    "timed out after {}s waiting for {ctype}={want} on {target} (phase {}; {now})",
                    timeout.as_secs(),
                    v["status"].as_str().unwrap_or("?")
                ),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_like_kubectl() {
        use std::time::Duration;
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("42"), Some(Duration::from_secs(42)));
        assert_eq!(parse_duration("5 m"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("3d"), None);
    }

    #[test]
    fn documents_are_traced_back_to_their_files() {
        let files = vec![("a.yaml".to_string(), 2), ("b.yaml".to_string(), 3)];
        assert_eq!(origin(&files, 0), "a.yaml (document 0)");
        assert_eq!(origin(&files, 1), "a.yaml (document 1)");
        assert_eq!(origin(&files, 2), "b.yaml (document 0)");
        assert_eq!(origin(&files, 4), "b.yaml (document 2)");
    }

    #[test]
    fn a_directory_is_read_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("b.yaml"), "kind: B\n---\nkind: C\n").unwrap();
        std::fs::write(d.path().join("a.json"), r#"{"kind": "A"}"#).unwrap();
        std::fs::write(d.path().join("notes.txt"), "ignored").unwrap();
        let s = read_sources(&[d.path().to_path_buf()]).unwrap();
        let docs = crate::manifest::parse(&s.text).unwrap();
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["A", "B", "C"]);
        assert_eq!(s.files.len(), 2);
        assert!(s.files[0].0.ends_with("a.json") && s.files[0].1 == 1);
    }
}
