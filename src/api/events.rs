//! Events: the history of every resource, as a list and as a live server-sent-event stream.
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::Auth;
use super::error::ApiError;
use super::model::{Event, EventPage};
use super::{page_limit, state, validate, Tag};
use crate::error_response;
use crate::store;
use crate::store::events::EventFilter;

error_response!(ListError { BadRequest = 400, Unauthorized = 401 });

#[derive(ApiResponse)]
pub enum EventStreamResponse {
    /// `text/event-stream` of events as they are recorded, starting after `cursor`.
    #[oai(status = 200)]
    Ok(EventStream<BoxStream<'static, Event>>),
}

pub struct EventsApi;

fn filter(
    site_id: Option<String>,
    environment_id: Option<String>,
    resource_id: Option<String>,
    cursor: Option<String>,
    limit: u64,
) -> Result<EventFilter, ApiError> {
    Ok(EventFilter {
        site_id: site_id.map(|v| validate::uuid("site_id", &v)).transpose()?,
        environment_id: environment_id
            .map(|v| validate::uuid("environment_id", &v))
            .transpose()?,
        resource_id: resource_id
            .map(|v| validate::uuid("resource_id", &v))
            .transpose()?,
        after: super::cursor(cursor)?,
        newest_first: false,
        limit,
    })
}

#[OpenApi(prefix_path = "/events", tag = "Tag::Events")]
impl EventsApi {
    /// List events, oldest first after `cursor` (`next_cursor` continues from the last one), or
    /// with `order=desc` the newest first before `cursor` (`next_cursor` only when the page is
    /// full); filter by site, environment or resource.
    #[oai(path = "/", method = "get", operation_id = "listEvents")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        site_id: Query<Option<String>>,
        environment_id: Query<Option<String>>,
        resource_id: Query<Option<String>>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<String>>,
    ) -> Result<Json<EventPage>, ListError> {
        let st = state(req)?;
        let limit = page_limit(limit.0)?;
        let mut f = filter(site_id.0, environment_id.0, resource_id.0, cursor.0, limit)?;
        f.newest_first = match order.0.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(ApiError::invalid("order", "order must be asc or desc").into()),
        };
        let rows = store::events::list(&st.db, &f)
            .await
            .map_err(ApiError::from)?;
        let next = if f.newest_first {
            super::next_cursor(&rows, limit, |r| &r.id)
        } else {
            rows.last().map(|r| r.id.clone()).or(f.after)
        };
        Ok(Json(EventPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }

    /// Follow events live (server-sent events), starting after `cursor` (default: from now).
    #[oai(path = "/stream", method = "get", operation_id = "streamEvents")]
    async fn stream(
        &self,
        req: &Request,
        _auth: Auth,
        site_id: Query<Option<String>>,
        environment_id: Query<Option<String>>,
        resource_id: Query<Option<String>>,
        cursor: Query<Option<String>>,
    ) -> Result<EventStreamResponse, ListError> {
        let st = state(req)?.clone();
        let mut f = filter(site_id.0, environment_id.0, resource_id.0, cursor.0, 500)?;
        if f.after.is_none() {
            // Start from now: ids are time-ordered, so a fresh id is a cursor at the present.
            f.after = Some(crate::ids::new_id());
        }
        let mut wake = st.notifier.subscribe();
        let stream = async_stream(move |tx| async move {
            loop {
                match store::events::list(&st.db, &f).await {
                    Ok(rows) => {
                        for r in rows {
                            f.after = Some(r.id.clone());
                            if tx.send(Event::from(r)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream read failed");
                    }
                }
                // A client that went away ends the task even when no event came to send.
                if tx.is_closed() {
                    return;
                }
                // Woken by this process's writes and, on PostgreSQL, by the other replicas'
                // (LISTEN/NOTIFY, notify::bridge_postgres); rows are read from the table, so
                // events any replica wrote show; the timeout covers a missed wake-up. A closed
                // notifier means the process is shutting down.
                if let Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) =
                    tokio::time::timeout(Duration::from_secs(1), wake.recv()).await
                {
                    return;
                }
            }
        });
        Ok(EventStreamResponse::Ok(
            EventStream::new(stream).keep_alive(Duration::from_secs(15)),
        ))
    }
}

/// A stream fed by a task through a small channel; the task ends when the client goes away.
fn async_stream<F, Fut>(f: F) -> BoxStream<'static, Event>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream_from(rx).boxed()
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Event>,
) -> impl futures_util::Stream<Item = Event> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
