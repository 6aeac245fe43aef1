//! Backups: one-shot resources, pending until a run completes them.
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::sea_query::Expr;
use time::Duration;

use super::auth::Auth;
use super::error::ApiError;
use super::model::{Backup, BackupPage, BackupScope};
use super::text::Text;
use super::write::Write;
use super::{next_cursor, page_limit, state, validate, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::{backups, environments};
use crate::store::events::NewEvent;
use crate::store::resources::{self, NewBackup, Page};
use crate::store::{self, StoreError};
use crate::{clock, settings};

/// Retention is time-based: 30 days from creation unless the operator extends it.
const RETENTION: Duration = Duration::days(30);

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateBackup {
    pub backup_scope: BackupScope,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateBackup {
    /// The `state_version` you last read; a stale one answers 409 `conflict`.
    pub state_version: i64,
    /// Keep the backup until this time (RFC 3339, in the future).
    pub retention_until: Option<Text>,
}

#[derive(ApiResponse)]
pub enum BackupWritten {
    /// Nothing to do: the spec already says this.
    #[oai(status = 200)]
    Unchanged(Json<Backup>),
    /// Recorded; reconciliation is pending.
    #[oai(status = 202)]
    Accepted(Json<Backup>),
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

pub struct BackupsApi;

#[OpenApi(tag = "Tag::Backups")]
impl BackupsApi {
    /// List backups, oldest first; filter by environment and status.
    #[oai(path = "/backups", method = "get", operation_id = "listBackups")]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        environment_id: Query<Option<String>>,
        /// pending, running, completed, failed or expired.
        status: Query<Option<String>>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<BackupPage>, ListError> {
        let st = state(req)?;
        let env = environment_id
            .0
            .map(|e| validate::uuid("environment_id", &e))
            .transpose()?;
        let status = status
            .0
            .map(|s| {
                s.parse::<reconcilers::backup::BackupPhase>()
                    .map(|p| p.as_str())
                    .map_err(|_| {
                        ApiError::invalid(
                            "status",
                            "status must be pending, running, completed, failed or expired",
                        )
                    })
            })
            .transpose()?;
        page(st, env.as_deref(), status, limit.0, cursor.0)
            .await
            .map(Json)
            .map_err(Into::into)
    }

    /// List an environment's backups.
    #[oai(
        path = "/environments/:id/backups",
        method = "get",
        operation_id = "listEnvironmentBackups"
    )]
    async fn list_for_environment(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<BackupPage>, ListError> {
        let st = state(req)?;
        let env_id = validate::uuid("id", &id.0)?;
        resources::environment_by_id(&st.db, &env_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        page(st, Some(&env_id), None, limit.0, cursor.0)
            .await
            .map(Json)
            .map_err(Into::into)
    }

    /// Request a backup of an environment (db, files or full) to the configured storage.
    #[oai(
        path = "/environments/:id/backups",
        method = "post",
        operation_id = "createBackup"
    )]
    async fn create(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<CreateBackup>,
    ) -> Result<BackupWritten, WriteError> {
        let st = state(req)?;
        let env_id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let env = resources::environment_by_id(&tx, &env_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let b = create_backup_in(&mut w, &env, body.0.backup_scope.as_str()).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(BackupWritten::Accepted(Json(Backup::from_model(
            b,
            &clock::now(),
        ))))
    }

    /// Read a backup.
    #[oai(path = "/backups/:id", method = "get", operation_id = "getBackup")]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Backup>, GetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        Ok(Json(Backup::from_model(
            load(&st.db, &id).await?,
            &clock::now(),
        )))
    }

    /// Change how long a backup is kept. Needs the current `state_version`.
    #[oai(path = "/backups/:id", method = "patch", operation_id = "updateBackup")]
    async fn update(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<UpdateBackup>,
    ) -> Result<BackupWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let until = body
            .0
            .retention_until
            .as_deref()
            .map(|t| validate::timestamp("retention_until", t))
            .transpose()?;
        if let Some(u) = &until {
            if u.as_str() <= clock::now().as_str() {
                return Err(ApiError::invalid(
                    "retention_until",
                    "retention_until must be in the future",
                )
                .into());
            }
        }
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let b = load(&tx, &id).await?;
        if b.state_version != body.0.state_version {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        if b.deletion_requested_at.is_some() || b.deleted_at.is_some() {
            return Err(ApiError::Conflict("the backup is deleted or being deleted".into()).into());
        }
        let Some(until) = until.filter(|u| *u != b.retention_until) else {
            return Ok(BackupWritten::Unchanged(Json(Backup::from_model(
                b,
                &clock::now(),
            ))));
        };
        resources::cas_update::<backups::Entity>(
            &tx,
            "backup",
            &id,
            body.0.state_version,
            vec![("retention_until", Expr::value(until.clone()))],
        )
        .await
        .map_err(ApiError::from)?;
        let site_id = site_of(&tx, &b.environment_id).await?;
        w.event(NewEvent {
            resource_type: "backup",
            resource_id: &id,
            site_id: Some(&site_id),
            environment_id: Some(&b.environment_id),
            reason: "SpecChanged",
            message: format!("retention set to {until}"),
        })
        .await?;
        w.audit("backup.update", "backup", &id).await?;
        let b = load(&tx, &id).await?;
        w.wake(Kind::Backup, &id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(BackupWritten::Accepted(Json(Backup::from_model(
            b,
            &clock::now(),
        ))))
    }

    /// Delete a backup's stored object; the row stays for audit with `deleted_at` set.
    #[oai(
        path = "/backups/:id",
        method = "delete",
        operation_id = "deleteBackup"
    )]
    async fn delete(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        /// The `state_version` you last read.
        state_version: Query<i64>,
    ) -> Result<BackupWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let b = load(&tx, &id).await?;
        if b.state_version != state_version.0 {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        if b.deletion_requested_at.is_some() {
            return Ok(BackupWritten::Unchanged(Json(Backup::from_model(
                b,
                &clock::now(),
            ))));
        }
        resources::cas_update::<backups::Entity>(
            &tx,
            "backup",
            &id,
            state_version.0,
            vec![("deletion_requested_at", Expr::value(clock::now()))],
        )
        .await
        .map_err(ApiError::from)?;
        let site_id = site_of(&tx, &b.environment_id).await?;
        w.event(NewEvent {
            resource_type: "backup",
            resource_id: &id,
            site_id: Some(&site_id),
            environment_id: Some(&b.environment_id),
            reason: "DeletionRequested",
            message: "backup marked for deletion".into(),
        })
        .await?;
        w.audit("backup.delete", "backup", &id).await?;
        let b = load(&tx, &id).await?;
        w.wake(Kind::Backup, &id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(BackupWritten::Accepted(Json(Backup::from_model(
            b,
            &clock::now(),
        ))))
    }

    /// Drill a backup: restore it into a temporary scratch environment of its site, health-check
    /// it, remove the scratch environment; on success the backup gets `verified_at`. Answers 202
    /// with the drill's Restore (follow it under `/api/restores/{id}`).
    #[oai(
        path = "/backups/:id/drill",
        method = "post",
        operation_id = "drillBackup"
    )]
    async fn drill(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
    ) -> Result<super::restores::RestoreAccepted, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let b = load(&tx, &id).await?;
        super::restores::check_restorable(&b, &clock::now())?;
        let env = resources::environment_by_id(&tx, &b.environment_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        if env.deletion_requested_at.is_some() {
            return Err(ApiError::Conflict("the environment is being deleted".into()).into());
        }
        let r = store::backups::create_drill(&tx, &b, &env)
            .await
            .map_err(ApiError::from)?;
        w.event(NewEvent {
            resource_type: "restore",
            resource_id: &r.id,
            site_id: Some(&env.site_id),
            environment_id: Some(&r.environment_id),
            reason: "Created",
            message: format!("restore drill of backup {id}"),
        })
        .await?;
        w.audit("backup.drill", "backup", &id).await?;
        w.wake(Kind::Environment, &r.environment_id);
        w.wake(Kind::Restore, &r.id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(super::restores::RestoreAccepted::Accepted(Json(r.into())))
    }
}

/// Declares an operator's backup of an environment to the configured storage.
pub(crate) async fn create_backup_in(
    w: &mut Write<'_>,
    env: &environments::Model,
    scope: &str,
) -> Result<backups::Model, ApiError> {
    let tx = w.tx;
    if env.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict(
            "the environment is being deleted".into(),
        ));
    }
    super::environments::refuse_while_restoring(tx, &env.id).await?;
    let storage = settings::backup_storage(tx).await?;
    let b = resources::create_backup(
        tx,
        NewBackup {
            environment_id: &env.id,
            backup_scope: scope,
            storage_type: storage.storage_type,
            storage_base: &storage.base,
            site_id: &env.site_id,
            retention_until: clock::from_now(RETENTION),
            reason: "operator",
            schedule_id: None,
        },
    )
    .await?;
    w.event(NewEvent {
        resource_type: "backup",
        resource_id: &b.id,
        site_id: Some(&env.site_id),
        environment_id: Some(&env.id),
        reason: "Created",
        message: format!(
            "{} backup requested ({} storage)",
            b.backup_scope, b.storage_type
        ),
    })
    .await?;
    w.audit("backup.create", "backup", &b.id).await?;
    w.wake(Kind::Backup, &b.id);
    Ok(b)
}

async fn page(
    st: &super::AppState,
    env: Option<&str>,
    status: Option<&str>,
    limit: Option<u64>,
    cursor: Option<String>,
) -> Result<BackupPage, ApiError> {
    let limit = page_limit(limit)?;
    let p = Page {
        after: super::cursor(cursor)?,
        limit,
    };
    let rows = store::backups::list(&st.db, env, status, &p).await?;
    let next = next_cursor(&rows, limit, |r| &r.id);
    let now = clock::now();
    Ok(BackupPage {
        items: rows
            .into_iter()
            .map(|b| Backup::from_model(b, &now))
            .collect(),
        next_cursor: next,
    })
}

async fn site_of(db: &impl sea_orm::ConnectionTrait, env_id: &str) -> Result<String, ApiError> {
    Ok(resources::environment_by_id(db, env_id)
        .await?
        .map(|e| e.site_id)
        .unwrap_or_default())
}

async fn load(db: &impl sea_orm::ConnectionTrait, id: &str) -> Result<backups::Model, ApiError> {
    resources::backup_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("backup not found".into()))
}
