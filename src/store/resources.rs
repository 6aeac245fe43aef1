//! Desired-state resources (sites, environments, domains, backups): creation, spec updates under
//! optimistic concurrency, deletion marks, and the reads the API answers.
//!
//! Only spec-side columns are written here; `status`, `conditions`, `observed_*` belong to the
//! runtime. `state_version` moves with every spec write and never with a status write, so a client
//! holding a version is only ever refused because somebody changed the *spec*.
use sea_orm::prelude::*;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, SimpleExpr};
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect};

use super::entity::{backups, domains, environments, nodes, sites};
use super::{is_unique_violation, Result, StoreError};
use crate::{clock, ids};

/// Compare-and-increment: applies `changes` to the row `id` only while its `state_version` is still
/// `expected`, bumping `generation` and `state_version`. Missing row → NotFound; moved on → Stale.
pub async fn cas_update<E>(
    db: &impl ConnectionTrait,
    what: &'static str,
    id: &str,
    expected: i64,
    changes: Vec<(&'static str, SimpleExpr)>,
) -> Result<()>
where
    E: EntityTrait,
{
    let mut q = E::update_many()
        .col_expr(
            Alias::new("generation"),
            Expr::col(Alias::new("generation")).add(1),
        )
        .col_expr(
            Alias::new("state_version"),
            Expr::col(Alias::new("state_version")).add(1),
        )
        .col_expr(Alias::new("updated_at"), Expr::value(clock::now()));
    for (col, v) in changes {
        q = q.col_expr(Alias::new(col), v);
    }
    let res = q
        .filter(Expr::col(Alias::new("id")).eq(id))
        .filter(Expr::col(Alias::new("state_version")).eq(expected))
        .exec(db)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Duplicate(format!("{what} conflicts with an existing one"))
            } else {
                StoreError::Db(e)
            }
        })?;
    if res.rows_affected == 1 {
        return Ok(());
    }
    let exists = E::find()
        .filter(Expr::col(Alias::new("id")).eq(id))
        .one(db)
        .await?
        .is_some();
    if exists {
        Err(StoreError::Stale)
    } else {
        Err(StoreError::NotFound(what))
    }
}

/// Keyset paging over time-ordered ids.
#[derive(Debug, Clone)]
pub struct Page {
    pub after: Option<String>,
    pub limit: u64,
}

impl Page {
    /// This page of `q`'s rows in id order.
    pub async fn of<E: EntityTrait>(
        &self,
        db: &impl ConnectionTrait,
        q: sea_orm::Select<E>,
        id: E::Column,
    ) -> Result<Vec<E::Model>> {
        let q = match &self.after {
            Some(a) => q.filter(id.gt(a.as_str())),
            None => q,
        };
        Ok(q.order_by_asc(id).limit(self.limit).all(db).await?)
    }
}

// ---------------------------------------------------------------- sites

pub struct NewSite<'a> {
    pub name: &'a str,
    pub slug: &'a str,
    pub node: &'a nodes::Model,
    pub preview_base: PreviewBase,
    pub wp_admin_login: String,
}

/// How preview URLs are formed (R6): under the configured preview domain over HTTPS, else
/// `sslip.io` with the node's address.
#[derive(Debug, Clone)]
pub enum PreviewBase {
    Domain(String),
    Sslip(String),
}

impl PreviewBase {
    pub fn url(&self, label: &str) -> String {
        match self {
            PreviewBase::Domain(d) => format!("https://{label}.{d}"),
            PreviewBase::Sslip(ip) => {
                format!("http://{label}.{}.sslip.io", ip.replace(['.', ':'], "-"))
            }
        }
    }
}

/// Creates a site and its production environment in one transaction.
pub async fn create_site(
    db: &impl ConnectionTrait,
    s: NewSite<'_>,
) -> Result<(sites::Model, environments::Model)> {
    let now = clock::now();
    let site_id = ids::new_id();
    let site = sites::ActiveModel {
        id: Set(site_id.clone()),
        name: Set(s.name.to_string()),
        slug: Set(s.slug.to_string()),
        primary_environment_id: Set(None),
        reset_requested_at: Set(None),
        generation: Set(1),
        observed_generation: Set(0),
        status: Set("provisioning".into()),
        conditions: Set("[]".into()),
        state_version: Set(1),
        deletion_requested_at: Set(None),
        reconcile_attempts: Set(0),
        last_error_code: Set(None),
        observed: Set(None),
        observed_at: Set(None),
        created_at: Set(now.clone()),
        updated_at: Set(now.clone()),
    };
    site.insert(db).await.map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Duplicate(format!("a site with slug '{}' already exists", s.slug))
        } else {
            StoreError::Db(e)
        }
    })?;
    let env = insert_environment(
        db,
        NewEnvironment {
            site_id: &site_id,
            name: "Production",
            slug: "production",
            environment_type: "production",
            node_id: &s.node.id,
            source_environment_id: None,
            promotion_preset: "content-protect",
            preview_base: &s.preview_base,
            wp_admin_login: s.wp_admin_login,
        },
    )
    .await?;
    sites::Entity::update_many()
        .col_expr(
            sites::Column::PrimaryEnvironmentId,
            Expr::value(env.id.clone()),
        )
        .filter(sites::Column::Id.eq(site_id.as_str()))
        .exec(db)
        .await?;
    let site = site_by_id(db, &site_id)
        .await?
        .ok_or(StoreError::NotFound("site"))?;
    Ok((site, env))
}

pub async fn site_by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<sites::Model>> {
    Ok(sites::Entity::find_by_id(id.to_string()).one(db).await?)
}

pub async fn site_by_slug(db: &impl ConnectionTrait, slug: &str) -> Result<Option<sites::Model>> {
    Ok(sites::Entity::find()
        .filter(sites::Column::Slug.eq(slug))
        .one(db)
        .await?)
}

pub async fn list_sites(db: &impl ConnectionTrait, page: &Page) -> Result<Vec<sites::Model>> {
    let q = sites::Entity::find();
    page.of(db, q, sites::Column::Id).await
}

pub async fn count_sites(db: &impl ConnectionTrait) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(sites::Entity::find().count(db).await?)
}

/// Marks a site and all its environments (and their domains) for deletion.
pub async fn mark_site_deleted(db: &impl ConnectionTrait, id: &str, expected: i64) -> Result<()> {
    let now = clock::now();
    cas_update::<sites::Entity>(
        db,
        "site",
        id,
        expected,
        vec![("deletion_requested_at", Expr::value(now.clone()))],
    )
    .await?;
    let envs = environments::Entity::find()
        .filter(environments::Column::SiteId.eq(id))
        .filter(environments::Column::DeletionRequestedAt.is_null())
        .all(db)
        .await?;
    for env in envs {
        mark_environment_deleted_unchecked(db, &env.id, &now).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- environments

pub struct NewEnvironment<'a> {
    pub site_id: &'a str,
    pub name: &'a str,
    pub slug: &'a str,
    pub environment_type: &'a str,
    pub node_id: &'a str,
    pub source_environment_id: Option<&'a str>,
    pub promotion_preset: &'a str,
    pub preview_base: &'a PreviewBase,
    pub wp_admin_login: String,
}

/// Inserts an environment. Its preview label comes from its id; on the (rare) clash with another
/// environment's label a new id is drawn.
pub async fn insert_environment(
    db: &impl ConnectionTrait,
    e: NewEnvironment<'_>,
) -> Result<environments::Model> {
    for _ in 0..5 {
        let id = ids::new_id();
        let preview_url = e.preview_base.url(&ids::preview_label(&id));
        let taken = environments::Entity::find()
            .filter(environments::Column::PreviewUrl.eq(preview_url.as_str()))
            .one(db)
            .await?
            .is_some();
        if taken {
            continue;
        }
        let now = clock::now();
        let status = if e.source_environment_id.is_some() {
            "cloning"
        } else {
            "provisioning"
        };
        let m = environments::ActiveModel {
            id: Set(id.clone()),
            site_id: Set(e.site_id.to_string()),
            name: Set(e.name.to_string()),
            slug: Set(e.slug.to_string()),
            environment_type: Set(e.environment_type.to_string()),
            node_id: Set(e.node_id.to_string()),
            source_environment_id: Set(e.source_environment_id.map(str::to_string)),
            promotion_preset: Set(e.promotion_preset.to_string()),
            preview_url: Set(preview_url),
            primary_domain_id: Set(None),
            desired_release_id: Set(None),
            current_release_id: Set(None),
            wp_admin_login: Set(e.wp_admin_login.clone()),
            drift_baseline_id: Set(None),
            drift_status: Set("unknown".into()),
            drift_checked_at: Set(None),
            last_drift_check_id: Set(None),
            fastcgi_cache_enabled: Set(true),
            redis_cache_enabled: Set(true),
            fastcgi_cache_ttl_seconds: Set(3600),
            update_scope: Set(None),
            update_requested_at: Set(None),
            cache_purge_requested_at: Set(None),
            drift_check_requested_at: Set(None),
            reset_requested_at: Set(None),
            generation: Set(1),
            observed_generation: Set(0),
            status: Set(status.into()),
            conditions: Set("[]".into()),
            state_version: Set(1),
            deletion_requested_at: Set(None),
            reconcile_attempts: Set(0),
            last_error_code: Set(None),
            observed: Set(None),
            observed_at: Set(None),
            created_at: Set(now.clone()),
            updated_at: Set(now),
            expires_at: Set(None),
            release_generation: Set(None),
        };
        return m.insert(db).await.map_err(|err| {
            if is_unique_violation(&err) {
                StoreError::Duplicate(format!(
                    "an environment with slug '{}' already exists in this site",
                    e.slug
                ))
            } else {
                StoreError::Db(err)
            }
        });
    }
    Err(StoreError::Corrupt(
        "could not draw a free preview label".into(),
    ))
}

pub async fn environment_by_id(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<environments::Model>> {
    Ok(environments::Entity::find_by_id(id.to_string())
        .one(db)
        .await?)
}

#[derive(Debug, Clone, Default)]
pub struct EnvironmentFilter {
    pub site_id: Option<String>,
    pub node_id: Option<String>,
}

pub async fn list_environments(
    db: &impl ConnectionTrait,
    f: &EnvironmentFilter,
    page: &Page,
) -> Result<Vec<environments::Model>> {
    let mut q = environments::Entity::find();
    if let Some(s) = &f.site_id {
        q = q.filter(environments::Column::SiteId.eq(s.as_str()));
    }
    if let Some(n) = &f.node_id {
        q = q.filter(environments::Column::NodeId.eq(n.as_str()));
    }
    page.of(db, q, environments::Column::Id).await
}

pub async fn mark_environment_deleted(
    db: &impl ConnectionTrait,
    id: &str,
    expected: i64,
) -> Result<()> {
    let now = clock::now();
    cas_update::<environments::Entity>(
        db,
        "environment",
        id,
        expected,
        vec![("deletion_requested_at", Expr::value(now.clone()))],
    )
    .await?;
    mark_domains_deleted(db, id, &now).await
}

/// Sets (or clears) when a temporary environment expires (RFC 3339, store format).
pub async fn set_environment_expiry(
    db: &impl ConnectionTrait,
    id: &str,
    expires_at: Option<&str>,
) -> Result<()> {
    environments::Entity::update_many()
        .col_expr(environments::Column::ExpiresAt, Expr::value(expires_at))
        .filter(environments::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Requests the deletion of an environment whose `expires_at` has passed, like an operator's
/// delete (generation and state version bumped, its domains go too). False when it is no longer
/// due (deleted meanwhile, expiry moved, production).
pub async fn expire_environment(db: &impl ConnectionTrait, id: &str) -> Result<bool> {
    let now = clock::now();
    let Some(env) = environment_by_id(db, id).await? else {
        return Ok(false);
    };
    let due = env.deletion_requested_at.is_none()
        && env.environment_type != "production"
        && env.expires_at.as_deref().is_some_and(|e| e <= now.as_str());
    if !due {
        return Ok(false);
    }
    mark_environment_deleted_unchecked(db, id, &now).await?;
    Ok(true)
}

async fn mark_environment_deleted_unchecked(
    db: &impl ConnectionTrait,
    id: &str,
    now: &str,
) -> Result<()> {
    environments::Entity::update_many()
        .col_expr(environments::Column::DeletionRequestedAt, Expr::value(now))
        .col_expr(
            environments::Column::Generation,
            Expr::col(environments::Column::Generation).add(1),
        )
        .col_expr(
            environments::Column::StateVersion,
            Expr::col(environments::Column::StateVersion).add(1),
        )
        .col_expr(environments::Column::UpdatedAt, Expr::value(now))
        .filter(environments::Column::Id.eq(id))
        .exec(db)
        .await?;
    mark_domains_deleted(db, id, now).await
}

async fn mark_domains_deleted(db: &impl ConnectionTrait, env_id: &str, now: &str) -> Result<()> {
    domains::Entity::update_many()
        .col_expr(domains::Column::DeletionRequestedAt, Expr::value(now))
        .col_expr(
            domains::Column::Generation,
            Expr::col(domains::Column::Generation).add(1),
        )
        .col_expr(
            domains::Column::StateVersion,
            Expr::col(domains::Column::StateVersion).add(1),
        )
        .col_expr(domains::Column::UpdatedAt, Expr::value(now))
        .filter(domains::Column::EnvironmentId.eq(env_id))
        .filter(domains::Column::DeletionRequestedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- domains

pub async fn create_domain(
    db: &impl ConnectionTrait,
    environment_id: &str,
    hostname: &str,
    www_redirect: bool,
    tls_mode: &str,
) -> Result<domains::Model> {
    let now = clock::now();
    let m = domains::ActiveModel {
        id: Set(ids::new_id()),
        environment_id: Set(environment_id.to_string()),
        hostname: Set(hostname.to_string()),
        tls_issuer: Set("letsencrypt".into()),
        www_redirect: Set(www_redirect),
        tls_mode: Set(tls_mode.to_string()),
        generation: Set(1),
        observed_generation: Set(0),
        status: Set("pending".into()),
        conditions: Set("[]".into()),
        state_version: Set(1),
        deletion_requested_at: Set(None),
        reconcile_attempts: Set(0),
        last_error_code: Set(None),
        observed: Set(None),
        observed_at: Set(None),
        created_at: Set(now.clone()),
        updated_at: Set(now),
    };
    m.insert(db).await.map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Duplicate(format!("the hostname '{hostname}' is already attached"))
        } else {
            StoreError::Db(e)
        }
    })
}

pub async fn domain_by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<domains::Model>> {
    Ok(domains::Entity::find_by_id(id.to_string()).one(db).await?)
}

pub async fn domain_by_hostname(
    db: &impl ConnectionTrait,
    hostname: &str,
) -> Result<Option<domains::Model>> {
    Ok(domains::Entity::find()
        .filter(domains::Column::Hostname.eq(hostname))
        .one(db)
        .await?)
}

pub async fn list_domains(
    db: &impl ConnectionTrait,
    environment_id: Option<&str>,
    page: &Page,
) -> Result<Vec<domains::Model>> {
    let mut q = domains::Entity::find();
    if let Some(e) = environment_id {
        q = q.filter(domains::Column::EnvironmentId.eq(e));
    }
    page.of(db, q, domains::Column::Id).await
}

// ---------------------------------------------------------------- backups

pub struct NewBackup<'a> {
    pub environment_id: &'a str,
    pub backup_scope: &'a str,
    pub storage_type: &'a str,
    /// Where the artifacts go: the directory (local) or key prefix (s3)
    /// `{base}/{site}/{env}/{backup_id}`.
    pub storage_base: &'a str,
    pub site_id: &'a str,
    pub retention_until: String,
    /// `operator`, `schedule`, `pre_restore`, `drill` or `gate`.
    pub reason: &'a str,
    pub schedule_id: Option<&'a str>,
}

pub async fn create_backup(db: &impl ConnectionTrait, b: NewBackup<'_>) -> Result<backups::Model> {
    let now = clock::now();
    let id = ids::new_id();
    let base = b.storage_base.trim_end_matches('/');
    let storage_path = if base.is_empty() {
        format!("{}/{}/{id}", b.site_id, b.environment_id)
    } else {
        format!("{base}/{}/{}/{id}", b.site_id, b.environment_id)
    };
    let m = backups::ActiveModel {
        id: Set(id),
        environment_id: Set(b.environment_id.to_string()),
        backup_scope: Set(b.backup_scope.to_string()),
        storage_type: Set(b.storage_type.to_string()),
        storage_path: Set(storage_path),
        retention_until: Set(b.retention_until),
        checksum: Set(None),
        size_bytes: Set(None),
        completed_at: Set(None),
        deleted_at: Set(None),
        generation: Set(1),
        observed_generation: Set(0),
        status: Set("pending".into()),
        conditions: Set("[]".into()),
        state_version: Set(1),
        deletion_requested_at: Set(None),
        reconcile_attempts: Set(0),
        last_error_code: Set(None),
        observed: Set(None),
        observed_at: Set(None),
        created_at: Set(now.clone()),
        updated_at: Set(now),
        reason: Set(b.reason.to_string()),
        schedule_id: Set(b.schedule_id.map(str::to_string)),
        manifest: Set(None),
        verified_at: Set(None),
    };
    Ok(m.insert(db).await?)
}

pub async fn backup_by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<backups::Model>> {
    Ok(backups::Entity::find_by_id(id.to_string()).one(db).await?)
}

pub async fn list_backups(
    db: &impl ConnectionTrait,
    environment_id: Option<&str>,
    page: &Page,
) -> Result<Vec<backups::Model>> {
    let mut q = backups::Entity::find();
    if let Some(e) = environment_id {
        q = q.filter(backups::Column::EnvironmentId.eq(e));
    }
    page.of(db, q, backups::Column::Id).await
}

/// Stores what was observed about an environment (the runtime's facts JSON) with its time.
pub async fn record_environment_observed(
    db: &impl ConnectionTrait,
    id: &str,
    observed_json: String,
) -> Result<()> {
    environments::Entity::update_many()
        .col_expr(environments::Column::Observed, Expr::value(observed_json))
        .col_expr(environments::Column::ObservedAt, Expr::value(clock::now()))
        .filter(environments::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Writes the environment's observed state only if it is still `expected` (what the caller's
/// facts were derived from); false when someone (a job's outcome) wrote in between.
pub async fn record_environment_observed_if(
    db: &impl ConnectionTrait,
    id: &str,
    expected: Option<&str>,
    observed_json: String,
) -> Result<bool> {
    let mut q = environments::Entity::update_many()
        .col_expr(environments::Column::Observed, Expr::value(observed_json))
        .col_expr(environments::Column::ObservedAt, Expr::value(clock::now()))
        .filter(environments::Column::Id.eq(id));
    q = match expected {
        Some(e) => q.filter(environments::Column::Observed.eq(e)),
        None => q.filter(environments::Column::Observed.is_null()),
    };
    Ok(q.exec(db).await?.rows_affected == 1)
}

pub async fn record_domain_observed(
    db: &impl ConnectionTrait,
    id: &str,
    observed_json: String,
) -> Result<()> {
    domains::Entity::update_many()
        .col_expr(domains::Column::Observed, Expr::value(observed_json))
        .col_expr(domains::Column::ObservedAt, Expr::value(clock::now()))
        .filter(domains::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Every domain of an environment (deleted ones included until their row goes).
pub async fn domains_of(
    db: &impl ConnectionTrait,
    environment_id: &str,
) -> Result<Vec<domains::Model>> {
    Ok(domains::Entity::find()
        .filter(domains::Column::EnvironmentId.eq(environment_id))
        .all(db)
        .await?)
}

#[cfg(test)]
mod preview_tests {
    use super::PreviewBase;

    #[test]
    fn sslip_preview_urls_for_ipv4_and_ipv6_nodes() {
        let v4 = PreviewBase::Sslip("203.0.113.5".into());
        assert_eq!(v4.url("abc"), "http://abc.203-0-113-5.sslip.io");
        // sslip.io's IPv6 form: colons become dashes ("::" -> "--")
        let v6 = PreviewBase::Sslip("2001:db8::1".into());
        assert_eq!(v6.url("abc"), "http://abc.2001-db8--1.sslip.io");
        let d = PreviewBase::Domain("preview.example.com".into());
        assert_eq!(d.url("abc"), "https://abc.preview.example.com");
    }
}
