//! Nodes: the servers Pressluft manages, the control plane's own host included.
use sea_orm::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, PaginatorTrait, QuerySelect};

use super::entity::{environments, nodes};
use super::resources::Page;
use super::{Result, StoreError};
use crate::{clock, ids};

pub struct NewNode<'a> {
    pub name: &'a str,
    pub hostname: &'a str,
    pub public_ip: Option<&'a str>,
    pub ssh_port: i64,
    pub ssh_user: &'a str,
    pub is_local: bool,
}

pub async fn create(db: &impl ConnectionTrait, n: NewNode<'_>) -> Result<nodes::Model> {
    let now = clock::now();
    let m = nodes::ActiveModel {
        id: Set(ids::new_id()),
        name: Set(n.name.to_string()),
        hostname: Set(n.hostname.to_string()),
        public_ip: Set(n.public_ip.map(str::to_string)),
        ssh_port: Set(n.ssh_port),
        ssh_user: Set(n.ssh_user.to_string()),
        is_local: Set(n.is_local),
        host_key: Set(None),
        last_seen_at: Set(None),
        provision_requested_at: Set(None),
        generation: Set(1),
        observed_generation: Set(0),
        status: Set("provisioning".into()),
        conditions: Set("[]".into()),
        state_version: Set(1),
        deletion_requested_at: Set(None),
        reconcile_attempts: Set(0),
        last_error_code: Set(None),
        observed: Set(None),
        observed_at: Set(None),
        created_at: Set(now.clone()),
        updated_at: Set(now),
    };
    Ok(m.insert(db).await?)
}

pub async fn by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<nodes::Model>> {
    Ok(nodes::Entity::find_by_id(id.to_string()).one(db).await?)
}

pub async fn local(db: &impl ConnectionTrait) -> Result<Option<nodes::Model>> {
    Ok(nodes::Entity::find()
        .filter(nodes::Column::IsLocal.eq(true))
        .filter(nodes::Column::DeletionRequestedAt.is_null())
        .one(db)
        .await?)
}

/// The node new sites go to when the request names none: the local node, else the only node.
pub async fn default_for_new_sites(db: &impl ConnectionTrait) -> Result<Option<nodes::Model>> {
    if let Some(n) = local(db).await? {
        return Ok(Some(n));
    }
    let all = nodes::Entity::find()
        .filter(nodes::Column::DeletionRequestedAt.is_null())
        .limit(2)
        .all(db)
        .await?;
    Ok(if all.len() == 1 {
        all.into_iter().next()
    } else {
        None
    })
}

pub async fn list(db: &impl ConnectionTrait, page: &Page) -> Result<Vec<nodes::Model>> {
    let q = nodes::Entity::find();
    page.of(db, q, nodes::Column::Id).await
}

pub async fn count_active(db: &impl ConnectionTrait) -> Result<u64> {
    Ok(nodes::Entity::find()
        .filter(nodes::Column::Status.eq("active"))
        .count(db)
        .await?)
}

pub async fn hosted_environments(db: &impl ConnectionTrait, node_id: &str) -> Result<u64> {
    Ok(environments::Entity::find()
        .filter(environments::Column::NodeId.eq(node_id))
        .count(db)
        .await?)
}

pub async fn set_host_key(db: &impl ConnectionTrait, id: &str, host_key: &str) -> Result<()> {
    let res = nodes::Entity::update_many()
        .col_expr(nodes::Column::HostKey, Expr::value(host_key))
        .filter(nodes::Column::Id.eq(id))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound("node"));
    }
    Ok(())
}

/// Stores what was observed about a node; `last_seen_at` moves only when it answered.
pub async fn record_observed(
    db: &impl ConnectionTrait,
    id: &str,
    observed_json: String,
    answered: bool,
) -> Result<()> {
    let now = clock::now();
    let mut q = nodes::Entity::update_many()
        .col_expr(nodes::Column::Observed, Expr::value(observed_json))
        .col_expr(nodes::Column::ObservedAt, Expr::value(now.clone()));
    if answered {
        q = q.col_expr(nodes::Column::LastSeenAt, Expr::value(now));
    }
    q.filter(nodes::Column::Id.eq(id)).exec(db).await?;
    Ok(())
}
