//! `drift_checks`: One comparison of production's protected data against a baseline. Immutable.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "drift_checks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment_id: String,
    pub baseline_id: String,
    pub promotion_id: Option<String>,
    pub promotion_preset: String,
    pub status: String,
    pub db_checksums_json: Option<String>,
    pub file_checksums_json: Option<String>,
    pub checked_at: String,
    /// What drifted (tables, files) and the reason shown on the promotion.
    pub result_json: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
