//! Restores: a completed backup restored into an environment of the same site, behind a
//! pre-restore backup of the target and a health gate with rollback. Drills are restores too.
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::Auth;
use super::error::ApiError;
use super::model::{parse_conditions, Condition};
use super::text::Text;
use super::write::Write;
use super::{next_cursor, page_limit, state, validate, Tag};
use crate::clock;
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::{backups, restores};
use crate::store::events::NewEvent;
use crate::store::resources::{self, Page};
use crate::store::{self, backups::NewRestore};

#[derive(Debug, Clone, Object)]
pub struct Restore {
    pub id: String,
    /// The target environment (the scratch environment of a drill).
    pub environment_id: String,
    pub backup_id: String,
    /// The target's pre-restore backup: the rollback point.
    pub pre_backup_id: Option<String>,
    /// pending, running, succeeded, failed.
    pub status: String,
    /// A drill restores into a scratch environment that is removed afterwards.
    pub drill: bool,
    pub scratch_environment_id: Option<String>,
    /// Why it failed (e.g. RESTORE_CHECKSUM_MISMATCH, RESTORE_ROLLED_BACK).
    pub error_code: Option<String>,
    pub finished_at: Option<String>,
    pub generation: i64,
    pub conditions: Vec<Condition>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<restores::Model> for Restore {
    fn from(m: restores::Model) -> Self {
        Restore {
            conditions: parse_conditions(&m.conditions),
            id: m.id,
            environment_id: m.environment_id,
            backup_id: m.backup_id,
            pre_backup_id: m.pre_backup_id,
            status: m.status,
            drill: m.drill,
            scratch_environment_id: m.scratch_environment_id,
            error_code: m.last_error_code,
            finished_at: m.finished_at,
            generation: m.generation,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct RestorePage {
    pub items: Vec<Restore>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateRestore {
    /// A completed backup of an environment of the same site.
    pub backup_id: Text,
}

#[derive(ApiResponse)]
pub enum RestoreAccepted {
    /// Recorded; follow the restore's status.
    #[oai(status = 202)]
    Accepted(Json<Restore>),
}

error_response!(ListError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(WriteError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});

/// A backup may be restored when it is completed, still stored and not expired.
pub fn check_restorable(b: &backups::Model, now: &str) -> Result<(), ApiError> {
    if b.completed_at.is_none() || b.status != "completed" {
        return Err(ApiError::Conflict(format!(
            "backup {} is {}, not completed",
            b.id, b.status
        )));
    }
    if b.deleted_at.is_some()
        || b.deletion_requested_at.is_some()
        || b.retention_until.as_str() <= now
    {
        return Err(ApiError::Conflict(format!(
            "backup {} is expired or deleted",
            b.id
        )));
    }
    Ok(())
}

pub struct RestoresApi;

#[OpenApi(tag = "Tag::Backups")]
impl RestoresApi {
    /// Restore a backup into this environment (same site only). A full pre-restore backup of the
    /// environment is taken first; an unhealthy result is rolled back to it. While the restore
    /// runs, other mutations of the environment answer 409 `resource_in_use`.
    #[oai(
        path = "/environments/:id/restores",
        method = "post",
        operation_id = "createRestore"
    )]
    async fn create(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<CreateRestore>,
    ) -> Result<RestoreAccepted, WriteError> {
        let st = state(req)?;
        let env_id = validate::uuid("id", &id.0)?;
        let backup_id = validate::uuid("backup_id", &body.0.backup_id)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let env = resources::environment_by_id(&tx, &env_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("environment not found".into()))?;
        if env.deletion_requested_at.is_some() {
            return Err(ApiError::Conflict("the environment is being deleted".into()).into());
        }
        super::environments::refuse_while_restoring(&tx, &env_id).await?;
        let b = resources::backup_by_id(&tx, &backup_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("backup not found".into()))?;
        let source = resources::environment_by_id(&tx, &b.environment_id)
            .await
            .map_err(ApiError::from)?;
        if source.as_ref().map(|s| s.site_id.as_str()) != Some(env.site_id.as_str()) {
            return Err(ApiError::Conflict(
                "the backup belongs to another site: restores never cross sites".into(),
            )
            .into());
        }
        check_restorable(&b, &clock::now())?;
        crate::settings::backup_storage(&tx)
            .await
            .map_err(ApiError::from)?;
        let r = store::backups::create_restore(
            &tx,
            NewRestore {
                environment_id: &env_id,
                backup_id: &backup_id,
                drill: false,
            },
        )
        .await
        .map_err(ApiError::from)?;
        w.event(NewEvent {
            resource_type: "restore",
            resource_id: &r.id,
            site_id: Some(&env.site_id),
            environment_id: Some(&env_id),
            reason: "Created",
            message: format!("restore of backup {backup_id} requested"),
        })
        .await?;
        w.audit("restore.create", "restore", &r.id).await?;
        w.wake(Kind::Restore, &r.id);
        w.wake(Kind::Environment, &env_id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(RestoreAccepted::Accepted(Json(r.into())))
    }

    /// List restores (drills included), oldest first; filter by environment.
    #[oai(path = "/restores", method = "get", operation_id = "listRestores")]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        environment_id: Query<Option<String>>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<RestorePage>, ListError> {
        let st = state(req)?;
        let env = environment_id
            .0
            .map(|e| validate::uuid("environment_id", &e))
            .transpose()?;
        let limit = page_limit(limit.0)?;
        let p = Page {
            after: super::cursor(cursor.0)?,
            limit,
        };
        let rows = store::backups::list_restores(&st.db, env.as_deref(), &p)
            .await
            .map_err(ApiError::from)?;
        let next = next_cursor(&rows, limit, |r| &r.id);
        Ok(Json(RestorePage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }

    /// Read a restore.
    #[oai(path = "/restores/:id", method = "get", operation_id = "getRestore")]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Restore>, ListError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let r = store::backups::restore_by_id(&st.db, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("restore not found".into()))?;
        Ok(Json(r.into()))
    }
}
