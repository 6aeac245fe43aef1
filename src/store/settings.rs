//! Settings: a key/value table; an absent row means the setting is unset (null).
use std::collections::BTreeMap;

use sea_orm::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait};

use super::entity::settings;
use super::Result;
use crate::clock;

pub async fn all(db: &impl ConnectionTrait) -> Result<BTreeMap<String, String>> {
    Ok(settings::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.key, s.value))
        .collect())
}

pub async fn get(db: &impl ConnectionTrait, key: &str) -> Result<Option<String>> {
    Ok(settings::Entity::find_by_id(key.to_string())
        .one(db)
        .await?
        .map(|s| s.value))
}

/// Sets (`Some`) or clears (`None`) a setting.
pub async fn put(db: &impl ConnectionTrait, key: &str, value: Option<&str>) -> Result<()> {
    match value {
        None => {
            settings::Entity::delete_by_id(key.to_string())
                .exec(db)
                .await?;
        }
        Some(v) => {
            let m = settings::ActiveModel {
                key: Set(key.to_string()),
                value: Set(v.to_string()),
                updated_at: Set(clock::now()),
            };
            settings::Entity::insert(m)
                .on_conflict(
                    OnConflict::column(settings::Column::Key)
                        .update_columns([settings::Column::Value, settings::Column::UpdatedAt])
                        .to_owned(),
                )
                .exec(db)
                .await?;
        }
    }
    Ok(())
}
