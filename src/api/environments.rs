//! Environments: read, change their spec, delete, reset.
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::sea_query::Expr;

use super::auth::Auth;
use super::error::ApiError;
use super::model::{Environment, EnvironmentPage, PromotionPreset};
use super::text::Text;
use super::write::Write;
use super::{next_cursor, page_limit, state, validate, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::environments;
use crate::store::events::NewEvent;
use crate::store::resources::{self, EnvironmentFilter, Page};
use crate::store::{self, StoreError};

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateEnvironment {
    /// The `state_version` you last read; a stale one answers 409 `conflict`.
    pub state_version: i64,
    pub name: Option<Text>,
    pub promotion_preset: Option<PromotionPreset>,
    pub fastcgi_cache_enabled: Option<bool>,
    pub redis_cache_enabled: Option<bool>,
    /// How long the page cache keeps a page, in seconds (60 … 604800; default 3600).
    pub fastcgi_cache_ttl_seconds: Option<i64>,
}

#[derive(ApiResponse)]
pub enum EnvironmentWritten {
    /// Nothing to do: the spec already says this.
    #[oai(status = 200)]
    Unchanged(Json<Environment>),
    /// Recorded; reconciliation is pending.
    #[oai(status = 202)]
    Accepted(Json<Environment>),
}

error_response!(ListError { BadRequest = 400, Unauthorized = 401 });
error_response!(GetError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(WriteError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});
error_response!(ResetError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});

pub struct EnvironmentsApi;

#[OpenApi(prefix_path = "/environments", tag = "Tag::Environments")]
impl EnvironmentsApi {
    /// List environments, oldest first; filter by site or node.
    #[oai(path = "/", method = "get", operation_id = "listEnvironments")]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        site_id: Query<Option<String>>,
        node_id: Query<Option<String>>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<EnvironmentPage>, ListError> {
        let st = state(req)?;
        let limit = page_limit(limit.0)?;
        let filter = EnvironmentFilter {
            site_id: site_id
                .0
                .map(|s| validate::uuid("site_id", &s))
                .transpose()?,
            node_id: node_id
                .0
                .map(|s| validate::uuid("node_id", &s))
                .transpose()?,
        };
        let page = Page {
            after: super::cursor(cursor.0)?,
            limit,
        };
        let rows = resources::list_environments(&st.db, &filter, &page)
            .await
            .map_err(ApiError::from)?;
        let next = next_cursor(&rows, limit, |r| &r.id);
        Ok(Json(EnvironmentPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }

    /// Read an environment.
    #[oai(path = "/:id", method = "get", operation_id = "getEnvironment")]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Environment>, GetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let mut env: Environment = load(&st.db, &id).await?.into();
        env.last_verified_backup_at = store::backups::last_verified_at(&st.db, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(env))
    }

    /// Change an environment's spec. Needs the current `state_version`.
    #[oai(path = "/:id", method = "patch", operation_id = "updateEnvironment")]
    async fn update(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<UpdateEnvironment>,
    ) -> Result<EnvironmentWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let b = body.0;
        let name = b
            .name
            .as_deref()
            .map(|n| validate::name("name", n))
            .transpose()?;
        if let Some(t) = b.fastcgi_cache_ttl_seconds {
            if !(60..=604_800).contains(&t) {
                return Err(ApiError::invalid(
                    "fastcgi_cache_ttl_seconds",
                    "fastcgi_cache_ttl_seconds must be between 60 and 604800",
                )
                .into());
            }
        }
        let tx = st.begin().await?;
        let env = load(&tx, &id).await?;
        if env.state_version != b.state_version {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let change = EnvironmentChange {
            name: name.as_deref(),
            promotion_preset: b.promotion_preset.map(|p| p.as_str()),
            fastcgi_cache_enabled: b.fastcgi_cache_enabled,
            redis_cache_enabled: b.redis_cache_enabled,
            fastcgi_cache_ttl_seconds: b.fastcgi_cache_ttl_seconds,
            expires_at: None,
        };
        if !update_environment_in(&mut w, &env, &change).await? {
            return Ok(EnvironmentWritten::Unchanged(Json(env.into())));
        }
        let env = load(&tx, &id).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(EnvironmentWritten::Accepted(Json(env.into())))
    }

    /// Delete a staging or clone environment (the production environment goes with its site).
    #[oai(path = "/:id", method = "delete", operation_id = "deleteEnvironment")]
    async fn delete(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        /// The `state_version` you last read.
        state_version: Query<i64>,
    ) -> Result<EnvironmentWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let env = load(&tx, &id).await?;
        if env.state_version != state_version.0 {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        let mut w = Write::new(&tx, st, auth.principal().actor());
        if !delete_environment_in(&mut w, &env).await? {
            return Ok(EnvironmentWritten::Unchanged(Json(env.into())));
        }
        let env = load(&tx, &id).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(EnvironmentWritten::Accepted(Json(env.into())))
    }

    /// Put a failed environment back into reconciliation; its phase is derived again.
    #[oai(
        path = "/:id/reset",
        method = "post",
        operation_id = "resetEnvironment"
    )]
    async fn reset(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
    ) -> Result<EnvironmentWritten, ResetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let env = load(&tx, &id).await?;
        if env.status != "failed" {
            return Err(ApiError::ResourceNotFailed.into());
        }
        check_resettable(&tx, &env).await?;
        resources::cas_update::<environments::Entity>(
            &tx,
            "environment",
            &id,
            env.state_version,
            vec![("reset_requested_at", Expr::value(crate::clock::now()))],
        )
        .await
        .map_err(ApiError::from)?;
        w.event(NewEvent {
            resource_type: "environment",
            resource_id: &id,
            site_id: Some(&env.site_id),
            environment_id: Some(&id),
            reason: "ResetRequested",
            message: "reset requested: reconciliation resumes".into(),
        })
        .await?;
        w.audit("environment.reset", "environment", &id).await?;
        let env = load(&tx, &id).await?;
        w.wake(Kind::Environment, &id);
        w.wake(Kind::Site, &env.site_id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(EnvironmentWritten::Accepted(Json(env.into())))
    }

    /// Check production for drift against this staging/clone environment's baseline (no body).
    /// Sets `drift_check_requested_at`; the result lands in `drift_status`, `drift_checked_at`
    /// and `last_drift_check_id` (`GET /api/drift-checks/{id}`). Production, or an environment
    /// without a baseline: 409 `conflict`.
    #[oai(
        path = "/:id/drift-check",
        method = "post",
        operation_id = "requestDriftCheck"
    )]
    async fn drift_check(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
    ) -> Result<EnvironmentWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let env = load(&tx, &id).await?;
        if env.environment_type == "production" {
            return Err(ApiError::Conflict(
                "production is what a drift check compares: request it on the staging or clone \
                 environment to be promoted"
                    .into(),
            )
            .into());
        }
        if env.drift_baseline_id.is_none() {
            return Err(ApiError::Conflict(
                "the environment has no drift baseline (it was not cloned from production)".into(),
            )
            .into());
        }
        if env.deletion_requested_at.is_some() {
            return Err(ApiError::Conflict("the environment is being deleted".into()).into());
        }
        refuse_while_restoring(&tx, &id).await?;
        // Like a release declaration, the request is the generation's only change: it needs the
        // drift check, not a converge (see reconcilers::environment).
        resources::cas_update::<environments::Entity>(
            &tx,
            "environment",
            &id,
            env.state_version,
            vec![
                ("drift_check_requested_at", Expr::value(crate::clock::now())),
                ("release_generation", Expr::value(env.generation + 1)),
            ],
        )
        .await
        .map_err(ApiError::from)?;
        w.event(NewEvent {
            resource_type: "environment",
            resource_id: &id,
            site_id: Some(&env.site_id),
            environment_id: Some(&id),
            reason: "DriftCheckRequested",
            message: "drift check of production against this environment's baseline requested"
                .into(),
        })
        .await?;
        w.audit("environment.drift_check", "environment", &id)
            .await?;
        let env = load(&tx, &id).await?;
        w.wake(Kind::Environment, &id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(EnvironmentWritten::Accepted(Json(env.into())))
    }
}

/// A restore in progress blocks every other mutation of its environment: 409 `resource_in_use`.
/// Spec fields of an environment to change (None: keep).
#[derive(Default)]
pub(crate) struct EnvironmentChange<'s> {
    pub name: Option<&'s str>,
    pub promotion_preset: Option<&'s str>,
    pub fastcgi_cache_enabled: Option<bool>,
    pub redis_cache_enabled: Option<bool>,
    /// Validated (60 … 604800).
    pub fastcgi_cache_ttl_seconds: Option<i64>,
    /// Validated; `Some(None)` removes the expiry.
    pub expires_at: Option<Option<&'s str>>,
}

/// Changes an environment's spec; false when it already says this.
pub(crate) async fn update_environment_in(
    w: &mut Write<'_>,
    env: &environments::Model,
    c: &EnvironmentChange<'_>,
) -> Result<bool, ApiError> {
    if env.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict(
            "the environment is being deleted".into(),
        ));
    }
    refuse_while_restoring(w.tx, &env.id).await?;
    let mut changes = Vec::new();
    if let Some(n) = c.name.filter(|n| *n != env.name) {
        changes.push(("name", Expr::value(n)));
    }
    if let Some(p) = c.promotion_preset.filter(|p| *p != env.promotion_preset) {
        changes.push(("promotion_preset", Expr::value(p)));
    }
    if let Some(f) = c
        .fastcgi_cache_enabled
        .filter(|f| *f != env.fastcgi_cache_enabled)
    {
        changes.push(("fastcgi_cache_enabled", Expr::value(f)));
    }
    if let Some(r) = c
        .redis_cache_enabled
        .filter(|r| *r != env.redis_cache_enabled)
    {
        changes.push(("redis_cache_enabled", Expr::value(r)));
    }
    if let Some(t) = c
        .fastcgi_cache_ttl_seconds
        .filter(|t| *t != env.fastcgi_cache_ttl_seconds)
    {
        changes.push(("fastcgi_cache_ttl_seconds", Expr::value(t)));
    }
    if let Some(x) = c.expires_at.filter(|x| *x != env.expires_at.as_deref()) {
        changes.push(("expires_at", Expr::value(x.map(str::to_string))));
    }
    if changes.is_empty() {
        return Ok(false);
    }
    resources::cas_update::<environments::Entity>(
        w.tx,
        "environment",
        &env.id,
        env.state_version,
        changes,
    )
    .await?;
    w.event(NewEvent {
        resource_type: "environment",
        resource_id: &env.id,
        site_id: Some(&env.site_id),
        environment_id: Some(&env.id),
        reason: "SpecChanged",
        message: "environment spec updated".into(),
    })
    .await?;
    w.audit("environment.update", "environment", &env.id)
        .await?;
    w.wake(Kind::Environment, &env.id);
    Ok(true)
}

/// Marks a staging or clone environment for deletion; false when it already is.
pub(crate) async fn delete_environment_in(
    w: &mut Write<'_>,
    env: &environments::Model,
) -> Result<bool, ApiError> {
    if env.deletion_requested_at.is_some() {
        return Ok(false);
    }
    if env.environment_type == "production" {
        return Err(ApiError::Conflict(
            "the production environment is deleted together with its site".into(),
        ));
    }
    refuse_while_restoring(w.tx, &env.id).await?;
    resources::mark_environment_deleted(w.tx, &env.id, env.state_version).await?;
    w.event(NewEvent {
        resource_type: "environment",
        resource_id: &env.id,
        site_id: Some(&env.site_id),
        environment_id: Some(&env.id),
        reason: "DeletionRequested",
        message: format!("environment '{}' marked for deletion", env.slug),
    })
    .await?;
    w.audit("environment.delete", "environment", &env.id)
        .await?;
    w.wake(Kind::Environment, &env.id);
    Ok(true)
}

pub async fn refuse_while_restoring(
    db: &impl sea_orm::ConnectionTrait,
    env_id: &str,
) -> Result<(), ApiError> {
    match store::backups::active_restore(db, env_id).await? {
        Some(r) if !r.drill => {
            return Err(ApiError::ResourceInUse(format!(
                "restore {} of this environment is in progress",
                r.id
            )))
        }
        _ => {}
    }
    if let Some(i) = store::imports::active_for(db, env_id).await? {
        return Err(ApiError::ResourceInUse(format!(
            "import {} into this environment is in progress",
            i.id
        )));
    }
    // a promotion owns its source and production the same way
    match store::promotions::active_for(db, env_id).await? {
        Some(p) => Err(ApiError::ResourceInUse(format!(
            "promotion {} {} this environment is in progress",
            p.id,
            if p.target_environment_id == env_id {
                "into"
            } else {
                "from"
            }
        ))),
        None => Ok(()),
    }
}

/// Reset needs no job running for the environment and a reachable node.
pub async fn check_resettable(
    db: &impl sea_orm::ConnectionTrait,
    env: &environments::Model,
) -> Result<(), ApiError> {
    let running = store::jobs::list(
        db,
        &store::jobs::JobFilter {
            environment_id: Some(env.id.clone()),
            status: Some("running".into()),
            limit: 1,
            ..Default::default()
        },
    )
    .await?;
    if !running.is_empty() {
        return Err(ApiError::ResetValidationFailed(
            "a job for this environment is still running".into(),
        ));
    }
    let node = store::nodes::by_id(db, &env.node_id).await?;
    if node.is_none_or(|n| n.status == "unreachable") {
        return Err(ApiError::ResetValidationFailed(
            "the environment's node is unreachable".into(),
        ));
    }
    Ok(())
}

async fn load(
    db: &impl sea_orm::ConnectionTrait,
    id: &str,
) -> Result<environments::Model, ApiError> {
    resources::environment_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("environment not found".into()))
}
