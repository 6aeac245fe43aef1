//! Backups you can trust (issue 7): why a backup was taken (`reason`), the schedule that took it,
//! its manifest (artifacts, sizes, SHA-256, WordPress and PHP versions) and when a restore drill
//! last proved it restorable (`verified_at`); backup schedules per environment; restores that are
//! drills into a scratch environment.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Backups {
    Table,
    Reason,
    ScheduleId,
    Manifest,
    VerifiedAt,
}

#[derive(DeriveIden)]
enum Restores {
    Table,
    Drill,
    ScratchEnvironmentId,
}

#[derive(DeriveIden)]
enum Environments {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum BackupSchedules {
    Table,
    Id,
    EnvironmentId,
    IntervalMinutes,
    Cron,
    BackupScope,
    KeepLast,
    KeepDays,
    Drill,
    Enabled,
    LastRunAt,
    NextRunAt,
    StateVersion,
    CreatedAt,
    UpdatedAt,
}

const REASONS: [&str; 5] = ["operator", "schedule", "pre_restore", "drill", "gate"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        let add = |col: ColumnDef| {
            Table::alter()
                .table(Backups::Table)
                .add_column(col)
                .to_owned()
        };
        manager
            .alter_table(add(text(Backups::Reason)
                .default("operator")
                .check(Expr::col(Backups::Reason).is_in(REASONS))
                .to_owned()))
            .await?;
        manager
            .alter_table(add(string_null(Backups::ScheduleId)))
            .await?;
        manager
            .alter_table(add(text_null(Backups::Manifest)))
            .await?;
        manager
            .alter_table(add(text_null(Backups::VerifiedAt)))
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Restores::Table)
                    .add_column(boolean(Restores::Drill).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Restores::Table)
                    .add_column(string_null(Restores::ScratchEnvironmentId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BackupSchedules::Table)
                    .col(string(BackupSchedules::Id).primary_key())
                    .col(string(BackupSchedules::EnvironmentId))
                    .col(
                        big_integer_null(BackupSchedules::IntervalMinutes)
                            .check(Expr::col(BackupSchedules::IntervalMinutes).gte(1)),
                    )
                    .col(text_null(BackupSchedules::Cron))
                    .col(text(BackupSchedules::BackupScope).check(
                        Expr::col(BackupSchedules::BackupScope).is_in(["db", "files", "full"]),
                    ))
                    .col(
                        big_integer_null(BackupSchedules::KeepLast)
                            .check(Expr::col(BackupSchedules::KeepLast).gte(1)),
                    )
                    .col(
                        big_integer_null(BackupSchedules::KeepDays)
                            .check(Expr::col(BackupSchedules::KeepDays).gte(1)),
                    )
                    .col(boolean(BackupSchedules::Drill).default(false))
                    .col(boolean(BackupSchedules::Enabled).default(true))
                    .col(text_null(BackupSchedules::LastRunAt))
                    .col(text_null(BackupSchedules::NextRunAt))
                    .col(big_integer(BackupSchedules::StateVersion).default(1))
                    .col(text(BackupSchedules::CreatedAt))
                    .col(text(BackupSchedules::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_backup_schedules_environment_id")
                            .from(BackupSchedules::Table, BackupSchedules::EnvironmentId)
                            .to(Environments::Table, Environments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_backup_schedules_environment_id")
                    .table(BackupSchedules::Table)
                    .col(BackupSchedules::EnvironmentId)
                    .to_owned(),
            )
            .await
    }
}
