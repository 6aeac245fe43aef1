//! The plan of an apply: what each manifest would do to the current desired state — create,
//! change (field by field), or nothing — and what an apply set no longer holds (pruned). Pure:
//! the caller renders the current state as specs (the same fields a manifest has, defaults
//! filled in) and applies the plan in one transaction.
//!
//! Server-side apply semantics: a field the manifest does not give keeps its current value (or
//! its default on creation), so re-applying the same set is a no-op and an export, which gives
//! every field, round-trips.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::kinds::Kind;
use super::{codes, display, Manifest, Problem};

/// The identity of a resource among manifests: kind, scope (site for site-scoped kinds), name.
pub type Key = (Kind, String, String);

/// A resource's current desired state, as a manifest would declare it.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    /// Every field, defaults included.
    pub spec: BTreeMap<String, Value>,
    pub labels: BTreeMap<String, String>,
    /// The apply set that last applied it, if any.
    pub apply_set: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Change,
    Unchanged,
    Prune,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub action: Action,
    pub kind: Kind,
    /// `Kind/name` or `Kind/site/name`.
    pub resource: String,
    pub name: String,
    pub site: Option<String>,
    /// The document it comes from (none for a pruned resource).
    pub document: Option<usize>,
    pub changes: Vec<FieldChange>,
}

/// Fields a resource cannot change once created (the API has no way to change them either).
fn immutable(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Site => &["node"],
        Kind::Environment => &["type", "source_environment"],
        Kind::Domain => &["site", "environment"],
        Kind::Backup => &["site", "environment", "scope"],
        Kind::BackupSchedule => &["site", "environment"],
        Kind::Promotion => &["site", "source_environment", "preset"],
        Kind::Import => &[
            "site",
            "environment",
            "archive_url",
            "sha256",
            "database_url",
            "database_sha256",
            "content_url",
            "content_sha256",
            "source_url",
            "table_prefix",
        ],
        Kind::Node | Kind::Settings => &[],
    }
}

/// Kinds an apply set may prune. Backups and promotions are records of things that happened;
/// settings always exist.
pub fn prunable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Site | Kind::Environment | Kind::Domain | Kind::BackupSchedule | Kind::Node
    )
}

/// Plans `set` against `current`. With `prune_set`, resources last applied by that set and
/// missing from `set` are pruned. Problems (an immutable field changed, a production
/// environment pruned on its own) refuse the whole apply.
pub fn plan(
    set: &[Manifest],
    current: &BTreeMap<Key, Current>,
    prune_set: Option<&str>,
) -> Result<Vec<Step>, Vec<Problem>> {
    let mut steps = Vec::new();
    let mut problems = Vec::new();
    let mut declared: BTreeSet<Key> = BTreeSet::new();
    let mut ordered: Vec<&Manifest> = set.iter().collect();
    ordered.sort_by_key(|m| (order(m.kind), m.key()));
    for m in ordered {
        declared.insert(m.key());
        let site = m
            .kind
            .site_scoped()
            .then(|| m.site().unwrap_or_default().to_string());
        let mut step = Step {
            action: Action::Create,
            kind: m.kind,
            resource: m.display(),
            name: m.name.clone(),
            site: site.or_else(|| {
                (m.kind != Kind::Site)
                    .then(|| m.site().map(str::to_string))
                    .flatten()
            }),
            document: Some(m.index),
            changes: Vec::new(),
        };
        match current.get(&m.key()) {
            None => {
                step.changes = m
                    .spec
                    .iter()
                    .map(|(f, v)| FieldChange {
                        field: f.clone(),
                        from: Value::Null,
                        to: v.clone(),
                    })
                    .collect();
            }
            Some(cur) => {
                for (f, v) in &m.spec {
                    let from = cur.spec.get(f).cloned().unwrap_or(Value::Null);
                    // A secret reference is compared by the applier (it holds the values).
                    if &from == v || v.get("env").is_some() {
                        continue;
                    }
                    if immutable(m.kind).contains(&f.as_str()) {
                        problems.push(Problem::new(
                            m.index,
                            format!("spec.{f}"),
                            codes::IMMUTABLE_FIELD,
                            format!(
                                "{} cannot change {f} once created (it is {from}); delete and \
                                 declare it again",
                                m.display()
                            ),
                        ));
                        continue;
                    }
                    step.changes.push(FieldChange {
                        field: f.clone(),
                        from,
                        to: v.clone(),
                    });
                }
                for (k, v) in &m.labels {
                    if cur.labels.get(k) != Some(v) {
                        step.changes.push(FieldChange {
                            field: format!("metadata.labels.{k}"),
                            from: cur
                                .labels
                                .get(k)
                                .map_or(Value::Null, |c| Value::from(c.as_str())),
                            to: Value::from(v.as_str()),
                        });
                    }
                }
                step.action = if step.changes.is_empty() {
                    Action::Unchanged
                } else {
                    Action::Change
                };
            }
        }
        steps.push(step);
    }
    if let Some(set_name) = prune_set {
        let mut pruned: Vec<&Key> = current
            .iter()
            .filter(|(k, c)| {
                c.apply_set.as_deref() == Some(set_name) && prunable(k.0) && !declared.contains(*k)
            })
            .map(|(k, _)| k)
            .collect();
        // Dependents first: domains before environments before sites before nodes.
        pruned.sort_by_key(|k| std::cmp::Reverse(order(k.0)));
        let pruned_sites: BTreeSet<&str> = pruned
            .iter()
            .filter(|k| k.0 == Kind::Site)
            .map(|k| k.2.as_str())
            .collect();
        for k in pruned {
            let is_production = k.0 == Kind::Environment && k.2 == super::check::PRODUCTION;
            if is_production {
                if !pruned_sites.contains(k.1.as_str()) {
                    problems.push(Problem::new(
                        0,
                        "",
                        codes::CONFLICT,
                        format!(
                            "{} would be pruned, but a production environment goes only with its \
                             site",
                            display(k.0, Some(&k.1), &k.2)
                        ),
                    ));
                }
                // Deleted with its site.
                continue;
            }
            steps.push(Step {
                action: Action::Prune,
                kind: k.0,
                resource: display(k.0, Some(&k.1), &k.2),
                name: k.2.clone(),
                site: (!k.1.is_empty()).then(|| k.1.clone()),
                document: None,
                changes: Vec::new(),
            });
        }
    }
    if problems.is_empty() {
        Ok(steps)
    } else {
        Err(problems)
    }
}

/// The desired state an apply of `set` leaves: what the applier must write, computed without
/// I/O. Steps run in plan order (dependencies first, then by key), so the result does not depend
/// on the order of the documents. Fields a manifest does not give keep their value (or the
/// kind's default on creation); an environment's first domain becomes its primary, and a domain
/// declared primary takes over from the environment's previous primary, as through the API.
pub fn after(
    set: &[Manifest],
    current: &BTreeMap<Key, Current>,
    apply_set: Option<&str>,
    prune: bool,
) -> Result<BTreeMap<Key, Current>, Vec<Problem>> {
    let steps = plan(set, current, apply_set.filter(|_| prune))?;
    let by_key: BTreeMap<Key, &Manifest> = set.iter().map(|m| (m.key(), m)).collect();
    let mut state = current.clone();
    for step in steps {
        let key: Key = match step.action {
            Action::Prune => {
                let k = (
                    step.kind,
                    step.site
                        .clone()
                        .filter(|_| step.kind.site_scoped())
                        .unwrap_or_default(),
                    step.name.clone(),
                );
                state.remove(&k);
                if step.kind == Kind::Site {
                    // Its environments go with it.
                    state.retain(|k2, _| !(k2.0 == Kind::Environment && k2.1 == step.name));
                }
                continue;
            }
            _ => match step
                .document
                .and_then(|d| set.iter().find(|m| m.index == d))
            {
                Some(m) => m.key(),
                None => continue,
            },
        };
        let m = by_key[&key];
        let created = !state.contains_key(&key);
        let entry = state.entry(key.clone()).or_insert_with(|| Current {
            spec: m.kind.defaults(&m.name),
            labels: BTreeMap::new(),
            apply_set: None,
        });
        for (f, v) in &m.spec {
            entry.spec.insert(f.clone(), v.clone());
        }
        for (k, v) in &m.labels {
            entry.labels.insert(k.clone(), v.clone());
        }
        if let Some(s) = apply_set {
            entry.apply_set = Some(s.to_string());
        }
        if m.kind == Kind::Site && created {
            // Its production environment comes with it.
            let pk = (
                Kind::Environment,
                m.name.clone(),
                super::check::PRODUCTION.to_string(),
            );
            state.entry(pk).or_insert_with(|| {
                let mut spec = Kind::Environment.defaults(super::check::PRODUCTION);
                spec.insert("site".into(), Value::from(m.name.as_str()));
                spec.insert("type".into(), Value::from("production"));
                Current {
                    spec,
                    labels: BTreeMap::new(),
                    apply_set: None,
                }
            });
        }
        if m.kind == Kind::Domain {
            let env = (
                m.str("site").map(str::to_string),
                m.str("environment").map(str::to_string),
            );
            let same_env = |c: &Current| {
                (
                    c.spec
                        .get("site")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    c.spec
                        .get("environment")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ) == env
            };
            let has_other_primary = state.iter().any(|(k, c)| {
                k.0 == Kind::Domain
                    && *k != key
                    && same_env(c)
                    && c.spec.get("primary") == Some(&Value::Bool(true))
            });
            let declared_primary = m.spec.get("primary") == Some(&Value::Bool(true));
            if created && !has_other_primary {
                state
                    .get_mut(&key)
                    .map(|c| c.spec.insert("primary".into(), Value::Bool(true)));
            } else if declared_primary {
                for (k, c) in state.iter_mut() {
                    if k.0 == Kind::Domain && *k != key && same_env(c) {
                        c.spec.remove("primary");
                    }
                }
            }
        }
    }
    Ok(state)
}

fn order(kind: Kind) -> usize {
    Kind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load, Known};
    use serde_json::json;

    fn cur(spec: Value, set: Option<&str>) -> Current {
        Current {
            spec: serde_json::from_value(spec).unwrap(),
            labels: BTreeMap::new(),
            apply_set: set.map(str::to_string),
        }
    }

    const SET: &str = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: shop}, spec: {display_name: Shop}}
- {apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: production}, spec: {site: shop, type: production, fastcgi_cache_enabled: false}}
- {apiVersion: pressluft.dev/v1, kind: Domain, metadata: {name: shop.example.com}, spec: {site: shop, environment: production}}
"#;

    #[test]
    fn create_change_unchanged_and_prune() {
        let set = load(SET, &Known::default()).unwrap();
        let mut current = BTreeMap::new();
        let p = plan(&set, &current, Some("web")).unwrap();
        assert!(p.iter().all(|s| s.action == Action::Create));
        assert_eq!(p[0].resource, "Site/shop", "created in dependency order");

        current.insert(
            (Kind::Site, String::new(), "shop".into()),
            cur(
                json!({"display_name": "Shop", "node": "local"}),
                Some("web"),
            ),
        );
        current.insert(
            (Kind::Environment, "shop".into(), "production".into()),
            cur(json!({"site": "shop", "type": "production", "fastcgi_cache_enabled": true, "redis_cache_enabled": true}), Some("web")),
        );
        current.insert(
            (Kind::Domain, String::new(), "old.example.com".into()),
            cur(
                json!({"site": "shop", "environment": "production"}),
                Some("web"),
            ),
        );
        current.insert(
            (Kind::Domain, String::new(), "other.example.com".into()),
            cur(
                json!({"site": "shop", "environment": "production"}),
                Some("another-set"),
            ),
        );
        let p = plan(&set, &current, Some("web")).unwrap();
        let summary: Vec<(&str, Action)> = p
            .iter()
            .map(|s| (s.resource.as_str(), s.action.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("Site/shop", Action::Unchanged),
                ("Environment/shop/production", Action::Change),
                ("Domain/shop.example.com", Action::Create),
                ("Domain/old.example.com", Action::Prune),
            ]
        );
        assert_eq!(
            p[1].changes,
            vec![FieldChange {
                field: "fastcgi_cache_enabled".into(),
                from: json!(true),
                to: json!(false)
            }]
        );
        // Without prune, nothing is pruned.
        assert!(plan(&set, &current, None)
            .unwrap()
            .iter()
            .all(|s| s.action != Action::Prune));
    }

    #[test]
    fn immutable_fields_refuse_the_apply() {
        let set = load(SET, &Known::default()).unwrap();
        let mut current = BTreeMap::new();
        current.insert(
            (Kind::Site, String::new(), "shop".into()),
            cur(json!({"display_name": "Shop", "node": "local"}), None),
        );
        let set2 = load(
            "{apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: shop}, spec: {node: other}}",
            &Known { nodes: ["other".to_string()].into(), ..Known::default() },
        )
        .unwrap();
        let e = plan(&set2, &current, None).unwrap_err();
        assert_eq!(e[0].code, codes::IMMUTABLE_FIELD);
        assert!(plan(&set, &current, None).is_ok());
    }

    #[test]
    fn production_goes_only_with_its_site() {
        let mut current = BTreeMap::new();
        current.insert(
            (Kind::Environment, "shop".into(), "production".into()),
            cur(json!({"site": "shop", "type": "production"}), Some("web")),
        );
        assert_eq!(
            plan(&[], &current, Some("web")).unwrap_err()[0].code,
            codes::CONFLICT
        );
        current.insert(
            (Kind::Site, String::new(), "shop".into()),
            cur(json!({"display_name": "Shop"}), Some("web")),
        );
        let p = plan(&[], &current, Some("web")).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].resource.as_str(), &p[0].action),
            ("Site/shop", &Action::Prune)
        );
    }
}

/// The issue's property: random valid manifest sets, applied in random order and re-applied,
/// converge to the same desired state.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::manifest::{load, Known};

    /// A random valid set: sites, their staging/clone environments, domains (some declared
    /// primary, at most one per environment), schedules, optional settings; as YAML documents.
    fn arb_set() -> impl Strategy<Value = Vec<String>> {
        let site = (0usize..3, any::<bool>(), 0usize..3, any::<bool>(), 0i64..3);
        proptest::collection::vec(site, 1..4).prop_flat_map(|sites| {
            let mut docs = Vec::new();
            for (i, (envs, cache, domains, with_schedule, ttl)) in sites.into_iter().enumerate() {
                let s = format!("site-{i}");
                docs.push(format!(
                    "{{apiVersion: pressluft.dev/v1, kind: Site, metadata: {{name: {s}, labels: {{team: t{i}}}}}, spec: {{display_name: Site {i}}}}}"
                ));
                docs.push(format!(
                    "{{apiVersion: pressluft.dev/v1, kind: Environment, metadata: {{name: production}}, spec: {{site: {s}, type: production, fastcgi_cache_enabled: {cache}}}}}"
                ));
                for e in 0..envs {
                    let t = if e % 2 == 0 { "staging" } else { "clone" };
                    docs.push(format!(
                        "{{apiVersion: pressluft.dev/v1, kind: Environment, metadata: {{name: env-{e}}}, spec: {{site: {s}, type: {t}, source_environment: production, fastcgi_cache_ttl_seconds: {}}}}}",
                        600 * (ttl + 1)
                    ));
                }
                for d in 0..domains {
                    let primary = if d == domains - 1 && cache { ", primary: true" } else { "" };
                    docs.push(format!(
                        "{{apiVersion: pressluft.dev/v1, kind: Domain, metadata: {{name: d{d}.{s}.example.com}}, spec: {{site: {s}, environment: production{primary}}}}}"
                    ));
                }
                if with_schedule {
                    docs.push(format!(
                        "{{apiVersion: pressluft.dev/v1, kind: BackupSchedule, metadata: {{name: nightly}}, spec: {{site: {s}, environment: production, cron: '0 3 * * *', keep_last: {}}}}}",
                        ttl + 1
                    ));
                }
            }
            let n = docs.len();
            (Just(docs), Just(n)).prop_flat_map(|(docs, n)| {
                (Just(docs), proptest::collection::vec(0..n.max(1), n))
            })
            .prop_map(|(docs, swaps)| {
                // A random order: Fisher-Yates driven by the generated indices.
                let mut docs = docs;
                for (i, j) in swaps.into_iter().enumerate() {
                    docs.swap(i, j);
                }
                docs
            })
        })
    }

    fn yaml(docs: &[String]) -> String {
        format!("[{}]", docs.join(",\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn applying_in_any_order_converges_and_reapplying_changes_nothing(
            docs in arb_set(),
            rotate in 0usize..50,
        ) {
            let known = Known::default();
            let set = load(&yaml(&docs), &known).unwrap();
            let mut other = docs.clone();
            other.reverse();
            let len = other.len();
            other.rotate_left(rotate % len);
            let set2 = load(&yaml(&other), &known).unwrap();

            let empty = BTreeMap::new();
            let a = after(&set, &empty, Some("web"), true).unwrap();
            let b = after(&set2, &empty, Some("web"), true).unwrap();
            prop_assert_eq!(&a, &b, "the order of the documents does not matter");

            // Re-applying: nothing to do, same state.
            let steps = plan(&set, &a, Some("web")).unwrap();
            prop_assert!(steps.iter().all(|s| s.action == Action::Unchanged), "{:?}", steps);
            prop_assert_eq!(after(&set2, &a, Some("web"), true).unwrap(), a.clone());

            // Every environment has at most one primary domain, and one if it has domains.
            let mut primaries: BTreeMap<(String, String), usize> = BTreeMap::new();
            for (k, c) in &a {
                if k.0 == Kind::Domain {
                    let env = (
                        c.spec["site"].as_str().unwrap().to_string(),
                        c.spec["environment"].as_str().unwrap().to_string(),
                    );
                    let p = primaries.entry(env).or_default();
                    if c.spec.get("primary") == Some(&Value::Bool(true)) {
                        *p += 1;
                    }
                }
            }
            prop_assert!(primaries.values().all(|n| *n == 1), "{:?}", primaries);

            // Pruning the whole set leaves nothing of it.
            let gone = after(&[], &a, Some("web"), true).unwrap();
            prop_assert!(gone.is_empty(), "{:?}", gone.keys().collect::<Vec<_>>());
        }
    }
}
