//! Jobs: how the runtime works, readable (with their logs) and cancellable; never a handle a
//! client must hold.
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{EventStream, Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::Auth;
use super::error::ApiError;
use super::model::{Job, JobPage};
use super::{page_limit, state, validate, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store;
use crate::store::jobs::JobFilter;

#[derive(Debug, Object)]
pub struct JobControlResponse {
    pub success: bool,
    /// The job's status after the request: `cancelled`, or `running` while it stops.
    pub status: String,
}

/// A piece of a job's log.
#[derive(Debug, Object)]
pub struct LogChunk {
    pub text: String,
}

#[derive(ApiResponse)]
pub enum LogStream {
    /// `text/event-stream` of log pieces until the job ends.
    #[oai(status = 200)]
    Ok(EventStream<futures_util::stream::BoxStream<'static, LogChunk>>),
}

#[derive(ApiResponse)]
pub enum JobLog {
    /// The full redacted log.
    #[oai(status = 200)]
    Ok(PlainText<String>),
}

error_response!(ListError { BadRequest = 400, Unauthorized = 401 });
error_response!(GetError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(CancelError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});

pub struct JobsApi;

#[OpenApi(prefix_path = "/jobs", tag = "Tag::Jobs")]
impl JobsApi {
    /// List jobs, newest first; filter by site, environment, node or status.
    #[oai(path = "/", method = "get", operation_id = "listJobs")]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        site_id: Query<Option<String>>,
        environment_id: Query<Option<String>>,
        node_id: Query<Option<String>>,
        status: Query<Option<String>>,
        limit: Query<Option<u64>>,
        /// Jobs older than this id.
        cursor: Query<Option<String>>,
    ) -> Result<Json<JobPage>, ListError> {
        let st = state(req)?;
        let limit = page_limit(limit.0)?;
        if let Some(s) = &status.0 {
            if !["queued", "running", "succeeded", "failed", "cancelled"].contains(&s.as_str()) {
                return Err(ApiError::invalid("status", "status must be a job status").into());
            }
        }
        let f = JobFilter {
            site_id: site_id
                .0
                .map(|v| validate::uuid("site_id", &v))
                .transpose()?,
            environment_id: environment_id
                .0
                .map(|v| validate::uuid("environment_id", &v))
                .transpose()?,
            node_id: node_id
                .0
                .map(|v| validate::uuid("node_id", &v))
                .transpose()?,
            status: status.0,
            before: super::cursor(cursor.0)?,
            limit,
        };
        let rows = store::jobs::list(&st.db, &f)
            .await
            .map_err(ApiError::from)?;
        let next = super::next_cursor(&rows, limit, |r| &r.id);
        Ok(Json(JobPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }

    /// Read a job.
    #[oai(path = "/:id", method = "get", operation_id = "getJob")]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Job>, GetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        Ok(Json(load(&st.db, &id).await?.into()))
    }

    /// Download a job's full log (secrets redacted).
    #[oai(path = "/:id/log", method = "get", operation_id = "getJobLog")]
    async fn log(&self, req: &Request, _auth: Auth, id: Path<String>) -> Result<JobLog, GetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        load(&st.db, &id).await?;
        let log = store::jobs::log(&st.db, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(JobLog::Ok(PlainText(log.unwrap_or_default())))
    }

    /// Follow a job's log live (server-sent events): each event is a new piece of the redacted
    /// log; the stream ends when the job has finished.
    #[oai(
        path = "/:id/log/stream",
        method = "get",
        operation_id = "streamJobLog"
    )]
    async fn log_stream(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<LogStream, GetError> {
        let st = state(req)?.clone();
        let id = validate::uuid("id", &id.0)?;
        load(&st.db, &id).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<LogChunk>(16);
        tokio::spawn(async move {
            let mut sent = 0usize;
            loop {
                let finished = match store::jobs::by_id(&st.db, &id).await {
                    Ok(Some(j)) => !matches!(j.status.as_str(), "queued" | "running"),
                    _ => true,
                };
                if let Ok(Some(log)) = store::jobs::log(&st.db, &id).await {
                    if log.len() > sent && log.is_char_boundary(sent) {
                        let chunk = log[sent..].to_string();
                        sent = log.len();
                        if tx.send(LogChunk { text: chunk }).await.is_err() {
                            return;
                        }
                    }
                }
                if finished {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(LogStream::Ok(EventStream::new(
            Box::pin(stream) as futures_util::stream::BoxStream<'static, LogChunk>
        )))
    }

    /// Cancel a queued or running job. A running job is stopped safely; its resource goes back
    /// into reconciliation as after a reset.
    #[oai(path = "/:id/cancel", method = "post", operation_id = "cancelJob")]
    async fn cancel(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
    ) -> Result<Json<JobControlResponse>, CancelError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let job = load(&tx, &id).await?;
        let status = crate::store::jobs::request_cancel(&tx, &job)
            .await
            .map_err(ApiError::from)?;
        let Some(status) = status else {
            return Err(ApiError::JobNotCancellable.into());
        };
        store::events::append(
            &tx,
            store::events::NewEvent {
                resource_type: "job",
                resource_id: &id,
                site_id: job.site_id.as_deref(),
                environment_id: job.environment_id.as_deref(),
                reason: "CancelRequested",
                message: format!("{} job cancel requested", job.job_type),
            },
        )
        .await
        .map_err(ApiError::from)?;
        store::audit::append(
            &tx,
            &auth.principal().actor(),
            "job.cancel",
            "job",
            &id,
            "accepted",
        )
        .await
        .map_err(ApiError::from)?;
        st.commit(tx).await?;
        st.notifier.changed(Kind::Job, &id);
        Ok(Json(JobControlResponse {
            success: true,
            status,
        }))
    }
}

async fn load(
    db: &impl sea_orm::ConnectionTrait,
    id: &str,
) -> Result<store::entity::jobs::Model, ApiError> {
    store::jobs::by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("job not found".into()))
}
