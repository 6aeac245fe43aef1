//! `backup_schedules`: when an environment is backed up by itself, and how long those backups
//! are kept. Written by the API; `last_run_at` / `next_run_at` by the runtime's scheduler.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backup_schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment_id: String,
    pub interval_minutes: Option<i64>,
    /// Five fields, UTC.
    pub cron: Option<String>,
    pub backup_scope: String,
    pub keep_last: Option<i64>,
    pub keep_days: Option<i64>,
    pub drill: bool,
    pub enabled: bool,
    pub last_run_at: Option<String>,
    pub next_run_at: Option<String>,
    pub state_version: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
