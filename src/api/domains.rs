//! Domains: custom host names attached to an environment (TLS and routing come with the domain
//! reconciler).
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::sea_query::Expr;

use super::auth::Auth;
use super::error::ApiError;
use super::model::{Domain, DomainPage};
use super::text::Text;
use super::write::Write;
use super::{next_cursor, page_limit, state, validate, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::{domains, environments};
use crate::store::events::NewEvent;
use crate::store::resources::{self, Page};
use crate::store::{self, StoreError};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateDomain {
    /// Fully qualified, lower-case host name, unique across the installation. A leading `*.`
    /// (wildcard) only with `tls_mode` `custom`.
    pub hostname: Text,
    /// Make it the environment's primary domain (its site URL). The first domain of an
    /// environment is always primary.
    pub primary: Option<bool>,
    /// Redirect `www.<hostname>` to the hostname (the certificate covers both).
    pub www_redirect: Option<bool>,
    /// `acme` (default), `custom` or `none`.
    pub tls_mode: Option<Text>,
    /// `custom` only: the certificate chain (PEM).
    pub certificate_pem: Option<Text>,
    /// `custom` only: the unencrypted private key (PEM). Write-only: kept encrypted, never returned.
    pub private_key_pem: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateDomain {
    /// The `state_version` you last read; a stale one answers 409 `conflict`.
    pub state_version: i64,
    pub hostname: Option<Text>,
    /// `true` makes it the primary (the previous primary stops being primary). A primary cannot
    /// be unset: make another domain primary instead.
    pub primary: Option<bool>,
    pub www_redirect: Option<bool>,
    pub tls_mode: Option<Text>,
    pub certificate_pem: Option<Text>,
    pub private_key_pem: Option<Text>,
}

#[derive(ApiResponse)]
pub enum DomainWritten {
    /// Nothing to do: the spec already says this.
    #[oai(status = 200)]
    Unchanged(Json<Domain>),
    /// Recorded; reconciliation is pending.
    #[oai(status = 202)]
    Accepted(Json<Domain>),
}

error_response!(ListError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(GetError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(WriteError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});

pub struct DomainsApi;

#[OpenApi(tag = "Tag::Domains")]
impl DomainsApi {
    /// List domains, oldest first; filter by environment.
    #[oai(path = "/domains", method = "get", operation_id = "listDomains")]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        environment_id: Query<Option<String>>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<DomainPage>, ListError> {
        let st = state(req)?;
        let env = environment_id
            .0
            .map(|e| validate::uuid("environment_id", &e))
            .transpose()?;
        page(st, env.as_deref(), limit.0, cursor.0)
            .await
            .map(Json)
            .map_err(Into::into)
    }

    /// List an environment's domains.
    #[oai(
        path = "/environments/:id/domains",
        method = "get",
        operation_id = "listEnvironmentDomains"
    )]
    async fn list_for_environment(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<DomainPage>, ListError> {
        let st = state(req)?;
        let env_id = validate::uuid("id", &id.0)?;
        resources::environment_by_id(&st.db, &env_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        page(st, Some(&env_id), limit.0, cursor.0)
            .await
            .map(Json)
            .map_err(Into::into)
    }

    /// Attach a domain to an environment.
    #[oai(
        path = "/environments/:id/domains",
        method = "post",
        operation_id = "createDomain"
    )]
    async fn create(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<CreateDomain>,
    ) -> Result<DomainWritten, WriteError> {
        let st = state(req)?;
        let env_id = validate::uuid("id", &id.0)?;
        let b = body.0;
        let (hostname, www_redirect, tls_mode, custom) = checked_new_domain(
            &b.hostname,
            b.primary,
            b.www_redirect,
            b.tls_mode.as_deref(),
            b.certificate_pem.as_deref(),
            b.private_key_pem.as_deref(),
        )?;
        let tx = st.begin().await?;
        let env = resources::environment_by_id(&tx, &env_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let d = create_domain_in(
            &mut w,
            &env,
            NewDomain {
                hostname: &hostname,
                primary: b.primary,
                www_redirect,
                tls_mode,
                custom,
            },
        )
        .await?;
        let view = view(&tx, d).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(DomainWritten::Accepted(Json(view)))
    }

    /// Read a domain.
    #[oai(path = "/domains/:id", method = "get", operation_id = "getDomain")]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Domain>, GetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        Ok(Json(view(&st.db, load(&st.db, &id).await?).await?))
    }

    /// Change a domain's host name. Needs the current `state_version`.
    #[oai(path = "/domains/:id", method = "patch", operation_id = "updateDomain")]
    async fn update(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<UpdateDomain>,
    ) -> Result<DomainWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let b = body.0;
        let tx = st.begin().await?;
        let d = load(&tx, &id).await?;
        if d.state_version != b.state_version {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let change = DomainChange {
            hostname: b.hostname.as_deref(),
            primary: b.primary,
            www_redirect: b.www_redirect,
            tls_mode: b.tls_mode.as_deref(),
            certificate_pem: b.certificate_pem.as_deref(),
            private_key_pem: b.private_key_pem.as_deref(),
        };
        let changed = update_domain_in(&mut w, &d, &change).await?;
        let d = load(&tx, &id).await?;
        let view = view(&tx, d).await?;
        if !changed {
            return Ok(DomainWritten::Unchanged(Json(view)));
        }
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(DomainWritten::Accepted(Json(view)))
    }

    /// Remove a domain: marked for deletion, removed once the node no longer serves it.
    #[oai(
        path = "/domains/:id",
        method = "delete",
        operation_id = "deleteDomain"
    )]
    async fn delete(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        /// The `state_version` you last read.
        state_version: Query<i64>,
    ) -> Result<DomainWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let d = load(&tx, &id).await?;
        if d.state_version != state_version.0 {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let changed = delete_domain_in(&mut w, &d).await?;
        let d = load(&tx, &id).await?;
        let view = view(&tx, d).await?;
        if !changed {
            return Ok(DomainWritten::Unchanged(Json(view)));
        }
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(DomainWritten::Accepted(Json(view)))
    }
}

/// A new domain's host name, www redirect, TLS mode and custom pair (certificate, key).
type CheckedDomain<'a> = (String, bool, &'static str, Option<(&'a str, &'a str)>);

/// A new domain's fields checked: the host name, www redirect, TLS mode and custom pair.
pub(crate) fn checked_new_domain<'a>(
    hostname: &str,
    primary: Option<bool>,
    www_redirect: Option<bool>,
    tls_mode_field: Option<&str>,
    certificate_pem: Option<&'a str>,
    private_key_pem: Option<&'a str>,
) -> Result<CheckedDomain<'a>, ApiError> {
    let tls_mode = tls_mode(tls_mode_field)?.unwrap_or("acme");
    let hostname = validate::domain_name("hostname", hostname, tls_mode == "custom")?;
    let www_redirect = www_redirect.unwrap_or(false);
    check_shape(&hostname, www_redirect, primary == Some(true))?;
    let custom = custom_pair(tls_mode, certificate_pem, private_key_pem, true)?;
    Ok((hostname, www_redirect, tls_mode, custom))
}

/// A domain to attach (validated: host name, shape, custom pair).
pub(crate) struct NewDomain<'s> {
    pub hostname: &'s str,
    pub primary: Option<bool>,
    pub www_redirect: bool,
    pub tls_mode: &'s str,
    pub custom: Option<(&'s str, &'s str)>,
}

/// Attaches a domain to an environment; its first domain becomes its primary.
pub(crate) async fn create_domain_in(
    w: &mut Write<'_>,
    env: &environments::Model,
    n: NewDomain<'_>,
) -> Result<domains::Model, ApiError> {
    let tx = w.tx;
    let hostname = n.hostname;
    if env.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict(
            "the environment is being deleted".into(),
        ));
    }
    check_www_clash(tx, hostname, n.www_redirect, None).await?;
    let first = env.primary_domain_id.is_none();
    if first && n.primary == Some(false) {
        return Err(ApiError::invalid(
            "primary",
            "the first domain of an environment is its primary domain",
        ));
    }
    if first && hostname.starts_with("*.") {
        return Err(ApiError::invalid(
            "hostname",
            "a wildcard cannot be the primary domain (the site URL needs one host name)",
        ));
    }
    let d = resources::create_domain(tx, &env.id, hostname, n.www_redirect, n.tls_mode).await?;
    if let Some((cert, key)) = n.custom {
        store_custom_pair(w.st, tx, &d.id, cert, key).await?;
    }
    let primary = first || n.primary == Some(true);
    if primary {
        set_primary(tx, &env.id, Some(&d.id)).await?;
    }
    w.event(event(
        &d,
        &env.site_id,
        "Created",
        format!(
            "domain {hostname} attached{} (TLS {})",
            if primary { " as primary" } else { "" },
            n.tls_mode
        ),
    ))
    .await?;
    w.audit("domain.create", "domain", &d.id).await?;
    w.wake(Kind::Domain, &d.id);
    w.wake(Kind::Environment, &env.id);
    Ok(d)
}

/// Spec fields of a domain to change (None: keep); validated here.
#[derive(Default)]
pub(crate) struct DomainChange<'s> {
    pub hostname: Option<&'s str>,
    pub primary: Option<bool>,
    pub www_redirect: Option<bool>,
    pub tls_mode: Option<&'s str>,
    pub certificate_pem: Option<&'s str>,
    pub private_key_pem: Option<&'s str>,
}

/// Changes a domain; false when it already says this.
pub(crate) async fn update_domain_in(
    w: &mut Write<'_>,
    d: &domains::Model,
    c: &DomainChange<'_>,
) -> Result<bool, ApiError> {
    let tx = w.tx;
    let id = d.id.as_str();
    if d.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict("the domain is being removed".into()));
    }
    let env = resources::environment_by_id(tx, &d.environment_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
    let was_primary = env.primary_domain_id.as_deref() == Some(id);
    let tls_mode = tls_mode(c.tls_mode)?
        .unwrap_or(d.tls_mode.as_str())
        .to_string();
    let hostname = match c.hostname {
        Some(h) => validate::domain_name("hostname", h, tls_mode == "custom")?,
        None if d.hostname.starts_with("*.") && tls_mode != "custom" => {
            return Err(ApiError::invalid(
                "tls_mode",
                "a wildcard host name needs tls_mode custom",
            ))
        }
        None => d.hostname.clone(),
    };
    let www_redirect = c.www_redirect.unwrap_or(d.www_redirect);
    if c.primary == Some(false) && was_primary {
        return Err(ApiError::Conflict(
            "a primary domain cannot be unset: make another domain of the environment primary"
                .into(),
        ));
    }
    let primary = was_primary || c.primary == Some(true);
    check_shape(&hostname, www_redirect, primary)?;
    let new_pair = c.certificate_pem.is_some() || c.private_key_pem.is_some();
    let custom = custom_pair(
        &tls_mode,
        c.certificate_pem,
        c.private_key_pem,
        tls_mode != d.tls_mode || new_pair,
    )?;
    let mut changes: Vec<(&'static str, sea_orm::sea_query::SimpleExpr)> = Vec::new();
    if hostname != d.hostname {
        check_www_clash(tx, &hostname, www_redirect, Some(id)).await?;
        changes.push(("hostname", Expr::value(hostname.clone())));
    } else if www_redirect && !d.www_redirect {
        check_www_clash(tx, &hostname, www_redirect, Some(id)).await?;
    }
    if www_redirect != d.www_redirect {
        changes.push(("www_redirect", Expr::value(www_redirect)));
    }
    if tls_mode != d.tls_mode {
        changes.push(("tls_mode", Expr::value(tls_mode.clone())));
    }
    let becomes_primary = primary && !was_primary;
    if changes.is_empty() && custom.is_none() && !becomes_primary {
        return Ok(false);
    }
    changes.push(("status", Expr::value("pending")));
    resources::cas_update::<domains::Entity>(tx, "domain", id, d.state_version, changes)
        .await
        .map_err(|e| match e {
            StoreError::Duplicate(_) => {
                ApiError::Conflict(format!("the hostname '{hostname}' is already attached"))
            }
            other => other.into(),
        })?;
    if let Some((cert, key)) = custom {
        store_custom_pair(w.st, tx, id, cert, key).await?;
    }
    if becomes_primary {
        set_primary(tx, &d.environment_id, Some(id)).await?;
    }
    w.event(event(
        d,
        &env.site_id,
        "SpecChanged",
        format!(
            "domain {hostname} changed{}",
            if becomes_primary { "; now primary" } else { "" }
        ),
    ))
    .await?;
    w.audit("domain.update", "domain", id).await?;
    w.wake(Kind::Domain, id);
    w.wake(Kind::Environment, &env.id);
    Ok(true)
}

/// Marks a domain for removal; false when it already is. A primary domain goes only as the
/// environment's last one.
pub(crate) async fn delete_domain_in(
    w: &mut Write<'_>,
    d: &domains::Model,
) -> Result<bool, ApiError> {
    let tx = w.tx;
    let id = d.id.as_str();
    if d.deletion_requested_at.is_some() {
        return Ok(false);
    }
    let env = resources::environment_by_id(tx, &d.environment_id).await?;
    if env
        .as_ref()
        .is_some_and(|e| e.primary_domain_id.as_deref() == Some(id))
    {
        let others = domains::Entity::find()
            .filter(domains::Column::EnvironmentId.eq(d.environment_id.as_str()))
            .filter(domains::Column::DeletionRequestedAt.is_null())
            .filter(domains::Column::Id.ne(id))
            .count(tx)
            .await
            .map_err(|e| ApiError::from(StoreError::from(e)))?;
        if others > 0 {
            return Err(ApiError::Conflict(format!(
                "{} is the primary domain and {others} other domain(s) remain: make another \
                 one primary first",
                d.hostname
            )));
        }
    }
    resources::cas_update::<domains::Entity>(
        tx,
        "domain",
        id,
        d.state_version,
        vec![("deletion_requested_at", Expr::value(crate::clock::now()))],
    )
    .await?;
    let site_id = site_of(tx, &d.environment_id).await?;
    w.event(event(
        d,
        &site_id,
        "DeletionRequested",
        format!("domain {} marked for removal", d.hostname),
    ))
    .await?;
    w.audit("domain.delete", "domain", id).await?;
    w.wake(Kind::Domain, id);
    w.wake(Kind::Environment, &d.environment_id);
    Ok(true)
}

async fn page(
    st: &super::AppState,
    env: Option<&str>,
    limit: Option<u64>,
    cursor: Option<String>,
) -> Result<DomainPage, ApiError> {
    let limit = page_limit(limit)?;
    let p = Page {
        after: super::cursor(cursor)?,
        limit,
    };
    let rows = resources::list_domains(&st.db, env, &p).await?;
    let next = next_cursor(&rows, limit, |r| &r.id);
    let mut primaries: std::collections::HashMap<String, Option<String>> = Default::default();
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        if !primaries.contains_key(&r.environment_id) {
            let p = resources::environment_by_id(&st.db, &r.environment_id)
                .await?
                .and_then(|e| e.primary_domain_id);
            primaries.insert(r.environment_id.clone(), p);
        }
        let p = primaries[&r.environment_id].clone();
        items.push(Domain::view(r, p.as_deref()));
    }
    Ok(DomainPage {
        items,
        next_cursor: next,
    })
}

fn event<'a>(
    d: &'a domains::Model,
    site_id: &'a str,
    reason: &'static str,
    message: String,
) -> NewEvent<'a> {
    NewEvent {
        resource_type: "domain",
        resource_id: &d.id,
        site_id: Some(site_id),
        environment_id: Some(&d.environment_id),
        reason,
        message,
    }
}

async fn site_of(db: &impl sea_orm::ConnectionTrait, env_id: &str) -> Result<String, ApiError> {
    Ok(resources::environment_by_id(db, env_id)
        .await?
        .map(|e| e.site_id)
        .unwrap_or_default())
}

async fn load(db: &impl sea_orm::ConnectionTrait, id: &str) -> Result<domains::Model, ApiError> {
    resources::domain_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("domain not found".into()))
}

async fn view(db: &impl sea_orm::ConnectionTrait, d: domains::Model) -> Result<Domain, ApiError> {
    let primary = resources::environment_by_id(db, &d.environment_id)
        .await?
        .and_then(|e| e.primary_domain_id);
    Ok(Domain::view(d, primary.as_deref()))
}

fn tls_mode(v: Option<&str>) -> Result<Option<&'static str>, ApiError> {
    match v {
        None => Ok(None),
        Some("acme") => Ok(Some("acme")),
        Some("custom") => Ok(Some("custom")),
        Some("none") => Ok(Some("none")),
        Some(_) => Err(ApiError::invalid(
            "tls_mode",
            "tls_mode must be acme, custom or none",
        )),
    }
}

/// Rules about the name alone.
fn check_shape(hostname: &str, www_redirect: bool, primary: bool) -> Result<(), ApiError> {
    if hostname.starts_with("*.") {
        if www_redirect {
            return Err(ApiError::invalid(
                "www_redirect",
                "a wildcard host name has no www. redirect",
            ));
        }
        if primary {
            return Err(ApiError::invalid(
                "primary",
                "a wildcard cannot be the primary domain (the site URL needs one host name)",
            ));
        }
    }
    if www_redirect && hostname.starts_with("www.") {
        return Err(ApiError::invalid(
            "www_redirect",
            "the host name already starts with www.",
        ));
    }
    Ok(())
}

/// `www.<name>` of a redirecting domain is served by it: no other domain may take that name.
async fn check_www_clash(
    db: &impl sea_orm::ConnectionTrait,
    hostname: &str,
    www_redirect: bool,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let mut names = vec![];
    if let Some(apex) = hostname.strip_prefix("www.") {
        names.push((apex.to_string(), true));
    }
    if www_redirect {
        names.push((format!("www.{hostname}"), false));
    }
    for (name, needs_redirect) in names {
        if let Some(other) = resources::domain_by_hostname(db, &name).await? {
            if Some(other.id.as_str()) == except || (needs_redirect && !other.www_redirect) {
                continue;
            }
            return Err(ApiError::Conflict(format!(
                "the hostname '{hostname}' clashes with the domain '{}' (www. redirect)",
                other.hostname
            )));
        }
    }
    Ok(())
}

/// The uploaded certificate and key of a `custom` domain (required when `required`), checked for
/// their PEM shape here; the node checks that they match and cover the name.
fn custom_pair<'a>(
    tls_mode: &str,
    cert: Option<&'a str>,
    key: Option<&'a str>,
    required: bool,
) -> Result<Option<(&'a str, &'a str)>, ApiError> {
    if tls_mode != "custom" {
        if cert.is_some() || key.is_some() {
            return Err(ApiError::invalid(
                if cert.is_some() {
                    "certificate_pem"
                } else {
                    "private_key_pem"
                },
                "a certificate is uploaded only with tls_mode custom",
            ));
        }
        return Ok(None);
    }
    match (cert, key) {
        (None, None) if !required => Ok(None),
        (Some(c), Some(k)) => {
            if !c.trim_start().starts_with("-----BEGIN CERTIFICATE-----") {
                return Err(ApiError::invalid(
                    "certificate_pem",
                    "certificate_pem must be a PEM certificate chain",
                ));
            }
            let kt = k.trim_start();
            if !(kt.starts_with("-----BEGIN ")
                && kt
                    .lines()
                    .next()
                    .is_some_and(|l| l.ends_with("PRIVATE KEY-----")))
            {
                return Err(ApiError::invalid(
                    "private_key_pem",
                    "private_key_pem must be a PEM private key",
                ));
            }
            if kt.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
                || kt.contains("Proc-Type: 4,ENCRYPTED")
            {
                return Err(ApiError::invalid(
                    "private_key_pem",
                    "the private key must not be encrypted with a passphrase",
                ));
            }
            Ok(Some((c, k)))
        }
        (None, _) => Err(ApiError::invalid(
            "certificate_pem",
            "tls_mode custom needs certificate_pem and private_key_pem",
        )),
        (_, None) => Err(ApiError::invalid(
            "private_key_pem",
            "tls_mode custom needs certificate_pem and private_key_pem",
        )),
    }
}

async fn store_custom_pair(
    st: &super::AppState,
    tx: &impl sea_orm::ConnectionTrait,
    id: &str,
    cert: &str,
    key: &str,
) -> Result<(), ApiError> {
    store::secrets::put(tx, &st.secrets, &format!("domain/{id}/certificate"), cert).await?;
    store::secrets::put(tx, &st.secrets, &format!("domain/{id}/private_key"), key).await?;
    Ok(())
}

async fn set_primary(
    db: &impl sea_orm::ConnectionTrait,
    env_id: &str,
    domain_id: Option<&str>,
) -> Result<(), ApiError> {
    use crate::store::entity::environments;
    environments::Entity::update_many()
        .col_expr(
            environments::Column::PrimaryDomainId,
            Expr::value(domain_id.map(str::to_string)),
        )
        .col_expr(
            environments::Column::UpdatedAt,
            Expr::value(crate::clock::now()),
        )
        .filter(environments::Column::Id.eq(env_id))
        .exec(db)
        .await
        .map_err(|e| ApiError::from(StoreError::from(e)))?;
    Ok(())
}
