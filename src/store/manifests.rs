//! The current desired state as manifests see it: every live resource rendered as the spec a
//! manifest would declare (names instead of ids, defaults filled in), the names that references
//! may point at, and the membership rows (`manifest_objects`: name → resource, apply set, labels).
use std::collections::BTreeMap;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use super::entity::{
    apply_receipts, backup_schedules, backups, domains, environments, imports, manifest_objects,
    nodes, promotions, sites,
};
use super::Result;
use crate::manifest::check::Known;
use crate::manifest::plan::{Current, Key};
use crate::manifest::Kind;

/// One resource as manifests name it.
#[derive(Debug, Clone)]
pub struct Named {
    pub key: Key,
    pub resource_id: String,
    pub current: Current,
}

/// Every live (not being deleted) resource of the declarative kinds, rendered as manifests would
/// declare it. Settings are the API layer's (it owns their defaults).
pub async fn current(db: &impl ConnectionTrait) -> Result<Vec<Named>> {
    let members = manifest_objects::Entity::find().all(db).await?;
    let member_of = |kind: Kind, id: &str| {
        members
            .iter()
            .find(|m| m.kind == kind.as_str() && m.resource_id == id)
    };
    let with_membership = |kind: Kind, id: &str, key: Key, spec: BTreeMap<String, Value>| {
        let m = member_of(kind, id);
        Named {
            key: m.map_or(key, |m| (kind, m.scope.clone(), m.name.clone())),
            resource_id: id.to_string(),
            current: Current {
                spec,
                labels: m
                    .and_then(|m| serde_json::from_str(&m.labels).ok())
                    .unwrap_or_default(),
                apply_set: m.and_then(|m| m.apply_set.clone()),
            },
        }
    };

    let nodes = nodes::Entity::find()
        .filter(nodes::Column::DeletionRequestedAt.is_null())
        .all(db)
        .await?;
    let sites = sites::Entity::find()
        .filter(sites::Column::DeletionRequestedAt.is_null())
        .all(db)
        .await?;
    let envs = environments::Entity::find()
        .filter(environments::Column::DeletionRequestedAt.is_null())
        .all(db)
        .await?;
    let node_name: BTreeMap<&str, &str> = nodes
        .iter()
        .map(|n| (n.id.as_str(), n.name.as_str()))
        .collect();
    let site_slug: BTreeMap<&str, &str> = sites
        .iter()
        .map(|s| (s.id.as_str(), s.slug.as_str()))
        .collect();
    let env_by_id: BTreeMap<&str, &environments::Model> =
        envs.iter().map(|e| (e.id.as_str(), e)).collect();

    let mut out = Vec::new();
    for n in &nodes {
        let mut spec = BTreeMap::new();
        spec.insert("hostname".into(), json!(n.hostname));
        if let Some(ip) = &n.public_ip {
            spec.insert("public_ip".into(), json!(ip));
        }
        spec.insert("ssh_port".into(), json!(n.ssh_port));
        spec.insert("ssh_user".into(), json!(n.ssh_user));
        let key = (Kind::Node, String::new(), n.name.clone());
        out.push(with_membership(Kind::Node, &n.id, key, spec));
    }
    for s in &sites {
        let mut spec = BTreeMap::new();
        spec.insert("display_name".into(), json!(s.name));
        let production = s
            .primary_environment_id
            .as_deref()
            .and_then(|id| env_by_id.get(id));
        if let Some(node) = production.and_then(|e| node_name.get(e.node_id.as_str())) {
            spec.insert("node".into(), json!(node));
        }
        let key = (Kind::Site, String::new(), s.slug.clone());
        out.push(with_membership(Kind::Site, &s.id, key, spec));
    }
    for e in &envs {
        let Some(site) = site_slug.get(e.site_id.as_str()) else {
            continue; // its site is being deleted
        };
        let mut spec = BTreeMap::new();
        spec.insert("site".into(), json!(site));
        spec.insert("type".into(), json!(e.environment_type));
        spec.insert("display_name".into(), json!(e.name));
        if let Some(src) = e
            .source_environment_id
            .as_deref()
            .and_then(|id| env_by_id.get(id))
        {
            spec.insert("source_environment".into(), json!(src.slug));
        }
        spec.insert("promotion_preset".into(), json!(e.promotion_preset));
        spec.insert(
            "fastcgi_cache_enabled".into(),
            json!(e.fastcgi_cache_enabled),
        );
        spec.insert("redis_cache_enabled".into(), json!(e.redis_cache_enabled));
        spec.insert(
            "fastcgi_cache_ttl_seconds".into(),
            json!(e.fastcgi_cache_ttl_seconds),
        );
        if let Some(x) = &e.expires_at {
            spec.insert("expires_at".into(), json!(x));
        }
        let key = (Kind::Environment, site.to_string(), e.slug.clone());
        out.push(with_membership(Kind::Environment, &e.id, key, spec));
    }
    let live_domains = domains::Entity::find()
        .filter(domains::Column::DeletionRequestedAt.is_null())
        .all(db)
        .await?;
    for d in &live_domains {
        let Some(env) = env_by_id.get(d.environment_id.as_str()) else {
            continue;
        };
        let Some(site) = site_slug.get(env.site_id.as_str()) else {
            continue;
        };
        let mut spec = BTreeMap::new();
        spec.insert("site".into(), json!(site));
        spec.insert("environment".into(), json!(env.slug));
        // Only a primary says so: `primary: false` is not declarable (see manifest::check).
        if env.primary_domain_id.as_deref() == Some(d.id.as_str()) {
            spec.insert("primary".into(), json!(true));
        }
        spec.insert("www_redirect".into(), json!(d.www_redirect));
        spec.insert("tls_mode".into(), json!(d.tls_mode));
        let key = (Kind::Domain, String::new(), d.hostname.clone());
        out.push(with_membership(Kind::Domain, &d.id, key, spec));
    }
    for s in backup_schedules::Entity::find().all(db).await? {
        let Some(env) = env_by_id.get(s.environment_id.as_str()) else {
            continue;
        };
        let Some(site) = site_slug.get(env.site_id.as_str()) else {
            continue;
        };
        let mut spec = BTreeMap::new();
        spec.insert("site".into(), json!(site));
        spec.insert("environment".into(), json!(env.slug));
        if let Some(m) = s.interval_minutes {
            spec.insert("interval_minutes".into(), json!(m));
        }
        if let Some(c) = &s.cron {
            spec.insert("cron".into(), json!(c));
        }
        spec.insert("backup_scope".into(), json!(s.backup_scope));
        if let Some(k) = s.keep_last {
            spec.insert("keep_last".into(), json!(k));
        }
        if let Some(k) = s.keep_days {
            spec.insert("keep_days".into(), json!(k));
        }
        spec.insert("drill".into(), json!(s.drill));
        spec.insert("enabled".into(), json!(s.enabled));
        // A schedule made through the API has no name yet: it is known by its id's tail.
        let key = (
            Kind::BackupSchedule,
            site.to_string(),
            schedule_default_name(&s.id),
        );
        out.push(with_membership(Kind::BackupSchedule, &s.id, key, spec));
    }
    // Backups and promotions are records of what happened: known by name only when a manifest
    // declared them (so that re-applying it does not declare them again).
    for m in members
        .iter()
        .filter(|m| m.kind == Kind::Backup.as_str() || m.kind == Kind::Promotion.as_str())
    {
        let (kind, env_id, mut spec) = if m.kind == Kind::Backup.as_str() {
            let Some(b) = backups::Entity::find_by_id(m.resource_id.clone())
                .one(db)
                .await?
            else {
                continue;
            };
            let mut spec = BTreeMap::new();
            spec.insert("scope".into(), json!(b.backup_scope));
            (Kind::Backup, b.environment_id, spec)
        } else {
            let Some(p) = promotions::Entity::find_by_id(m.resource_id.clone())
                .one(db)
                .await?
            else {
                continue;
            };
            let mut spec = BTreeMap::new();
            spec.insert("preset".into(), json!(p.promotion_preset));
            (Kind::Promotion, p.source_environment_id, spec)
        };
        let Some(env) = env_by_id.get(env_id.as_str()) else {
            continue;
        };
        let Some(site) = site_slug.get(env.site_id.as_str()) else {
            continue;
        };
        spec.insert("site".into(), json!(site));
        let field = if kind == Kind::Backup {
            "environment"
        } else {
            "source_environment"
        };
        spec.insert(field.into(), json!(env.slug));
        let key = (kind, m.scope.clone(), m.name.clone());
        out.push(with_membership(kind, &m.resource_id, key, spec));
    }
    // Imports likewise (their archive URL as declared: manifests never carry credentials).
    for m in members.iter().filter(|m| m.kind == Kind::Import.as_str()) {
        let Some(i) = imports::Entity::find_by_id(m.resource_id.clone())
            .one(db)
            .await?
        else {
            continue;
        };
        let Some(env) = env_by_id.get(i.environment_id.as_str()) else {
            continue;
        };
        let Some(site) = site_slug.get(env.site_id.as_str()) else {
            continue;
        };
        let mut spec = BTreeMap::new();
        spec.insert("site".into(), json!(site));
        spec.insert("environment".into(), json!(env.slug));
        if !i.archive_url.is_empty() {
            spec.insert("archive_url".into(), json!(i.archive_url));
        }
        for (k, v) in [
            ("sha256", &i.sha256),
            ("database_url", &i.database_url),
            ("database_sha256", &i.database_sha256),
            ("content_url", &i.content_url),
            ("content_sha256", &i.content_sha256),
            ("source_url", &i.source_url),
            ("table_prefix", &i.table_prefix),
        ] {
            if let Some(v) = v {
                spec.insert(k.into(), json!(v));
            }
        }
        let key = (Kind::Import, m.scope.clone(), m.name.clone());
        out.push(with_membership(Kind::Import, &m.resource_id, key, spec));
    }
    Ok(out)
}

/// The name an unnamed schedule has in manifests: `schedule-` and the last 12 hex digits of its
/// id (the random part of a UUIDv7).
pub fn schedule_default_name(id: &str) -> String {
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    format!("schedule-{}", &hex[hex.len().saturating_sub(12)..])
}

/// The names references may point at.
pub fn known(named: &[Named]) -> Known {
    let mut k = Known::default();
    for n in named {
        match n.key.0 {
            Kind::Node => {
                k.nodes.insert(n.key.2.clone());
            }
            Kind::Site => {
                k.sites.insert(n.key.2.clone());
            }
            Kind::Environment => {
                let t = n
                    .current
                    .spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                k.environments
                    .insert((n.key.1.clone(), n.key.2.clone()), t.to_string());
            }
            _ => {}
        }
    }
    k
}

pub async fn receipt(db: &impl ConnectionTrait, id: &str) -> Result<Option<apply_receipts::Model>> {
    Ok(apply_receipts::Entity::find_by_id(id.to_string())
        .one(db)
        .await?)
}

/// The apply sets that hold resources, by name.
pub async fn apply_sets(db: &impl ConnectionTrait) -> Result<Vec<String>> {
    let mut sets: Vec<String> = manifest_objects::Entity::find()
        .filter(manifest_objects::Column::ApplySet.is_not_null())
        .all(db)
        .await?
        .into_iter()
        .filter_map(|m| m.apply_set)
        .collect();
    sets.sort();
    sets.dedup();
    Ok(sets)
}

/// The resources an apply set holds.
pub async fn members(db: &impl ConnectionTrait, set: &str) -> Result<Vec<manifest_objects::Model>> {
    let mut m = manifest_objects::Entity::find()
        .filter(manifest_objects::Column::ApplySet.eq(set))
        .all(db)
        .await?;
    m.sort_by(|a, b| (&a.kind, &a.scope, &a.name).cmp(&(&b.kind, &b.scope, &b.name)));
    Ok(m)
}

/// The last receipt of an apply set.
pub async fn last_receipt(
    db: &impl ConnectionTrait,
    set: &str,
) -> Result<Option<apply_receipts::Model>> {
    use sea_orm::QueryOrder;
    Ok(apply_receipts::Entity::find()
        .filter(apply_receipts::Column::ApplySet.eq(set))
        .filter(apply_receipts::Column::DryRun.eq(false))
        .order_by_desc(apply_receipts::Column::CreatedAt)
        .order_by_desc(apply_receipts::Column::Id)
        .one(db)
        .await?)
}

/// What a resource's health is read from: phase, conditions (JSON), generation and observed
/// generation. None for kinds without a phase (schedules, settings) or a vanished row.
pub struct Health {
    pub status: String,
    pub conditions: String,
    pub generation: i64,
    pub observed_generation: i64,
}

pub async fn health(db: &impl ConnectionTrait, kind: Kind, id: &str) -> Result<Option<Health>> {
    macro_rules! row {
        ($entity:ident) => {
            $entity::Entity::find_by_id(id.to_string())
                .one(db)
                .await?
                .map(|r| Health {
                    status: r.status,
                    conditions: r.conditions,
                    generation: r.generation,
                    observed_generation: r.observed_generation,
                })
        };
    }
    Ok(match kind {
        Kind::Node => row!(nodes),
        Kind::Site => row!(sites),
        Kind::Environment => row!(environments),
        Kind::Domain => row!(domains),
        Kind::Backup => row!(backups),
        Kind::Promotion => row!(promotions),
        Kind::Import => row!(imports),
        Kind::BackupSchedule | Kind::Settings => None,
    })
}
