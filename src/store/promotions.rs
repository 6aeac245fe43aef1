//! Promotions, drift baselines and drift checks: the questions the API and the runtime ask.
use sea_orm::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ConnectionTrait, ExprTrait, QueryOrder, QuerySelect};

use super::entity::{backups, drift_baselines, drift_checks, environments, promotions};
use super::resources::Page;
use super::Result;
use crate::{clock, ids};

/// Pending or running: the promotion still owns its source and production.
pub const IN_PROGRESS: [&str; 2] = ["pending", "running"];

pub struct NewPromotion<'a> {
    pub source_environment_id: &'a str,
    pub target_environment_id: &'a str,
    pub preset: &'a str,
}

pub async fn create(db: &impl ConnectionTrait, p: NewPromotion<'_>) -> Result<promotions::Model> {
    let now = clock::now();
    let m = promotions::ActiveModel {
        id: Set(ids::new_id()),
        source_environment_id: Set(p.source_environment_id.to_string()),
        target_environment_id: Set(p.target_environment_id.to_string()),
        promotion_preset: Set(p.preset.to_string()),
        drift_check_id: Set(None),
        pre_backup_id: Set(None),
        finished_at: Set(None),
        generation: Set(1),
        observed_generation: Set(0),
        status: Set("pending".into()),
        conditions: Set("[]".into()),
        state_version: Set(1),
        deletion_requested_at: Set(None),
        reconcile_attempts: Set(0),
        last_error_code: Set(None),
        observed: Set(None),
        observed_at: Set(None),
        created_at: Set(now.clone()),
        updated_at: Set(now),
        result_json: Set(None),
        release_id: Set(None),
    };
    Ok(m.insert(db).await?)
}

pub async fn by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<promotions::Model>> {
    Ok(promotions::Entity::find_by_id(id.to_string())
        .one(db)
        .await?)
}

/// Promotions from or into the environment, oldest first.
pub async fn of_environment(
    db: &impl ConnectionTrait,
    environment_id: &str,
    page: &Page,
) -> Result<Vec<promotions::Model>> {
    let q = promotions::Entity::find().filter(
        promotions::Column::SourceEnvironmentId
            .eq(environment_id)
            .or(promotions::Column::TargetEnvironmentId.eq(environment_id)),
    );
    page.of(db, q, promotions::Column::Id).await
}

/// A pending or running promotion whose source or target is the environment.
pub async fn active_for(
    db: &impl ConnectionTrait,
    environment_id: &str,
) -> Result<Option<promotions::Model>> {
    Ok(promotions::Entity::find()
        .filter(
            promotions::Column::SourceEnvironmentId
                .eq(environment_id)
                .or(promotions::Column::TargetEnvironmentId.eq(environment_id)),
        )
        .filter(promotions::Column::Status.is_in(IN_PROGRESS))
        .one(db)
        .await?)
}

pub async fn ids_in_progress(db: &impl ConnectionTrait) -> Result<Vec<String>> {
    Ok(promotions::Entity::find()
        .select_only()
        .column(promotions::Column::Id)
        .filter(promotions::Column::Status.is_in(IN_PROGRESS))
        .into_tuple::<String>()
        .all(db)
        .await?)
}

/// The newest completed full backup of the environment completed at or after `since`, still
/// stored and not expired (`now`): the spec's "fresh" backup.
pub async fn fresh_full_backup(
    db: &impl ConnectionTrait,
    environment_id: &str,
    since: &str,
    now: &str,
) -> Result<Option<backups::Model>> {
    Ok(backups::Entity::find()
        .filter(backups::Column::EnvironmentId.eq(environment_id))
        .filter(backups::Column::BackupScope.eq("full"))
        .filter(backups::Column::CompletedAt.gte(since))
        .filter(backups::Column::DeletedAt.is_null())
        .filter(backups::Column::DeletionRequestedAt.is_null())
        .filter(backups::Column::RetentionUntil.gt(now))
        .order_by_desc(backups::Column::CompletedAt)
        .one(db)
        .await?)
}

pub async fn baseline_by_id(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<drift_baselines::Model>> {
    Ok(drift_baselines::Entity::find_by_id(id.to_string())
        .one(db)
        .await?)
}

pub async fn drift_check_by_id(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<drift_checks::Model>> {
    Ok(drift_checks::Entity::find_by_id(id.to_string())
        .one(db)
        .await?)
}

/// Stores a baseline of production for `environment_id` and makes it the environment's.
pub async fn record_baseline(
    db: &impl ConnectionTrait,
    environment_id: &str,
    production_environment_id: &str,
    preset: &str,
    db_checksums_json: String,
    file_manifest_json: String,
) -> Result<String> {
    let id = ids::new_id();
    drift_baselines::ActiveModel {
        id: Set(id.clone()),
        environment_id: Set(environment_id.to_string()),
        production_environment_id: Set(production_environment_id.to_string()),
        promotion_preset: Set(preset.to_string()),
        db_checksums_json: Set(db_checksums_json),
        file_manifest_json: Set(file_manifest_json),
        captured_at: Set(clock::now()),
    }
    .insert(db)
    .await?;
    environments::Entity::update_many()
        .col_expr(
            environments::Column::DriftBaselineId,
            Expr::value(id.clone()),
        )
        .col_expr(environments::Column::DriftStatus, Expr::value("clean"))
        .filter(environments::Column::Id.eq(environment_id))
        .exec(db)
        .await?;
    Ok(id)
}

pub struct NewDriftCheck<'a> {
    /// The environment being promoted (the baseline's owner).
    pub environment_id: &'a str,
    pub baseline_id: &'a str,
    pub promotion_id: Option<&'a str>,
    pub preset: &'a str,
    pub status: &'a str,
    pub db_checksums_json: Option<String>,
    pub file_checksums_json: Option<String>,
    pub result_json: Option<String>,
}

/// Stores a drift check and puts its result on the environment (`drift_status`, …).
pub async fn record_drift_check(db: &impl ConnectionTrait, c: NewDriftCheck<'_>) -> Result<String> {
    let id = ids::new_id();
    let now = clock::now();
    drift_checks::ActiveModel {
        id: Set(id.clone()),
        environment_id: Set(c.environment_id.to_string()),
        baseline_id: Set(c.baseline_id.to_string()),
        promotion_id: Set(c.promotion_id.map(str::to_string)),
        promotion_preset: Set(c.preset.to_string()),
        status: Set(c.status.to_string()),
        db_checksums_json: Set(c.db_checksums_json),
        file_checksums_json: Set(c.file_checksums_json),
        checked_at: Set(now.clone()),
        result_json: Set(c.result_json),
    }
    .insert(db)
    .await?;
    environments::Entity::update_many()
        .col_expr(environments::Column::DriftStatus, Expr::value(c.status))
        .col_expr(environments::Column::DriftCheckedAt, Expr::value(now))
        .col_expr(
            environments::Column::LastDriftCheckId,
            Expr::value(id.clone()),
        )
        .filter(environments::Column::Id.eq(c.environment_id))
        .exec(db)
        .await?;
    if let Some(pid) = c.promotion_id {
        promotions::Entity::update_many()
            .col_expr(promotions::Column::DriftCheckId, Expr::value(id.clone()))
            .filter(promotions::Column::Id.eq(pid))
            .exec(db)
            .await?;
    }
    Ok(id)
}
