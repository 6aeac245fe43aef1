//! Validation of a whole set: each document on its own (envelope, metadata, spec by its kind's
//! table), then the set as a whole (duplicate names, references by name, one production
//! environment per site, one primary domain per environment, cross-field rules). Every problem
//! is reported; nothing short-circuits except a document whose kind is unknown, whose spec
//! cannot be read without its table.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::kinds::{check_spec, check_value, Kind, Ty};
use super::{codes, display, Manifest, Problem, API_VERSION};

/// What already exists, by name: references may point at it instead of at a document of the set.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub nodes: BTreeSet<String>,
    pub sites: BTreeSet<String>,
    /// `(site slug, environment slug)` → environment type.
    pub environments: BTreeMap<(String, String), String>,
}

/// The name every production environment has (it is created with its site).
pub const PRODUCTION: &str = "production";

/// Validates a set of parsed documents: the valid manifests, or every problem found.
pub fn check(docs: &[Value], known: &Known) -> Result<Vec<Manifest>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut manifests = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if let Some(m) = check_document(i, doc, &mut problems) {
            manifests.push(m);
        }
    }
    check_set(&manifests, known, &mut problems);
    if problems.is_empty() {
        Ok(manifests)
    } else {
        problems.sort_by(|a, b| (a.document, &a.path).cmp(&(b.document, &b.path)));
        Err(problems)
    }
}

fn check_document(i: usize, doc: &Value, problems: &mut Vec<Problem>) -> Option<Manifest> {
    let Some(obj) = doc.as_object() else {
        problems.push(Problem::new(
            i,
            "",
            codes::NOT_AN_OBJECT,
            "a document must be an object with apiVersion, kind, metadata and spec",
        ));
        return None;
    };
    let before = problems.len();
    for k in obj.keys() {
        if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "spec") {
            problems.push(Problem::new(
                i,
                k.clone(),
                codes::UNKNOWN_FIELD,
                format!("unknown top-level field '{k}' (apiVersion, kind, metadata, spec)"),
            ));
        }
    }
    match obj.get("apiVersion") {
        None => problems.push(Problem::new(
            i,
            "apiVersion",
            codes::MISSING_FIELD,
            format!("apiVersion is required ({API_VERSION})"),
        )),
        Some(v) if v.as_str() != Some(API_VERSION) => problems.push(Problem::new(
            i,
            "apiVersion",
            codes::UNSUPPORTED_API_VERSION,
            format!("apiVersion must be {API_VERSION} (got {v})"),
        )),
        Some(_) => {}
    }
    let kind = match obj.get("kind") {
        None => {
            problems.push(Problem::new(
                i,
                "kind",
                codes::MISSING_FIELD,
                "kind is required",
            ));
            None
        }
        Some(v) => {
            let k = v.as_str().and_then(Kind::parse);
            if k.is_none() {
                let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                problems.push(Problem::new(
                    i,
                    "kind",
                    codes::UNKNOWN_KIND,
                    format!("unknown kind {v} (known: {})", all.join(", ")),
                ));
            }
            k
        }
    };
    let (name, labels) = check_metadata(i, kind, obj.get("metadata"), problems);
    let spec = match (kind, obj.get("spec")) {
        (_, None) => {
            problems.push(Problem::new(
                i,
                "spec",
                codes::MISSING_FIELD,
                "spec is required",
            ));
            None
        }
        (Some(kind), Some(Value::Object(spec))) => Some(check_spec(kind, i, spec, problems)),
        (_, Some(Value::Object(_))) => None,
        (_, Some(_)) => {
            problems.push(Problem::new(
                i,
                "spec",
                codes::WRONG_TYPE,
                "spec must be an object",
            ));
            None
        }
    };
    let m = Manifest {
        index: i,
        kind: kind?,
        name: name?,
        labels,
        spec: spec?,
    };
    check_fields_together(&m, problems);
    (problems.len() == before).then_some(m)
}

fn check_metadata(
    i: usize,
    kind: Option<Kind>,
    meta: Option<&Value>,
    problems: &mut Vec<Problem>,
) -> (Option<String>, BTreeMap<String, String>) {
    let mut labels = BTreeMap::new();
    let Some(meta) = meta else {
        problems.push(Problem::new(
            i,
            "metadata",
            codes::MISSING_FIELD,
            "metadata with a name is required",
        ));
        return (None, labels);
    };
    let Some(meta) = meta.as_object() else {
        problems.push(Problem::new(
            i,
            "metadata",
            codes::WRONG_TYPE,
            "metadata must be an object",
        ));
        return (None, labels);
    };
    for k in meta.keys() {
        if !matches!(k.as_str(), "name" | "labels") {
            problems.push(Problem::new(
                i,
                format!("metadata.{k}"),
                codes::UNKNOWN_FIELD,
                format!("unknown metadata field '{k}' (name, labels)"),
            ));
        }
    }
    let name = match meta.get("name") {
        None | Some(Value::Null) => {
            problems.push(Problem::new(
                i,
                "metadata.name",
                codes::MISSING_FIELD,
                "metadata.name is required",
            ));
            None
        }
        Some(v) => {
            let ty = kind.map_or(Ty::Text, Kind::name_type);
            match check_value(ty, "metadata.name", v) {
                Ok(n) => n.as_str().map(str::to_string),
                Err((code, message)) => {
                    problems.push(Problem::new(i, "metadata.name", code, message));
                    None
                }
            }
        }
    };
    match meta.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let path = format!("metadata.labels.{k}");
                if !label_key_ok(k) {
                    problems.push(Problem::new(
                        i,
                        path,
                        codes::INVALID_VALUE,
                        "label keys are [prefix/]name: letters, digits, '-', '_', '.' (name ≤ 63)",
                    ));
                    continue;
                }
                match v.as_str() {
                    Some(s) if s.len() <= 253 && !s.chars().any(char::is_control) => {
                        labels.insert(k.clone(), s.to_string());
                    }
                    _ => problems.push(Problem::new(
                        i,
                        path,
                        codes::WRONG_TYPE,
                        "label values are strings of at most 253 characters",
                    )),
                }
            }
        }
        Some(_) => problems.push(Problem::new(
            i,
            "metadata.labels",
            codes::WRONG_TYPE,
            "metadata.labels must be a map of strings",
        )),
    }
    (name, labels)
}

fn label_key_ok(k: &str) -> bool {
    let (prefix, name) = k.rsplit_once('/').map_or(("", k), |(p, n)| (p, n));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let prefix_ok = prefix.len() <= 253
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
    name_ok && prefix_ok && !(k.contains('/') && prefix.is_empty())
}

/// Rules between fields of one document.
fn check_fields_together(m: &Manifest, problems: &mut Vec<Problem>) {
    let mut add = |path: &str, code, msg: String| {
        problems.push(Problem::new(m.index, path, code, msg));
    };
    match m.kind {
        Kind::Environment => {
            let production = m.str("type") == Some("production");
            if production != (m.name == PRODUCTION) {
                add(
                    "metadata.name",
                    codes::CONFLICT,
                    "a site has exactly one production environment, named 'production' (created \
                     with the site); other environments are staging or clone and have other names"
                        .into(),
                );
            }
            if production {
                for f in ["source_environment", "expires_at"] {
                    if m.spec.contains_key(f) {
                        add(
                            &format!("spec.{f}"),
                            codes::CONFLICT,
                            format!("a production environment has no {f}"),
                        );
                    }
                }
            }
            if m.str("source_environment") == Some(m.name.as_str()) {
                add(
                    "spec.source_environment",
                    codes::INVALID_VALUE,
                    "an environment cannot be its own source".into(),
                );
            }
        }
        Kind::Domain => {
            let wildcard = m.name.starts_with("*.");
            if wildcard && m.str("tls_mode") != Some("custom") {
                add(
                    "spec.tls_mode",
                    codes::INVALID_VALUE,
                    "wildcard domains need tls_mode custom (HTTP-01 cannot issue them)".into(),
                );
            }
            if m.spec.get("primary") == Some(&Value::Bool(false)) {
                add(
                    "spec.primary",
                    codes::INVALID_VALUE,
                    "only primary: true can be declared (a primary is replaced by declaring \
                     another domain primary, never unset)"
                        .into(),
                );
            }
            if wildcard && m.spec.get("primary") == Some(&Value::Bool(true)) {
                add(
                    "spec.primary",
                    codes::INVALID_VALUE,
                    "a wildcard domain cannot be primary".into(),
                );
            }
        }
        Kind::BackupSchedule
            if m.spec.contains_key("interval_minutes") == m.spec.contains_key("cron") =>
        {
            add(
                "spec.interval_minutes",
                codes::INVALID_VALUE,
                "give exactly one of interval_minutes and cron".into(),
            );
        }
        _ => {}
    }
}

/// Rules across documents.
fn check_set(ms: &[Manifest], known: &Known, problems: &mut Vec<Problem>) {
    let mut first: BTreeMap<(Kind, String, String), usize> = BTreeMap::new();
    for m in ms {
        if let Some(prev) = first.get(&m.key()) {
            problems.push(Problem::new(
                m.index,
                "metadata.name",
                codes::DUPLICATE_NAME,
                format!("{} is declared twice (also document {prev})", m.display()),
            ));
        } else {
            first.insert(m.key(), m.index);
        }
    }

    let nodes: BTreeSet<&str> = ms
        .iter()
        .filter(|m| m.kind == Kind::Node)
        .map(|m| m.name.as_str())
        .chain(known.nodes.iter().map(String::as_str))
        .collect();
    let sites: BTreeSet<&str> = ms
        .iter()
        .filter(|m| m.kind == Kind::Site)
        .map(|m| m.name.as_str())
        .chain(known.sites.iter().map(String::as_str))
        .collect();
    // Environment types by (site, slug): known ones, every site's production, the set's own.
    let mut envs: BTreeMap<(&str, &str), &str> = known
        .environments
        .iter()
        .map(|((s, e), t)| ((s.as_str(), e.as_str()), t.as_str()))
        .collect();
    for s in &sites {
        envs.insert((s, PRODUCTION), "production");
    }
    for m in ms.iter().filter(|m| m.kind == Kind::Environment) {
        if let (Some(site), Some(t)) = (m.site(), m.str("type")) {
            envs.insert((site, m.name.as_str()), t);
        }
    }

    let mut primaries: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let dangling = |m: &Manifest, path: &str, what: String| {
        Problem::new(
            m.index,
            path,
            codes::DANGLING_REFERENCE,
            format!("{what} is neither in this set nor known to Pressluft"),
        )
    };
    for m in ms {
        if let Some(node) = m.str("node").filter(|_| m.kind == Kind::Site) {
            if !nodes.contains(node) {
                problems.push(dangling(m, "spec.node", format!("node '{node}'")));
            }
        }
        let Some(site) = m.site().filter(|_| m.kind != Kind::Site) else {
            continue;
        };
        if !sites.contains(site) {
            problems.push(dangling(m, "spec.site", format!("site '{site}'")));
            continue;
        }
        for field in ["environment", "source_environment"] {
            let Some(env) = m.str(field) else { continue };
            match envs.get(&(site, env)) {
                None => problems.push(dangling(
                    m,
                    &format!("spec.{field}"),
                    format!("environment '{env}' of site '{site}'"),
                )),
                Some(&"production") if m.kind == Kind::Promotion => {
                    problems.push(Problem::new(
                        m.index,
                        format!("spec.{field}"),
                        codes::INVALID_VALUE,
                        "a promotion's source is a staging or clone environment, not production",
                    ));
                }
                Some(_) => {}
            }
        }
        if m.kind == Kind::Domain && m.spec.get("primary") == Some(&Value::Bool(true)) {
            if let Some(env) = m.str("environment") {
                if let Some(prev) = primaries.insert((site, env), m.index) {
                    problems.push(Problem::new(
                        m.index,
                        "spec.primary",
                        codes::CONFLICT,
                        format!(
                            "environment {} has two primary domains (also document {prev})",
                            display(Kind::Environment, Some(site), env)
                        ),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
