//! `pressluft serve`: one process for the API, the dashboard and (later) the reconcilers, with
//! embedded SQLite by default.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::TcpListener;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiSettings, AppState};
use crate::notify::Notifier;
use crate::secrets::SecretBox;
use crate::store::{self, nodes::NewNode};
use crate::{ids, password};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen: SocketAddr,
    pub register_local_node: bool,
    pub public_ip: Option<String>,
    pub web_dir: Option<PathBuf>,
    pub runtime: crate::runtime::RuntimeConfig,
    pub ansible_dir: PathBuf,
    /// Where `scripts/` lives (the Ansible virtualenv is prepared with its script).
    pub repo_dir: PathBuf,
    /// Fork playbook runs from a pre-started ansible-playbook (`crate::runner::Forkserver`).
    pub ansible_forkserver: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("admin password: {0}")]
    Password(String),
    #[error("listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// Opens the database and brings its schema up to date.
pub async fn open_database(url: &str) -> Result<DatabaseConnection, ServeError> {
    let db = store::connect(url).await?;
    store::migrate(&db).await?;
    Ok(db)
}

pub fn prepare_data_dir(dir: &std::path::Path) -> Result<(), ServeError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|e| ServeError::DataDir(shown.clone(), e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| ServeError::DataDir(shown, e))?;
    Ok(())
}

/// Creates the admin user on first start: from `PRESSLUFT_ADMIN_EMAIL` / `PRESSLUFT_ADMIN_PASSWORD`,
/// or with a generated password printed once on standard output (never logged).
pub async fn bootstrap_admin(db: &DatabaseConnection) -> Result<(), ServeError> {
    if store::auth::count_users(db).await? > 0 {
        return Ok(());
    }
    let email = std::env::var("PRESSLUFT_ADMIN_EMAIL").unwrap_or_else(|_| "admin@localhost".into());
    let (password, generated) = match std::env::var("PRESSLUFT_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (ids::random_token(12), true),
    };
    let hash = password::hash(&password).map_err(|e| ServeError::Password(e.to_string()))?;
    store::auth::create_admin(db, &email, &hash).await?;
    tracing::info!(email = %email, "admin user created");
    if generated {
        println!(
            "\n  Pressluft admin created.\n    e-mail:   {email}\n    password: {password}\n  This password is shown once; keep it now.\n"
        );
    }
    Ok(())
}

/// Registers the host Pressluft runs on as the local node (once). It is reached over SSH to
/// localhost exactly like a remote node.
pub async fn register_local_node(
    db: &DatabaseConnection,
    public_ip: Option<&str>,
) -> Result<(), ServeError> {
    if store::nodes::local(db).await?.is_some() {
        return Ok(());
    }
    let node = store::nodes::create(
        db,
        NewNode {
            name: "local",
            hostname: "127.0.0.1",
            public_ip: Some(public_ip.unwrap_or("127.0.0.1")),
            ssh_port: 22,
            ssh_user: "root",
            is_local: true,
        },
    )
    .await?;
    store::events::append(
        db,
        store::events::NewEvent {
            resource_type: "node",
            resource_id: &node.id,
            reason: "Created",
            message: "local node registered".into(),
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(node = %node.id, "local node registered");
    Ok(())
}

pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    prepare_data_dir(&cfg.data_dir)?;
    let secrets = SecretBox::load_or_create(&cfg.data_dir)?;
    let db = open_database(&cfg.database_url).await?;
    bootstrap_admin(&db).await?;
    if cfg.register_local_node {
        register_local_node(&db, cfg.public_ip.as_deref()).await?;
    }
    let notifier = Notifier::default();
    let mut ansible_playbook = std::env::var_os("PRESSLUFT_ANSIBLE_PLAYBOOK").map(PathBuf::from);
    if cfg.register_local_node {
        let report = crate::local_node::prepare(&db, &secrets, &cfg.data_dir, &cfg.repo_dir).await;
        for p in &report.problems {
            tracing::warn!(problem = %p, "local node");
        }
        record_local_problems(&db, &report.problems).await?;
        ansible_playbook = ansible_playbook.or(report.ansible_playbook);
    }
    let ansible_playbook = ansible_playbook.or_else(|| {
        let p = cfg.data_dir.join("ansible-venv/bin/ansible-playbook");
        p.exists().then_some(p)
    });
    let runner = ansible_playbook.map(|p| {
        let work_dir = cfg.data_dir.join("run");
        // Run directories hold a copy of the SSH key and the extra-vars (secrets); one left behind
        // by a crash is removed before anything else runs.
        remove_stale_run_dirs(&work_dir);
        let _ = std::fs::create_dir_all(&work_dir);
        let forkserver = cfg
            .ansible_forkserver
            .then(|| {
                crate::runner::Forkserver::start(
                    &cfg.ansible_dir.join("forkserver.py"),
                    &cfg.ansible_dir,
                    &p,
                    cfg.data_dir.join("ansible-forkserver.sock"),
                )
                .map_err(|e| tracing::warn!(error = %e, "ansible forkserver not started: every run starts ansible-playbook"))
                .ok()
            })
            .flatten()
            .map(Arc::new);
        Arc::new(crate::runner::Runner {
            ansible_dir: cfg.ansible_dir.clone(),
            ansible_playbook: p,
            work_dir,
            forkserver,
        })
    });
    if runner.is_none() {
        tracing::warn!("ansible-playbook not found: node work cannot run until it is installed (scripts/install-prereqs.sh)");
    }
    let admin_email = store::auth::first_admin_email(&db)
        .await?
        .unwrap_or_default();
    let shutdown = CancellationToken::new();
    let runtime = crate::runtime::Runtime::new(
        db.clone(),
        secrets.clone(),
        notifier.clone(),
        runner,
        cfg.runtime.clone(),
        admin_email,
        shutdown.clone(),
    );
    let runtime_task = runtime.start();
    let state = AppState {
        db: db.clone(),
        secrets,
        notifier,
        settings: Arc::new(ApiSettings {
            default_public_ip: cfg.public_ip.clone().unwrap_or_else(|| "127.0.0.1".into()),
        }),
        credentials: Default::default(),
        runtime_stats: runtime.stats.clone(),
    };
    spawn_signal_handler(shutdown.clone());

    let app = api::app(state, cfg.web_dir.clone());
    let listener =
        std::net::TcpListener::bind(cfg.listen).map_err(|e| ServeError::Listen(cfg.listen, e))?;
    drop(listener);
    tracing::info!(listen = %cfg.listen, data_dir = %cfg.data_dir.display(), "pressluft serving");
    let stop = shutdown.clone();
    poem::Server::new(TcpListener::bind(cfg.listen))
        .run_with_graceful_shutdown(
            app,
            async move { stop.cancelled().await },
            Some(Duration::from_secs(10)),
        )
        .await
        .map_err(|e| ServeError::Listen(cfg.listen, e))?;
    shutdown.cancel();
    let _ = runtime_task.await;
    db.close().await.ok();
    tracing::info!("pressluft stopped");
    Ok(())
}

/// Stores the local node's missing prerequisites in its observed state; the node loop shows them
/// as its `Prerequisites` condition.
async fn record_local_problems(
    db: &DatabaseConnection,
    problems: &[String],
) -> Result<(), ServeError> {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let Some(node) = store::nodes::local(db).await? else {
        return Ok(());
    };
    let mut facts: crate::runtime::observed::NodeFacts =
        crate::runtime::observed::parse(node.observed.as_deref());
    facts.problems = problems.to_vec();
    crate::store::entity::nodes::Entity::update_many()
        .col_expr(
            crate::store::entity::nodes::Column::Observed,
            Expr::value(crate::runtime::observed::render(&facts)),
        )
        .filter(crate::store::entity::nodes::Column::Id.eq(node.id.as_str()))
        .exec(db)
        .await
        .map_err(store::StoreError::from)?;
    Ok(())
}

fn remove_stale_run_dirs(work_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("run-") {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(dir = %e.path().display(), error = %err, "cannot remove a stale run directory");
            }
        }
    }
}

/// First SIGINT/SIGTERM: stop gracefully. A second one: exit at once.
fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutting down: finishing running work");
        token.cancel();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}
