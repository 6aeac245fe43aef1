//! Backup schedules per environment: a 5-field cron expression (UTC) or an interval, the scope,
//! and retention (keep the last N and/or N days). The scheduler (`runtime/schedule.rs`) declares
//! the backups and applies retention; `POST …/run` declares one now.
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::Auth;
use super::error::ApiError;
use super::model::{Backup, BackupScope};
use super::text::Text;
use super::write::Write;
use super::{state, validate, Tag};
use crate::clock;
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::{backup_schedules, environments};
use crate::store::resources;
use crate::store::{self, backups::NewSchedule, StoreError};
use reconcilers::schedule::{Cadence, Cron};

#[derive(Debug, Clone, Object)]
pub struct BackupSchedule {
    pub id: String,
    pub environment_id: String,
    /// Every this many minutes (exclusive with `cron`).
    pub interval_minutes: Option<i64>,
    /// Five fields, UTC (exclusive with `interval_minutes`).
    pub cron: Option<String>,
    pub backup_scope: String,
    /// Keep the newest N completed backups of this schedule.
    pub keep_last: Option<i64>,
    /// Keep this schedule's backups younger than N days. With both rules, a backup is kept when
    /// either keeps it; the newest is always kept.
    pub keep_days: Option<i64>,
    /// Drill each new scheduled backup (restore into a scratch environment, then remove it).
    pub drill: bool,
    pub enabled: bool,
    pub last_run_at: Option<String>,
    pub next_run_at: Option<String>,
    pub state_version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<backup_schedules::Model> for BackupSchedule {
    fn from(m: backup_schedules::Model) -> Self {
        BackupSchedule {
            id: m.id,
            environment_id: m.environment_id,
            interval_minutes: m.interval_minutes,
            cron: m.cron,
            backup_scope: m.backup_scope,
            keep_last: m.keep_last,
            keep_days: m.keep_days,
            drill: m.drill,
            enabled: m.enabled,
            last_run_at: m.last_run_at,
            next_run_at: m.next_run_at,
            state_version: m.state_version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct BackupScheduleList {
    pub items: Vec<BackupSchedule>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateSchedule {
    pub interval_minutes: Option<i64>,
    pub cron: Option<Text>,
    pub backup_scope: Option<BackupScope>,
    pub keep_last: Option<i64>,
    pub keep_days: Option<i64>,
    pub drill: Option<bool>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateSchedule {
    /// The `state_version` you last read.
    pub state_version: i64,
    pub interval_minutes: Option<i64>,
    pub cron: Option<Text>,
    pub backup_scope: Option<BackupScope>,
    pub keep_last: Option<i64>,
    pub keep_days: Option<i64>,
    pub drill: Option<bool>,
    pub enabled: Option<bool>,
}

#[derive(ApiResponse)]
pub enum ScheduleWritten {
    #[oai(status = 200)]
    Ok(Json<BackupSchedule>),
    #[oai(status = 201)]
    Created(Json<BackupSchedule>),
}

#[derive(ApiResponse)]
pub enum ScheduleDeleted {
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum ScheduleRun {
    /// The backup the schedule declared now.
    #[oai(status = 202)]
    Accepted(Json<Backup>),
}

error_response!(ReadError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(WriteError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});

/// Exactly one cadence; keep rules ≥ 1.
fn validate_rules(
    interval: Option<i64>,
    cron: Option<&str>,
    keep_last: Option<i64>,
    keep_days: Option<i64>,
) -> Result<Cadence, ApiError> {
    for (field, v, max) in [
        ("interval_minutes", interval, 525_600),
        ("keep_last", keep_last, 10_000),
        ("keep_days", keep_days, 36_500),
    ] {
        if v.is_some_and(|v| v < 1 || v > max) {
            return Err(ApiError::invalid(
                field,
                format!("{field} must be between 1 and {max}"),
            ));
        }
    }
    match (interval, cron) {
        (Some(m), None) => Ok(Cadence::Interval { minutes: m }),
        (None, Some(c)) => {
            let cron = Cron::parse(c).map_err(|e| ApiError::invalid("cron", e.0))?;
            if cron.next_after(0).is_none() && cron.next_after(1_800_000_000).is_none() {
                return Err(ApiError::invalid(
                    "cron",
                    "the cron expression never matches",
                ));
            }
            Ok(Cadence::Cron(cron))
        }
        _ => Err(ApiError::invalid(
            "interval_minutes",
            "give exactly one of interval_minutes and cron",
        )),
    }
}

fn next_run(c: &Cadence) -> Option<String> {
    let now = crate::runtime::schedule_ts(&clock::now())?;
    c.next_after(now).map(crate::runtime::schedule_from_ts)
}

async fn env_of(
    db: &impl sea_orm::ConnectionTrait,
    id: &str,
) -> Result<environments::Model, ApiError> {
    resources::environment_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("environment not found".into()))
}

async fn schedule_of(
    db: &impl sea_orm::ConnectionTrait,
    env_id: &str,
    sid: &str,
) -> Result<backup_schedules::Model, ApiError> {
    store::backups::schedule_by_id(db, sid)
        .await?
        .filter(|s| s.environment_id == env_id)
        .ok_or_else(|| ApiError::NotFound("backup schedule not found".into()))
}

/// A schedule's fields (create: None = default; update: None = keep). `interval_minutes` and
/// `cron` replace each other.
#[derive(Default)]
pub(crate) struct ScheduleChange<'s> {
    pub interval_minutes: Option<i64>,
    pub cron: Option<&'s str>,
    pub backup_scope: Option<&'s str>,
    pub keep_last: Option<i64>,
    pub keep_days: Option<i64>,
    pub drill: Option<bool>,
    pub enabled: Option<bool>,
}

pub(crate) async fn create_schedule_in(
    w: &mut Write<'_>,
    env: &environments::Model,
    c: &ScheduleChange<'_>,
) -> Result<backup_schedules::Model, ApiError> {
    let cadence = validate_rules(c.interval_minutes, c.cron, c.keep_last, c.keep_days)?;
    if env.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict(
            "the environment is being deleted".into(),
        ));
    }
    let s = store::backups::create_schedule(
        w.tx,
        NewSchedule {
            environment_id: &env.id,
            interval_minutes: c.interval_minutes.filter(|_| c.cron.is_none()),
            cron: c.cron,
            backup_scope: c.backup_scope.unwrap_or(BackupScope::Full.as_str()),
            keep_last: c.keep_last,
            keep_days: c.keep_days,
            drill: c.drill.unwrap_or(false),
            enabled: c.enabled.unwrap_or(true),
            next_run_at: next_run(&cadence),
        },
    )
    .await?;
    w.audit_done("backup_schedule.create", "backup_schedule", &s.id)
        .await?;
    w.wake(Kind::Schedule, &s.id);
    Ok(s)
}

pub(crate) async fn update_schedule_in(
    w: &mut Write<'_>,
    mut s: backup_schedules::Model,
    c: &ScheduleChange<'_>,
) -> Result<backup_schedules::Model, ApiError> {
    let cadence_changed = c.interval_minutes.is_some() || c.cron.is_some();
    if let Some(x) = c.cron {
        s.cron = Some(x.to_string());
        s.interval_minutes = None;
    } else if let Some(m) = c.interval_minutes {
        s.interval_minutes = Some(m);
        s.cron = None;
    }
    if let Some(x) = c.keep_last {
        s.keep_last = Some(x);
    }
    if let Some(x) = c.keep_days {
        s.keep_days = Some(x);
    }
    let cadence = validate_rules(
        s.interval_minutes,
        s.cron.as_deref(),
        s.keep_last,
        s.keep_days,
    )?;
    if cadence_changed {
        s.next_run_at = next_run(&cadence);
    }
    if let Some(x) = c.backup_scope {
        s.backup_scope = x.to_string();
    }
    if let Some(x) = c.drill {
        s.drill = x;
    }
    if let Some(x) = c.enabled {
        s.enabled = x;
    }
    s.state_version += 1;
    let s = store::backups::save_schedule(w.tx, s).await?;
    w.audit_done("backup_schedule.update", "backup_schedule", &s.id)
        .await?;
    w.wake(Kind::Schedule, &s.id);
    Ok(s)
}

pub(crate) async fn delete_schedule_in(
    w: &mut Write<'_>,
    s: &backup_schedules::Model,
) -> Result<(), ApiError> {
    store::backups::delete_schedule(w.tx, &s.id).await?;
    w.audit_done("backup_schedule.delete", "backup_schedule", &s.id)
        .await?;
    Ok(())
}

pub struct SchedulesApi;

#[OpenApi(prefix_path = "/environments", tag = "Tag::Backups")]
impl SchedulesApi {
    /// List an environment's backup schedules.
    #[oai(
        path = "/:id/backup-schedules",
        method = "get",
        operation_id = "listBackupSchedules"
    )]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<BackupScheduleList>, ReadError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        env_of(&st.db, &id).await?;
        let items = store::backups::schedules_of(&st.db, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(BackupScheduleList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Create a backup schedule: `interval_minutes` or `cron` (5 fields, UTC), scope (default
    /// full), retention `keep_last` and/or `keep_days`, `drill`.
    #[oai(
        path = "/:id/backup-schedules",
        method = "post",
        operation_id = "createBackupSchedule"
    )]
    async fn create(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<CreateSchedule>,
    ) -> Result<ScheduleWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let b = body.0;
        let tx = st.begin().await?;
        let env = env_of(&tx, &id).await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let s = create_schedule_in(
            &mut w,
            &env,
            &ScheduleChange {
                interval_minutes: b.interval_minutes,
                cron: b.cron.as_deref(),
                backup_scope: b.backup_scope.map(|x| x.as_str()),
                keep_last: b.keep_last,
                keep_days: b.keep_days,
                drill: b.drill,
                enabled: b.enabled,
            },
        )
        .await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(ScheduleWritten::Created(Json(s.into())))
    }

    /// Read a backup schedule.
    #[oai(
        path = "/:id/backup-schedules/:sid",
        method = "get",
        operation_id = "getBackupSchedule"
    )]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
        sid: Path<String>,
    ) -> Result<Json<BackupSchedule>, ReadError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let sid = validate::uuid("sid", &sid.0)?;
        Ok(Json(schedule_of(&st.db, &id, &sid).await?.into()))
    }

    /// Change a backup schedule. Needs the current `state_version`.
    #[oai(
        path = "/:id/backup-schedules/:sid",
        method = "patch",
        operation_id = "updateBackupSchedule"
    )]
    async fn update(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        sid: Path<String>,
        body: Json<UpdateSchedule>,
    ) -> Result<ScheduleWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let sid = validate::uuid("sid", &sid.0)?;
        let b = body.0;
        let tx = st.begin().await?;
        let s = schedule_of(&tx, &id, &sid).await?;
        if s.state_version != b.state_version {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let s = update_schedule_in(
            &mut w,
            s,
            &ScheduleChange {
                interval_minutes: b.interval_minutes,
                cron: b.cron.as_deref(),
                backup_scope: b.backup_scope.map(|x| x.as_str()),
                keep_last: b.keep_last,
                keep_days: b.keep_days,
                drill: b.drill,
                enabled: b.enabled,
            },
        )
        .await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(ScheduleWritten::Ok(Json(s.into())))
    }

    /// Delete a backup schedule (its backups stay).
    #[oai(
        path = "/:id/backup-schedules/:sid",
        method = "delete",
        operation_id = "deleteBackupSchedule"
    )]
    async fn delete(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        sid: Path<String>,
    ) -> Result<ScheduleDeleted, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let sid = validate::uuid("sid", &sid.0)?;
        let tx = st.begin().await?;
        let s = schedule_of(&tx, &id, &sid).await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        delete_schedule_in(&mut w, &s).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(ScheduleDeleted::Deleted)
    }

    /// Run a schedule now: declares one backup of it (retention applies once it completes).
    #[oai(
        path = "/:id/backup-schedules/:sid/run",
        method = "post",
        operation_id = "runBackupSchedule"
    )]
    async fn run(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        sid: Path<String>,
    ) -> Result<ScheduleRun, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let sid = validate::uuid("sid", &sid.0)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let env = env_of(&tx, &id).await?;
        if env.deletion_requested_at.is_some() {
            return Err(ApiError::Conflict("the environment is being deleted".into()).into());
        }
        super::environments::refuse_while_restoring(&tx, &id).await?;
        let mut s = schedule_of(&tx, &id, &sid).await?;
        let b = crate::runtime::declare_scheduled_backup(&tx, &s, &env)
            .await
            .map_err(ApiError::from)?;
        s.last_run_at = Some(clock::now());
        store::backups::save_schedule(&tx, s)
            .await
            .map_err(ApiError::from)?;
        w.audit("backup_schedule.run", "backup_schedule", &sid)
            .await?;
        w.wake(Kind::Backup, &b.id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(ScheduleRun::Accepted(Json(Backup::from_model(
            b,
            &clock::now(),
        ))))
    }
}
