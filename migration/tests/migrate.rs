//! The schema applies cleanly, enforces its enum CHECKs, uniques and foreign keys, and applying it
//! again is a no-op. Always on in-memory SQLite; also on PostgreSQL when
//! `PRESSLUFT_TEST_POSTGRES_URL` (`postgres://user:password@host:port`, a role with CREATEDB) is set:
//! in a fresh database on that server.
use migration::{Migrator, MigratorTrait};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, SqlErr,
};

const TABLES: &[&str] = &[
    "users",
    "auth_sessions",
    "api_tokens",
    "login_attempts",
    "nodes",
    "sites",
    "environments",
    "releases",
    "domains",
    "backups",
    "restores",
    "promotions",
    "imports",
    "drift_baselines",
    "drift_checks",
    "jobs",
    "job_logs",
    "events",
    "audit_logs",
    "settings",
    "secrets",
    "leases",
];

const TS: &str = "2026-02-18T12:34:56.123Z";

fn user(id: &str, email: &str, role: &str) -> InsertStatement {
    Query::insert()
        .into_table("users")
        .columns([
            "id",
            "email",
            "display_name",
            "role",
            "password_hash",
            "is_active",
            "created_at",
            "updated_at",
        ])
        .values_panic([
            id.into(),
            email.into(),
            "Admin".into(),
            role.into(),
            "$argon2id$...".into(),
            true.into(),
            TS.into(),
            TS.into(),
        ])
        .take()
}

fn site(id: &str, slug: &str, status: &str) -> InsertStatement {
    Query::insert()
        .into_table("sites")
        .columns(["id", "name", "slug", "status", "created_at", "updated_at"])
        .values_panic([
            id.into(),
            "Acme".into(),
            slug.into(),
            status.into(),
            TS.into(),
            TS.into(),
        ])
        .take()
}

async fn applied_migrations(db: &DatabaseConnection) -> usize {
    Migrator::get_applied_migrations(db).await.unwrap().len()
}

async fn exercise(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("first up");
    assert_eq!(applied_migrations(db).await, Migrator::migrations().len());

    let manager = SchemaManager::new(db);
    for table in TABLES {
        assert!(manager.has_table(*table).await.unwrap(), "missing {table}");
    }

    // Enum CHECKs: a good value goes in, a bad one is refused.
    db.execute(&user("u1", "admin@example.com", "admin"))
        .await
        .expect("valid user");
    let err = db
        .execute(&user("u2", "root@example.com", "root"))
        .await
        .expect_err("role outside the enum");
    assert!(
        err.to_string().to_lowercase().contains("check"),
        "expected a CHECK violation, got {err}"
    );
    let err = db
        .execute(&site("s1", "acme", "running"))
        .await
        .expect_err("status outside site_status");
    assert!(err.to_string().to_lowercase().contains("check"), "{err}");

    // Resource defaults.
    db.execute(&site("s1", "acme", "provisioning"))
        .await
        .expect("valid site");
    let row = db
        .query_one(
            &Query::select()
                .columns([
                    "generation",
                    "observed_generation",
                    "state_version",
                    "reconcile_attempts",
                    "conditions",
                ])
                .from("sites")
                .take(),
        )
        .await
        .unwrap()
        .expect("site row");
    assert_eq!(row.try_get::<i64>("", "generation").unwrap(), 1);
    assert_eq!(row.try_get::<i64>("", "observed_generation").unwrap(), 0);
    assert_eq!(row.try_get::<i64>("", "state_version").unwrap(), 1);
    assert_eq!(row.try_get::<i64>("", "reconcile_attempts").unwrap(), 0);
    assert_eq!(row.try_get::<String>("", "conditions").unwrap(), "[]");

    // Uniques.
    let err = db
        .execute(&site("s2", "acme", "provisioning"))
        .await
        .expect_err("duplicate slug");
    assert!(
        matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))),
        "{err}"
    );

    // Foreign keys: a session needs its user.
    let session = |id: &str, user_id: &str, token: &str| {
        Query::insert()
            .into_table("auth_sessions")
            .columns(["id", "user_id", "session_token", "expires_at", "created_at"])
            .values_panic([
                id.into(),
                user_id.into(),
                token.into(),
                TS.into(),
                TS.into(),
            ])
            .take()
    };
    db.execute(&session("a1", "u1", "t1"))
        .await
        .expect("session of a known user");
    let err = db
        .execute(&session("a2", "nobody", "t2"))
        .await
        .expect_err("session of an unknown user");
    assert!(
        matches!(
            err.sql_err(),
            Some(SqlErr::ForeignKeyConstraintViolation(_))
        ),
        "{err}"
    );

    // A second run applies nothing and fails on nothing.
    Migrator::up(db, None).await.expect("second up");
    assert_eq!(applied_migrations(db).await, Migrator::migrations().len());
    assert!(Migrator::get_pending_migrations(db)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn migrates_sqlite() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    assert_eq!(db.get_database_backend(), DbBackend::Sqlite);
    exercise(&db).await;
}

#[tokio::test]
async fn migrates_postgres() {
    let Ok(url) = std::env::var("PRESSLUFT_TEST_POSTGRES_URL") else {
        eprintln!("PRESSLUFT_TEST_POSTGRES_URL unset: PostgreSQL run skipped");
        return;
    };
    // A fresh database per run (`pl_test_…`: scripts/test-postgres.sh drops leftovers), so the
    // test never depends on what the server already holds.
    let name = format!(
        "pl_test_migrate_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let admin = Database::connect(format!("{url}/postgres")).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();

    let db = Database::connect(ConnectOptions::new(format!("{url}/{name}")))
        .await
        .unwrap();
    assert_eq!(db.get_database_backend(), DbBackend::Postgres);
    exercise(&db).await;
    db.close().await.unwrap();

    admin
        .execute_unprepared(&format!("DROP DATABASE {name}"))
        .await
        .unwrap();
}
