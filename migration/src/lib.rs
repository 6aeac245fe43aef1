//! Pressluft's schema: forward-only sea-orm migrations that run on SQLite and PostgreSQL.
//!
//! Never edit a migration once it has been applied anywhere; every change is a new migration,
//! appended to [`Migrator::migrations`] in order.
pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial_schema;
mod m20261123_000002_job_reason;
mod m20261205_000003_domains;
mod m20261205_000004_backups;
mod m20261205_000005_env_expiry;
mod m20261205_000006_releases;
mod m20261205_000007_promotions;
mod m20261205_000008_manifests;
mod m20261205_000009_receipt_manifests;
mod m20261205_000010_imports;
mod m20261206_000012_adoptions;
mod m20261206_000013_import_parts;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial_schema::Migration),
            Box::new(m20261123_000002_job_reason::Migration),
            Box::new(m20261205_000003_domains::Migration),
            Box::new(m20261205_000004_backups::Migration),
            Box::new(m20261205_000005_env_expiry::Migration),
            Box::new(m20261205_000006_releases::Migration),
            Box::new(m20261205_000007_promotions::Migration),
            Box::new(m20261205_000008_manifests::Migration),
            Box::new(m20261205_000009_receipt_manifests::Migration),
            Box::new(m20261205_000010_imports::Migration),
            Box::new(m20261206_000012_adoptions::Migration),
            Box::new(m20261206_000013_import_parts::Migration),
        ]
    }
}
