//! The audit log, newest first.
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::auth::Auth;
use super::error::ApiError;
use super::model::AuditPage;
use super::{page_limit, state, Tag};
use crate::error_response;
use crate::store;

error_response!(ListError { BadRequest = 400, Unauthorized = 401 });

pub struct AuditApi;

#[OpenApi(prefix_path = "/audit", tag = "Tag::Audit")]
impl AuditApi {
    /// List audit entries, newest first; `cursor` reads older ones.
    #[oai(path = "/", method = "get", operation_id = "listAudit")]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        resource_id: Query<Option<String>>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<AuditPage>, ListError> {
        let st = state(req)?;
        let limit = page_limit(limit.0)?;
        let before = super::cursor(cursor.0)?;
        let resource_id = resource_id
            .0
            .map(|v| {
                if v.len() <= 200 && !v.chars().any(char::is_control) {
                    Ok(v)
                } else {
                    Err(ApiError::invalid("resource_id", "resource_id is malformed"))
                }
            })
            .transpose()?;
        let rows = store::audit::list(&st.db, before.as_deref(), resource_id.as_deref(), limit)
            .await
            .map_err(ApiError::from)?;
        let next = super::next_cursor(&rows, limit, |r| &r.id);
        Ok(Json(AuditPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }
}
