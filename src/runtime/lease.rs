//! Leases: a row per resource key naming the process that works it until `expires_at`. Two
//! processes (replicas) never work the same resource; the `fence` counter grows with every new
//! holder so a stale holder's late writes can be told apart.
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::clock;
use crate::store::Result;

/// Takes or renews the lease on `key` for `ttl`; true when this holder has it now.
pub async fn acquire(
    db: &impl ConnectionTrait,
    key: &str,
    holder: &str,
    ttl: time::Duration,
) -> Result<bool> {
    let now = clock::now();
    let expires = clock::from_now(ttl);
    let backend = db.get_database_backend();
    let (p1, p2, p3, p4) = match backend {
        DbBackend::Postgres => ("$1", "$2", "$3", "$4"),
        _ => ("?", "?", "?", "?"),
    };
    // Portable upsert (SQLite ≥ 3.24 and PostgreSQL): insert, or take over an expired lease, or
    // renew our own.
    let sql = format!(
        "INSERT INTO leases (resource_key, holder, expires_at, fence) VALUES ({p1}, {p2}, {p3}, 1) \
         ON CONFLICT (resource_key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, \
         fence = leases.fence + (CASE WHEN leases.holder = excluded.holder THEN 0 ELSE 1 END) \
         WHERE leases.holder = excluded.holder OR leases.expires_at < {p4}"
    );
    let res = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [key.into(), holder.into(), expires.into(), now.into()],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn release(db: &impl ConnectionTrait, key: &str, holder: &str) -> Result<()> {
    let backend = db.get_database_backend();
    let (p1, p2) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("DELETE FROM leases WHERE resource_key = {p1} AND holder = {p2}"),
        [key.into(), holder.into()],
    ))
    .await?;
    Ok(())
}
