//! `apply_receipts`: what one apply (or dry run) planned and did. Immutable.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "apply_receipts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub apply_set: Option<String>,
    pub dry_run: bool,
    pub prune: bool,
    pub actor: String,
    /// JSON array of plan steps.
    pub steps: String,
    /// JSON object: resource (`Kind/…/name`) → generation after the apply.
    pub generations: String,
    pub created_at: String,
    /// The manifests applied (secrets only as references); the apply set's sync status plans
    /// the last ones again.
    pub manifests: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
