//! Why a job was launched (`create`, `spec_change`, `drift`, `retry`, `reset`, `delete`,
//! `provision`, …): shown with the job and counted in the metrics, so needless work is visible.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Reason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(text(Jobs::Reason).default("unknown"))
                    .to_owned(),
            )
            .await
    }
}
