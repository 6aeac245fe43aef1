//! Backups, restores and backup schedules: the questions the API, the runtime and the scheduler
//! ask about them. (Creating a backup row is `resources::create_backup`.)
use sea_orm::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect};

use super::entity::{backup_schedules, backups, restores};
use super::resources::Page;
use super::Result;
use crate::{clock, ids};

// ---------------------------------------------------------------- backups

pub async fn list(
    db: &impl ConnectionTrait,
    environment_id: Option<&str>,
    status: Option<&str>,
    page: &Page,
) -> Result<Vec<backups::Model>> {
    let mut q = backups::Entity::find();
    if let Some(e) = environment_id {
        q = q.filter(backups::Column::EnvironmentId.eq(e));
    }
    if let Some(s) = status {
        q = q.filter(backups::Column::Status.eq(s));
    }
    page.of(db, q, backups::Column::Id).await
}

/// A schedule's completed backups whose artifacts are still stored, newest first.
pub async fn kept_by_schedule(
    db: &impl ConnectionTrait,
    schedule_id: &str,
) -> Result<Vec<backups::Model>> {
    Ok(backups::Entity::find()
        .filter(backups::Column::ScheduleId.eq(schedule_id))
        .filter(backups::Column::CompletedAt.is_not_null())
        .filter(backups::Column::DeletedAt.is_null())
        .filter(backups::Column::DeletionRequestedAt.is_null())
        .filter(backups::Column::Status.eq("completed"))
        .order_by_desc(backups::Column::CompletedAt)
        .all(db)
        .await?)
}

/// Retention expires a backup: its `retention_until` becomes now (the backup reconciler removes
/// its artifacts and shows it `expired`). A spec change: generation and state_version move.
pub async fn expire(db: &impl ConnectionTrait, id: &str) -> Result<()> {
    let now = clock::now();
    backups::Entity::update_many()
        .col_expr(backups::Column::RetentionUntil, Expr::value(now.clone()))
        .col_expr(
            backups::Column::Generation,
            Expr::col(backups::Column::Generation).add(1),
        )
        .col_expr(
            backups::Column::StateVersion,
            Expr::col(backups::Column::StateVersion).add(1),
        )
        .col_expr(backups::Column::UpdatedAt, Expr::value(now))
        .filter(backups::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn set_verified(db: &impl ConnectionTrait, id: &str, at: &str) -> Result<()> {
    backups::Entity::update_many()
        .col_expr(backups::Column::VerifiedAt, Expr::value(at))
        .filter(backups::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// When a backup of this environment was last proved restorable by a drill.
pub async fn last_verified_at(
    db: &impl ConnectionTrait,
    environment_id: &str,
) -> Result<Option<String>> {
    Ok(backups::Entity::find()
        .select_only()
        .column(backups::Column::VerifiedAt)
        .filter(backups::Column::EnvironmentId.eq(environment_id))
        .filter(backups::Column::VerifiedAt.is_not_null())
        .order_by_desc(backups::Column::VerifiedAt)
        .into_tuple::<Option<String>>()
        .one(db)
        .await?
        .flatten())
}

// ---------------------------------------------------------------- restores

pub struct NewRestore<'a> {
    pub environment_id: &'a str,
    pub backup_id: &'a str,
    pub drill: bool,
}

pub async fn create_restore(
    db: &impl ConnectionTrait,
    r: NewRestore<'_>,
) -> Result<restores::Model> {
    let now = clock::now();
    let m = restores::ActiveModel {
        id: Set(ids::new_id()),
        environment_id: Set(r.environment_id.to_string()),
        backup_id: Set(r.backup_id.to_string()),
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
        drill: Set(r.drill),
        scratch_environment_id: Set(r.drill.then(|| r.environment_id.to_string())),
    };
    Ok(m.insert(db).await?)
}

pub async fn restore_by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<restores::Model>> {
    Ok(restores::Entity::find_by_id(id.to_string()).one(db).await?)
}

pub async fn list_restores(
    db: &impl ConnectionTrait,
    environment_id: Option<&str>,
    page: &Page,
) -> Result<Vec<restores::Model>> {
    let mut q = restores::Entity::find();
    if let Some(e) = environment_id {
        q = q.filter(restores::Column::EnvironmentId.eq(e));
    }
    page.of(db, q, restores::Column::Id).await
}

/// The restore that is pending or running for this environment, if any (at most one).
pub async fn active_restore(
    db: &impl ConnectionTrait,
    environment_id: &str,
) -> Result<Option<restores::Model>> {
    Ok(restores::Entity::find()
        .filter(restores::Column::EnvironmentId.eq(environment_id))
        .filter(restores::Column::Status.is_in(["pending", "running"]))
        .one(db)
        .await?)
}

/// Restores not finished yet that wait for this backup (as theirs or as their rollback point).
pub async fn restores_waiting_on(
    db: &impl ConnectionTrait,
    backup_id: &str,
) -> Result<Vec<String>> {
    Ok(restores::Entity::find()
        .select_only()
        .column(restores::Column::Id)
        .filter(
            restores::Column::BackupId
                .eq(backup_id)
                .or(restores::Column::PreBackupId.eq(backup_id)),
        )
        .filter(restores::Column::Status.is_in(["pending", "running"]))
        .into_tuple::<String>()
        .all(db)
        .await?)
}

pub async fn drill_exists(db: &impl ConnectionTrait, backup_id: &str) -> Result<bool> {
    Ok(restores::Entity::find()
        .filter(restores::Column::BackupId.eq(backup_id))
        .filter(restores::Column::Drill.eq(true))
        .one(db)
        .await?
        .is_some())
}

pub async fn restore_ids_in_progress(db: &impl ConnectionTrait) -> Result<Vec<String>> {
    Ok(restores::Entity::find()
        .select_only()
        .column(restores::Column::Id)
        .filter(restores::Column::Status.is_in(["pending", "running"]))
        .into_tuple::<String>()
        .all(db)
        .await?)
}

// ---------------------------------------------------------------- schedules

pub struct NewSchedule<'a> {
    pub environment_id: &'a str,
    pub interval_minutes: Option<i64>,
    pub cron: Option<&'a str>,
    pub backup_scope: &'a str,
    pub keep_last: Option<i64>,
    pub keep_days: Option<i64>,
    pub drill: bool,
    pub enabled: bool,
    pub next_run_at: Option<String>,
}

pub async fn create_schedule(
    db: &impl ConnectionTrait,
    s: NewSchedule<'_>,
) -> Result<backup_schedules::Model> {
    let now = clock::now();
    let m = backup_schedules::ActiveModel {
        id: Set(ids::new_id()),
        environment_id: Set(s.environment_id.to_string()),
        interval_minutes: Set(s.interval_minutes),
        cron: Set(s.cron.map(str::to_string)),
        backup_scope: Set(s.backup_scope.to_string()),
        keep_last: Set(s.keep_last),
        keep_days: Set(s.keep_days),
        drill: Set(s.drill),
        enabled: Set(s.enabled),
        last_run_at: Set(None),
        next_run_at: Set(s.next_run_at),
        state_version: Set(1),
        created_at: Set(now.clone()),
        updated_at: Set(now),
    };
    Ok(m.insert(db).await?)
}

pub async fn schedule_by_id(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<backup_schedules::Model>> {
    Ok(backup_schedules::Entity::find_by_id(id.to_string())
        .one(db)
        .await?)
}

pub async fn schedules_of(
    db: &impl ConnectionTrait,
    environment_id: &str,
) -> Result<Vec<backup_schedules::Model>> {
    Ok(backup_schedules::Entity::find()
        .filter(backup_schedules::Column::EnvironmentId.eq(environment_id))
        .order_by_asc(backup_schedules::Column::Id)
        .all(db)
        .await?)
}

pub async fn schedule_ids(db: &impl ConnectionTrait) -> Result<Vec<String>> {
    Ok(backup_schedules::Entity::find()
        .select_only()
        .column(backup_schedules::Column::Id)
        .into_tuple::<String>()
        .all(db)
        .await?)
}

/// Writes the whole row (the caller changed fields of a model it read).
pub async fn save_schedule(
    db: &impl ConnectionTrait,
    mut m: backup_schedules::Model,
) -> Result<backup_schedules::Model> {
    m.updated_at = clock::now();
    let am: backup_schedules::ActiveModel = m.into();
    let am = sea_orm::ActiveModelTrait::reset_all(am);
    Ok(sea_orm::ActiveModelTrait::update(am, db).await?)
}

pub async fn delete_schedule(db: &impl ConnectionTrait, id: &str) -> Result<()> {
    backup_schedules::Entity::delete_by_id(id.to_string())
        .exec(db)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- drills

/// The preview base another environment of the same node uses, read back from its URL.
fn preview_base_like(url: &str) -> super::resources::PreviewBase {
    use super::resources::PreviewBase;
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.trim_end_matches('/');
    let base = host.split_once('.').map_or(host, |(_, b)| b);
    match base.strip_suffix(".sslip.io") {
        Some(ip) if scheme == "http" => PreviewBase::Sslip(ip.to_string()),
        _ => PreviewBase::Domain(base.to_string()),
    }
}

/// Declares a restore drill of `backup` (of `source`): a scratch `clone` environment of the same
/// site, on the same node, and a drill restore into it. The restore reconciler waits until the
/// scratch environment is Ready, restores, marks the backup verified, and deletes the scratch
/// environment through the normal deletion path.
pub async fn create_drill(
    db: &impl ConnectionTrait,
    backup: &backups::Model,
    source: &super::entity::environments::Model,
) -> Result<restores::Model> {
    let tag = ids::random_token(4);
    let env = super::resources::insert_environment(
        db,
        super::resources::NewEnvironment {
            site_id: &source.site_id,
            name: &format!("Restore drill {tag}"),
            slug: &format!("drill-{tag}"),
            environment_type: "clone",
            node_id: &source.node_id,
            source_environment_id: None,
            promotion_preset: &source.promotion_preset,
            preview_base: &preview_base_like(&source.preview_url),
            wp_admin_login: source.wp_admin_login.clone(),
        },
    )
    .await?;
    create_restore(
        db,
        NewRestore {
            environment_id: &env.id,
            backup_id: &backup.id,
            drill: true,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::resources::PreviewBase;

    #[test]
    fn preview_bases_read_back() {
        match preview_base_like("http://abc123.127-0-0-1.sslip.io") {
            PreviewBase::Sslip(ip) => assert_eq!(ip, "127-0-0-1"),
            other => panic!("{other:?}"),
        }
        match preview_base_like("https://abc123.preview.example.com/") {
            PreviewBase::Domain(d) => assert_eq!(d, "preview.example.com"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            preview_base_like("http://x.127-0-0-1.sslip.io").url("y"),
            "http://y.127-0-0-1.sslip.io"
        );
    }
}
