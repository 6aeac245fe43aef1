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
