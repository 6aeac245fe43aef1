//! Imports from a separate dump and wp-content tarball (issue 12, item 1: the formats operators
//! have): `imports` gets `database_url` + `database_sha256` (a `.sql` / `.sql.gz`) and
//! `content_url` + `content_sha256` (a wp-content tarball). Such an import has an empty
//! `archive_url`.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Imports {
    Table,
    DatabaseUrl,
    DatabaseSha256,
    ContentUrl,
    ContentSha256,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for col in [
            Imports::DatabaseUrl,
            Imports::DatabaseSha256,
            Imports::ContentUrl,
            Imports::ContentSha256,
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
