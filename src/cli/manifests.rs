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
            Ok(DiffOutcome::Invalid(text))
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

#[cfg(test)]
mod tests {
    use super::*;

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
