//! Releases (issue 8 items 2–4): deploys, rollbacks, updates and promotions all make release rows.
//!
//! * `releases` is rebuilt (SQLite cannot alter a CHECK) with wider enums: `source_type` ∈
//!   `git|upload|update|promotion|initial`, `health_status` ∈ `unknown|pending|healthy|unhealthy`
//!   (`pending` = declared, not judged yet), plus `details` (JSON: files added/changed/removed,
//!   component versions of an update) and `deployed_at` (when it last became `current`). No other
//!   table references `releases` by a foreign key, so the rebuild keeps every row and id.
//! * `environments.release_generation`: the generation whose only change was the declaration of a
//!   release (deploy, rollback, update request): the environment needs no converge for it, only
//!   the release work.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SOURCE_TYPE: &[&str] = &["git", "upload", "update", "promotion", "initial"];
const HEALTH_STATUS: &[&str] = &["unknown", "pending", "healthy", "unhealthy"];

#[derive(DeriveIden)]
enum Environments {
    Table,
    Id,
    ReleaseGeneration,
}

#[derive(DeriveIden)]
enum Releases {
    Table,
}

#[derive(DeriveIden)]
enum ReleasesV2 {
    Table,
    Id,
    EnvironmentId,
    SourceType,
    SourceRef,
    Path,
    HealthStatus,
    Notes,
    CreatedAt,
    Details,
    DeployedAt,
}

fn one_of<C: IntoIden + 'static>(column: C, values: &[&str]) -> Expr {
    Expr::col(column).is_in(values.iter().copied())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // One transaction: the rebuild is all or nothing on both backends (transactional DDL).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Environments::Table)
                    .add_column(
                        ColumnDef::new(Environments::ReleaseGeneration)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReleasesV2::Table)
                    .col(string(ReleasesV2::Id).primary_key())
                    .col(string(ReleasesV2::EnvironmentId))
                    .col(
                        text(ReleasesV2::SourceType)
                            .check(one_of(ReleasesV2::SourceType, SOURCE_TYPE)),
                    )
                    .col(text(ReleasesV2::SourceRef))
                    .col(text(ReleasesV2::Path))
                    .col(
                        text(ReleasesV2::HealthStatus)
                            .default("pending")
                            .check(one_of(ReleasesV2::HealthStatus, HEALTH_STATUS)),
                    )
                    .col(text_null(ReleasesV2::Notes))
                    .col(text(ReleasesV2::CreatedAt))
                    .col(text_null(ReleasesV2::Details))
                    .col(text_null(ReleasesV2::DeployedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_releases_v2_environment_id")
                            .from(ReleasesV2::Table, ReleasesV2::EnvironmentId)
                            .to(Environments::Table, Environments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO releases_v2 (id, environment_id, source_type, source_ref, path, \
             health_status, notes, created_at) SELECT id, environment_id, source_type, source_ref, \
             path, health_status, notes, created_at FROM releases",
        )
        .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_releases_environment_id")
                    .table(Releases::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Releases::Table).to_owned())
            .await?;
        manager
            .rename_table(
                Table::rename()
                    .table(ReleasesV2::Table, Releases::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_releases_environment_id")
                    .table(Releases::Table)
                    .col(ReleasesV2::EnvironmentId)
                    .col(ReleasesV2::CreatedAt)
                    .to_owned(),
            )
            .await
    }
}
