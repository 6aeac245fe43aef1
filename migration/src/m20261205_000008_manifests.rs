//! GitOps (issue 9): which resource a manifest name stands for, the apply set that last applied
//! it and its labels (`manifest_objects`), and the receipt of every apply (`apply_receipts`).
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ManifestObjects {
    Table,
    Kind,
    Scope,
    Name,
    ResourceId,
    ApplySet,
    Labels,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApplyReceipts {
    Table,
    Id,
    ApplySet,
    DryRun,
    Prune,
    Actor,
    Steps,
    Generations,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ManifestObjects::Table)
                    .col(string(ManifestObjects::Kind))
                    .col(string(ManifestObjects::Scope))
                    .col(string(ManifestObjects::Name))
                    .col(string(ManifestObjects::ResourceId))
                    .col(string_null(ManifestObjects::ApplySet))
                    .col(text(ManifestObjects::Labels).default("{}"))
                    .col(text(ManifestObjects::CreatedAt))
                    .col(text(ManifestObjects::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(ManifestObjects::Kind)
                            .col(ManifestObjects::Scope)
                            .col(ManifestObjects::Name),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_manifest_objects_resource")
                    .table(ManifestObjects::Table)
                    .col(ManifestObjects::Kind)
                    .col(ManifestObjects::ResourceId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_manifest_objects_apply_set")
                    .table(ManifestObjects::Table)
                    .col(ManifestObjects::ApplySet)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApplyReceipts::Table)
                    .col(string(ApplyReceipts::Id).primary_key())
                    .col(string_null(ApplyReceipts::ApplySet))
                    .col(boolean(ApplyReceipts::DryRun))
                    .col(boolean(ApplyReceipts::Prune))
                    .col(text(ApplyReceipts::Actor))
                    .col(text(ApplyReceipts::Steps))
                    .col(text(ApplyReceipts::Generations))
                    .col(text(ApplyReceipts::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_apply_receipts_apply_set")
                    .table(ApplyReceipts::Table)
                    .col(ApplyReceipts::ApplySet)
                    .to_owned(),
            )
            .await
    }
}
