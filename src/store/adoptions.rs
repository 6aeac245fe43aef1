//! Adoptions: imports whose source is a WordPress site reached over SSH (`source_type = 'ssh'`).
//! The row is an ordinary import (store::imports::create); this sets its source columns.
use sea_orm::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::ConnectionTrait;

use super::entity::imports;
use super::Result;

/// Secret-store id of the one key pair Pressluft adopts sites with (its public part is what
/// operators authorize on the source).
pub const ADOPTION_KEY_ID: &str = "ssh/adoption_key";

pub struct AdoptSource<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub path: &'a str,
    /// `ssh-ed25519 AAAA…`: the host key seen by the dry run (trust on first use).
    pub host_key: &'a str,
    /// The dry run's report (JSON).
    pub report: &'a str,
}

/// Marks the import `id` as an adoption from `src`.
pub async fn set_source(db: &impl ConnectionTrait, id: &str, src: &AdoptSource<'_>) -> Result<()> {
    imports::Entity::update_many()
        .col_expr(imports::Column::SourceType, Expr::value("ssh"))
        .col_expr(imports::Column::SshHost, Expr::value(src.host))
        .col_expr(imports::Column::SshPort, Expr::value(i32::from(src.port)))
        .col_expr(imports::Column::SshUser, Expr::value(src.user))
        .col_expr(imports::Column::SourcePath, Expr::value(src.path))
        .col_expr(imports::Column::SourceHostKey, Expr::value(src.host_key))
        .col_expr(imports::Column::Report, Expr::value(src.report))
        .filter(imports::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
