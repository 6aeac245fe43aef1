//! The store: sea-orm entities and the queries the rest of the binary uses, in modules named after
//! what they answer. Handlers hold no SQL; every query takes the connection or a transaction.
pub mod adoptions;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod entity;
pub mod events;
pub mod imports;
pub mod jobs;
pub mod manifests;
pub mod nodes;
pub mod operations;
pub mod promotions;
pub mod releases;
pub mod resources;
pub mod secrets;
pub mod settings;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Optimistic concurrency: the row's `state_version` moved on since the caller read it.
    #[error("stale state_version")]
    Stale,
    #[error("{0}")]
    Duplicate(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("secret store: {0}")]
    Secret(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Opens the database named by `url` (`sqlite://…?mode=rwc` or `postgres://…`).
pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        // One writer at a time is SQLite's rule; WAL lets readers run beside it, and a busy
        // timeout turns writer contention into a short wait instead of an error.
        opts.max_connections(8).min_connections(1);
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .create_if_missing(true)
        });
    } else {
        opts.max_connections(16).min_connections(1);
    }
    let db = Database::connect(opts).await?;
    Ok(db)
}

/// Applies every pending migration (forward only).
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    Migrator::up(db, None).await?;
    Ok(())
}

/// True when the error is a uniqueness violation (both SQLite's and PostgreSQL's wording).
pub fn is_unique_violation(e: &DbErr) -> bool {
    let s = e.to_string();
    s.contains("UNIQUE constraint failed") || s.contains("duplicate key value")
}

/// Begins a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`IMMEDIATE`): a deferred transaction that reads first and writes later fails at once with
/// `SQLITE_BUSY` when another writer committed meanwhile, instead of waiting its turn.
///
/// SQLite has one writer at a time, and a writer that finds the lock taken polls for it with
/// growing sleeps (1, 2, 5, 10 … 100 ms): under load some writers keep losing and wait hundreds
/// of milliseconds. Writers of this process therefore queue first on a fair in-process gate
/// and reach SQLite one after another; the gate is held until commit, rollback or drop.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTx> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    let gate = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => Some(sqlite_write_gate().clone().lock_owned().await),
        _ => None,
    };
    let tx = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?;
    Ok(WriteTx { tx, _gate: gate })
}

/// Runs one autocommit write (`write`, not yet polled) behind the same gate as [`begin_write`]:
/// on SQLite it would otherwise meet a gated transaction's lock and poll for it with growing
/// sleeps. Never call it while holding a [`WriteTx`] of the same process (the gate is not
/// re-entrant).
pub async fn gated<T>(db: &DatabaseConnection, write: impl std::future::Future<Output = T>) -> T {
    let _gate = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => Some(sqlite_write_gate().lock().await),
        _ => None,
    };
    write.await
}

/// One gate for every SQLite database of the process: a server has one; tests that open
/// several only see their writes queue behind each other's for a few milliseconds.
fn sqlite_write_gate() -> &'static std::sync::Arc<tokio::sync::Mutex<()>> {
    static GATE: std::sync::OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
        std::sync::OnceLock::new();
    GATE.get_or_init(Default::default)
}

/// A write transaction (see [`begin_write`]); use it wherever a connection is taken.
pub struct WriteTx {
    tx: sea_orm::DatabaseTransaction,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> std::result::Result<(), DbErr> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> std::result::Result<(), DbErr> {
        self.tx.rollback().await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTx {
    fn get_database_backend(&self) -> sea_orm::DbBackend {
        self.tx.get_database_backend()
    }

    async fn execute_raw(
        &self,
        stmt: sea_orm::Statement,
    ) -> std::result::Result<sea_orm::ExecResult, DbErr> {
        self.tx.execute_raw(stmt).await
    }

    async fn execute_unprepared(
        &self,
        sql: &str,
    ) -> std::result::Result<sea_orm::ExecResult, DbErr> {
        self.tx.execute_unprepared(sql).await
    }

    async fn query_one_raw(
        &self,
        stmt: sea_orm::Statement,
    ) -> std::result::Result<Option<sea_orm::QueryResult>, DbErr> {
        self.tx.query_one_raw(stmt).await
    }

    async fn query_all_raw(
        &self,
        stmt: sea_orm::Statement,
    ) -> std::result::Result<Vec<sea_orm::QueryResult>, DbErr> {
        self.tx.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.tx.support_returning()
    }
}

pub async fn ping(db: &impl ConnectionTrait) -> Result<()> {
    db.execute_unprepared("SELECT 1").await?;
    Ok(())
}

/// Unit tests' database, migrated: with `PRESSLUFT_TEST_POSTGRES_URL` (`postgres://user:pw@host:port`,
/// scripts/test-postgres.sh) a fresh database `pl_test_<id>` on that server (the script drops them
/// afterwards), else an SQLite file in `dir`.
#[cfg(test)]
pub(crate) async fn test_database(dir: &std::path::Path) -> DatabaseConnection {
    let url = match std::env::var("PRESSLUFT_TEST_POSTGRES_URL") {
        Ok(base) => {
            let name = format!(
                "pl_test_{}",
                crate::ids::new_id().replace('-', "").to_ascii_lowercase()
            );
            let admin = Database::connect(format!("{base}/postgres")).await.unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            admin.close().await.unwrap();
            format!("{base}/{name}")
        }
        Err(_) => format!("sqlite://{}?mode=rwc", dir.join("t.db").display()),
    };
    let db = connect(&url).await.unwrap();
    migrate(&db).await.unwrap();
    db
}
