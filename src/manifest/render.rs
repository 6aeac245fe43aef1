//! Text renderings for the CLI (`pressluft diff`, `apply`): deterministic — steps in plan order
//! (dependency order, then kind, site, name), fields in name order — so that output can be
//! compared byte for byte (golden tests).
use std::fmt::Write;

use serde_json::Value;

use super::plan::{Action, Step};
use super::Problem;

/// A plan as `kubectl diff`-like text: `+` create, `~` change, `-` prune; unchanged resources
/// only when `verbose`. Ends with a one-line summary.
pub fn plan_text(steps: &[Step], verbose: bool) -> String {
    let mut out = String::new();
    let (mut create, mut change, mut prune, mut same) = (0, 0, 0, 0);
    for s in steps {
        let (mark, word) = match s.action {
            Action::Create => {
                create += 1;
                ("+", "create")
            }
            Action::Change => {
                change += 1;
                ("~", "change")
            }
            Action::Prune => {
                prune += 1;
                ("-", "prune")
            }
            Action::Unchanged => {
                same += 1;
                if !verbose {
                    continue;
                }
                ("=", "unchanged")
            }
        };
        let _ = writeln!(out, "{mark} {} ({word})", s.resource);
        for c in &s.changes {
            match s.action {
                Action::Create => {
                    let _ = writeln!(out, "    {}: {}", c.field, value(&c.to));
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "    {}: {} -> {}",
                        c.field,
                        value(&c.from),
                        value(&c.to)
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "{create} to create, {change} to change, {prune} to prune, {same} unchanged."
    );
    out
}

/// Problems, one per line: `document N, PATH: CODE: message`.
pub fn problems_text(problems: &[Problem]) -> String {
    let mut out = String::new();
    for p in problems {
        let at = if p.path.is_empty() {
            format!("document {}", p.document)
        } else {
            format!("document {}, {}", p.document, p.path)
        };
        let _ = writeln!(out, "{at}: {}: {}", p.code, p.message);
    }
    let _ = writeln!(
        out,
        "{} problem{}; nothing was written.",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    out
}

fn value(v: &Value) -> String {
    match v {
        Value::Null => "(unset)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::manifest::plan::{plan, Current};
    use crate::manifest::{load, Kind, Known};

    #[test]
    fn golden_plan_text() {
        let set = load(
            r#"
- {apiVersion: pressluft.dev/v1, kind: Domain, metadata: {name: shop.example.com}, spec: {site: shop, environment: production, primary: true}}
- {apiVersion: pressluft.dev/v1, kind: Environment, metadata: {name: production}, spec: {site: shop, type: production, fastcgi_cache_enabled: false}}
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: shop}, spec: {display_name: Shop}}
"#,
            &Known::default(),
        )
        .unwrap();
        let mut current = BTreeMap::new();
        current.insert(
            (Kind::Site, String::new(), "shop".into()),
            Current {
                spec: serde_json::from_value(json!({"display_name": "Shop"})).unwrap(),
                labels: BTreeMap::new(),
                apply_set: Some("web".into()),
            },
        );
        current.insert(
            (Kind::Environment, "shop".into(), "production".into()),
            Current {
                spec: serde_json::from_value(
                    json!({"site": "shop", "type": "production", "fastcgi_cache_enabled": true}),
                )
                .unwrap(),
                labels: BTreeMap::new(),
                apply_set: Some("web".into()),
            },
        );
        current.insert(
            (Kind::Domain, String::new(), "old.example.com".into()),
            Current {
                spec: BTreeMap::new(),
                labels: BTreeMap::new(),
                apply_set: Some("web".into()),
            },
        );
        let steps = plan(&set, &current, Some("web")).unwrap();
        assert_eq!(
            plan_text(&steps, false),
            "~ Environment/shop/production (change)
    fastcgi_cache_enabled: true -> false
+ Domain/shop.example.com (create)
    environment: \"production\"
    primary: true
    site: \"shop\"
- Domain/old.example.com (prune)
1 to create, 1 to change, 1 to prune, 1 unchanged.
"
        );
        assert!(plan_text(&steps, true).starts_with("= Site/shop (unchanged)\n"));
    }

    #[test]
    fn golden_problems_text() {
        let p = load(
            "{apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: A}, spec: {colour: 1}}",
            &Known::default(),
        )
        .unwrap_err();
        assert_eq!(
            problems_text(&p),
            "document 0, metadata.name: invalid_value: metadata.name must be 1-63 lower-case letters, digits or inner hyphens
document 0, spec.colour: unknown_field: Site has no field 'colour' (known: display_name, node)
2 problems; nothing was written.
"
        );
    }
}
