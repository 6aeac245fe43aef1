//! Users, sessions, API tokens and login attempts.
use sea_orm::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, PaginatorTrait, QueryOrder};

use super::entity::{api_tokens, auth_sessions, login_attempts, users};
use super::Result;
use crate::{clock, ids};

pub async fn count_users(db: &impl ConnectionTrait) -> Result<u64> {
    Ok(users::Entity::find().count(db).await?)
}

pub async fn user_by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<users::Model>> {
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email.to_ascii_lowercase()))
        .one(db)
        .await?)
}

pub async fn user_by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<users::Model>> {
    Ok(users::Entity::find_by_id(id.to_string()).one(db).await?)
}

pub async fn create_admin(
    db: &impl ConnectionTrait,
    email: &str,
    password_hash: &str,
) -> Result<users::Model> {
    let now = clock::now();
    let m = users::ActiveModel {
        id: Set(ids::new_id()),
        email: Set(email.to_ascii_lowercase()),
        display_name: Set("Administrator".into()),
        role: Set("admin".into()),
        password_hash: Set(password_hash.to_string()),
        is_active: Set(true),
        created_at: Set(now.clone()),
        updated_at: Set(now),
    };
    Ok(m.insert(db).await?)
}

/// Stores a session; only the SHA-256 of the cookie value is kept.
pub async fn create_session(
    db: &impl ConnectionTrait,
    user_id: &str,
    token: &str,
    expires_at: String,
    client_ip: Option<String>,
) -> Result<auth_sessions::Model> {
    let m = auth_sessions::ActiveModel {
        id: Set(ids::new_id()),
        user_id: Set(user_id.to_string()),
        session_token: Set(ids::sha256_hex(token)),
        expires_at: Set(expires_at),
        created_at: Set(clock::now()),
        revoked_at: Set(None),
        client_ip: Set(client_ip),
    };
    Ok(m.insert(db).await?)
}

/// The live session for a cookie value (given as its SHA-256 hex): not revoked and not expired.
pub async fn live_session(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<auth_sessions::Model>> {
    let now = clock::now();
    Ok(auth_sessions::Entity::find()
        .filter(auth_sessions::Column::SessionToken.eq(token_hash))
        .filter(auth_sessions::Column::RevokedAt.is_null())
        .filter(auth_sessions::Column::ExpiresAt.gt(now))
        .one(db)
        .await?)
}

pub async fn revoke_session(db: &impl ConnectionTrait, id: &str) -> Result<()> {
    auth_sessions::Entity::update_many()
        .col_expr(auth_sessions::Column::RevokedAt, Expr::value(clock::now()))
        .filter(auth_sessions::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn record_login_attempt(
    db: &impl ConnectionTrait,
    email: &str,
    client_ip: &str,
    succeeded: bool,
) -> Result<()> {
    let m = login_attempts::ActiveModel {
        id: Set(ids::new_id()),
        email: Set(email.to_ascii_lowercase()),
        client_ip: Set(client_ip.to_string()),
        succeeded: Set(succeeded),
        created_at: Set(clock::now()),
    };
    m.insert(db).await?;
    Ok(())
}

/// Failed attempts since `since` for this account and for this client address.
pub async fn recent_failures(
    db: &impl ConnectionTrait,
    email: &str,
    client_ip: &str,
    since: &str,
) -> Result<(u64, u64)> {
    let by_email = login_attempts::Entity::find()
        .filter(login_attempts::Column::Email.eq(email.to_ascii_lowercase()))
        .filter(login_attempts::Column::Succeeded.eq(false))
        .filter(login_attempts::Column::CreatedAt.gt(since))
        .count(db)
        .await?;
    let by_ip = login_attempts::Entity::find()
        .filter(login_attempts::Column::ClientIp.eq(client_ip))
        .filter(login_attempts::Column::Succeeded.eq(false))
        .filter(login_attempts::Column::CreatedAt.gt(since))
        .count(db)
        .await?;
    Ok((by_email, by_ip))
}

/// A successful login forgives the account's earlier failures.
pub async fn clear_failures(db: &impl ConnectionTrait, email: &str) -> Result<()> {
    login_attempts::Entity::delete_many()
        .filter(login_attempts::Column::Email.eq(email.to_ascii_lowercase()))
        .filter(login_attempts::Column::Succeeded.eq(false))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn create_token(
    db: &impl ConnectionTrait,
    user_id: &str,
    name: &str,
    token: &str,
) -> Result<api_tokens::Model> {
    let m = api_tokens::ActiveModel {
        id: Set(ids::new_id()),
        user_id: Set(user_id.to_string()),
        name: Set(name.to_string()),
        token_hash: Set(ids::sha256_hex(token)),
        created_at: Set(clock::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    };
    Ok(m.insert(db).await?)
}

/// The live API token for a bearer token (given as its SHA-256 hex).
pub async fn live_token(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<api_tokens::Model>> {
    Ok(api_tokens::Entity::find()
        .filter(api_tokens::Column::TokenHash.eq(token_hash))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .one(db)
        .await?)
}

pub async fn touch_token(db: &impl ConnectionTrait, id: &str) -> Result<()> {
    api_tokens::Entity::update_many()
        .col_expr(api_tokens::Column::LastUsedAt, Expr::value(clock::now()))
        .filter(api_tokens::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn list_tokens(
    db: &impl ConnectionTrait,
    user_id: &str,
) -> Result<Vec<api_tokens::Model>> {
    Ok(api_tokens::Entity::find()
        .filter(api_tokens::Column::UserId.eq(user_id))
        .order_by_asc(api_tokens::Column::Id)
        .all(db)
        .await?)
}

pub async fn token_by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<api_tokens::Model>> {
    Ok(api_tokens::Entity::find_by_id(id.to_string())
        .one(db)
        .await?)
}

pub async fn revoke_token(db: &impl ConnectionTrait, id: &str) -> Result<()> {
    api_tokens::Entity::update_many()
        .col_expr(api_tokens::Column::RevokedAt, Expr::value(clock::now()))
        .filter(api_tokens::Column::Id.eq(id))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// The admin's e-mail (WordPress administrators get it as their address).
pub async fn first_admin_email(db: &impl ConnectionTrait) -> Result<Option<String>> {
    Ok(users::Entity::find()
        .order_by_asc(users::Column::Id)
        .one(db)
        .await?
        .map(|u| u.email))
}
