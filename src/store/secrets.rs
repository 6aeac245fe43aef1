//! Encrypted secrets at rest (node SSH keys, database and WordPress passwords, S3 and DNS
//! credentials). Rows hold only ciphertext; the key lives outside the database (data directory).
use sea_orm::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait};

use super::entity::secrets;
use super::{Result, StoreError};
use crate::clock;
use crate::secrets::SecretBox;

pub async fn put(
    db: &impl ConnectionTrait,
    sb: &SecretBox,
    id: &str,
    plaintext: &str,
) -> Result<()> {
    let ciphertext = sb.seal(id, plaintext.as_bytes());
    let now = clock::now();
    let m = secrets::ActiveModel {
        id: Set(id.to_string()),
        ciphertext: Set(ciphertext),
        created_at: Set(now.clone()),
        updated_at: Set(now),
    };
    secrets::Entity::insert(m)
        .on_conflict(
            OnConflict::column(secrets::Column::Id)
                .update_columns([secrets::Column::Ciphertext, secrets::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, sb: &SecretBox, id: &str) -> Result<Option<String>> {
    let Some(row) = secrets::Entity::find_by_id(id.to_string()).one(db).await? else {
        return Ok(None);
    };
    let bytes = sb
        .open(id, &row.ciphertext)
        .map_err(|e| StoreError::Secret(e.to_string()))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| StoreError::Secret(format!("secret {id} is not UTF-8")))
}

/// Returns the secret, creating it with `make` first when it does not exist yet (so a rerun after
/// a crash reuses the same password instead of drawing a new one).
pub async fn get_or_create(
    db: &impl ConnectionTrait,
    sb: &SecretBox,
    id: &str,
    make: impl FnOnce() -> String,
) -> Result<String> {
    if let Some(v) = get(db, sb, id).await? {
        return Ok(v);
    }
    let v = make();
    put(db, sb, id, &v).await?;
    Ok(v)
}

pub async fn delete_prefix(db: &impl ConnectionTrait, prefix: &str) -> Result<()> {
    secrets::Entity::delete_many()
        .filter(secrets::Column::Id.starts_with(prefix))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn exists(db: &impl ConnectionTrait, id: &str) -> Result<bool> {
    Ok(secrets::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .is_some())
}
