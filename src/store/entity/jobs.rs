//! `jobs`: One attempt-tracked unit of node work (a playbook run for a resource's generation).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub job_type: String,
    /// Why it was launched (`create`, `spec_change`, `drift`, `retry`, `reset`, `delete`, …).
    pub reason: String,
    pub status: String,
    pub site_id: Option<String>,
    pub environment_id: Option<String>,
    pub node_id: Option<String>,
    pub resource_type: String,
    pub resource_id: String,
    pub generation: i64,
    pub playbook: String,
    pub payload_json: String,
    pub attempt_count: i64,
    pub max_attempts: i64,
    pub run_after: Option<String>,
    pub locked_at: Option<String>,
    pub locked_by: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub facts_json: Option<String>,
    pub cancel_requested_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
