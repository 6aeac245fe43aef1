//! Imports of an existing WordPress site from an archive: the questions the API and the runtime
//! ask about them.
use sea_orm::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QuerySelect};

use super::entity::imports;
use super::resources::Page;
use super::Result;
use crate::{clock, ids};

pub struct NewImport<'a> {
    pub environment_id: &'a str,
    pub archive_url: &'a str,
    pub sha256: Option<&'a str>,
    pub source_url: Option<&'a str>,
    pub table_prefix: Option<&'a str>,
    /// The dump and wp-content tarball given separately (`archive_url` then empty).
    pub parts: Option<ImportParts<'a>>,
}

pub struct ImportParts<'a> {
    pub database_url: &'a str,
    pub database_sha256: Option<&'a str>,
    pub content_url: &'a str,
    pub content_sha256: Option<&'a str>,
}

pub async fn create(db: &impl ConnectionTrait, r: NewImport<'_>) -> Result<imports::Model> {
    let now = clock::now();
    let m = imports::ActiveModel {
        id: Set(ids::new_id()),
        environment_id: Set(r.environment_id.to_string()),
        archive_url: Set(r.archive_url.to_string()),
        pre_backup_id: Set(None),
        release_id: Set(None),
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
        sha256: Set(r.sha256.map(str::to_string)),
        source_url: Set(r.source_url.map(str::to_string)),
        table_prefix: Set(r.table_prefix.map(str::to_string)),
        result_json: Set(None),
        // the source columns of adoptions (set by store::adoptions)
        source_type: Set("archive".into()),
        ssh_host: Set(None),
        ssh_port: Set(None),
        ssh_user: Set(None),
        source_path: Set(None),
        source_host_key: Set(None),
        report: Set(None),
        database_url: Set(r.parts.as_ref().map(|p| p.database_url.to_string())),
        database_sha256: Set(r
            .parts
            .as_ref()
            .and_then(|p| p.database_sha256.map(str::to_string))),
        content_url: Set(r.parts.as_ref().map(|p| p.content_url.to_string())),
        content_sha256: Set(r
            .parts
            .as_ref()
            .and_then(|p| p.content_sha256.map(str::to_string))),
    };
    Ok(m.insert(db).await?)
}

pub async fn by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<imports::Model>> {
    Ok(imports::Entity::find_by_id(id.to_string()).one(db).await?)
}

pub async fn list(
    db: &impl ConnectionTrait,
    environment_id: Option<&str>,
    page: &Page,
) -> Result<Vec<imports::Model>> {
    let mut q = imports::Entity::find();
    if let Some(e) = environment_id {
        q = q.filter(imports::Column::EnvironmentId.eq(e));
    }
    page.of(db, q, imports::Column::Id).await
}

/// The import that is pending or running for this environment, if any (at most one).
pub async fn active_for(
    db: &impl ConnectionTrait,
    environment_id: &str,
) -> Result<Option<imports::Model>> {
    Ok(imports::Entity::find()
        .filter(imports::Column::EnvironmentId.eq(environment_id))
        .filter(imports::Column::Status.is_in(["pending", "running"]))
        .one(db)
        .await?)
}

/// Imports not finished yet whose rollback point is this backup.
pub async fn waiting_on(db: &impl ConnectionTrait, backup_id: &str) -> Result<Vec<String>> {
    Ok(imports::Entity::find()
        .select_only()
        .column(imports::Column::Id)
        .filter(imports::Column::PreBackupId.eq(backup_id))
        .filter(imports::Column::Status.is_in(["pending", "running"]))
        .into_tuple::<String>()
        .all(db)
        .await?)
}

pub async fn ids_in_progress(db: &impl ConnectionTrait) -> Result<Vec<String>> {
    Ok(imports::Entity::find()
        .select_only()
        .column(imports::Column::Id)
        .filter(imports::Column::Status.is_in(["pending", "running"]))
        .into_tuple::<String>()
        .all(db)
        .await?)
}

/// Sets one optional id column (`pre_backup_id`, `release_id`) of an import.
pub async fn set_ref(
    db: &impl ConnectionTrait,
    id: &str,
    column: imports::Column,
    value: &str,
) -> Result<()> {
    imports::Entity::update_many()
        .col_expr(column, Expr::value(value))
        .filter(imports::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn set_result(db: &impl ConnectionTrait, id: &str, result_json: &str) -> Result<()> {
    imports::Entity::update_many()
        .col_expr(imports::Column::ResultJson, Expr::value(result_json))
        .filter(imports::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
