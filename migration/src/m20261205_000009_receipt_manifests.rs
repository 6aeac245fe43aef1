//! An apply's receipt keeps the manifests it applied (secrets only as `{env: VAR}` references):
//! the sync status of an apply set plans them again against the current desired state.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApplyReceipts {
    Table,
    Manifests,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApplyReceipts::Table)
                    .add_column(ColumnDef::new(ApplyReceipts::Manifests).text().null())
                    .to_owned(),
            )
            .await
    }
}
