//! Adoptions (issue 12, item 2): an import whose source is a WordPress site reached over SSH.
//!
//! `imports` gets `source_type` (`archive`, the default for every existing row, or `ssh`), the
//! SSH location (`ssh_host`, `ssh_port`, `ssh_user`, `source_path`: the WordPress root), the
//! source's host key pinned when the adoption was declared (`source_host_key`, trust on first
//! use), and `report` (JSON: what the dry run found on the source).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Imports {
    Table,
    SourceType,
    SshHost,
    SshPort,
    SshUser,
    SourcePath,
    SourceHostKey,
    Report,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Imports::Table)
                    .add_column(
                        text(Imports::SourceType)
                            .default("archive")
                            .check(Expr::col(Imports::SourceType).is_in(["archive", "ssh"])),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Imports::Table)
                    .add_column(integer_null(Imports::SshPort))
                    .to_owned(),
            )
            .await?;
        for col in [
            Imports::SshHost,
            Imports::SshUser,
            Imports::SourcePath,
            Imports::SourceHostKey,
            Imports::Report,
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
        Ok(())
    }
}
