//! The `pressluft` binary: the server and the CLI. `anyhow` lives only here, at the edge.
use anyhow::Context;
use clap::Parser;

use pressluft::cli::{Cli, Command, LogFormat};
use pressluft::server::{self, ServeConfig};

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PRESSLUFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            db,
            listen,
            no_local_node,
            public_ip,
            web_dir,
            runtime,
        } => {
            init_tracing(cli.log_format);
            server::serve(ServeConfig {
                data_dir: db.data_dir(),
                database_url: db.database_url(),
                listen,
                register_local_node: !no_local_node,
                public_ip,
                web_dir,
                runtime: pressluft::runtime::RuntimeConfig {
                    resync: runtime.resync_interval,
                    max_attempts: runtime.max_attempts.max(1),
                    backoff_base: runtime.retry_backoff_base,
                    backoff_max: runtime.retry_backoff_max,
                    job_timeout: runtime.job_timeout,
                    node_job_limit: runtime.node_job_limit.max(1),
                    max_playbooks: runtime.max_playbooks.max(1),
                    lease_ttl: runtime.lease_ttl.max(std::time::Duration::from_secs(3)),
                    shutdown_grace: std::time::Duration::from_secs(30),
                    probe_interval: runtime.probe_interval,
                    panel_upstream: (!no_local_node).then_some(listen),
                },
                ansible_dir: runtime.ansible_dir.unwrap_or_else(|| {
                    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ansible")
                }),
                repo_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
                ansible_forkserver: !runtime.no_ansible_forkserver,
            })
            .await
            .context("pressluft serve")?;
        }
        Command::Migrate { db } => {
            init_tracing(cli.log_format);
            server::prepare_data_dir(&db.data_dir())?;
            server::open_database(&db.database_url())
                .await
                .context("migrate")?;
            println!("database is up to date");
        }
        Command::Openapi => print!("{}", pressluft::api::openapi_yaml()),
        diff @ Command::Diff { .. } => {
            std::process::exit(pressluft::cli::run_diff(cli.server, diff).await)
        }
        apply @ Command::Apply { .. } => {
            std::process::exit(pressluft::cli::run_apply(cli.server, apply).await)
        }
        other => match pressluft::cli::run_client(cli.server, other).await {
            Ok(out) => {
                if !out.is_empty() {
                    println!("{out}");
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        },
    }
    Ok(())
}
