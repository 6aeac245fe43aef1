//! Temporary clones: an environment may carry `expires_at` (RFC 3339 UTC); once it has passed, the
//! environment loop requests the environment's deletion (event `Expired`).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Environments {
    Table,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Environments::Table)
                    .add_column(ColumnDef::new(Environments::ExpiresAt).text().null())
                    .to_owned(),
            )
            .await
    }
}
