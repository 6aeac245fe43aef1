//! The initial schema: every table of the product (spec `resources-and-states.md` §1–§3).
//!
//! Written with the sea-query schema builder so that the same statements run on SQLite and
//! PostgreSQL. Conventions: ids are UUIDv7 strings, timestamps are RFC 3339 UTC text, JSON blobs
//! are text, booleans are `boolean`, counters are `big_integer`. Every enum column carries a
//! CHECK with the spec's exact values (§2).
//!
//! Foreign keys exist where both ends are created in order. References that would form a cycle
//! (`sites.primary_environment_id`, `environments.primary_domain_id`, `*_release_id`,
//! `drift_baseline_id`, `last_drift_check_id`) are plain text columns checked by the application:
//! PostgreSQL cannot reference a table that does not exist yet and SQLite cannot add a foreign key
//! to an existing table. History tables (`jobs`, `events`, `audit_logs`) and the operation
//! resources (`restores`, `promotions`, `imports`) record ids as text without foreign keys, so
//! they outlive the resources they name and never block a teardown.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SITE_STATUS: &[&str] = &[
    "provisioning",
    "active",
    "cloning",
    "deploying",
    "restoring",
    "deleting",
    "failed",
];
const ENVIRONMENT_TYPE: &[&str] = &["production", "staging", "clone"];
const NODE_STATUS: &[&str] = &["active", "provisioning", "unreachable", "decommissioned"];
const RELEASE_SOURCE_TYPE: &[&str] = &["git", "upload"];
const RELEASE_HEALTH_STATUS: &[&str] = &["unknown", "healthy", "unhealthy"];
const BACKUP_SCOPE: &[&str] = &["db", "files", "full"];
const BACKUP_STATUS: &[&str] = &["pending", "running", "completed", "failed", "expired"];
const STORAGE_TYPE: &[&str] = &["s3", "local"];
const OPERATION_STATUS: &[&str] = &["pending", "running", "blocked", "succeeded", "failed"];
const TLS_STATUS: &[&str] = &["pending", "active", "failed", "disabled"];
const TLS_ISSUER: &[&str] = &["letsencrypt"];
const JOB_STATUS: &[&str] = &["queued", "running", "succeeded", "failed", "cancelled"];
const USER_ROLE: &[&str] = &["admin"];
const PROMOTION_PRESET: &[&str] = &["content-protect", "commerce-protect"];
const DRIFT_STATUS: &[&str] = &["unknown", "clean", "drifted"];
const UPDATE_SCOPE: &[&str] = &["core", "plugins", "themes", "all"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_identity(manager).await?;
        create_nodes(manager).await?;
        create_sites_and_environments(manager).await?;
        create_environment_children(manager).await?;
        create_operations(manager).await?;
        create_drift(manager).await?;
        create_jobs_and_history(manager).await?;
        create_key_value(manager).await?;
        Ok(())
    }

    // Forward-only: no `down`. Run the whole schema in one transaction on every backend, so a
    // failure never leaves half a schema behind (SQLite and PostgreSQL both have transactional DDL).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// `column IN (values...)`, for CHECK constraints on enum columns. A NULL passes, so the same
/// check serves nullable columns.
fn one_of<C>(column: C, values: &[&str]) -> Expr
where
    C: IntoIden + 'static,
{
    Expr::col(column).is_in(values.iter().copied())
}

/// The columns every desired-state resource carries (spec §1 "Desired and observed"). `status` is
/// the derived phase, checked against the resource's own enum.
fn resource_columns(table: &mut TableCreateStatement, statuses: &[&str]) {
    table
        .col(big_integer(Resource::Generation).default(1))
        .col(big_integer(Resource::ObservedGeneration).default(0))
        .col(text(Resource::Status).check(one_of(Resource::Status, statuses)))
        .col(text(Resource::Conditions).default("[]"))
        .col(big_integer(Resource::StateVersion).default(1))
        .col(text_null(Resource::DeletionRequestedAt))
        .col(big_integer(Resource::ReconcileAttempts).default(0))
        .col(text_null(Resource::LastErrorCode))
        .col(text_null(Resource::Observed))
        .col(text_null(Resource::ObservedAt))
        .col(text(Resource::CreatedAt))
        .col(text(Resource::UpdatedAt));
}

fn fk<FT, FC, TT, TC>(
    name: &str,
    from: (FT, FC),
    to: (TT, TC),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement
where
    FT: IntoIden + 'static,
    FC: IntoIden + 'static,
    TT: IntoIden + 'static,
    TC: IntoIden + 'static,
{
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .take()
}

async fn index<T, C>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: C,
    unique: bool,
) -> Result<(), DbErr>
where
    T: IntoIden + 'static,
    C: IntoIterator,
    C::Item: IntoIden + 'static,
{
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for column in columns {
        stmt.col(column);
    }
    if unique {
        stmt.unique();
    }
    manager.create_index(stmt.take()).await
}

async fn create_identity(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    m.create_table(
        Table::create()
            .table(Users::Table)
            .col(string(Users::Id).primary_key())
            .col(text(Users::Email))
            .col(text(Users::DisplayName))
            .col(text(Users::Role).check(one_of(Users::Role, USER_ROLE)))
            .col(text(Users::PasswordHash))
            .col(boolean(Users::IsActive))
            .col(text(Users::CreatedAt))
            .col(text(Users::UpdatedAt))
            .take(),
    )
    .await?;
    index(m, "uq_users_email", Users::Table, [Users::Email], true).await?;

    m.create_table(
        Table::create()
            .table(AuthSessions::Table)
            .col(string(AuthSessions::Id).primary_key())
            .col(string(AuthSessions::UserId))
            .col(text(AuthSessions::SessionToken))
            .col(text(AuthSessions::ExpiresAt))
            .col(text(AuthSessions::CreatedAt))
            .col(text_null(AuthSessions::RevokedAt))
            .col(text_null(AuthSessions::ClientIp))
            .foreign_key(&mut fk(
                "fk_auth_sessions_user_id",
                (AuthSessions::Table, AuthSessions::UserId),
                (Users::Table, Users::Id),
                ForeignKeyAction::Cascade,
            ))
            .take(),
    )
    .await?;
    index(
        m,
        "uq_auth_sessions_session_token",
        AuthSessions::Table,
        [AuthSessions::SessionToken],
        true,
    )
    .await?;

    m.create_table(
        Table::create()
            .table(ApiTokens::Table)
            .col(string(ApiTokens::Id).primary_key())
            .col(string(ApiTokens::UserId))
            .col(text(ApiTokens::Name))
            .col(text(ApiTokens::TokenHash))
            .col(text(ApiTokens::CreatedAt))
            .col(text_null(ApiTokens::LastUsedAt))
            .col(text_null(ApiTokens::RevokedAt))
            .foreign_key(&mut fk(
                "fk_api_tokens_user_id",
                (ApiTokens::Table, ApiTokens::UserId),
                (Users::Table, Users::Id),
                ForeignKeyAction::Cascade,
            ))
            .take(),
    )
    .await?;
    index(
        m,
        "uq_api_tokens_token_hash",
        ApiTokens::Table,
        [ApiTokens::TokenHash],
        true,
    )
    .await?;

    m.create_table(
        Table::create()
            .table(LoginAttempts::Table)
            .col(string(LoginAttempts::Id).primary_key())
            .col(text(LoginAttempts::Email))
            .col(text(LoginAttempts::ClientIp))
            .col(boolean(LoginAttempts::Succeeded))
            .col(text(LoginAttempts::CreatedAt))
            .take(),
    )
    .await?;
    index(
        m,
        "idx_login_attempts_email_created_at",
        LoginAttempts::Table,
        [LoginAttempts::Email, LoginAttempts::CreatedAt],
        false,
    )
    .await?;
    index(
        m,
        "idx_login_attempts_client_ip_created_at",
        LoginAttempts::Table,
        [LoginAttempts::ClientIp, LoginAttempts::CreatedAt],
        false,
    )
    .await
}

async fn create_nodes(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let mut nodes = Table::create();
    nodes
        .table(Nodes::Table)
        .col(string(Nodes::Id).primary_key())
        .col(text(Nodes::Name))
        .col(text(Nodes::Hostname))
        .col(text_null(Nodes::PublicIp))
        .col(big_integer(Nodes::SshPort))
        .col(text(Nodes::SshUser))
        .col(boolean(Nodes::IsLocal))
        .col(text_null(Nodes::HostKey))
        .col(text_null(Nodes::LastSeenAt))
        .col(text_null(Nodes::ProvisionRequestedAt));
    resource_columns(&mut nodes, NODE_STATUS);
    m.create_table(nodes).await
}

async fn create_sites_and_environments(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let mut sites = Table::create();
    sites
        .table(Sites::Table)
        .col(string(Sites::Id).primary_key())
        .col(text(Sites::Name))
        .col(text(Sites::Slug))
        .col(string_null(Sites::PrimaryEnvironmentId))
        .col(text_null(Sites::ResetRequestedAt));
    resource_columns(&mut sites, SITE_STATUS);
    m.create_table(sites).await?;
    index(m, "uq_sites_slug", Sites::Table, [Sites::Slug], true).await?;

    let mut environments = Table::create();
    environments
        .table(Environments::Table)
        .col(string(Environments::Id).primary_key())
        .col(string(Environments::SiteId))
        .col(text(Environments::Name))
        .col(text(Environments::Slug))
        .col(
            text(Environments::EnvironmentType)
                .check(one_of(Environments::EnvironmentType, ENVIRONMENT_TYPE)),
        )
        .col(string(Environments::NodeId))
        .col(string_null(Environments::SourceEnvironmentId))
        .col(
            text(Environments::PromotionPreset)
                .check(one_of(Environments::PromotionPreset, PROMOTION_PRESET)),
        )
        .col(text(Environments::PreviewUrl))
        .col(string_null(Environments::PrimaryDomainId))
        .col(string_null(Environments::DesiredReleaseId))
        .col(string_null(Environments::CurrentReleaseId))
        .col(text(Environments::WpAdminLogin))
        .col(string_null(Environments::DriftBaselineId))
        .col(
            text(Environments::DriftStatus)
                .default("unknown")
                .check(one_of(Environments::DriftStatus, DRIFT_STATUS)),
        )
        .col(text_null(Environments::DriftCheckedAt))
        .col(string_null(Environments::LastDriftCheckId))
        .col(boolean(Environments::FastcgiCacheEnabled).default(true))
        .col(boolean(Environments::RedisCacheEnabled).default(true))
        .col(
            text_null(Environments::UpdateScope)
                .check(one_of(Environments::UpdateScope, UPDATE_SCOPE)),
        )
        .col(text_null(Environments::UpdateRequestedAt))
        .col(text_null(Environments::CachePurgeRequestedAt))
        .col(text_null(Environments::DriftCheckRequestedAt))
        .col(text_null(Environments::ResetRequestedAt))
        // A site is deleted only after its environments are gone (teardown first).
        .foreign_key(&mut fk(
            "fk_environments_site_id",
            (Environments::Table, Environments::SiteId),
            (Sites::Table, Sites::Id),
            ForeignKeyAction::Restrict,
        ))
        // A node hosting environments cannot be removed.
        .foreign_key(&mut fk(
            "fk_environments_node_id",
            (Environments::Table, Environments::NodeId),
            (Nodes::Table, Nodes::Id),
            ForeignKeyAction::Restrict,
        ))
        // Deleting a source environment leaves its clones standing.
        .foreign_key(&mut fk(
            "fk_environments_source_environment_id",
            (Environments::Table, Environments::SourceEnvironmentId),
            (Environments::Table, Environments::Id),
            ForeignKeyAction::SetNull,
        ));
    resource_columns(&mut environments, SITE_STATUS);
    m.create_table(environments).await?;
    index(
        m,
        "uq_environments_site_id_slug",
        Environments::Table,
        [Environments::SiteId, Environments::Slug],
        true,
    )
    .await?;
    index(
        m,
        "uq_environments_preview_url",
        Environments::Table,
        [Environments::PreviewUrl],
        true,
    )
    .await?;
    index(
        m,
        "idx_environments_node_id",
        Environments::Table,
        [Environments::NodeId],
        false,
    )
    .await
}

async fn create_environment_children(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    m.create_table(
        Table::create()
            .table(Releases::Table)
            .col(string(Releases::Id).primary_key())
            .col(string(Releases::EnvironmentId))
            .col(
                text(Releases::SourceType).check(one_of(Releases::SourceType, RELEASE_SOURCE_TYPE)),
            )
            .col(text(Releases::SourceRef))
            .col(text(Releases::Path))
            .col(
                text(Releases::HealthStatus)
                    .default("unknown")
                    .check(one_of(Releases::HealthStatus, RELEASE_HEALTH_STATUS)),
            )
            .col(text_null(Releases::Notes))
            .col(text(Releases::CreatedAt))
            // Releases describe directories inside the environment's root: gone with it.
            .foreign_key(&mut fk(
                "fk_releases_environment_id",
                (Releases::Table, Releases::EnvironmentId),
                (Environments::Table, Environments::Id),
                ForeignKeyAction::Cascade,
            ))
            .take(),
    )
    .await?;
    index(
        m,
        "idx_releases_environment_id",
        Releases::Table,
        [Releases::EnvironmentId],
        false,
    )
    .await?;

    let mut domains = Table::create();
    domains
        .table(Domains::Table)
        .col(string(Domains::Id).primary_key())
        .col(string(Domains::EnvironmentId))
        .col(text(Domains::Hostname))
        .col(text(Domains::TlsIssuer).check(one_of(Domains::TlsIssuer, TLS_ISSUER)))
        .foreign_key(&mut fk(
            "fk_domains_environment_id",
            (Domains::Table, Domains::EnvironmentId),
            (Environments::Table, Environments::Id),
            ForeignKeyAction::Cascade,
        ));
    resource_columns(&mut domains, TLS_STATUS);
    m.create_table(domains).await?;
    index(
        m,
        "uq_domains_hostname",
        Domains::Table,
        [Domains::Hostname],
        true,
    )
    .await?;
    index(
        m,
        "idx_domains_environment_id",
        Domains::Table,
        [Domains::EnvironmentId],
        false,
    )
    .await?;

    let mut backups = Table::create();
    backups
        .table(Backups::Table)
        .col(string(Backups::Id).primary_key())
        .col(string(Backups::EnvironmentId))
        .col(text(Backups::BackupScope).check(one_of(Backups::BackupScope, BACKUP_SCOPE)))
        .col(text(Backups::StorageType).check(one_of(Backups::StorageType, STORAGE_TYPE)))
        .col(text(Backups::StoragePath))
        .col(text(Backups::RetentionUntil))
        .col(text_null(Backups::Checksum))
        .col(big_integer_null(Backups::SizeBytes).check(Expr::col(Backups::SizeBytes).gte(0)))
        .col(text_null(Backups::CompletedAt))
        .col(text_null(Backups::DeletedAt))
        // Backups hold data that may be stored off-site: an environment is removed only after
        // its backups were dealt with explicitly, never silently with it.
        .foreign_key(&mut fk(
            "fk_backups_environment_id",
            (Backups::Table, Backups::EnvironmentId),
            (Environments::Table, Environments::Id),
            ForeignKeyAction::Restrict,
        ));
    resource_columns(&mut backups, BACKUP_STATUS);
    m.create_table(backups).await?;
    index(
        m,
        "idx_backups_environment_id",
        Backups::Table,
        [Backups::EnvironmentId],
        false,
    )
    .await
}

async fn create_operations(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let mut restores = Table::create();
    restores
        .table(Restores::Table)
        .col(string(Restores::Id).primary_key())
        .col(string(Restores::EnvironmentId))
        .col(string(Restores::BackupId))
        .col(string_null(Restores::PreBackupId))
        .col(text_null(Restores::FinishedAt));
    resource_columns(&mut restores, OPERATION_STATUS);
    m.create_table(restores).await?;
    index(
        m,
        "idx_restores_environment_id",
        Restores::Table,
        [Restores::EnvironmentId],
        false,
    )
    .await?;

    let mut promotions = Table::create();
    promotions
        .table(Promotions::Table)
        .col(string(Promotions::Id).primary_key())
        .col(string(Promotions::SourceEnvironmentId))
        .col(string(Promotions::TargetEnvironmentId))
        .col(
            text(Promotions::PromotionPreset)
                .check(one_of(Promotions::PromotionPreset, PROMOTION_PRESET)),
        )
        .col(string_null(Promotions::DriftCheckId))
        .col(string_null(Promotions::PreBackupId))
        .col(text_null(Promotions::FinishedAt));
    resource_columns(&mut promotions, OPERATION_STATUS);
    m.create_table(promotions).await?;
    index(
        m,
        "idx_promotions_source_environment_id",
        Promotions::Table,
        [Promotions::SourceEnvironmentId],
        false,
    )
    .await?;
    index(
        m,
        "idx_promotions_target_environment_id",
        Promotions::Table,
        [Promotions::TargetEnvironmentId],
        false,
    )
    .await?;

    let mut imports = Table::create();
    imports
        .table(Imports::Table)
        .col(string(Imports::Id).primary_key())
        .col(string(Imports::EnvironmentId))
        .col(text(Imports::ArchiveUrl))
        .col(string_null(Imports::PreBackupId))
        .col(string_null(Imports::ReleaseId))
        .col(text_null(Imports::FinishedAt));
    resource_columns(&mut imports, OPERATION_STATUS);
    m.create_table(imports).await?;
    index(
        m,
        "idx_imports_environment_id",
        Imports::Table,
        [Imports::EnvironmentId],
        false,
    )
    .await
}

async fn create_drift(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    m.create_table(
        Table::create()
            .table(DriftBaselines::Table)
            .col(string(DriftBaselines::Id).primary_key())
            .col(string(DriftBaselines::EnvironmentId))
            .col(string(DriftBaselines::ProductionEnvironmentId))
            .col(
                text(DriftBaselines::PromotionPreset)
                    .check(one_of(DriftBaselines::PromotionPreset, PROMOTION_PRESET)),
            )
            .col(text(DriftBaselines::DbChecksumsJson))
            .col(text(DriftBaselines::FileManifestJson))
            .col(text(DriftBaselines::CapturedAt))
            .foreign_key(&mut fk(
                "fk_drift_baselines_environment_id",
                (DriftBaselines::Table, DriftBaselines::EnvironmentId),
                (Environments::Table, Environments::Id),
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                "fk_drift_baselines_production_environment_id",
                (
                    DriftBaselines::Table,
                    DriftBaselines::ProductionEnvironmentId,
                ),
                (Environments::Table, Environments::Id),
                ForeignKeyAction::Cascade,
            ))
            .take(),
    )
    .await?;
    index(
        m,
        "idx_drift_baselines_environment_id",
        DriftBaselines::Table,
        [DriftBaselines::EnvironmentId],
        false,
    )
    .await?;
    index(
        m,
        "idx_drift_baselines_production_environment_id",
        DriftBaselines::Table,
        [DriftBaselines::ProductionEnvironmentId],
        false,
    )
    .await?;

    m.create_table(
        Table::create()
            .table(DriftChecks::Table)
            .col(string(DriftChecks::Id).primary_key())
            .col(string(DriftChecks::EnvironmentId))
            .col(string(DriftChecks::BaselineId))
            .col(string_null(DriftChecks::PromotionId))
            .col(
                text(DriftChecks::PromotionPreset)
                    .check(one_of(DriftChecks::PromotionPreset, PROMOTION_PRESET)),
            )
            .col(text(DriftChecks::Status).check(one_of(DriftChecks::Status, DRIFT_STATUS)))
            .col(text_null(DriftChecks::DbChecksumsJson))
            .col(text_null(DriftChecks::FileChecksumsJson))
            .col(text(DriftChecks::CheckedAt))
            .foreign_key(&mut fk(
                "fk_drift_checks_environment_id",
                (DriftChecks::Table, DriftChecks::EnvironmentId),
                (Environments::Table, Environments::Id),
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                "fk_drift_checks_baseline_id",
                (DriftChecks::Table, DriftChecks::BaselineId),
                (DriftBaselines::Table, DriftBaselines::Id),
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                "fk_drift_checks_promotion_id",
                (DriftChecks::Table, DriftChecks::PromotionId),
                (Promotions::Table, Promotions::Id),
                ForeignKeyAction::SetNull,
            ))
            .take(),
    )
    .await?;
    index(
        m,
        "idx_drift_checks_environment_id",
        DriftChecks::Table,
        [DriftChecks::EnvironmentId],
        false,
    )
    .await?;
    index(
        m,
        "idx_drift_checks_baseline_id",
        DriftChecks::Table,
        [DriftChecks::BaselineId],
        false,
    )
    .await?;
    index(
        m,
        "idx_drift_checks_promotion_id",
        DriftChecks::Table,
        [DriftChecks::PromotionId],
        false,
    )
    .await
}

async fn create_jobs_and_history(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    m.create_table(
        Table::create()
            .table(Jobs::Table)
            .col(string(Jobs::Id).primary_key())
            .col(text(Jobs::JobType))
            .col(text(Jobs::Status).check(one_of(Jobs::Status, JOB_STATUS)))
            .col(string_null(Jobs::SiteId))
            .col(string_null(Jobs::EnvironmentId))
            .col(string_null(Jobs::NodeId))
            .col(text(Jobs::ResourceType))
            .col(text(Jobs::ResourceId))
            .col(big_integer(Jobs::Generation))
            .col(text(Jobs::Playbook))
            .col(text(Jobs::PayloadJson))
            .col(
                big_integer(Jobs::AttemptCount)
                    .default(0)
                    .check(Expr::col(Jobs::AttemptCount).gte(0)),
            )
            .col(
                big_integer(Jobs::MaxAttempts)
                    .default(3)
                    .check(Expr::col(Jobs::MaxAttempts).gte(1)),
            )
            .col(text_null(Jobs::RunAfter))
            .col(text_null(Jobs::LockedAt))
            .col(text_null(Jobs::LockedBy))
            .col(text_null(Jobs::StartedAt))
            .col(text_null(Jobs::FinishedAt))
            .col(big_integer_null(Jobs::ExitCode))
            .col(text_null(Jobs::ErrorCode))
            .col(text_null(Jobs::ErrorMessage))
            .col(text_null(Jobs::FactsJson))
            .col(text_null(Jobs::CancelRequestedAt))
            .col(text(Jobs::CreatedAt))
            .col(text(Jobs::UpdatedAt))
            .take(),
    )
    .await?;
    index(
        m,
        "idx_jobs_status_run_after",
        Jobs::Table,
        [Jobs::Status, Jobs::RunAfter],
        false,
    )
    .await?;
    index(
        m,
        "idx_jobs_site_id_status",
        Jobs::Table,
        [Jobs::SiteId, Jobs::Status],
        false,
    )
    .await?;
    index(
        m,
        "idx_jobs_resource_type_resource_id",
        Jobs::Table,
        [Jobs::ResourceType, Jobs::ResourceId],
        false,
    )
    .await?;

    m.create_table(
        Table::create()
            .table(JobLogs::Table)
            .col(string(JobLogs::JobId).primary_key())
            .col(text(JobLogs::Log))
            .col(text(JobLogs::UpdatedAt))
            .foreign_key(&mut fk(
                "fk_job_logs_job_id",
                (JobLogs::Table, JobLogs::JobId),
                (Jobs::Table, Jobs::Id),
                ForeignKeyAction::Cascade,
            ))
            .take(),
    )
    .await?;

    m.create_table(
        Table::create()
            .table(Events::Table)
            .col(string(Events::Id).primary_key())
            .col(text(Events::ResourceType))
            .col(text(Events::ResourceId))
            .col(string_null(Events::SiteId))
            .col(string_null(Events::EnvironmentId))
            .col(text(Events::Reason))
            .col(text(Events::Message))
            .col(text(Events::CreatedAt))
            .take(),
    )
    .await?;
    index(
        m,
        "idx_events_resource_type_resource_id",
        Events::Table,
        [Events::ResourceType, Events::ResourceId],
        false,
    )
    .await?;
    index(
        m,
        "idx_events_site_id",
        Events::Table,
        [Events::SiteId],
        false,
    )
    .await?;

    m.create_table(
        Table::create()
            .table(AuditLogs::Table)
            .col(string(AuditLogs::Id).primary_key())
            .col(string_null(AuditLogs::UserId))
            .col(string_null(AuditLogs::ApiTokenId))
            .col(text(AuditLogs::Action))
            .col(text(AuditLogs::ResourceType))
            .col(text(AuditLogs::ResourceId))
            .col(text(AuditLogs::Result))
            .col(text(AuditLogs::CreatedAt))
            .take(),
    )
    .await?;
    index(
        m,
        "idx_audit_logs_resource_type_resource_id",
        AuditLogs::Table,
        [AuditLogs::ResourceType, AuditLogs::ResourceId],
        false,
    )
    .await
}

async fn create_key_value(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    m.create_table(
        Table::create()
            .table(Settings::Table)
            .col(string(Settings::Key).primary_key())
            .col(text(Settings::Value))
            .col(text(Settings::UpdatedAt))
            .take(),
    )
    .await?;

    m.create_table(
        Table::create()
            .table(Secrets::Table)
            .col(string(Secrets::Id).primary_key())
            .col(text(Secrets::Ciphertext))
            .col(text(Secrets::CreatedAt))
            .col(text(Secrets::UpdatedAt))
            .take(),
    )
    .await?;

    m.create_table(
        Table::create()
            .table(Leases::Table)
            .col(string(Leases::ResourceKey).primary_key())
            .col(text(Leases::Holder))
            .col(text(Leases::ExpiresAt))
            .col(big_integer(Leases::Fence).default(0))
            .take(),
    )
    .await
}

/// Columns shared by every desired-state resource table.
#[derive(DeriveIden)]
enum Resource {
    Generation,
    ObservedGeneration,
    Status,
    Conditions,
    StateVersion,
    DeletionRequestedAt,
    ReconcileAttempts,
    LastErrorCode,
    Observed,
    ObservedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    DisplayName,
    Role,
    PasswordHash,
    IsActive,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuthSessions {
    Table,
    Id,
    UserId,
    SessionToken,
    ExpiresAt,
    CreatedAt,
    RevokedAt,
    ClientIp,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    UserId,
    Name,
    TokenHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum LoginAttempts {
    Table,
    Id,
    Email,
    ClientIp,
    Succeeded,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Id,
    Name,
    Hostname,
    PublicIp,
    SshPort,
    SshUser,
    IsLocal,
    HostKey,
    LastSeenAt,
    ProvisionRequestedAt,
}

#[derive(DeriveIden)]
enum Sites {
    Table,
    Id,
    Name,
    Slug,
    PrimaryEnvironmentId,
    ResetRequestedAt,
}

#[derive(DeriveIden)]
enum Environments {
    Table,
    Id,
    SiteId,
    Name,
    Slug,
    EnvironmentType,
    NodeId,
    SourceEnvironmentId,
    PromotionPreset,
    PreviewUrl,
    PrimaryDomainId,
    DesiredReleaseId,
    CurrentReleaseId,
    WpAdminLogin,
    DriftBaselineId,
    DriftStatus,
    DriftCheckedAt,
    LastDriftCheckId,
    FastcgiCacheEnabled,
    RedisCacheEnabled,
    UpdateScope,
    UpdateRequestedAt,
    CachePurgeRequestedAt,
    DriftCheckRequestedAt,
    ResetRequestedAt,
}

#[derive(DeriveIden)]
enum Releases {
    Table,
    Id,
    EnvironmentId,
    SourceType,
    SourceRef,
    Path,
    HealthStatus,
    Notes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Domains {
    Table,
    Id,
    EnvironmentId,
    Hostname,
    TlsIssuer,
}

#[derive(DeriveIden)]
enum Backups {
    Table,
    Id,
    EnvironmentId,
    BackupScope,
    StorageType,
    StoragePath,
    RetentionUntil,
    Checksum,
    SizeBytes,
    CompletedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Restores {
    Table,
    Id,
    EnvironmentId,
    BackupId,
    PreBackupId,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Promotions {
    Table,
    Id,
    SourceEnvironmentId,
    TargetEnvironmentId,
    PromotionPreset,
    DriftCheckId,
    PreBackupId,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Imports {
    Table,
    Id,
    EnvironmentId,
    ArchiveUrl,
    PreBackupId,
    ReleaseId,
    FinishedAt,
}

#[derive(DeriveIden)]
enum DriftBaselines {
    Table,
    Id,
    EnvironmentId,
    ProductionEnvironmentId,
    PromotionPreset,
    DbChecksumsJson,
    FileManifestJson,
    CapturedAt,
}

#[derive(DeriveIden)]
enum DriftChecks {
    Table,
    Id,
    EnvironmentId,
    BaselineId,
    PromotionId,
    PromotionPreset,
    Status,
    DbChecksumsJson,
    FileChecksumsJson,
    CheckedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    JobType,
    Status,
    SiteId,
    EnvironmentId,
    NodeId,
    ResourceType,
    ResourceId,
    Generation,
    Playbook,
    PayloadJson,
    AttemptCount,
    MaxAttempts,
    RunAfter,
    LockedAt,
    LockedBy,
    StartedAt,
    FinishedAt,
    ExitCode,
    ErrorCode,
    ErrorMessage,
    FactsJson,
    CancelRequestedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum JobLogs {
    Table,
    JobId,
    Log,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    ResourceType,
    ResourceId,
    SiteId,
    EnvironmentId,
    Reason,
    Message,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditLogs {
    Table,
    Id,
    UserId,
    ApiTokenId,
    Action,
    ResourceType,
    ResourceId,
    Result,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Secrets {
    Table,
    Id,
    Ciphertext,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Leases {
    Table,
    ResourceKey,
    Holder,
    ExpiresAt,
    Fence,
}
