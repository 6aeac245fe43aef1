//! The event stream: what happened to which resource, appended in the same transaction as the
//! change it describes.
use sea_orm::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect};

use super::entity::events;
use super::Result;
use crate::{clock, ids};

#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub site_id: Option<&'a str>,
    pub environment_id: Option<&'a str>,
    /// One CamelCase word, e.g. `Created`, `SpecChanged`, `DeletionRequested`.
    pub reason: &'a str,
    pub message: String,
}

pub async fn append(db: &impl ConnectionTrait, e: NewEvent<'_>) -> Result<events::Model> {
    let m = events::ActiveModel {
        id: Set(ids::new_id()),
        resource_type: Set(e.resource_type.to_string()),
        resource_id: Set(e.resource_id.to_string()),
        site_id: Set(e.site_id.map(str::to_string)),
        environment_id: Set(e.environment_id.map(str::to_string)),
        reason: Set(e.reason.to_string()),
        message: Set(e.message),
        created_at: Set(clock::now()),
    };
    Ok(m.insert(db).await?)
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub site_id: Option<String>,
    pub environment_id: Option<String>,
    pub resource_id: Option<String>,
    /// Only events with an id greater than this (ids are time-ordered); with `newest_first`,
    /// only events with a smaller id.
    pub after: Option<String>,
    /// Newest first (a page of the latest events, paging back in time).
    pub newest_first: bool,
    pub limit: u64,
}

/// Events in id order after the cursor (oldest first), or before it (`newest_first`).
pub async fn list(db: &impl ConnectionTrait, f: &EventFilter) -> Result<Vec<events::Model>> {
    let mut q = events::Entity::find();
    if let Some(s) = &f.site_id {
        q = q.filter(events::Column::SiteId.eq(s.as_str()));
    }
    if let Some(e) = &f.environment_id {
        q = q.filter(events::Column::EnvironmentId.eq(e.as_str()));
    }
    if let Some(r) = &f.resource_id {
        q = q.filter(events::Column::ResourceId.eq(r.as_str()));
    }
    if f.newest_first {
        if let Some(a) = &f.after {
            q = q.filter(events::Column::Id.lt(a.as_str()));
        }
        return Ok(q
            .order_by_desc(events::Column::Id)
            .limit(f.limit)
            .all(db)
            .await?);
    }
    if let Some(a) = &f.after {
        q = q.filter(events::Column::Id.gt(a.as_str()));
    }
    Ok(q.order_by_asc(events::Column::Id)
        .limit(f.limit)
        .all(db)
        .await?)
}
