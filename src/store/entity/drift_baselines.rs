//! `drift_baselines`: Production's protected data recorded when an environment was created from a source. Immutable.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "drift_baselines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment_id: String,
    pub production_environment_id: String,
    pub promotion_preset: String,
    pub db_checksums_json: String,
    pub file_manifest_json: String,
    pub captured_at: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
