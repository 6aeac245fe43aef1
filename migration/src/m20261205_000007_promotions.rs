//! Promotions (issue 8 item 4): what a promotion did and what a drift check found.
//!
//! * `promotions.result_json`: the node's report of a promotion (tables synced and protected,
//!   files added/changed/removed, the new release, timings) or of its rollback.
//! * `promotions.release_id`: the `promotion` release it declared on production (built by the
//!   promotion's `env_promote`, see `releases`).
//! * `drift_checks.result_json`: what drifted (tables, files added/changed/removed) and the
//!   human reason the promotion's `DriftClean=False` condition repeats.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Promotions {
    Table,
    ResultJson,
    ReleaseId,
}

#[derive(DeriveIden)]
enum DriftChecks {
    Table,
    ResultJson,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Promotions::Table)
                    .add_column(ColumnDef::new(Promotions::ResultJson).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Promotions::Table)
                    .add_column(ColumnDef::new(Promotions::ReleaseId).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DriftChecks::Table)
                    .add_column(ColumnDef::new(DriftChecks::ResultJson).text().null())
                    .to_owned(),
            )
            .await
    }
}
