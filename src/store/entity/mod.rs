//! sea-orm entities, one module per table (module name = table name, field name = column name).
//!
//! The schema itself lives in the `migration` crate; these mirror it column for column.
pub mod api_tokens;
pub mod apply_receipts;
pub mod audit_logs;
pub mod auth_sessions;
pub mod backup_schedules;
pub mod backups;
pub mod domains;
pub mod drift_baselines;
pub mod drift_checks;
pub mod environments;
pub mod events;
pub mod imports;
pub mod job_logs;
pub mod jobs;
pub mod leases;
pub mod login_attempts;
pub mod manifest_objects;
pub mod nodes;
pub mod promotions;
pub mod releases;
pub mod restores;
pub mod secrets;
pub mod settings;
pub mod sites;
pub mod users;
