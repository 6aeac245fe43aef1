//! The runtime's job rows: intent recorded before acting, claimed atomically, finished in one
//! transaction with the facts they report.
use sea_orm::prelude::*;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, PaginatorTrait, QueryOrder, QuerySelect};

use crate::store::entity::{job_logs, jobs};
use crate::store::Result;
use crate::{clock, ids};

pub struct NewJob<'a> {
    pub job_type: &'a str,
    pub reason: &'a str,
    pub playbook: &'a str,
    pub site_id: Option<&'a str>,
    pub environment_id: Option<&'a str>,
    pub node_id: Option<&'a str>,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub generation: i64,
    pub attempt: i64,
    pub max_attempts: i64,
}

pub async fn create(db: &impl ConnectionTrait, j: NewJob<'_>) -> Result<jobs::Model> {
    let now = clock::now();
    let m = jobs::ActiveModel {
        id: Set(ids::new_id()),
        job_type: Set(j.job_type.to_string()),
        reason: Set(j.reason.to_string()),
        status: Set("queued".into()),
        site_id: Set(j.site_id.map(str::to_string)),
        environment_id: Set(j.environment_id.map(str::to_string)),
        node_id: Set(j.node_id.map(str::to_string)),
        resource_type: Set(j.resource_type.to_string()),
        resource_id: Set(j.resource_id.to_string()),
        generation: Set(j.generation),
        playbook: Set(j.playbook.to_string()),
        payload_json: Set("{}".into()),
        attempt_count: Set(j.attempt),
        max_attempts: Set(j.max_attempts),
        run_after: Set(None),
        locked_at: Set(None),
        locked_by: Set(None),
        started_at: Set(None),
        finished_at: Set(None),
        exit_code: Set(None),
        error_code: Set(None),
        error_message: Set(None),
        facts_json: Set(None),
        cancel_requested_at: Set(None),
        created_at: Set(now.clone()),
        updated_at: Set(now),
    };
    Ok(m.insert(db).await?)
}

pub async fn latest_for(
    db: &impl ConnectionTrait,
    resource_type: &str,
    resource_id: &str,
) -> Result<Option<jobs::Model>> {
    Ok(jobs::Entity::find()
        .filter(jobs::Column::ResourceType.eq(resource_type))
        .filter(jobs::Column::ResourceId.eq(resource_id))
        .order_by_desc(jobs::Column::Id)
        .one(db)
        .await?)
}

/// Failed attempts at this generation since `since` (the last handled reset).
pub async fn failed_attempts(
    db: &impl ConnectionTrait,
    resource_type: &str,
    resource_id: &str,
    generation: i64,
    since: Option<&str>,
) -> Result<u64> {
    let mut q = jobs::Entity::find()
        .filter(jobs::Column::ResourceType.eq(resource_type))
        .filter(jobs::Column::ResourceId.eq(resource_id))
        .filter(jobs::Column::Generation.eq(generation))
        .filter(jobs::Column::Status.eq("failed"));
    if let Some(s) = since {
        q = q.filter(jobs::Column::CreatedAt.gt(s));
    }
    Ok(q.count(db).await?)
}

/// Moves a queued job to running for this worker; false when someone else got it first or it
/// was cancelled meanwhile.
pub async fn claim(db: &impl ConnectionTrait, id: &str, worker: &str) -> Result<bool> {
    let now = clock::now();
    let res = jobs::Entity::update_many()
        .col_expr(jobs::Column::Status, Expr::value("running"))
        .col_expr(jobs::Column::LockedAt, Expr::value(now.clone()))
        .col_expr(jobs::Column::LockedBy, Expr::value(worker))
        .col_expr(jobs::Column::StartedAt, Expr::value(now.clone()))
        .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
        .filter(jobs::Column::Id.eq(id))
        .filter(jobs::Column::Status.eq("queued"))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

pub struct Finish<'a> {
    pub status: &'a str,
    pub exit_code: Option<i64>,
    pub error_code: Option<&'a str>,
    pub error_message: Option<String>,
    pub facts_json: Option<String>,
}

pub async fn finish(db: &impl ConnectionTrait, id: &str, f: Finish<'_>) -> Result<()> {
    let now = clock::now();
    jobs::Entity::update_many()
        .col_expr(jobs::Column::Status, Expr::value(f.status))
        .col_expr(jobs::Column::ExitCode, Expr::value(f.exit_code))
        .col_expr(jobs::Column::ErrorCode, Expr::value(f.error_code))
        .col_expr(jobs::Column::ErrorMessage, Expr::value(f.error_message))
        .col_expr(jobs::Column::FactsJson, Expr::value(f.facts_json))
        .col_expr(jobs::Column::FinishedAt, Expr::value(now.clone()))
        .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
        .filter(jobs::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn save_log(db: &impl ConnectionTrait, id: &str, log: &str) -> Result<()> {
    let m = job_logs::ActiveModel {
        job_id: Set(id.to_string()),
        log: Set(log.to_string()),
        updated_at: Set(clock::now()),
    };
    job_logs::Entity::insert(m)
        .on_conflict(
            OnConflict::column(job_logs::Column::JobId)
                .update_columns([job_logs::Column::Log, job_logs::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// The lease a running job holds, across replicas: one job at a time per site (the same rule as
/// the in-process site lock), node jobs one at a time per node.
pub fn run_key(job: &jobs::Model) -> String {
    match (&job.site_id, &job.node_id) {
        (Some(s), _) => format!("run:site/{s}"),
        (None, Some(n)) => format!("run:node/{n}"),
        (None, None) => format!("run:job/{}", job.id),
    }
}

const INTERRUPTED: &str =
    "interrupted: the replica running this job stopped or lost its lease; the work is retried";

/// Jobs left `running` whose replica no longer holds their lease (it expired, or another replica
/// took it over since): each is marked cancelled (interrupted), in a transaction that first
/// reclaims an expired lease so that the old holder's late commit is refused by its fence.
/// `me` names the reaper. Returns the jobs it marked.
pub async fn reap_orphans(
    db: &sea_orm::DatabaseConnection,
    me: &str,
) -> crate::runtime::Result<Vec<jobs::Model>> {
    use crate::runtime::lease;
    let running = jobs::Entity::find()
        .filter(jobs::Column::Status.eq("running"))
        .all(db)
        .await?;
    let mut reaped = Vec::new();
    for j in running {
        let key = run_key(&j);
        let owner = j.locked_by.clone().unwrap_or_default();
        let row = lease::get(db, &key).await?;
        let orphan = match &row {
            None => true,
            Some(r) => r.holder != owner || r.expires_at < clock::now(),
        };
        if !orphan {
            continue;
        }
        let tx = crate::store::begin_write(db).await?;
        let reclaimed = match &row {
            // expired: move the fence on (false: renewed meanwhile, the job lives)
            Some(r) if r.holder == owner => lease::reclaim_expired(&tx, &key, me).await?,
            // another holder took it over since: the owner's fence is stale already
            _ => true,
        };
        if !reclaimed {
            continue;
        }
        let now = clock::now();
        let res = jobs::Entity::update_many()
            .col_expr(jobs::Column::Status, Expr::value("cancelled"))
            .col_expr(jobs::Column::ErrorMessage, Expr::value(INTERRUPTED))
            .col_expr(jobs::Column::FinishedAt, Expr::value(now.clone()))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .filter(jobs::Column::Id.eq(j.id.as_str()))
            .filter(jobs::Column::Status.eq("running"))
            .filter(jobs::Column::LockedBy.eq(owner.as_str()))
            .exec(&tx)
            .await?;
        if res.rows_affected != 1 {
            continue; // finished meanwhile
        }
        crate::store::events::append(
            &tx,
            crate::store::events::NewEvent {
                resource_type: &j.resource_type,
                resource_id: &j.resource_id,
                site_id: j.site_id.as_deref(),
                environment_id: j.environment_id.as_deref(),
                reason: "JobInterrupted",
                message: format!(
                    "{} (attempt {}) interrupted: replica {owner} lost its lease; the work is planned again",
                    j.job_type, j.attempt_count
                ),
            },
        )
        .await?;
        tx.commit().await?;
        reaped.push(j);
    }
    Ok(reaped)
}

/// Queued jobs created before `cutoff`, oldest first.
pub async fn queued_before(db: &impl ConnectionTrait, cutoff: &str) -> Result<Vec<jobs::Model>> {
    Ok(jobs::Entity::find()
        .filter(jobs::Column::Status.eq("queued"))
        .filter(jobs::Column::CreatedAt.lt(cutoff))
        .order_by_asc(jobs::Column::Id)
        .all(db)
        .await?)
}

/// Finishes a job only if it is still `running` for `worker` (the fallback failure after an
/// internal error: never over another replica's outcome).
pub async fn finish_own(
    db: &impl ConnectionTrait,
    id: &str,
    worker: &str,
    f: Finish<'_>,
) -> Result<u64> {
    let now = clock::now();
    let res = jobs::Entity::update_many()
        .col_expr(jobs::Column::Status, Expr::value(f.status))
        .col_expr(jobs::Column::ExitCode, Expr::value(f.exit_code))
        .col_expr(jobs::Column::ErrorCode, Expr::value(f.error_code))
        .col_expr(jobs::Column::ErrorMessage, Expr::value(f.error_message))
        .col_expr(jobs::Column::FactsJson, Expr::value(f.facts_json))
        .col_expr(jobs::Column::FinishedAt, Expr::value(now.clone()))
        .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
        .filter(jobs::Column::Id.eq(id))
        .filter(jobs::Column::Status.eq("running"))
        .filter(jobs::Column::LockedBy.eq(worker))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// After a crash of the only process (SQLite: one process owns the database): running jobs are
/// marked cancelled (their resources run the work again: every job is idempotent), the dead
/// process's leases expire now (fences stay); queued jobs are returned to be started again.
/// `live` names this process's runtimes: their jobs and leases are left alone.
pub async fn recover(
    db: &impl ConnectionTrait,
    live: &[String],
) -> Result<(u64, Vec<jobs::Model>)> {
    use crate::store::entity::leases;
    use sea_orm::Condition;
    let now = clock::now();
    let res = jobs::Entity::update_many()
        .col_expr(jobs::Column::Status, Expr::value("cancelled"))
        .col_expr(jobs::Column::ErrorMessage, Expr::value(INTERRUPTED))
        .col_expr(jobs::Column::FinishedAt, Expr::value(now.clone()))
        .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
        .filter(jobs::Column::Status.eq("running"))
        .filter(
            Condition::any()
                .add(jobs::Column::LockedBy.is_null())
                .add(jobs::Column::LockedBy.is_not_in(live.iter().cloned())),
        )
        .exec(db)
        .await?;
    // holders of a live runtime: its id, and `<id>/…` (its jobs' node slots, its outcomes)
    let mut dead = Condition::all().add(leases::Column::Holder.is_not_in(live.iter().cloned()));
    for w in live {
        dead = dead.add(leases::Column::Holder.not_like(format!("{w}/%")));
    }
    leases::Entity::update_many()
        .col_expr(leases::Column::ExpiresAt, Expr::value(now_past()))
        .filter(dead)
        .exec(db)
        .await?;
    let queued = jobs::Entity::find()
        .filter(jobs::Column::Status.eq("queued"))
        .order_by_asc(jobs::Column::Id)
        .all(db)
        .await?;
    Ok((res.rows_affected, queued))
}

fn now_past() -> String {
    clock::format(time::OffsetDateTime::now_utc() - time::Duration::milliseconds(1))
}

pub async fn cancel_requested(db: &impl ConnectionTrait, id: &str) -> Result<bool> {
    Ok(jobs::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .is_some_and(|j| j.cancel_requested_at.is_some()))
}

/// Queued and running jobs by job type and status: count and oldest `created_at` (metrics).
pub async fn open_by_type(db: &impl ConnectionTrait) -> Result<Vec<(String, String, i64, String)>> {
    Ok(jobs::Entity::find()
        .select_only()
        .column(jobs::Column::JobType)
        .column(jobs::Column::Status)
        .column_as(jobs::Column::Id.count(), "n")
        .column_as(jobs::Column::CreatedAt.min(), "oldest")
        .filter(jobs::Column::Status.is_in(["queued", "running"]))
        .group_by(jobs::Column::JobType)
        .group_by(jobs::Column::Status)
        .order_by_asc(jobs::Column::JobType)
        .order_by_asc(jobs::Column::Status)
        .into_tuple()
        .all(db)
        .await?)
}

/// Jobs by job type, reason and status (metrics).
pub async fn runs_by_reason_and_status(
    db: &impl ConnectionTrait,
) -> Result<Vec<(String, String, String, i64)>> {
    Ok(jobs::Entity::find()
        .select_only()
        .column(jobs::Column::JobType)
        .column(jobs::Column::Reason)
        .column(jobs::Column::Status)
        .column_as(jobs::Column::Id.count(), "n")
        .group_by(jobs::Column::JobType)
        .group_by(jobs::Column::Reason)
        .group_by(jobs::Column::Status)
        .order_by_asc(jobs::Column::JobType)
        .order_by_asc(jobs::Column::Reason)
        .order_by_asc(jobs::Column::Status)
        .into_tuple()
        .all(db)
        .await?)
}

/// Failed jobs by job type and error code (`none` when the job recorded no code) (metrics).
pub async fn failures_by_code(db: &impl ConnectionTrait) -> Result<Vec<(String, String, i64)>> {
    let rows: Vec<(String, Option<String>, i64)> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::JobType)
        .column(jobs::Column::ErrorCode)
        .column_as(jobs::Column::Id.count(), "n")
        .filter(jobs::Column::Status.eq("failed"))
        .group_by(jobs::Column::JobType)
        .group_by(jobs::Column::ErrorCode)
        .order_by_asc(jobs::Column::JobType)
        .order_by_asc(jobs::Column::ErrorCode)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(t, c, n)| (t, c.unwrap_or_else(|| "none".into()), n))
        .collect())
}
