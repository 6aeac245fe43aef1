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
use super::{next_cursor, page_limit, state, validate, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::domains;
use crate::store::events::NewEvent;
use crate::store::resources::{self, Page};
use crate::store::{self, StoreError};

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateDomain {
    /// Fully qualified host name, unique across the installation.
    pub hostname: Text,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateDomain {
    /// The `state_version` you last read; a stale one answers 409 `conflict`.
    pub state_version: i64,
    pub hostname: Option<Text>,
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
        let hostname = validate::domain_hostname("hostname", &body.0.hostname)?;
        let tx = st.begin().await?;
        let env = resources::environment_by_id(&tx, &env_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        if env.deletion_requested_at.is_some() {
            return Err(ApiError::Conflict("the environment is being deleted".into()).into());
        }
        let d = resources::create_domain(&tx, &env_id, &hostname)
            .await
            .map_err(ApiError::from)?;
        store::events::append(
            &tx,
            event(
                &d,
                &env.site_id,
                "Created",
                format!("domain {hostname} attached"),
            ),
        )
        .await
        .map_err(ApiError::from)?;
        store::audit::append(
            &tx,
            &auth.principal().actor(),
            "domain.create",
            "domain",
            &d.id,
            "accepted",
        )
        .await
        .map_err(ApiError::from)?;
        st.commit(tx).await?;
        st.notifier.changed(Kind::Domain, &d.id);
        Ok(DomainWritten::Accepted(Json(d.into())))
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
        Ok(Json(load(&st.db, &id).await?.into()))
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
        let hostname = body
            .0
            .hostname
            .as_deref()
            .map(|h| validate::domain_hostname("hostname", h))
            .transpose()?;
        let tx = st.begin().await?;
        let d = load(&tx, &id).await?;
        if d.state_version != body.0.state_version {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        if d.deletion_requested_at.is_some() {
            return Err(ApiError::Conflict("the domain is being removed".into()).into());
        }
        let Some(hostname) = hostname.filter(|h| *h != d.hostname) else {
            return Ok(DomainWritten::Unchanged(Json(d.into())));
        };
        resources::cas_update::<domains::Entity>(
            &tx,
            "domain",
            &id,
            body.0.state_version,
            vec![
                ("hostname", Expr::value(hostname.clone())),
                ("status", Expr::value("pending")),
            ],
        )
        .await
        .map_err(|e| match e {
            StoreError::Duplicate(_) => {
                ApiError::Conflict(format!("the hostname '{hostname}' is already attached"))
            }
            other => other.into(),
        })?;
        let site_id = site_of(&tx, &d.environment_id).await?;
        store::events::append(
            &tx,
            event(
                &d,
                &site_id,
                "SpecChanged",
                format!("domain renamed to {hostname}"),
            ),
        )
        .await
        .map_err(ApiError::from)?;
        store::audit::append(
            &tx,
            &auth.principal().actor(),
            "domain.update",
            "domain",
            &id,
            "accepted",
        )
        .await
        .map_err(ApiError::from)?;
        let d = load(&tx, &id).await?;
        st.commit(tx).await?;
        st.notifier.changed(Kind::Domain, &id);
        Ok(DomainWritten::Accepted(Json(d.into())))
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
        if d.deletion_requested_at.is_some() {
            return Ok(DomainWritten::Unchanged(Json(d.into())));
        }
        resources::cas_update::<domains::Entity>(
            &tx,
            "domain",
            &id,
            state_version.0,
            vec![("deletion_requested_at", Expr::value(crate::clock::now()))],
        )
        .await
        .map_err(ApiError::from)?;
        let site_id = site_of(&tx, &d.environment_id).await?;
        store::events::append(
            &tx,
            event(
                &d,
                &site_id,
                "DeletionRequested",
                format!("domain {} marked for removal", d.hostname),
            ),
        )
        .await
        .map_err(ApiError::from)?;
        store::audit::append(
            &tx,
            &auth.principal().actor(),
            "domain.delete",
            "domain",
            &id,
            "accepted",
        )
        .await
        .map_err(ApiError::from)?;
        let d = load(&tx, &id).await?;
        st.commit(tx).await?;
        st.notifier.changed(Kind::Domain, &id);
        Ok(DomainWritten::Accepted(Json(d.into())))
    }
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
    Ok(DomainPage {
        items: rows.into_iter().map(Into::into).collect(),
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
