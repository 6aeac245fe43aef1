//! Domains get what TLS by reconciliation needs: the `www.` redirect and the TLS mode (`acme`,
//! `custom` with an uploaded certificate whose key lives in the secret store, or `none`). The
//! primary domain is the environment's `primary_domain_id` (from the initial schema). Environments
//! get their page cache's TTL.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Environments {
    Table,
    FastcgiCacheTtlSeconds,
}

#[derive(DeriveIden)]
enum Domains {
    Table,
    WwwRedirect,
    TlsMode,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Domains::Table)
                    .add_column(boolean(Domains::WwwRedirect).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Domains::Table)
                    .add_column(
                        text(Domains::TlsMode)
                            .default("acme")
                            .check(Expr::col(Domains::TlsMode).is_in(["acme", "custom", "none"])),
                    )
                    .to_owned(),
            )
            .await?;
        // The page cache's lifetime per environment (nginx `fastcgi_cache_valid`).
        manager
            .alter_table(
                Table::alter()
                    .table(Environments::Table)
                    .add_column(big_integer(Environments::FastcgiCacheTtlSeconds).default(3600))
                    .to_owned(),
            )
            .await
    }
}
