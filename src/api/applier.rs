//! Runs an apply's plan in one transaction: every step through the same write functions as the
//! API (its rules, events, audit entries and wake-ups), then the names and labels of what the
//! set declared (`manifest_objects`) and the receipt. A step that fails fails the whole apply
//! and nothing is written. `unchanged` steps write nothing, so re-applying a set bumps no
//! generation and appends no event.
use std::collections::BTreeMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use super::error::ApiError;
use super::model::EnvironmentType;
use super::write::Write;
use super::{
    backups, domains, environments, imports, nodes, promotions, schedules, settings, sites,
};
use crate::manifest::plan::{Action, Key, Step};
use crate::manifest::{Kind, Manifest};
use crate::store::entity::{self, manifest_objects};
use crate::store::{self, resources};

/// The resources an apply knows by manifest key: what existed, and what it created.
pub struct Ids(pub BTreeMap<Key, String>);

impl Ids {
    fn get(&self, key: &Key) -> Result<&str, ApiError> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| ApiError::Internal(format!("{key:?} has no resource").into()))
    }

    fn site(&self, slug: &str) -> Result<&str, ApiError> {
        self.get(&(Kind::Site, String::new(), slug.to_string()))
    }

    fn environment(&self, site: &str, slug: &str) -> Result<&str, ApiError> {
        self.get(&(Kind::Environment, site.to_string(), slug.to_string()))
    }
}

fn int(m: &Manifest, f: &str) -> Option<i64> {
    m.spec.get(f).and_then(Value::as_i64)
}

fn bool_(m: &Manifest, f: &str) -> Option<bool> {
    m.spec.get(f).and_then(Value::as_bool)
}

/// The error of one step, naming the manifest it comes from.
fn at(step: &Step, e: ApiError) -> ApiError {
    match e {
        ApiError::Internal(_) => e,
        ApiError::Invalid { field, message } => ApiError::Invalid {
            field: format!("{}.spec.{field}", step.resource),
            message: format!("{}: {message}", step.resource),
        },
        ApiError::Conflict(m) => ApiError::Conflict(format!("{}: {m}", step.resource)),
        ApiError::ResourceInUse(m) => ApiError::ResourceInUse(format!("{}: {m}", step.resource)),
        ApiError::NotFound(m) => ApiError::Conflict(format!("{}: {m}", step.resource)),
        other => other,
    }
}

/// Runs `steps` (plan order). `secrets`: the values of `{env: VAR}` references.
pub async fn run(
    w: &mut Write<'_>,
    set: &[Manifest],
    steps: &[Step],
    ids: &mut Ids,
    secrets: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let by_doc: BTreeMap<usize, &Manifest> = set.iter().map(|m| (m.index, m)).collect();
    for step in steps {
        // Secret references are compared here, not in the plan (it never holds their values).
        let has_secret = |m: &&&Manifest| m.spec.values().any(|v| v.get("env").is_some());
        let r = match step.action {
            Action::Unchanged => match step
                .document
                .and_then(|d| by_doc.get(&d))
                .filter(has_secret)
            {
                Some(m) => write(w, step, m, ids, secrets).await,
                None => Ok(()),
            },
            Action::Prune => prune(w, step, ids).await,
            Action::Create | Action::Change => {
                let m = step
                    .document
                    .and_then(|d| by_doc.get(&d))
                    .ok_or_else(|| ApiError::Internal("plan step without manifest".into()))?;
                write(w, step, m, ids, secrets).await
            }
        };
        r.map_err(|e| at(step, e))?;
    }
    Ok(())
}

async fn write(
    w: &mut Write<'_>,
    step: &Step,
    m: &Manifest,
    ids: &mut Ids,
    secrets: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let key = m.key();
    // A production environment is created with its site: a manifest only changes it.
    let exists = ids.0.contains_key(&key);
    let tx = w.tx;
    match m.kind {
        Kind::Node => {
            if exists {
                let node = store::nodes::by_id(tx, ids.get(&key)?)
                    .await?
                    .ok_or_else(|| ApiError::Internal("node vanished".into()))?;
                let c = nodes::NodeChange {
                    name: None,
                    hostname: m.str("hostname"),
                    public_ip: m.str("public_ip"),
                    ssh_port: int(m, "ssh_port"),
                    ssh_user: m.str("ssh_user"),
                };
                nodes::update_node_in(w, &node, &c).await?;
            } else {
                let node = nodes::create_node_in(
                    w,
                    store::nodes::NewNode {
                        name: &m.name,
                        hostname: m.str("hostname").unwrap_or_default(),
                        public_ip: m.str("public_ip"),
                        ssh_port: int(m, "ssh_port").unwrap_or(22),
                        ssh_user: m.str("ssh_user").unwrap_or("root"),
                        is_local: false,
                    },
                )
                .await?;
                ids.0.insert(key, node.id);
            }
        }
        Kind::Site => {
            let name = m.str("display_name").unwrap_or(&m.name);
            if exists {
                let site = resources::site_by_id(tx, ids.get(&key)?)
                    .await?
                    .ok_or_else(|| ApiError::Internal("site vanished".into()))?;
                sites::update_site_in(w, &site, Some(name)).await?;
            } else {
                let node_id = match m.str("node") {
                    Some(n) => Some(
                        ids.get(&(Kind::Node, String::new(), n.to_string()))?
                            .to_string(),
                    ),
                    None => None,
                };
                let (site, env) =
                    sites::create_site_in(w, name, &m.name, node_id.as_deref()).await?;
                ids.0.insert(
                    (
                        Kind::Environment,
                        m.name.clone(),
                        crate::manifest::check::PRODUCTION.to_string(),
                    ),
                    env.id,
                );
                ids.0.insert(key, site.id);
            }
        }
        Kind::Environment => {
            let site = m.str("site").unwrap_or_default();
            let expires_at = match m.str("expires_at") {
                Some(x) => Some(super::validate::timestamp("expires_at", x)?),
                None => None,
            };
            let env_id = if exists {
                ids.get(&key)?.to_string()
            } else {
                let site_id = ids.site(site)?.to_string();
                let source_id = match m.str("source_environment") {
                    Some(s) => Some(ids.environment(site, s)?.to_string()),
                    None => None,
                };
                if expires_at
                    .as_deref()
                    .is_some_and(|e| e <= crate::clock::now().as_str())
                {
                    return Err(ApiError::invalid(
                        "expires_at",
                        "expires_at must be in the future",
                    ));
                }
                let env = sites::create_environment_in(
                    w,
                    &site_id,
                    sites::NewEnvironmentSpec {
                        name: m.str("display_name").unwrap_or(&m.name),
                        slug: &m.name,
                        environment_type: match m.str("type") {
                            Some("clone") => EnvironmentType::Clone,
                            Some("production") => EnvironmentType::Production,
                            _ => EnvironmentType::Staging,
                        },
                        source_id: source_id.as_deref(),
                        promotion_preset: m.str("promotion_preset").unwrap_or("content-protect"),
                        expires_at: expires_at.as_deref(),
                    },
                )
                .await?;
                ids.0.insert(key, env.id.clone());
                env.id
            };
            // What creation does not take (cache settings), and every change.
            let env = resources::environment_by_id(tx, &env_id)
                .await?
                .ok_or_else(|| ApiError::Internal("environment vanished".into()))?;
            let c = environments::EnvironmentChange {
                name: m.str("display_name"),
                promotion_preset: m.str("promotion_preset"),
                fastcgi_cache_enabled: bool_(m, "fastcgi_cache_enabled"),
                redis_cache_enabled: bool_(m, "redis_cache_enabled"),
                fastcgi_cache_ttl_seconds: int(m, "fastcgi_cache_ttl_seconds"),
                expires_at: expires_at.as_deref().map(Some),
            };
            environments::update_environment_in(w, &env, &c).await?;
        }
        Kind::Domain => {
            if exists {
                let d = resources::domain_by_id(tx, ids.get(&key)?)
                    .await?
                    .ok_or_else(|| ApiError::Internal("domain vanished".into()))?;
                let c = domains::DomainChange {
                    primary: bool_(m, "primary"),
                    www_redirect: bool_(m, "www_redirect"),
                    tls_mode: m.str("tls_mode"),
                    ..Default::default()
                };
                domains::update_domain_in(w, &d, &c).await?;
            } else {
                let (hostname, www_redirect, tls_mode, custom) = domains::checked_new_domain(
                    &m.name,
                    bool_(m, "primary"),
                    bool_(m, "www_redirect"),
                    m.str("tls_mode"),
                    None,
                    None,
                )?;
                let env_id = ids.environment(
                    m.str("site").unwrap_or_default(),
                    m.str("environment").unwrap_or_default(),
                )?;
                let env = resources::environment_by_id(tx, env_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("environment vanished".into()))?;
                let d = domains::create_domain_in(
                    w,
                    &env,
                    domains::NewDomain {
                        hostname: &hostname,
                        primary: bool_(m, "primary"),
                        www_redirect,
                        tls_mode,
                        custom,
                    },
                )
                .await?;
                ids.0.insert(key, d.id);
            }
        }
        Kind::BackupSchedule => {
            let c = schedules::ScheduleChange {
                interval_minutes: int(m, "interval_minutes"),
                cron: m.str("cron"),
                backup_scope: m.str("backup_scope"),
                keep_last: int(m, "keep_last"),
                keep_days: int(m, "keep_days"),
                drill: bool_(m, "drill"),
                enabled: bool_(m, "enabled"),
            };
            if exists {
                let s = store::backups::schedule_by_id(tx, ids.get(&key)?)
                    .await?
                    .ok_or_else(|| ApiError::Internal("schedule vanished".into()))?;
                schedules::update_schedule_in(w, s, &c).await?;
            } else {
                let env_id = ids.environment(
                    m.str("site").unwrap_or_default(),
                    m.str("environment").unwrap_or_default(),
                )?;
                let env = resources::environment_by_id(tx, env_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("environment vanished".into()))?;
                let s = schedules::create_schedule_in(w, &env, &c).await?;
                ids.0.insert(key, s.id);
            }
        }
        Kind::Backup => {
            if !exists {
                let env_id = ids.environment(
                    m.str("site").unwrap_or_default(),
                    m.str("environment").unwrap_or_default(),
                )?;
                let env = resources::environment_by_id(tx, env_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("environment vanished".into()))?;
                let b =
                    backups::create_backup_in(w, &env, m.str("scope").unwrap_or("full")).await?;
                ids.0.insert(key, b.id);
            }
        }
        Kind::Promotion => {
            if !exists {
                let site = m.str("site").unwrap_or_default();
                let src_id =
                    ids.environment(site, m.str("source_environment").unwrap_or_default())?;
                let prod_id = ids.environment(site, crate::manifest::check::PRODUCTION)?;
                let src = resources::environment_by_id(tx, src_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("environment vanished".into()))?;
                let target = resources::environment_by_id(tx, prod_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("environment vanished".into()))?;
                if src.environment_type == "production" {
                    return Err(ApiError::Conflict(
                        "production cannot be promoted: promote a staging or clone environment"
                            .into(),
                    ));
                }
                let preset = m.str("preset").unwrap_or(&src.promotion_preset).to_string();
                let p = promotions::create_promotion_in(w, &src, &target, &preset).await?;
                ids.0.insert(key, p.id);
            }
        }
        Kind::Import => {
            if !exists {
                let site = m.str("site").unwrap_or_default();
                let env_id = ids.environment(
                    site,
                    m.str("environment")
                        .unwrap_or(crate::manifest::check::PRODUCTION),
                )?;
                let env = resources::environment_by_id(tx, env_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("environment vanished".into()))?;
                let text = |f: &str| m.str(f).map(|v| super::text::Text(v.to_string()));
                let req = imports::validate_request(&imports::CreateImport {
                    archive_url: text("archive_url"),
                    sha256: text("sha256"),
                    database_url: text("database_url"),
                    database_sha256: text("database_sha256"),
                    content_url: text("content_url"),
                    content_sha256: text("content_sha256"),
                    source_url: text("source_url"),
                    table_prefix: text("table_prefix"),
                })?;
                if req
                    .urls()
                    .iter()
                    .any(|u| u.contains('@') || u.contains('?'))
                {
                    return Err(ApiError::invalid(
                        "archive_url",
                        "manifests never carry credentials: an archive URL with user information \
                         or a query string is declared through the API",
                    ));
                }
                let i = imports::create_import_in(w, tx, &env, &req).await?;
                ids.0.insert(key, i.id);
            }
        }
        Kind::Settings => {
            let mut change = serde_json::Map::new();
            for (f, v) in &m.spec {
                let value = match v.get("env").and_then(Value::as_str) {
                    Some(var) => {
                        let Some(secret) = secrets.get(var) else {
                            return Err(ApiError::invalid(
                                f.as_str(),
                                format!(
                                    "{f} refers to the environment variable {var}, which the \
                                     apply did not carry (the CLI sends the variables the \
                                     manifests name)"
                                ),
                            ));
                        };
                        // Unchanged secrets are not written again (no event on a re-apply).
                        let stored =
                            store::secrets::get(tx, &w.st.secrets, &crate::settings::secret_id(f))
                                .await?;
                        if stored.as_deref() == Some(secret.as_str()) {
                            continue;
                        }
                        json!(secret)
                    }
                    None => {
                        if step.changes.iter().all(|c| c.field != *f) {
                            continue;
                        }
                        v.clone()
                    }
                };
                change.insert(f.clone(), value);
            }
            if !change.is_empty() {
                let c = <settings::SettingsChange as poem_openapi::types::ParseFromJSON>::parse_from_json(
                    Some(Value::Object(change)),
                )
                .map_err(|e| ApiError::invalid("spec", e.into_message()))?;
                settings::update_settings_in(w, c).await?;
            }
        }
    }
    Ok(())
}

async fn prune(w: &mut Write<'_>, step: &Step, ids: &Ids) -> Result<(), ApiError> {
    let key: Key = (
        step.kind,
        step.site
            .clone()
            .filter(|_| step.kind.site_scoped())
            .unwrap_or_default(),
        step.name.clone(),
    );
    let id = ids.get(&key)?;
    let tx = w.tx;
    match step.kind {
        Kind::Node => {
            if let Some(n) = store::nodes::by_id(tx, id).await? {
                nodes::delete_node_in(w, &n).await?;
            }
        }
        Kind::Site => {
            if let Some(s) = resources::site_by_id(tx, id).await? {
                sites::delete_site_in(w, &s).await?;
            }
        }
        Kind::Environment => {
            if let Some(e) = resources::environment_by_id(tx, id).await? {
                environments::delete_environment_in(w, &e).await?;
            }
        }
        Kind::Domain => {
            if let Some(d) = resources::domain_by_id(tx, id).await? {
                domains::delete_domain_in(w, &d).await?;
            }
        }
        Kind::BackupSchedule => {
            if let Some(s) = store::backups::schedule_by_id(tx, id).await? {
                schedules::delete_schedule_in(w, &s).await?;
            }
        }
        Kind::Backup | Kind::Promotion | Kind::Import | Kind::Settings => {}
    }
    manifest_objects::Entity::delete_many()
        .filter(manifest_objects::Column::Kind.eq(step.kind.as_str()))
        .filter(manifest_objects::Column::ResourceId.eq(id))
        .exec(tx)
        .await
        .map_err(store::StoreError::from)?;
    Ok(())
}

/// Records the names, labels and apply set of what `set` declared (only where they differ).
pub async fn record_objects(
    tx: &store::WriteTx,
    set: &[Manifest],
    ids: &Ids,
    apply_set: Option<&str>,
) -> Result<(), ApiError> {
    let now = crate::clock::now();
    for m in set.iter().filter(|m| m.kind != Kind::Settings) {
        let (kind, scope, name) = m.key();
        let id = ids.get(&(kind, scope.clone(), name.clone()))?;
        let existing = manifest_objects::Entity::find()
            .filter(manifest_objects::Column::Kind.eq(kind.as_str()))
            .filter(manifest_objects::Column::ResourceId.eq(id))
            .one(tx)
            .await
            .map_err(store::StoreError::from)?;
        let mut labels: BTreeMap<String, String> = existing
            .as_ref()
            .and_then(|e| serde_json::from_str(&e.labels).ok())
            .unwrap_or_default();
        labels.extend(m.labels.clone());
        let labels = serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into());
        let set_name = apply_set
            .map(str::to_string)
            .or_else(|| existing.as_ref().and_then(|e| e.apply_set.clone()));
        if let Some(e) = &existing {
            if e.scope == scope && e.name == name && e.labels == labels && e.apply_set == set_name {
                continue;
            }
            manifest_objects::Entity::delete_many()
                .filter(manifest_objects::Column::Kind.eq(kind.as_str()))
                .filter(manifest_objects::Column::ResourceId.eq(id))
                .exec(tx)
                .await
                .map_err(store::StoreError::from)?;
        }
        manifest_objects::Entity::insert(manifest_objects::ActiveModel {
            kind: Set(kind.as_str().to_string()),
            scope: Set(scope),
            name: Set(name),
            resource_id: Set(id.to_string()),
            apply_set: Set(set_name),
            labels: Set(labels),
            created_at: Set(existing.map_or_else(|| now.clone(), |e| e.created_at)),
            updated_at: Set(now.clone()),
        })
        .on_conflict(
            OnConflict::columns([
                manifest_objects::Column::Kind,
                manifest_objects::Column::Scope,
                manifest_objects::Column::Name,
            ])
            .update_columns([
                manifest_objects::Column::ResourceId,
                manifest_objects::Column::ApplySet,
                manifest_objects::Column::Labels,
                manifest_objects::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec(tx)
        .await
        .map_err(store::StoreError::from)?;
    }
    Ok(())
}

/// The generation of every resource `set` declared, after the apply (`Kind/…/name` → n).
pub async fn generations(
    tx: &store::WriteTx,
    set: &[Manifest],
    ids: &Ids,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut out = BTreeMap::new();
    for m in set {
        let Ok(id) = ids.get(&m.key()) else {
            continue;
        };
        let g = match m.kind {
            Kind::Node => store::nodes::by_id(tx, id).await?.map(|r| r.generation),
            Kind::Site => resources::site_by_id(tx, id).await?.map(|r| r.generation),
            Kind::Environment => resources::environment_by_id(tx, id)
                .await?
                .map(|r| r.generation),
            Kind::Domain => resources::domain_by_id(tx, id).await?.map(|r| r.generation),
            Kind::Backup => resources::backup_by_id(tx, id).await?.map(|r| r.generation),
            Kind::Promotion => store::promotions::by_id(tx, id)
                .await?
                .map(|r| r.generation),
            Kind::Import => store::imports::by_id(tx, id).await?.map(|r| r.generation),
            Kind::BackupSchedule => store::backups::schedule_by_id(tx, id)
                .await?
                .map(|r| r.state_version),
            Kind::Settings => None,
        };
        if let Some(g) = g {
            out.insert(m.display(), g);
        }
    }
    Ok(out)
}

/// Stores the receipt of an apply.
pub async fn store_receipt(
    tx: &store::WriteTx,
    id: &str,
    actor: &str,
    apply_set: Option<&str>,
    prune: bool,
    steps: &Value,
    generations: &BTreeMap<String, i64>,
    manifests: &str,
) -> Result<entity::apply_receipts::Model, ApiError> {
    use sea_orm::ActiveModelTrait;
    let m = entity::apply_receipts::ActiveModel {
        id: Set(id.to_string()),
        apply_set: Set(apply_set.map(str::to_string)),
        dry_run: Set(false),
        prune: Set(prune),
        actor: Set(actor.to_string()),
        steps: Set(steps.to_string()),
        generations: Set(serde_json::to_string(generations).unwrap_or_else(|_| "{}".into())),
        created_at: Set(crate::clock::now()),
        manifests: Set(Some(manifests.to_string())),
    };
    Ok(m.insert(tx).await.map_err(store::StoreError::from)?)
}
