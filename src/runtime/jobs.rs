//! The runtime's job rows: intent recorded before acting, claimed atomically, finished in one
//! transaction with the facts they report.
use sea_orm::prelude::*;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, PaginatorTrait, QueryOrder};

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

/// After a crash: running jobs of this installation are marked cancelled (their resources run
/// the work again: every job is idempotent); queued jobs are returned to be started again.
pub async fn recover(db: &impl ConnectionTrait) -> Result<(u64, Vec<jobs::Model>)> {
    let now = clock::now();
    let res = jobs::Entity::update_many()
        .col_expr(jobs::Column::Status, Expr::value("cancelled"))
        .col_expr(
            jobs::Column::ErrorMessage,
            Expr::value(
                "interrupted: the control plane stopped while this job ran; the work is retried",
            ),
        )
        .col_expr(jobs::Column::FinishedAt, Expr::value(now.clone()))
        .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
        .filter(jobs::Column::Status.eq("running"))
        .exec(db)
        .await?;
    let queued = jobs::Entity::find()
        .filter(jobs::Column::Status.eq("queued"))
        .order_by_asc(jobs::Column::Id)
        .all(db)
        .await?;
    Ok((res.rows_affected, queued))
}

pub async fn cancel_requested(db: &impl ConnectionTrait, id: &str) -> Result<bool> {
    Ok(jobs::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .is_some_and(|j| j.cancel_requested_at.is_some()))
}
