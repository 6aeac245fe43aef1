//! Sites: creating one also declares its production environment.
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::Auth;
use super::error::ApiError;
use super::model::{
    Environment, EnvironmentPage, EnvironmentType, PromotionPreset, Site, SitePage,
};
use super::text::Text;
use super::write::Write;
use super::{next_cursor, page_limit, state, validate, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::{environments, sites};
use crate::store::events::NewEvent;
use crate::store::resources::{self, EnvironmentFilter, NewEnvironment, NewSite, Page};
use crate::store::{self, nodes};

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateSite {
    /// Display name, 1-200 characters.
    pub name: Text,
    /// Unique DNS-label slug: lower-case letters, digits, inner hyphens.
    pub slug: Text,
    /// The node for the production environment; default: the local node.
    pub node_id: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateSite {
    /// The `state_version` you last read; a stale one answers 409 `conflict`.
    pub state_version: i64,
    pub name: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateEnvironment {
    pub name: Text,
    pub slug: Text,
    /// staging or clone (every site already has its one production environment).
    #[oai(rename = "type")]
    pub type_: EnvironmentType,
    /// Copy this environment of the same site (a clone or staging copy).
    pub source_environment_id: Option<Text>,
    pub promotion_preset: PromotionPreset,
    /// A temporary environment (RFC 3339, in the future): once it has passed, the environment is
    /// deleted like on an operator's request (event `Expired`).
    pub expires_at: Option<Text>,
}

#[derive(ApiResponse)]
pub enum SiteWritten {
    /// Nothing to do: the spec already says this.
    #[oai(status = 200)]
    Unchanged(Json<Site>),
    /// Recorded; reconciliation is pending.
    #[oai(status = 202)]
    Accepted(Json<Site>),
}

#[derive(ApiResponse)]
pub enum EnvironmentAccepted {
    /// Recorded; reconciliation is pending.
    #[oai(status = 202)]
    Accepted(Json<Environment>),
}

error_response!(ListError { BadRequest = 400, Unauthorized = 401 });
error_response!(CreateError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409 });
error_response!(GetError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(WriteError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});

pub struct SitesApi;

#[OpenApi(prefix_path = "/sites", tag = "Tag::Sites")]
impl SitesApi {
    /// List sites, oldest first.
    #[oai(path = "/", method = "get", operation_id = "listSites")]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        /// Only the site with this slug.
        slug: Query<Option<String>>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<SitePage>, ListError> {
        let st = state(req)?;
        let limit = page_limit(limit.0)?;
        if let Some(slug) = slug.0 {
            let items: Vec<Site> = resources::site_by_slug(&st.db, &slug)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .map(Into::into)
                .collect();
            return Ok(Json(SitePage {
                items,
                next_cursor: None,
            }));
        }
        let page = Page {
            after: super::cursor(cursor.0)?,
            limit,
        };
        let rows = resources::list_sites(&st.db, &page)
            .await
            .map_err(ApiError::from)?;
        let next = next_cursor(&rows, limit, |r| &r.id);
        Ok(Json(SitePage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }

    /// Declare a site. Its production environment is declared with it, on the given node or the
    /// local node, with a preview URL that needs no DNS.
    #[oai(path = "/", method = "post", operation_id = "createSite")]
    async fn create(
        &self,
        req: &Request,
        auth: Auth,
        body: Json<CreateSite>,
    ) -> Result<SiteWritten, CreateError> {
        let st = state(req)?;
        let name = validate::name("name", &body.0.name)?;
        let slug = validate::slug("slug", &body.0.slug)?;
        let node_id = body
            .0
            .node_id
            .as_deref()
            .map(|n| validate::uuid("node_id", n))
            .transpose()?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let (site, _) = create_site_in(&mut w, &name, &slug, node_id.as_deref()).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(SiteWritten::Accepted(Json(site.into())))
    }

    /// Read a site.
    #[oai(path = "/:id", method = "get", operation_id = "getSite")]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Site>, GetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let site = load_site(&st.db, &id).await?;
        Ok(Json(site.into()))
    }

    /// Change a site's spec (its name). Needs the current `state_version`.
    #[oai(path = "/:id", method = "patch", operation_id = "updateSite")]
    async fn update(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<UpdateSite>,
    ) -> Result<SiteWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let name = body
            .0
            .name
            .as_deref()
            .map(|n| validate::name("name", n))
            .transpose()?;
        let tx = st.begin().await?;
        let site = load_site(&tx, &id).await?;
        if site.state_version != body.0.state_version {
            return Err(ApiError::from(store::StoreError::Stale).into());
        }
        let mut w = Write::new(&tx, st, auth.principal().actor());
        if !update_site_in(&mut w, &site, name.as_deref()).await? {
            return Ok(SiteWritten::Unchanged(Json(site.into())));
        }
        let site = load_site(&tx, &id).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(SiteWritten::Accepted(Json(site.into())))
    }

    /// Delete a site: marks it and its environments for deletion; the reconcilers tear down what
    /// they built on the node and only then remove the rows.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteSite")]
    async fn delete(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        /// The `state_version` you last read.
        state_version: Query<i64>,
    ) -> Result<SiteWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let site = load_site(&tx, &id).await?;
        if site.state_version != state_version.0 {
            return Err(ApiError::from(store::StoreError::Stale).into());
        }
        let mut w = Write::new(&tx, st, auth.principal().actor());
        if !delete_site_in(&mut w, &site).await? {
            return Ok(SiteWritten::Unchanged(Json(site.into())));
        }
        let site = load_site(&tx, &id).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(SiteWritten::Accepted(Json(site.into())))
    }

    /// Put a failed site back into reconciliation; its phase is derived again.
    #[oai(path = "/:id/reset", method = "post", operation_id = "resetSite")]
    async fn reset(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
    ) -> Result<SiteWritten, super::environments::ResetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let site = load_site(&tx, &id).await?;
        if site.status != "failed" {
            return Err(ApiError::ResourceNotFailed.into());
        }
        let envs = resources::list_environments(
            &tx,
            &EnvironmentFilter {
                site_id: Some(id.clone()),
                node_id: None,
            },
            &Page {
                after: None,
                limit: 1000,
            },
        )
        .await
        .map_err(ApiError::from)?;
        for e in &envs {
            super::environments::check_resettable(&tx, e).await?;
        }
        let now = crate::clock::now();
        resources::cas_update::<store::entity::sites::Entity>(
            &tx,
            "site",
            &id,
            site.state_version,
            vec![(
                "reset_requested_at",
                sea_orm::sea_query::Expr::value(now.clone()),
            )],
        )
        .await
        .map_err(ApiError::from)?;
        for e in envs.iter().filter(|e| e.status == "failed") {
            resources::cas_update::<store::entity::environments::Entity>(
                &tx,
                "environment",
                &e.id,
                e.state_version,
                vec![(
                    "reset_requested_at",
                    sea_orm::sea_query::Expr::value(now.clone()),
                )],
            )
            .await
            .map_err(ApiError::from)?;
        }
        w.event(NewEvent {
            resource_type: "site",
            resource_id: &id,
            site_id: Some(&id),
            environment_id: None,
            reason: "ResetRequested",
            message: "reset requested: reconciliation resumes".into(),
        })
        .await?;
        w.audit("site.reset", "site", &id).await?;
        let site = load_site(&tx, &id).await?;
        w.wake(Kind::Site, &id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        for e in envs {
            st.notifier.changed(Kind::Environment, &e.id);
        }
        Ok(SiteWritten::Accepted(Json(site.into())))
    }

    /// List a site's environments.
    #[oai(
        path = "/:id/environments",
        method = "get",
        operation_id = "listSiteEnvironments"
    )]
    async fn environments(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<EnvironmentPage>, GetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let limit = page_limit(limit.0)?;
        let after = super::cursor(cursor.0)?;
        load_site(&st.db, &id).await?;
        let rows = resources::list_environments(
            &st.db,
            &EnvironmentFilter {
                site_id: Some(id),
                node_id: None,
            },
            &Page { after, limit },
        )
        .await
        .map_err(ApiError::from)?;
        let next = next_cursor(&rows, limit, |r| &r.id);
        Ok(Json(EnvironmentPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }

    /// Declare a staging or clone environment, empty or copied from another environment of the
    /// same site.
    #[oai(
        path = "/:id/environments",
        method = "post",
        operation_id = "createEnvironment"
    )]
    async fn create_environment(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<CreateEnvironment>,
    ) -> Result<EnvironmentAccepted, WriteError> {
        let st = state(req)?;
        let site_id = validate::uuid("id", &id.0)?;
        let name = validate::name("name", &body.0.name)?;
        let slug = validate::slug("slug", &body.0.slug)?;
        let source_id = body
            .0
            .source_environment_id
            .as_deref()
            .map(|s| validate::uuid("source_environment_id", s))
            .transpose()?;
        let expires_at = body
            .0
            .expires_at
            .as_deref()
            .map(|s| validate::timestamp("expires_at", s))
            .transpose()?;
        if expires_at
            .as_deref()
            .is_some_and(|e| e <= crate::clock::now().as_str())
        {
            return Err(ApiError::invalid("expires_at", "expires_at must be in the future").into());
        }
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let env = create_environment_in(
            &mut w,
            &site_id,
            NewEnvironmentSpec {
                name: &name,
                slug: &slug,
                environment_type: body.0.type_,
                source_id: source_id.as_deref(),
                promotion_preset: body.0.promotion_preset.as_str(),
                expires_at: expires_at.as_deref(),
            },
        )
        .await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(EnvironmentAccepted::Accepted(Json(env.into())))
    }
}

/// Declares a site and its production environment on the node `node_id` (default: the node
/// for new sites).
pub(crate) async fn create_site_in(
    w: &mut Write<'_>,
    name: &str,
    slug: &str,
    node_id: Option<&str>,
) -> Result<(sites::Model, environments::Model), ApiError> {
    let tx = w.tx;
    let node = match node_id {
        Some(id) => nodes::by_id(tx, id)
            .await?
            .ok_or_else(|| ApiError::invalid("node_id", "node_id names no node"))?,
        None => nodes::default_for_new_sites(tx).await?.ok_or_else(|| {
            ApiError::Conflict("no node to place the site on: register a node first".into())
        })?,
    };
    if node.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict("the node is being deleted".into()));
    }
    let preview_base = super::preview_base(tx, w.st, &node).await?;
    let (site, env) = resources::create_site(
        tx,
        NewSite {
            name,
            slug,
            node: &node,
            preview_base,
            wp_admin_login: super::new_wp_admin_login(),
        },
    )
    .await?;
    w.event(NewEvent {
        resource_type: "site",
        resource_id: &site.id,
        site_id: Some(&site.id),
        environment_id: None,
        reason: "Created",
        message: format!("site '{}' declared", site.slug),
    })
    .await?;
    w.event(NewEvent {
        resource_type: "environment",
        resource_id: &env.id,
        site_id: Some(&site.id),
        environment_id: Some(&env.id),
        reason: "Created",
        message: format!("production environment declared at {}", env.preview_url),
    })
    .await?;
    w.audit("site.create", "site", &site.id).await?;
    w.wake(Kind::Site, &site.id);
    w.wake(Kind::Environment, &env.id);
    Ok((site, env))
}

/// Changes a site's spec (its display name); false when there is nothing to change.
pub(crate) async fn update_site_in(
    w: &mut Write<'_>,
    site: &sites::Model,
    name: Option<&str>,
) -> Result<bool, ApiError> {
    if site.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict("the site is being deleted".into()));
    }
    let mut changes = Vec::new();
    if let Some(n) = name.filter(|n| *n != site.name) {
        changes.push(("name", sea_orm::sea_query::Expr::value(n)));
    }
    if changes.is_empty() {
        return Ok(false);
    }
    resources::cas_update::<sites::Entity>(w.tx, "site", &site.id, site.state_version, changes)
        .await?;
    w.event(NewEvent {
        resource_type: "site",
        resource_id: &site.id,
        site_id: Some(&site.id),
        environment_id: None,
        reason: "SpecChanged",
        message: "site spec updated".into(),
    })
    .await?;
    w.audit("site.update", "site", &site.id).await?;
    w.wake(Kind::Site, &site.id);
    Ok(true)
}

/// Marks a site and its environments for deletion; false when it already is.
pub(crate) async fn delete_site_in(
    w: &mut Write<'_>,
    site: &sites::Model,
) -> Result<bool, ApiError> {
    if site.deletion_requested_at.is_some() {
        return Ok(false);
    }
    let tx = w.tx;
    resources::mark_site_deleted(tx, &site.id, site.state_version).await?;
    w.event(NewEvent {
        resource_type: "site",
        resource_id: &site.id,
        site_id: Some(&site.id),
        environment_id: None,
        reason: "DeletionRequested",
        message: format!("site '{}' marked for deletion", site.slug),
    })
    .await?;
    w.audit("site.delete", "site", &site.id).await?;
    let envs = resources::list_environments(
        tx,
        &EnvironmentFilter {
            site_id: Some(site.id.clone()),
            node_id: None,
        },
        &Page {
            after: None,
            limit: 1000,
        },
    )
    .await?;
    w.wake(Kind::Site, &site.id);
    for e in envs {
        w.wake(Kind::Environment, &e.id);
    }
    Ok(true)
}

/// A staging or clone environment to declare.
pub(crate) struct NewEnvironmentSpec<'s> {
    pub name: &'s str,
    pub slug: &'s str,
    pub environment_type: EnvironmentType,
    pub source_id: Option<&'s str>,
    pub promotion_preset: &'s str,
    /// Validated, in the future.
    pub expires_at: Option<&'s str>,
}

/// Declares a staging or clone environment of a site, on the node of its production environment.
pub(crate) async fn create_environment_in(
    w: &mut Write<'_>,
    site_id: &str,
    spec: NewEnvironmentSpec<'_>,
) -> Result<environments::Model, ApiError> {
    let tx = w.tx;
    let site = load_site(tx, site_id).await?;
    if site.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict("the site is being deleted".into()));
    }
    if spec.environment_type == EnvironmentType::Production {
        return Err(ApiError::Conflict(
            "the site already has its production environment".into(),
        ));
    }
    let source = match spec.source_id {
        Some(sid) => {
            let src = resources::environment_by_id(tx, sid)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid(
                        "source_environment_id",
                        "source_environment_id names no environment",
                    )
                })?;
            if src.site_id != site_id {
                return Err(ApiError::invalid(
                    "source_environment_id",
                    "the source environment belongs to another site",
                ));
            }
            if src.deletion_requested_at.is_some() {
                return Err(ApiError::Conflict(
                    "the source environment is being deleted".into(),
                ));
            }
            Some(src)
        }
        None => None,
    };
    // A new environment lives on the node of the site's production environment.
    let prod_id = site
        .primary_environment_id
        .clone()
        .ok_or_else(|| ApiError::Internal("site without production environment".into()))?;
    let prod = resources::environment_by_id(tx, &prod_id)
        .await?
        .ok_or_else(|| ApiError::Internal("production environment missing".into()))?;
    let node = nodes::by_id(tx, &prod.node_id)
        .await?
        .ok_or_else(|| ApiError::Internal("node missing".into()))?;
    let preview_base = super::preview_base(tx, w.st, &node).await?;
    let mut env = resources::insert_environment(
        tx,
        NewEnvironment {
            site_id,
            name: spec.name,
            slug: spec.slug,
            environment_type: spec.environment_type.as_str(),
            node_id: &node.id,
            source_environment_id: source.as_ref().map(|s| s.id.as_str()),
            promotion_preset: spec.promotion_preset,
            preview_base: &preview_base,
            wp_admin_login: source
                .as_ref()
                .map(|s| s.wp_admin_login.clone())
                .unwrap_or_else(super::new_wp_admin_login),
        },
    )
    .await?;
    if let Some(e) = spec.expires_at {
        resources::set_environment_expiry(tx, &env.id, Some(e)).await?;
        env.expires_at = Some(e.to_string());
    }
    w.event(NewEvent {
        resource_type: "environment",
        resource_id: &env.id,
        site_id: Some(site_id),
        environment_id: Some(&env.id),
        reason: "Created",
        message: format!(
            "{} environment '{}' declared at {}",
            env.environment_type, env.slug, env.preview_url
        ),
    })
    .await?;
    w.audit("environment.create", "environment", &env.id)
        .await?;
    w.wake(Kind::Environment, &env.id);
    w.wake(Kind::Site, site_id);
    Ok(env)
}

async fn load_site(
    db: &impl sea_orm::ConnectionTrait,
    id: &str,
) -> Result<store::entity::sites::Model, ApiError> {
    resources::site_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("site not found".into()))
}
