//! The current desired state as manifests (`pressluft export`): every field given, so applying
//! the export changes nothing. Deterministic: kinds in apply order, then site, then name; fields
//! in name order.
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::plan::{Current, Key};
use super::{Kind, API_VERSION};

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: &'a BTreeMap<String, Value>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
}

/// Multi-document YAML of `current`. Resources of the one-shot kinds (backups, promotions) are
/// records of what happened, not desired state: they are left out.
pub fn yaml(current: &BTreeMap<Key, Current>) -> String {
    let mut keys: Vec<&Key> = current
        .keys()
        .filter(|k| !matches!(k.0, Kind::Backup | Kind::Promotion | Kind::Import))
        .collect();
    keys.sort_by_key(|k| (order(k.0), k.1.clone(), k.2.clone()));
    let mut out = String::new();
    for k in keys {
        let c = &current[k];
        let doc = Document {
            api_version: API_VERSION,
            kind: k.0.as_str(),
            metadata: Metadata {
                name: &k.2,
                labels: &c.labels,
            },
            spec: &c.spec,
        };
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&doc).unwrap_or_default());
    }
    out
}

fn order(kind: Kind) -> usize {
    Kind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::manifest::check::Known;
    use crate::manifest::load;
    use crate::manifest::plan::{plan, Action};

    #[test]
    fn an_export_plans_as_unchanged_and_is_golden() {
        let mut current = BTreeMap::new();
        let c = |spec: Value| Current {
            spec: serde_json::from_value(spec).unwrap(),
            labels: BTreeMap::new(),
            apply_set: None,
        };
        current.insert(
            (Kind::Environment, "shop".into(), "production".into()),
            c(json!({"site": "shop", "type": "production", "fastcgi_cache_enabled": true})),
        );
        current.insert(
            (Kind::Site, String::new(), "shop".into()),
            c(json!({"display_name": "Shop", "node": "local"})),
        );
        current.insert(
            (Kind::Node, String::new(), "local".into()),
            c(json!({"hostname": "127.0.0.1", "ssh_port": 22, "ssh_user": "root"})),
        );
        let text = yaml(&current);
        assert_eq!(
            text,
            "---
apiVersion: pressluft.dev/v1
kind: Node
metadata:
  name: local
spec:
  hostname: 127.0.0.1
  ssh_port: 22
  ssh_user: root
---
apiVersion: pressluft.dev/v1
kind: Site
metadata:
  name: shop
spec:
  display_name: Shop
  node: local
---
apiVersion: pressluft.dev/v1
kind: Environment
metadata:
  name: production
spec:
  fastcgi_cache_enabled: true
  site: shop
  type: production
"
        );
        let set = load(&text, &Known::default()).unwrap();
        let steps = plan(&set, &current, None).unwrap();
        assert!(
            steps.iter().all(|s| s.action == Action::Unchanged),
            "{steps:?}"
        );
    }
}
