//! Jobs as the API reads them; the runtime's writes live with the runtime's queries.
use sea_orm::prelude::*;
use sea_orm::{ConnectionTrait, PaginatorTrait, QueryOrder, QuerySelect};

use super::entity::{job_logs, jobs};
use super::Result;

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub site_id: Option<String>,
    pub environment_id: Option<String>,
    pub node_id: Option<String>,
    pub status: Option<String>,
    /// Keyset cursor: jobs older than this id (newest first).
    pub before: Option<String>,
    pub limit: u64,
}

pub async fn list(db: &impl ConnectionTrait, f: &JobFilter) -> Result<Vec<jobs::Model>> {
    let mut q = jobs::Entity::find();
    if let Some(v) = &f.site_id {
        q = q.filter(jobs::Column::SiteId.eq(v.as_str()));
    }
    if let Some(v) = &f.environment_id {
        q = q.filter(jobs::Column::EnvironmentId.eq(v.as_str()));
    }
    if let Some(v) = &f.node_id {
        q = q.filter(jobs::Column::NodeId.eq(v.as_str()));
    }
    if let Some(v) = &f.status {
        q = q.filter(jobs::Column::Status.eq(v.as_str()));
    }
    if let Some(v) = &f.before {
        q = q.filter(jobs::Column::Id.lt(v.as_str()));
    }
    Ok(q.order_by_desc(jobs::Column::Id)
        .limit(f.limit)
        .all(db)
        .await?)
}

pub async fn by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<jobs::Model>> {
    Ok(jobs::Entity::find_by_id(id.to_string()).one(db).await?)
}

pub async fn log(db: &impl ConnectionTrait, id: &str) -> Result<Option<String>> {
    Ok(job_logs::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .map(|l| l.log))
}

pub async fn count_with_status(db: &impl ConnectionTrait, status: &str) -> Result<u64> {
    Ok(jobs::Entity::find()
        .filter(jobs::Column::Status.eq(status))
        .count(db)
        .await?)
}

/// Playbook runs launched so far (every job row is one), by job type and reason.
pub async fn runs_by_reason(db: &impl ConnectionTrait) -> Result<Vec<(String, String, i64)>> {
    Ok(jobs::Entity::find()
        .select_only()
        .column(jobs::Column::JobType)
        .column(jobs::Column::Reason)
        .column_as(jobs::Column::Id.count(), "runs")
        .group_by(jobs::Column::JobType)
        .group_by(jobs::Column::Reason)
        .order_by_asc(jobs::Column::JobType)
        .order_by_asc(jobs::Column::Reason)
        .into_tuple()
        .all(db)
        .await?)
}

/// Cancels a queued job at once and asks a running one to stop. Returns the status after the
/// request, or `None` when the job has already finished.
pub async fn request_cancel(
    db: &impl ConnectionTrait,
    job: &jobs::Model,
) -> Result<Option<String>> {
    use sea_orm::sea_query::Expr;
    let now = crate::clock::now();
    match job.status.as_str() {
        "queued" => {
            let res = jobs::Entity::update_many()
                .col_expr(jobs::Column::Status, Expr::value("cancelled"))
                .col_expr(jobs::Column::CancelRequestedAt, Expr::value(now.clone()))
                .col_expr(jobs::Column::FinishedAt, Expr::value(now.clone()))
                .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
                .filter(jobs::Column::Id.eq(job.id.as_str()))
                .filter(jobs::Column::Status.eq("queued"))
                .exec(db)
                .await?;
            Ok((res.rows_affected == 1).then(|| "cancelled".to_string()))
        }
        "running" => {
            jobs::Entity::update_many()
                .col_expr(jobs::Column::CancelRequestedAt, Expr::value(now.clone()))
                .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
                .filter(jobs::Column::Id.eq(job.id.as_str()))
                .exec(db)
                .await?;
            Ok(Some("running".to_string()))
        }
        _ => Ok(None),
    }
}
