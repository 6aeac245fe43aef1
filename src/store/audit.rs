//! The audit log: one entry per mutating API action, written in the action's own transaction.
use sea_orm::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect};

use super::entity::audit_logs;
use super::Result;
use crate::{clock, ids};

/// Who did it: the user, and the API token when the request carried one.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<String>,
    pub api_token_id: Option<String>,
}

pub async fn append(
    db: &impl ConnectionTrait,
    actor: &Actor,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    result: &str,
) -> Result<()> {
    let m = audit_logs::ActiveModel {
        id: Set(ids::new_id()),
        user_id: Set(actor.user_id.clone()),
        api_token_id: Set(actor.api_token_id.clone()),
        action: Set(action.to_string()),
        resource_type: Set(resource_type.to_string()),
        resource_id: Set(resource_id.to_string()),
        result: Set(result.to_string()),
        created_at: Set(clock::now()),
    };
    m.insert(db).await?;
    Ok(())
}

/// Newest first, keyset-paged by id.
pub async fn list(
    db: &impl ConnectionTrait,
    before: Option<&str>,
    resource_id: Option<&str>,
    limit: u64,
) -> Result<Vec<audit_logs::Model>> {
    let mut q = audit_logs::Entity::find();
    if let Some(b) = before {
        q = q.filter(audit_logs::Column::Id.lt(b));
    }
    if let Some(r) = resource_id {
        q = q.filter(audit_logs::Column::ResourceId.eq(r));
    }
    Ok(q.order_by_desc(audit_logs::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
