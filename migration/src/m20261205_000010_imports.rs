//! Imports (issue 12): an existing WordPress site imported from an archive into an environment.
//!
//! * `imports` gets what a request declares besides `archive_url`: the pinned `sha256`, the
//!   `source_url` to rewrite from, the archive's `table_prefix`, and `result_json` (what the node
//!   reported: sizes, tables renamed, URL rewrites, timings).
//! * `releases` is rebuilt (SQLite cannot alter a CHECK) with `import` added to `source_type`:
//!   an import is recorded as a release of its environment. No other table references `releases`
//!   by a foreign key, so the rebuild keeps every row and id.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SOURCE_TYPE: &[&str] = &["git", "upload", "update", "promotion", "initial", "import"];
const HEALTH_STATUS: &[&str] = &["unknown", "pending", "healthy", "unhealthy"];

#[derive(DeriveIden)]
enum Imports {
    Table,
    Sha256,
    SourceUrl,
    TablePrefix,
    ResultJson,
}

#[derive(DeriveIden)]
enum Environments {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Releases {
    Table,
}

#[derive(DeriveIden)]
enum ReleasesV3 {
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
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for col in [
            Imports::Sha256,
            Imports::SourceUrl,
            Imports::TablePrefix,
            Imports::ResultJson,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Imports::Table)
                        .add_column(ColumnDef::new(col).text().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ReleasesV3::Table)
                    .col(string(ReleasesV3::Id).primary_key())
                    .col(string(ReleasesV3::EnvironmentId))
                    .col(
                        text(ReleasesV3::SourceType)
                            .check(one_of(ReleasesV3::SourceType, SOURCE_TYPE)),
                    )
                    .col(text(ReleasesV3::SourceRef))
                    .col(text(ReleasesV3::Path))
                    .col(
                        text(ReleasesV3::HealthStatus)
                            .default("pending")
                            .check(one_of(ReleasesV3::HealthStatus, HEALTH_STATUS)),
                    )
                    .col(text_null(ReleasesV3::Notes))
                    .col(text(ReleasesV3::CreatedAt))
                    .col(text_null(ReleasesV3::Details))
                    .col(text_null(ReleasesV3::DeployedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_releases_v3_environment_id")
                            .from(ReleasesV3::Table, ReleasesV3::EnvironmentId)
                            .to(Environments::Table, Environments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO releases_v3 (id, environment_id, source_type, source_ref, path, \
             health_status, notes, created_at, details, deployed_at) SELECT id, environment_id, \
             source_type, source_ref, path, health_status, notes, created_at, details, deployed_at \
             FROM releases",
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
                    .table(ReleasesV3::Table, Releases::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_releases_environment_id")
                    .table(Releases::Table)
                    .col(ReleasesV3::EnvironmentId)
                    .col(ReleasesV3::CreatedAt)
                    .to_owned(),
            )
            .await
    }
}
