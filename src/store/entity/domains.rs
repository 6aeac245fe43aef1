//! `domains`: A custom domain of an environment. Desired-state resource; `status` is the tls_status.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "domains")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment_id: String,
    pub hostname: String,
    pub tls_issuer: String,
    pub www_redirect: bool,
    /// `acme`, `custom` or `none`.
    pub tls_mode: String,
    pub generation: i64,
    pub observed_generation: i64,
    pub status: String,
    pub conditions: String,
    pub state_version: i64,
    pub deletion_requested_at: Option<String>,
    pub reconcile_attempts: i64,
    pub last_error_code: Option<String>,
    pub observed: Option<String>,
    pub observed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
