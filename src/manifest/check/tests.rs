use super::*;
use crate::manifest::{load, parse};

const GOOD: &str = r#"
apiVersion: pressluft.dev/v1
kind: Site
metadata: {name: shop, labels: {team: web}}
spec: {display_name: Shop}
---
apiVersion: pressluft.dev/v1
kind: Environment
metadata: {name: production}
spec: {site: shop, type: production, fastcgi_cache_enabled: false}
---
apiVersion: pressluft.dev/v1
kind: Environment
metadata: {name: staging}
spec: {site: shop, type: staging, source_environment: production, promotion_preset: commerce-protect}
---
apiVersion: pressluft.dev/v1
kind: Domain
metadata: {name: shop.example.com}
spec: {site: shop, environment: production, primary: true}
---
apiVersion: pressluft.dev/v1
kind: BackupSchedule
metadata: {name: nightly}
spec: {site: shop, environment: production, cron: "0 3 * * *", keep_last: 7}
---
apiVersion: pressluft.dev/v1
kind: Promotion
metadata: {name: first}
spec: {site: shop, source_environment: staging}
---
apiVersion: pressluft.dev/v1
kind: Settings
metadata: {name: settings}
spec: {backup_storage_type: s3, backup_s3_secret_access_key: {env: S3_SECRET}}
"#;

#[test]
fn a_valid_set_is_normalised() {
    let ms = load(GOOD, &Known::default()).unwrap();
    assert_eq!(ms.len(), 7);
    assert_eq!(ms[0].labels["team"], "web");
    assert_eq!(
        ms[2].key(),
        (Kind::Environment, "shop".into(), "staging".into())
    );
    assert_eq!(
        ms[6].spec["backup_s3_secret_access_key"]["env"],
        "S3_SECRET"
    );
    assert_eq!(ms[3].display(), "Domain/shop.example.com");
    assert_eq!(ms[2].display(), "Environment/shop/staging");
}

#[test]
fn references_may_point_at_what_exists() {
    let doc = r#"
apiVersion: pressluft.dev/v1
kind: Domain
metadata: {name: a.example.com}
spec: {site: blog, environment: staging}
"#;
    let p = load(doc, &Known::default()).unwrap_err();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].code, codes::DANGLING_REFERENCE);
    assert_eq!(p[0].path, "spec.site");
    let mut known = Known::default();
    known.sites.insert("blog".into());
    let p = load(doc, &known).unwrap_err();
    assert_eq!(
        (p[0].code, p[0].path.as_str()),
        (codes::DANGLING_REFERENCE, "spec.environment")
    );
    known
        .environments
        .insert(("blog".into(), "staging".into()), "staging".into());
    assert!(load(doc, &known).is_ok());
}

/// The issue's acceptance: a set with twenty different mistakes gets all twenty reported in one
/// answer, each with its document and path.
#[test]
fn twenty_mistakes_are_all_reported_with_paths() {
    let bad = r#"
apiVersion: pressluft.dev/v1
kind: Site
metadata: {name: Bad_Slug}
spec: {}
---
apiVersion: pressluft.dev/v1
kind: Sight
metadata: {name: x}
spec: {}
---
apiVersion: pressluft.dev/v1
kind: Environment
metadata: {name: stage}
spec: {type: staging}
---
apiVersion: pressluft.dev/v1
kind: Domain
metadata: {name: a.example.com}
spec: {site: ghost, environment: production}
---
apiVersion: pressluft.dev/v1
kind: Site
metadata: {name: shop}
spec: {node: nowhere}
---
apiVersion: pressluft.dev/v1
kind: Site
metadata: {name: shop}
spec: {}
---
apiVersion: pressluft.dev/v1
kind: Environment
metadata: {name: live}
spec: {site: shop, type: production}
---
apiVersion: pressluft.dev/v1
kind: Environment
metadata: {name: qa}
spec: {site: shop, type: stagin}
---
apiVersion: v2
kind: Node
metadata: {name: n1}
spec: {hostname: "10.0.0.1", ssh_port: 70000}
---
apiVersion: pressluft.dev/v1
kind: Node
metadata: {name: n2, owner: me}
spec: {hostname: "a b", colour: blue}
---
apiVersion: pressluft.dev/v1
kind: BackupSchedule
metadata: {name: s}
spec: {site: shop, environment: production, interval_minutes: 60, cron: "0 3 * * *", keep_last: "7"}
---
apiVersion: pressluft.dev/v1
kind: Domain
metadata: {name: "*.example.com"}
spec: {site: shop, environment: production}
---
apiVersion: pressluft.dev/v1
kind: Promotion
metadata: {name: p}
spec: {site: shop, source_environment: production}
---
apiVersion: pressluft.dev/v1
kind: Settings
metadata: {name: settings}
spec: {backup_s3_secret_access_key: plain-text-secret, acme_email: nope}
---
just a string
"#;
    let p = load(bad, &Known::default()).unwrap_err();
    let got: Vec<(usize, &str, &str)> = p
        .iter()
        .map(|p| (p.document, p.path.as_str(), p.code))
        .collect();
    let want: Vec<(usize, &str, &str)> = vec![
        (0, "metadata.name", codes::INVALID_VALUE),  // 1 bad slug
        (1, "kind", codes::UNKNOWN_KIND),            // 2 unknown kind
        (2, "spec.site", codes::MISSING_FIELD),      // 3 missing field
        (3, "spec.site", codes::DANGLING_REFERENCE), // 4 dangling site
        (4, "spec.node", codes::DANGLING_REFERENCE), // 5 dangling node
        (5, "metadata.name", codes::DUPLICATE_NAME), // 6 duplicate name
        (6, "metadata.name", codes::CONFLICT),       // 7 second production environment
        (7, "spec.type", codes::INVALID_VALUE),      // 8 wrong enum
        (8, "apiVersion", codes::UNSUPPORTED_API_VERSION), // 9 wrong apiVersion
        (8, "spec.ssh_port", codes::INVALID_VALUE),  // 10 port out of range
        (9, "metadata.owner", codes::UNKNOWN_FIELD), // 11 unknown metadata field
        (9, "spec.colour", codes::UNKNOWN_FIELD),    // 12 unknown spec field
        (9, "spec.hostname", codes::INVALID_VALUE),  // 13 bad host name
        (10, "spec.interval_minutes", codes::INVALID_VALUE), // 14 both cadences
        (10, "spec.keep_last", codes::WRONG_TYPE),   // 15 a string for an integer
        (11, "spec.tls_mode", codes::INVALID_VALUE), // 16 wildcard without custom TLS
        (12, "spec.source_environment", codes::INVALID_VALUE), // 17 promoting production
        (13, "spec.acme_email", codes::INVALID_VALUE), // 18 bad e-mail
        (13, "spec.backup_s3_secret_access_key", codes::WRONG_TYPE), // 19 a secret in clear
        (14, "", codes::NOT_AN_OBJECT),              // 20 not a document
    ];
    assert_eq!(got, want, "{p:#?}");
    // Every problem explains itself.
    assert!(p.iter().all(|p| !p.message.is_empty()));
    assert!(
        !format!("{p:?}").contains("plain-text-secret"),
        "a secret is never echoed"
    );
}

#[test]
fn two_primary_domains_for_one_environment() {
    let doc = r#"
- {apiVersion: pressluft.dev/v1, kind: Site, metadata: {name: s}, spec: {}}
- {apiVersion: pressluft.dev/v1, kind: Domain, metadata: {name: a.example.com}, spec: {site: s, environment: production, primary: true}}
- {apiVersion: pressluft.dev/v1, kind: Domain, metadata: {name: b.example.com}, spec: {site: s, environment: production, primary: true}}
"#;
    let p = check(&parse(doc).unwrap(), &Known::default()).unwrap_err();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].document, p[0].code), (2, codes::CONFLICT));
}

#[test]
fn every_kind_has_a_json_schema_matching_its_table() {
    for k in Kind::ALL {
        let s = crate::manifest::kinds::json_schema(k);
        assert_eq!(s["properties"]["kind"]["const"], k.as_str());
        let props = s["properties"]["spec"]["properties"].as_object().unwrap();
        assert_eq!(props.len(), k.fields().len());
        for f in k.fields() {
            assert!(props.contains_key(f.name));
        }
    }
}
