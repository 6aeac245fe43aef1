//! Releases of an environment: declaring one (deploy, update, promotion), choosing an earlier one
//! (rollback), recording what the node made of it, and the reads the API answers.
//!
//! Declaring or choosing a release is a spec change of the environment: `desired_release_id` is
//! set, `generation` and `state_version` move, and `release_generation` remembers that this
//! generation changed nothing but the release (the reconciler runs the release work for it, not a
//! converge). Callers append the event and the audit entry in the same transaction.
use sea_orm::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

use super::entity::{environments, releases};
use super::resources::cas_update;
use super::Result;
use crate::{clock, ids};

/// Judged by nobody yet.
pub const PENDING: &str = "pending";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

pub struct NewRelease<'a> {
    /// `git`, `upload`, `update` or `promotion`.
    pub source_type: &'a str,
    pub source_ref: &'a str,
    pub notes: Option<String>,
    /// JSON text (e.g. what a promotion or update plans to change).
    pub details: Option<String>,
}

/// Inserts a `pending` release and makes it the environment's desired release (a spec change:
/// generation and state_version move). The directory is `releases/<release id>` on the node.
pub async fn declare(
    db: &impl ConnectionTrait,
    env: &environments::Model,
    r: NewRelease<'_>,
) -> Result<releases::Model> {
    declare_with(db, env, r, Vec::new()).await
}

/// [`declare`] with more spec columns changed in the same write (an update request's
/// `update_scope` / `update_requested_at`).
pub async fn declare_with(
    db: &impl ConnectionTrait,
    env: &environments::Model,
    r: NewRelease<'_>,
    extra: Vec<(&'static str, sea_orm::sea_query::SimpleExpr)>,
) -> Result<releases::Model> {
    let id = ids::new_id();
    let m = releases::ActiveModel {
        id: Set(id.clone()),
        environment_id: Set(env.id.clone()),
        source_type: Set(r.source_type.to_string()),
        source_ref: Set(r.source_ref.to_string()),
        path: Set(format!("releases/{id}")),
        health_status: Set(PENDING.into()),
        notes: Set(r.notes),
        created_at: Set(clock::now()),
        details: Set(r.details),
        deployed_at: Set(None),
    }
    .insert(db)
    .await?;
    let mut changes = vec![
        ("desired_release_id", Expr::value(id.as_str())),
        ("release_generation", Expr::value(env.generation + 1)),
    ];
    changes.extend(extra);
    cas_update::<environments::Entity>(db, "environment", &env.id, env.state_version, changes)
        .await?;
    Ok(m)
}

/// Records the backup an update release rolls back to (in its `details`).
pub async fn set_details(db: &impl ConnectionTrait, id: &str, details: &str) -> Result<()> {
    releases::Entity::update_many()
        .col_expr(releases::Column::Details, Expr::value(details))
        .filter(releases::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Makes an existing release of the environment its desired one (rollback, or a retry of an
/// unhealthy one declared again). A spec change like [`declare`].
pub async fn choose(
    db: &impl ConnectionTrait,
    env: &environments::Model,
    release_id: &str,
) -> Result<()> {
    cas_update::<environments::Entity>(
        db,
        "environment",
        &env.id,
        env.state_version,
        vec![
            ("desired_release_id", Expr::value(release_id)),
            ("release_generation", Expr::value(env.generation + 1)),
        ],
    )
    .await
}

pub async fn by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<releases::Model>> {
    Ok(releases::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// The environment's releases, newest first.
pub async fn of_environment(
    db: &impl ConnectionTrait,
    environment_id: &str,
) -> Result<Vec<releases::Model>> {
    Ok(releases::Entity::find()
        .filter(releases::Column::EnvironmentId.eq(environment_id))
        .order_by_desc(releases::Column::CreatedAt)
        .order_by_desc(releases::Column::Id)
        .all(db)
        .await?)
}

/// What the node made of a release: its health (with the reason when unhealthy), what changed,
/// and when it went live (None: it did not).
pub async fn record_outcome(
    db: &impl ConnectionTrait,
    id: &str,
    health_status: &str,
    notes: Option<String>,
    details: Option<String>,
    deployed_at: Option<String>,
) -> Result<()> {
    let mut q = releases::Entity::update_many()
        .col_expr(releases::Column::HealthStatus, Expr::value(health_status))
        .col_expr(releases::Column::Notes, Expr::value(notes));
    if details.is_some() {
        q = q.col_expr(releases::Column::Details, Expr::value(details));
    }
    if deployed_at.is_some() {
        q = q.col_expr(releases::Column::DeployedAt, Expr::value(deployed_at));
    }
    q.filter(releases::Column::Id.eq(id)).exec(db).await?;
    Ok(())
}

/// The release the node serves now (runtime-owned column, no spec change).
pub async fn set_current(
    db: &impl ConnectionTrait,
    environment_id: &str,
    release_id: Option<&str>,
) -> Result<()> {
    environments::Entity::update_many()
        .col_expr(
            environments::Column::CurrentReleaseId,
            Expr::value(release_id.map(str::to_string)),
        )
        .filter(environments::Column::Id.eq(environment_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Removes the rows of a finalized environment.
pub async fn delete_of_environment(db: &impl ConnectionTrait, environment_id: &str) -> Result<()> {
    releases::Entity::delete_many()
        .filter(releases::Column::EnvironmentId.eq(environment_id))
        .exec(db)
        .await?;
    Ok(())
}
