//! Leases: a row per resource key naming the process (replica) that works it until
//! `expires_at`. Two replicas never work the same resource; the `fence` counter grows with every
//! fresh acquisition (a new holder, or the same holder after its lease had expired), so a holder
//! that lost its lease can be told apart from the current one: [`check`] (an UPDATE conditional
//! on holder and fence) runs inside every outcome transaction, and a stale holder's commit is
//! refused. Rows are never deleted while in use (release only expires them), so fences only grow.
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::clock;
use crate::store::Result;

/// A lease this replica holds: the key and the fence it was granted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub key: String,
    pub holder: String,
    pub fence: i64,
}

/// Who holds a key now (for the reaper and the metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub holder: String,
    pub fence: i64,
    pub expires_at: String,
}

fn sql(backend: DbBackend, s: &str) -> String {
    // `?` placeholders, numbered for PostgreSQL.
    if backend != DbBackend::Postgres {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut n = 0;
    for c in s.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

fn stmt(db: &impl ConnectionTrait, s: &str, values: Vec<Value>) -> Statement {
    let backend = db.get_database_backend();
    Statement::from_sql_and_values(backend, sql(backend, s), values)
}

/// Takes or renews the lease on `key` for `ttl`: the fence it is held with, or `None` while
/// another holder's lease has not expired. Renewing an unexpired lease of one's own keeps the
/// fence; any other acquisition increments it.
pub async fn acquire_fenced(
    db: &impl ConnectionTrait,
    key: &str,
    holder: &str,
    ttl: time::Duration,
) -> Result<Option<i64>> {
    let now = clock::now();
    let expires = clock::from_now(ttl);
    // Portable upsert with RETURNING (SQLite ≥ 3.35 and PostgreSQL): insert, or take over an
    // expired lease, or renew our own.
    let q = "INSERT INTO leases (resource_key, holder, expires_at, fence) VALUES (?, ?, ?, 1) \
         ON CONFLICT (resource_key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, \
         fence = leases.fence + (CASE WHEN leases.holder = excluded.holder AND leases.expires_at >= ? THEN 0 ELSE 1 END) \
         WHERE (leases.holder = excluded.holder AND leases.expires_at >= ?) OR leases.expires_at < ? \
         RETURNING fence";
    let row = db
        .query_one_raw(stmt(
            db,
            q,
            vec![
                key.into(),
                holder.into(),
                expires.into(),
                now.clone().into(),
                now.clone().into(),
                now.into(),
            ],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get_by_index::<i64>(0)?),
        None => None,
    })
}

/// Takes or renews the lease on `key` for `ttl`; true when this holder has it now.
pub async fn acquire(
    db: &impl ConnectionTrait,
    key: &str,
    holder: &str,
    ttl: time::Duration,
) -> Result<bool> {
    Ok(acquire_fenced(db, key, holder, ttl).await?.is_some())
}

/// Extends a lease still held with `fence`; false when it was lost (taken over by another
/// holder, or reclaimed by the reaper). Run inside an outcome transaction it is the fencing
/// check: the commit only goes ahead while the lease is ours, and the row stays locked (on
/// PostgreSQL) until the commit, so no one takes it over in between.
pub async fn check(db: &impl ConnectionTrait, held: &Held, ttl: time::Duration) -> Result<bool> {
    let res = db
        .execute_raw(stmt(
            db,
            "UPDATE leases SET expires_at = ? WHERE resource_key = ? AND holder = ? AND fence = ?",
            vec![
                clock::from_now(ttl).into(),
                held.key.as_str().into(),
                held.holder.as_str().into(),
                held.fence.into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

/// Gives the lease up: it expires now (the row and its fence stay).
pub async fn release(db: &impl ConnectionTrait, key: &str, holder: &str) -> Result<()> {
    let past = clock::format(time::OffsetDateTime::now_utc() - time::Duration::milliseconds(1));
    db.execute_raw(stmt(
        db,
        "UPDATE leases SET expires_at = ? WHERE resource_key = ? AND holder = ?",
        vec![past.into(), key.into(), holder.into()],
    ))
    .await?;
    Ok(())
}

/// Gives up a lease only if it is still held with this fence.
pub async fn release_held(db: &impl ConnectionTrait, held: &Held) -> Result<()> {
    let past = clock::format(time::OffsetDateTime::now_utc() - time::Duration::milliseconds(1));
    db.execute_raw(stmt(
        db,
        "UPDATE leases SET expires_at = ? WHERE resource_key = ? AND holder = ? AND fence = ?",
        vec![
            past.into(),
            held.key.as_str().into(),
            held.holder.as_str().into(),
            held.fence.into(),
        ],
    ))
    .await?;
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, key: &str) -> Result<Option<Row>> {
    let row = db
        .query_one_raw(stmt(
            db,
            "SELECT holder, fence, expires_at FROM leases WHERE resource_key = ?",
            vec![key.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some(Row {
            holder: r.try_get_by_index(0)?,
            fence: r.try_get_by_index(1)?,
            expires_at: r.try_get_by_index(2)?,
        }),
        None => None,
    })
}

/// Reclaims a lease whose holder let it expire (a dead or stalled replica): the fence moves on
/// (so the old holder's late commit is refused) and the lease stays free. Returns false when the
/// lease was renewed or taken meanwhile. Run it in the transaction that acts on the reclaim.
pub async fn reclaim_expired(db: &impl ConnectionTrait, key: &str, holder: &str) -> Result<bool> {
    let now = clock::now();
    let res = db
        .execute_raw(stmt(
            db,
            "UPDATE leases SET fence = fence + 1, holder = ?, expires_at = ? \
             WHERE resource_key = ? AND expires_at < ?",
            vec![holder.into(), now.clone().into(), key.into(), now.into()],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

/// Removes lease rows nobody has held for a day (resources deleted long ago).
pub async fn purge_stale(db: &impl ConnectionTrait) -> Result<u64> {
    let cutoff = clock::format(time::OffsetDateTime::now_utc() - time::Duration::days(1));
    let res = db
        .execute_raw(stmt(
            db,
            "DELETE FROM leases WHERE expires_at < ?",
            vec![cutoff.into()],
        ))
        .await?;
    Ok(res.rows_affected())
}
