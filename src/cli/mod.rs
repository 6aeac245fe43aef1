//! The command line: `serve`, `migrate`, `openapi`, and a kubectl-like client of the API
//! (`login`, `get`, `describe`, `create`, `update`, `delete`, `reset`, `logs`).
mod adopt;
mod backups;
pub mod client;
pub mod manifests;
mod output;
mod releases;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::json;

use client::{Client, ClientError};
pub use output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "pressluft",
    version,
    about = "Self-hosted WordPress platform: declare sites, Pressluft makes the servers match"
)]
pub struct Cli {
    /// API address for client commands (default: the one `login` saved, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "PRESSLUFT_SERVER")]
    pub server: Option<String>,
    /// Log format of `serve` and `migrate`.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "PRESSLUFT_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// Where Pressluft keeps its database, secret key and runtime files.
    #[arg(long, env = "PRESSLUFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` (default: pressluft.db in the data directory) or `postgres://…`.
    #[arg(long, env = "PRESSLUFT_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl DbArgs {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir().join("pressluft.db").display()
            )
        })
    }
}

/// `/var/lib/pressluft` for root, else the user's data directory.
pub fn default_data_dir() -> PathBuf {
    let is_root = std::env::var("USER").is_ok_and(|u| u == "root")
        || std::fs::metadata("/proc/self")
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if is_root {
        PathBuf::from("/var/lib/pressluft")
    } else {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("pressluft")
    }
}

/// How the reconcilers work: retries, timeouts, resync, concurrency.
#[derive(Debug, Args, Clone)]
pub struct RuntimeArgs {
    /// Periodic resync of every resource (drift repair).
    #[arg(long, env = "PRESSLUFT_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub resync_interval: std::time::Duration,
    /// A probe round per node: observed state and drift detection.
    #[arg(long, env = "PRESSLUFT_PROBE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub probe_interval: std::time::Duration,
    /// Attempts per change, the first included.
    #[arg(long, env = "PRESSLUFT_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles per attempt.
    #[arg(long, env = "PRESSLUFT_RETRY_BACKOFF_BASE", default_value = "60s", value_parser = parse_duration)]
    pub retry_backoff_base: std::time::Duration,
    /// Upper bound of one wait between attempts.
    #[arg(long, env = "PRESSLUFT_RETRY_BACKOFF_MAX", default_value = "15m", value_parser = parse_duration)]
    pub retry_backoff_max: std::time::Duration,
    /// A playbook run is killed after this long (ANSIBLE_TIMEOUT).
    #[arg(long, env = "PRESSLUFT_JOB_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub job_timeout: std::time::Duration,
    /// Jobs that may run at once on one node, counted across all replicas.
    #[arg(long, env = "PRESSLUFT_NODE_JOB_LIMIT", default_value_t = 4)]
    pub node_job_limit: usize,
    /// `ansible-playbook` processes this replica runs at once (more jobs wait, `queued`).
    #[arg(long, env = "PRESSLUFT_MAX_PLAYBOOKS", default_value_t = 8)]
    pub max_playbooks: usize,
    /// Lease of a running job, a reconcile pass and the backup scheduler, renewed every third of
    /// it: with several replicas, a dead replica's work is taken over this long after it died.
    #[arg(long, env = "PRESSLUFT_LEASE_TTL", default_value = "60s", value_parser = parse_duration)]
    pub lease_ttl: std::time::Duration,
    /// The `ansible/` directory (playbooks, modules, ansible.cfg); default: the one in this repository.
    #[arg(long, env = "PRESSLUFT_ANSIBLE_DIR")]
    pub ansible_dir: Option<PathBuf>,
    /// Run every playbook as a fresh `ansible-playbook` process instead of forking it from a
    /// pre-started one (ansible/forkserver.py), which saves its ~0.5 s start-up per job.
    #[arg(long, env = "PRESSLUFT_NO_ANSIBLE_FORKSERVER")]
    pub no_ansible_forkserver: bool,
}

/// `500ms`, `30s`, `5m`, `2h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 30s, 5m or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("'{s}': unknown unit (use ms, s, m or h)")),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Pressluft: API, dashboard and reconcilers in one process.
    Serve {
        #[command(flatten)]
        db: DbArgs,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "PRESSLUFT_LISTEN_ADDR")]
        listen: SocketAddr,
        /// Do not register this host as the local node.
        #[arg(long)]
        no_local_node: bool,
        /// This host's public IP address (preview URLs); default 127.0.0.1.
        #[arg(long, env = "PRESSLUFT_PUBLIC_IP")]
        public_ip: Option<String>,
        /// Serve the dashboard from this directory instead of the one built into the binary.
        #[arg(long, env = "PRESSLUFT_WEB_DIR")]
        web_dir: Option<PathBuf>,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print the OpenAPI document (YAML).
    Openapi,
    /// Show what applying manifests would change; exits 0 when in sync, 1 when there are
    /// changes, 2 on errors (like `kubectl diff`).
    Diff {
        /// Manifest file or directory (its *.yaml, *.yml, *.json), `-` for standard input;
        /// repeatable.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// The apply set the manifests belong to.
        #[arg(long)]
        apply_set: Option<String>,
        /// Also show what the apply set would prune.
        #[arg(long)]
        prune: bool,
        /// List unchanged resources too.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Apply manifests in one transaction (all or nothing); re-applying the same set changes
    /// nothing. Prints the plan and the receipt's id; exits 0 when applied, 2 on errors.
    Apply {
        /// Manifest file or directory (its *.yaml, *.yml, *.json), `-` for standard input;
        /// repeatable.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// The apply set the manifests belong to (needed for --prune).
        #[arg(long)]
        apply_set: Option<String>,
        /// Delete what the apply set applied before and no longer holds.
        #[arg(long)]
        prune: bool,
        /// Only show what would change.
        #[arg(long)]
        dry_run: bool,
        /// List unchanged resources too.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Wait until a resource's condition holds (at its current generation), like `kubectl wait`:
    /// `pressluft wait --for=condition=Ready site/shop --timeout 10m`. Exits 1 on timeout.
    Wait {
        /// `condition=TYPE` or `condition=TYPE=STATUS` (default status True).
        #[arg(long = "for")]
        for_: String,
        /// `site/SLUG`, `environment/SITE/SLUG`, `domain/HOST`, `node/NAME`, or KIND/ID.
        target: String,
        /// `90s`, `5m`, `1h` or seconds.
        #[arg(long, default_value = "5m")]
        timeout: String,
    },
    /// The sync (synced / out-of-sync) and health (healthy / progressing / degraded) of each
    /// apply set, or of one, with its resources.
    ApplySets { name: Option<String> },
    /// Print the desired state as manifests (YAML): every node, site, environment, domain,
    /// backup schedule and the settings; applying it changes nothing.
    Export,
    /// Log in and keep an API token for the other commands.
    Login {
        #[arg(long, env = "PRESSLUFT_EMAIL")]
        email: String,
        /// Read the password from standard input (else PRESSLUFT_PASSWORD).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List resources.
    Get {
        kind: Kind,
        /// promotions: the environment whose promotions are listed (id).
        parent: Option<String>,
        /// Only those of this site (id or slug).
        #[arg(long)]
        site: Option<String>,
        /// Only those of this environment (id).
        #[arg(long)]
        environment: Option<String>,
        /// Only those with this status (e.g. backups: completed, failed).
        #[arg(long)]
        status: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Back up an environment now.
    Backup {
        /// Environment id.
        environment: String,
        /// full, db or files.
        #[arg(long, default_value = "full")]
        scope: String,
        /// Wait until the backup is completed (fails when it fails).
        #[arg(long)]
        wait: bool,
    },
    /// Restore a backup into an environment of the same site (a pre-restore backup is taken
    /// first; an unhealthy result is rolled back).
    Restore {
        /// Environment id.
        environment: String,
        #[arg(long)]
        backup: String,
        #[arg(long)]
        wait: bool,
    },
    /// Import an existing WordPress site from an archive into an environment (a fresh backup is
    /// taken first; the archive is checked whole; an unhealthy result is rolled back).
    Import {
        /// Environment id (usually the site's production).
        environment: String,
        /// https://… or file:///var/lib/pressluft/imports/… (.tar.gz with db.sql + files/).
        #[arg(long, required_unless_present_any = ["database_url", "file", "database_file"])]
        archive_url: Option<String>,
        /// A local archive, uploaded to the environment's node first (instead of --archive-url).
        #[arg(long, conflicts_with_all = ["archive_url", "database_url"])]
        file: Option<std::path::PathBuf>,
        /// A local dump (.sql / .sql.gz) and …
        #[arg(long, requires = "content_file", conflicts_with_all = ["archive_url", "database_url", "file"])]
        database_file: Option<std::path::PathBuf>,
        /// … a local wp-content tarball, both uploaded first.
        #[arg(long, requires = "database_file")]
        content_file: Option<std::path::PathBuf>,
        /// The archive's SHA-256.
        #[arg(long)]
        sha256: Option<String>,
        /// Instead of one archive: a dump alone (.sql or .sql.gz) …
        #[arg(long, requires = "content_url", conflicts_with = "archive_url")]
        database_url: Option<String>,
        #[arg(long)]
        database_sha256: Option<String>,
        /// … and a wp-content tarball.
        #[arg(long, requires = "database_url")]
        content_url: Option<String>,
        #[arg(long)]
        content_sha256: Option<String>,
        /// The URL the site was served on (default: meta.json's, else the dump's home).
        #[arg(long)]
        source_url: Option<String>,
        /// The dump's table prefix (default: meta.json's, else found in the dump).
        #[arg(long)]
        table_prefix: Option<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Adopt a WordPress site from a server reachable over SSH into a new site (`--dry-run`:
    /// only report what is there; `--public-key`: the key to authorize on the source first).
    Adopt {
        /// The new site's name.
        #[arg(long, required_unless_present = "public_key")]
        name: Option<String>,
        /// The new site's slug (default: derived from the name).
        #[arg(long)]
        slug: Option<String>,
        /// The node of the new site (default: the local node).
        #[arg(long)]
        node: Option<String>,
        /// The source server.
        #[arg(long, required_unless_present = "public_key")]
        host: Option<String>,
        #[arg(long)]
        port: Option<u16>,
        /// The source user (its authorized_keys holds the adoption key).
        #[arg(long, required_unless_present = "public_key")]
        user: Option<String>,
        /// The WordPress root on the source.
        #[arg(long, required_unless_present = "public_key")]
        path: Option<String>,
        /// Pin this host key (`ssh-ed25519 AAAA…`, as a dry run showed it).
        #[arg(long)]
        host_key: Option<String>,
        #[arg(long)]
        dry_run: bool,
        /// Print the adoption public key and exit.
        #[arg(long)]
        public_key: bool,
        #[arg(long)]
        wait: bool,
    },
    /// Back up an environment on a schedule, with retention.
    ScheduleBackups {
        /// Environment id.
        environment: String,
        /// Interval: 30m, 1h, 1d.
        #[arg(long, conflicts_with = "cron")]
        every: Option<String>,
        /// Five-field cron expression in UTC.
        #[arg(long)]
        cron: Option<String>,
        #[arg(long, default_value = "full")]
        scope: String,
        #[arg(long)]
        keep_last: Option<i64>,
        #[arg(long)]
        keep_days: Option<i64>,
        /// Drill each new scheduled backup.
        #[arg(long)]
        drill: bool,
    },
    /// Download one artifact of a completed backup (streamed; size and SHA-256 checked).
    Download {
        /// Backup id.
        backup: String,
        /// database.sql.zst, files.tar.zst, uploads.tar.zst or manifest.json.
        artifact: String,
        /// Write it here (`-` for standard output).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Promote a staging or clone environment to its site's production environment (drift
    /// gate, fresh backup of production, sync that never writes protected tables, health check,
    /// rollback). `--dry-run` prints the plan and changes nothing.
    Promote {
        /// The environment to promote (id).
        environment: String,
        /// content-protect or commerce-protect (default: the environment's preset).
        #[arg(long)]
        preset: Option<String>,
        #[arg(long)]
        dry_run: bool,
        /// Wait until the promotion is over (fails when it is blocked or failed).
        #[arg(long)]
        wait: bool,
    },
    /// Check production for drift against a staging or clone environment's baseline; prints the
    /// environment's drift status (with `--wait`: the new check's verdict).
    DriftCheck {
        /// The staging or clone environment (id).
        environment: String,
        /// Wait for the check's result.
        #[arg(long)]
        wait: bool,
    },
    /// Deploy a release to an environment: built, checked before and after an atomic switch,
    /// switched back when unhealthy. `--dry-run` prints the files that would change.
    Deploy {
        /// Environment id.
        environment: String,
        /// A git repository and ref: URL#branch, URL#tag or URL#commit.
        #[arg(long, conflicts_with = "upload")]
        git: Option<String>,
        /// An archive (.tar.gz, .tgz, .zip): file:///path on the node or http(s)://, optionally
        /// #sha256=<hex>.
        #[arg(long)]
        upload: Option<String>,
        #[arg(long)]
        dry_run: bool,
        /// Wait until the release is judged (fails when it is unhealthy).
        #[arg(long)]
        wait: bool,
    },
    /// Update WordPress core, plugins or themes from the update source as a new release (after
    /// a fresh full backup; switched back when unhealthy). `--dry-run` lists what would change.
    ApplyUpdates {
        /// Environment id.
        environment: String,
        /// core, plugins, themes or all.
        #[arg(long, default_value = "all")]
        scope: String,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        wait: bool,
    },
    /// Switch an environment back to one of its earlier releases.
    Rollback {
        /// Environment id.
        environment: String,
        /// Release id.
        release: String,
        #[arg(long)]
        wait: bool,
    },
    /// Restore a backup into a scratch environment, health-check it, remove it.
    Drill {
        backup: String,
        #[arg(long)]
        wait: bool,
    },
    /// Show one resource in full.
    Describe {
        kind: Kind,
        /// Id, or slug for sites.
        reference: String,
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Format,
    },
    /// Declare a resource.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Change a resource's spec.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Delete a resource (it is torn down on its node first).
    Delete {
        kind: Kind,
        reference: String,
        /// The state_version you last read (default: the current one).
        #[arg(long)]
        state_version: Option<i64>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Put a failed site or environment back into reconciliation.
    Reset { kind: Kind, reference: String },
    /// Print a one-time WordPress admin login URL for an environment (valid 60 s, used once).
    LoginUrl {
        /// Environment id.
        environment: String,
    },
    /// Delete an environment's cached pages on its node; prints how many.
    PurgeCache {
        /// Environment id.
        environment: String,
    },
    /// Print a job's log; `--follow` keeps printing until the job ends.
    Logs {
        job: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Print events (optionally of one site); `--follow` keeps printing new ones.
    Events {
        #[arg(long)]
        site: Option<String>,
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Kind {
    #[value(alias = "site")]
    Sites,
    #[value(alias = "environment", alias = "env", alias = "envs")]
    Environments,
    #[value(alias = "node")]
    Nodes,
    #[value(alias = "domain")]
    Domains,
    #[value(alias = "backup")]
    Backups,
    #[value(alias = "job")]
    Jobs,
    #[value(alias = "event")]
    Events,
    #[value(alias = "token")]
    Tokens,
    #[value(alias = "promotion")]
    Promotions,
    #[value(alias = "release")]
    Releases,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Sites => "/api/sites",
            Kind::Environments => "/api/environments",
            Kind::Nodes => "/api/nodes",
            Kind::Domains => "/api/domains",
            Kind::Backups => "/api/backups",
            Kind::Jobs => "/api/jobs",
            Kind::Events => "/api/events",
            Kind::Tokens => "/api/tokens",
            Kind::Promotions => "/api/promotions",
            Kind::Releases => "/api/releases",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// A site and its production environment.
    Site {
        #[arg(long)]
        name: String,
        #[arg(long)]
        slug: String,
        #[arg(long)]
        node: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// A staging or clone environment.
    Environment {
        #[arg(long)]
        site: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        slug: String,
        #[arg(long = "type", default_value = "staging")]
        type_: String,
        #[arg(long)]
        source: Option<String>,
        #[arg(long, default_value = "content-protect")]
        preset: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// A remote node.
    Node {
        #[arg(long)]
        name: String,
        #[arg(long)]
        hostname: String,
        #[arg(long)]
        public_ip: Option<String>,
        #[arg(long, default_value_t = 22)]
        ssh_port: i64,
        #[arg(long, default_value = "root")]
        ssh_user: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// A domain on an environment.
    Domain {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        hostname: String,
        /// Make it the environment's primary domain (its site URL).
        #[arg(long)]
        primary: bool,
        /// Redirect www.<hostname> to it.
        #[arg(long)]
        www_redirect: bool,
        /// acme (default), custom or none.
        #[arg(long)]
        tls_mode: Option<String>,
        /// tls_mode custom: the certificate chain (PEM file).
        #[arg(long)]
        certificate_file: Option<std::path::PathBuf>,
        /// tls_mode custom: the private key (PEM file); sent once, never shown again.
        #[arg(long)]
        private_key_file: Option<std::path::PathBuf>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// A backup of an environment.
    Backup {
        #[arg(long)]
        environment: String,
        #[arg(long, default_value = "full")]
        scope: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// An API token (printed once).
    Token {
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    Site {
        reference: String,
        #[arg(long)]
        name: Option<String>,
        /// The state_version you last read (default: the current one).
        #[arg(long)]
        state_version: Option<i64>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    Environment {
        reference: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        fastcgi_cache: Option<bool>,
        #[arg(long)]
        redis_cache: Option<bool>,
        /// Page cache lifetime in seconds.
        #[arg(long)]
        cache_ttl: Option<i64>,
        #[arg(long)]
        state_version: Option<i64>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    Node {
        reference: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        ssh_port: Option<i64>,
        #[arg(long)]
        ssh_user: Option<String>,
        #[arg(long)]
        state_version: Option<i64>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

/// `pressluft diff`: prints the plan (or the problems) and answers the exit code.
pub async fn run_diff(server: Option<String>, command: Command) -> i32 {
    let Command::Diff {
        files,
        apply_set,
        prune,
        verbose,
    } = command
    else {
        return 2;
    };
    match manifests::diff(&client(server), &files, apply_set, prune, verbose).await {
        Ok(manifests::DiffOutcome::InSync(text)) => {
            print!("{text}");
            0
        }
        Ok(manifests::DiffOutcome::Changes(text)) => {
            print!("{text}");
            1
        }
        Ok(manifests::DiffOutcome::Invalid(text)) => {
            eprint!("{text}");
            2
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// `pressluft apply`: prints the plan and the receipt (or the problems) and answers the exit code.
pub async fn run_apply(server: Option<String>, command: Command) -> i32 {
    let Command::Apply {
        files,
        apply_set,
        prune,
        dry_run,
        verbose,
    } = command
    else {
        return 2;
    };
    match manifests::apply(&client(server), &files, apply_set, prune, dry_run, verbose).await {
        Ok(manifests::ApplyOutcome::Applied(text)) => {
            print!("{text}");
            0
        }
        Ok(manifests::ApplyOutcome::Invalid(text)) => {
            eprint!("{text}");
            2
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn client(server: Option<String>) -> Client {
    let cfg = client::load_config();
    let server = server
        .or(cfg.server)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let token = std::env::var("PRESSLUFT_TOKEN").ok().or(cfg.token);
    Client::new(server, token)
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// Resolves a site slug to its id.
async fn site_id(c: &Client, reference: &str) -> Result<String, ClientError> {
    if is_uuid(reference) {
        return Ok(reference.to_string());
    }
    let (_, v) = c
        .request(
            Method::GET,
            &format!("/api/sites?slug={}", urlencode(reference)),
            None,
        )
        .await?;
    v["items"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ClientError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!("no site with slug '{reference}'"),
        })
}

async fn resolve(c: &Client, kind: Kind, reference: &str) -> Result<String, ClientError> {
    match kind {
        Kind::Sites => site_id(c, reference).await,
        _ if is_uuid(reference) => Ok(reference.to_string()),
        _ => Err(ClientError::Api {
            status: 400,
            code: "bad_request".into(),
            message: format!("'{reference}' is not an id"),
        }),
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn current_version(c: &Client, path: &str, given: Option<i64>) -> Result<i64, ClientError> {
    if let Some(v) = given {
        return Ok(v);
    }
    let (_, v) = c.request(Method::GET, path, None).await?;
    Ok(v["state_version"].as_i64().unwrap_or(1))
}

/// Runs a client command; `Ok` carries what to print.
pub async fn run_client(server: Option<String>, command: Command) -> Result<String, ClientError> {
    let c = client(server.clone());
    match command {
        Command::Login {
            email,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut s = String::new();
                std::io::stdin()
                    .read_line(&mut s)
                    .map_err(|e| ClientError::Config("stdin".into(), e.to_string()))?;
                s.trim_end_matches(['\n', '\r']).to_string()
            } else {
                std::env::var("PRESSLUFT_PASSWORD").map_err(|_| {
                    ClientError::Config(
                        "password".into(),
                        "use --password-stdin or set PRESSLUFT_PASSWORD".into(),
                    )
                })?
            };
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "host".into());
            let token = c
                .login(&email, &password, &format!("cli@{}", host.trim()))
                .await?;
            client::save_config(&client::CliConfig {
                server: Some(c.server.clone()),
                token: Some(token),
            })?;
            Ok(format!(
                "logged in to {}; token saved in {}",
                c.server,
                client::config_path().display()
            ))
        }
        Command::Get {
            kind,
            parent,
            site,
            environment,
            status,
            output,
        } => {
            let mut path = kind.path().to_string();
            if kind == Kind::Promotions {
                let env = parent
                    .or(environment.clone())
                    .ok_or_else(|| ClientError::Api {
                        status: 400,
                        code: "bad_request".into(),
                        message: "get promotions needs an environment id".into(),
                    })?;
                let env = resolve(&c, Kind::Environments, &env).await?;
                let (_, v) = c
                    .request(
                        Method::GET,
                        &format!("/api/environments/{env}/promotions"),
                        None,
                    )
                    .await?;
                let items = v.get("items").cloned().unwrap_or(v);
                return Ok(output::render_list(kind, &items, output));
            }
            if kind == Kind::Releases {
                let env = parent
                    .or(environment.clone())
                    .ok_or_else(|| ClientError::Api {
                        status: 400,
                        code: "bad_request".into(),
                        message: "get releases needs an environment id".into(),
                    })?;
                let env = resolve(&c, Kind::Environments, &env).await?;
                let (_, v) = c
                    .request(
                        Method::GET,
                        &format!("/api/environments/{env}/releases"),
                        None,
                    )
                    .await?;
                let items = v.get("items").cloned().unwrap_or(v);
                return Ok(output::render_list(kind, &items, output));
            }
            let _ = parent;
            let mut q = Vec::new();
            if let Some(s) = site {
                q.push(format!("site_id={}", site_id(&c, &s).await?));
            }
            if let Some(e) = environment {
                q.push(format!("environment_id={}", urlencode(&e)));
            }
            if let Some(s) = status {
                q.push(format!("status={}", urlencode(&s)));
            }
            if kind == Kind::Events && q.is_empty() {
                q.push("limit=100".into());
            }
            if !q.is_empty() {
                path = format!("{path}?{}", q.join("&"));
            }
            let (_, v) = c.request(Method::GET, &path, None).await?;
            let items = v.get("items").cloned().unwrap_or(v);
            Ok(output::render_list(kind, &items, output))
        }
        Command::Describe {
            kind,
            reference,
            output,
        } => {
            let id = resolve(&c, kind, &reference).await?;
            let (_, v) = c
                .request(Method::GET, &format!("{}/{id}", kind.path()), None)
                .await?;
            Ok(output::render_one(kind, &v, output))
        }
        Command::Create(cmd) => create(&c, cmd).await,
        Command::Update(cmd) => update(&c, cmd).await,
        Command::Delete {
            kind,
            reference,
            state_version,
            output,
        } => {
            let id = resolve(&c, kind, &reference).await?;
            let path = format!("{}/{id}", kind.path());
            if kind == Kind::Tokens {
                let (_, v) = c.request(Method::DELETE, &path, None).await?;
                return Ok(output::render_one(kind, &v, output));
            }
            let version = current_version(&c, &path, state_version).await?;
            let (_, v) = c
                .request(
                    Method::DELETE,
                    &format!("{path}?state_version={version}"),
                    None,
                )
                .await?;
            Ok(output::render_one(kind, &v, output))
        }
        Command::Reset { kind, reference } => {
            let id = resolve(&c, kind, &reference).await?;
            let (_, v) = c
                .request(Method::POST, &format!("{}/{id}/reset", kind.path()), None)
                .await?;
            Ok(output::render_one(kind, &v, Format::Table))
        }
        Command::LoginUrl { environment } => {
            let id = resolve(&c, Kind::Environments, &environment).await?;
            let (_, v) = c
                .request(
                    Method::POST,
                    &format!("/api/environments/{id}/magic-login"),
                    None,
                )
                .await?;
            v["login_url"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| ClientError::Api {
                    status: 502,
                    code: "bad_response".into(),
                    message: "the server's answer has no login_url".into(),
                })
        }
        Command::PurgeCache { environment } => {
            let id = resolve(&c, Kind::Environments, &environment).await?;
            let (_, v) = c
                .request(
                    Method::POST,
                    &format!("/api/environments/{id}/cache/purge"),
                    None,
                )
                .await?;
            Ok(format!("purged {} cached pages", v["purged_pages"]))
        }
        Command::Logs { job, follow } => logs(&c, &job, follow).await,
        Command::Backup {
            environment,
            scope,
            wait,
        } => {
            let env = resolve(&c, Kind::Environments, &environment).await?;
            backups::backup(&c, &env, &scope, wait).await
        }
        Command::DriftCheck { environment, wait } => {
            let env = resolve(&c, Kind::Environments, &environment).await?;
            backups::drift_check(&c, &env, wait).await
        }
        Command::Promote {
            environment,
            preset,
            dry_run,
            wait,
        } => {
            let env = resolve(&c, Kind::Environments, &environment).await?;
            backups::promote(&c, &env, preset.as_deref(), dry_run, wait).await
        }
        Command::Deploy {
            environment,
            git,
            upload,
            dry_run,
            wait,
        } => {
            let env = resolve(&c, Kind::Environments, &environment).await?;
            releases::deploy(&c, &env, git, upload, dry_run, wait).await
        }
        Command::ApplyUpdates {
            environment,
            scope,
            dry_run,
            wait,
        } => {
            let env = resolve(&c, Kind::Environments, &environment).await?;
            releases::apply_updates(&c, &env, &scope, dry_run, wait).await
        }
        Command::Rollback {
            environment,
            release,
            wait,
        } => {
            let env = resolve(&c, Kind::Environments, &environment).await?;
            releases::rollback(&c, &env, &release, wait).await
        }
        Command::Restore {
            environment,
            backup,
            wait,
        } => {
            let env = resolve(&c, Kind::Environments, &environment).await?;
            let backup = resolve(&c, Kind::Backups, &backup).await?;
            backups::restore(&c, &env, &backup, wait).await
        }
        Command::Import {
            environment,
            mut archive_url,
            mut sha256,
            file,
            database_file,
            content_file,
            mut database_url,
            mut database_sha256,
            mut content_url,
            mut content_sha256,
            source_url,
            table_prefix,
            wait,
        } => {
            let env = resolve(&c, Kind::Environments, &environment).await?;
            if let Some(f) = &file {
                (archive_url, sha256) = backups::upload_for_import(&c, &env, f).await?;
            }
            if let (Some(d), Some(w)) = (&database_file, &content_file) {
                (database_url, database_sha256) = backups::upload_for_import(&c, &env, d).await?;
                (content_url, content_sha256) = backups::upload_for_import(&c, &env, w).await?;
            }
            let body = serde_json::json!({
                "archive_url": archive_url,
                "sha256": sha256,
                "database_url": database_url,
                "database_sha256": database_sha256,
                "content_url": content_url,
                "content_sha256": content_sha256,
                "source_url": source_url,
                "table_prefix": table_prefix,
            });
            backups::import(&c, &env, body, wait).await
        }
        Command::Adopt {
            name,
            slug,
            node,
            host,
            port,
            user,
            path,
            host_key,
            dry_run,
            public_key,
            wait,
        } => {
            if public_key {
                return adopt::public_key(&c).await;
            }
            let node = match node {
                Some(n) => Some(resolve(&c, Kind::Nodes, &n).await?),
                None => None,
            };
            adopt::adopt(
                &c,
                adopt::AdoptArgs {
                    name,
                    slug,
                    node,
                    host,
                    port,
                    user,
                    path,
                    host_key,
                    dry_run,
                },
                wait,
            )
            .await
        }
        Command::ScheduleBackups {
            environment,
            every,
            cron,
            scope,
            keep_last,
            keep_days,
            drill,
        } => {
            let env = resolve(&c, Kind::Environments, &environment).await?;
            backups::schedule(
                &c,
                &env,
                backups::ScheduleArgs {
                    every,
                    cron,
                    scope,
                    keep_last,
                    keep_days,
                    drill,
                },
            )
            .await
        }
        Command::Download {
            backup,
            artifact,
            output,
        } => {
            let backup = resolve(&c, Kind::Backups, &backup).await?;
            backups::download(&c, &backup, &artifact, &output).await
        }
        Command::Drill { backup, wait } => {
            let backup = resolve(&c, Kind::Backups, &backup).await?;
            backups::drill(&c, &backup, wait).await
        }
        Command::Events { site, follow } => {
            let filter = match site {
                Some(s) => format!("&site_id={}", site_id(&c, &s).await?),
                None => String::new(),
            };
            events(&c, &filter, follow).await
        }
        Command::Export => manifests::export(&c).await,
        Command::Wait {
            for_,
            target,
            timeout,
        } => {
            let timeout = manifests::parse_duration(&timeout).ok_or_else(|| ClientError::Api {
                status: 400,
                code: "bad_request".into(),
                message: format!("--timeout '{timeout}': give 90s, 5m, 1h or seconds"),
            })?;
            manifests::wait(&c, &for_, &target, timeout).await
        }
        Command::ApplySets { name } => manifests::sync_status(&c, name.as_deref()).await,
        Command::Serve { .. }
        | Command::Migrate { .. }
        | Command::Openapi
        | Command::Diff { .. }
        | Command::Apply { .. } => {
            unreachable!("server commands and diff are dispatched by main")
        }
    }
}

async fn create(c: &Client, cmd: CreateCommand) -> Result<String, ClientError> {
    let (kind, path, body, output) = match cmd {
        CreateCommand::Site {
            name,
            slug,
            node,
            output,
        } => {
            let mut b = json!({ "name": name, "slug": slug });
            if let Some(n) = node {
                b["node_id"] = json!(n);
            }
            (Kind::Sites, "/api/sites".to_string(), b, output)
        }
        CreateCommand::Environment {
            site,
            name,
            slug,
            type_,
            source,
            preset,
            output,
        } => {
            let sid = site_id(c, &site).await?;
            let mut b =
                json!({ "name": name, "slug": slug, "type": type_, "promotion_preset": preset });
            if let Some(s) = source {
                b["source_environment_id"] = json!(s);
            }
            (
                Kind::Environments,
                format!("/api/sites/{sid}/environments"),
                b,
                output,
            )
        }
        CreateCommand::Node {
            name,
            hostname,
            public_ip,
            ssh_port,
            ssh_user,
            output,
        } => {
            let mut b = json!({ "name": name, "hostname": hostname, "ssh_port": ssh_port, "ssh_user": ssh_user });
            if let Some(ip) = public_ip {
                b["public_ip"] = json!(ip);
            }
            (Kind::Nodes, "/api/nodes".to_string(), b, output)
        }
        CreateCommand::Domain {
            environment,
            hostname,
            primary,
            www_redirect,
            tls_mode,
            certificate_file,
            private_key_file,
            output,
        } => {
            let mut b = json!({ "hostname": hostname, "www_redirect": www_redirect });
            if primary {
                b["primary"] = json!(true);
            }
            if let Some(m) = tls_mode {
                b["tls_mode"] = json!(m);
            }
            for (field, file) in [
                ("certificate_pem", certificate_file),
                ("private_key_pem", private_key_file),
            ] {
                if let Some(path) = file {
                    let pem = std::fs::read_to_string(&path).map_err(|e| {
                        ClientError::Config(path.display().to_string(), e.to_string())
                    })?;
                    b[field] = json!(pem);
                }
            }
            (
                Kind::Domains,
                format!("/api/environments/{environment}/domains"),
                b,
                output,
            )
        }
        CreateCommand::Backup {
            environment,
            scope,
            output,
        } => (
            Kind::Backups,
            format!("/api/environments/{environment}/backups"),
            json!({ "backup_scope": scope }),
            output,
        ),
        CreateCommand::Token { name } => {
            let (_, v) = c
                .request(Method::POST, "/api/tokens", Some(&json!({ "name": name })))
                .await?;
            return Ok(format!(
                "token {} created; it is shown only now:\n{}",
                v["id"].as_str().unwrap_or(""),
                v["token"].as_str().unwrap_or("")
            ));
        }
    };
    let (_, v) = c.request(Method::POST, &path, Some(&body)).await?;
    Ok(output::render_one(kind, &v, output))
}

async fn update(c: &Client, cmd: UpdateCommand) -> Result<String, ClientError> {
    let (kind, reference, mut body, state_version, output) = match cmd {
        UpdateCommand::Site {
            reference,
            name,
            state_version,
            output,
        } => (
            Kind::Sites,
            reference,
            json!({ "name": name }),
            state_version,
            output,
        ),
        UpdateCommand::Environment {
            reference,
            name,
            fastcgi_cache,
            redis_cache,
            cache_ttl,
            state_version,
            output,
        } => (
            Kind::Environments,
            reference,
            json!({ "name": name, "fastcgi_cache_enabled": fastcgi_cache, "redis_cache_enabled": redis_cache, "fastcgi_cache_ttl_seconds": cache_ttl }),
            state_version,
            output,
        ),
        UpdateCommand::Node {
            reference,
            name,
            hostname,
            ssh_port,
            ssh_user,
            state_version,
            output,
        } => (
            Kind::Nodes,
            reference,
            json!({ "name": name, "hostname": hostname, "ssh_port": ssh_port, "ssh_user": ssh_user }),
            state_version,
            output,
        ),
    };
    let id = resolve(c, kind, &reference).await?;
    let path = format!("{}/{id}", kind.path());
    let version = current_version(c, &path, state_version).await?;
    if let Some(o) = body.as_object_mut() {
        o.retain(|_, v| !v.is_null());
        o.insert("state_version".into(), json!(version));
    }
    let (status, v) = c.request(Method::PATCH, &path, Some(&body)).await?;
    let mut out = output::render_one(kind, &v, output);
    if status == 200 {
        out.push_str("\n(unchanged)");
    }
    Ok(out)
}

/// Prints events page by page; with `follow`, polls for new ones until interrupted.
async fn events(c: &Client, filter: &str, follow: bool) -> Result<String, ClientError> {
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cur) => format!("/api/events?limit=500&cursor={cur}{filter}"),
            None => format!("/api/events?limit=500{filter}"),
        };
        let (_, v) = c.request(Method::GET, &path, None).await?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        for e in &items {
            println!(
                "{}  {:<11} {}  {:<18} {}",
                e["created_at"].as_str().unwrap_or(""),
                e["resource_type"].as_str().unwrap_or(""),
                e["resource_id"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            );
        }
        if let Some(next) = v["next_cursor"].as_str() {
            cursor = Some(next.to_string());
        }
        if items.len() < 500 {
            if !follow {
                return Ok(String::new());
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

async fn logs(c: &Client, job: &str, follow: bool) -> Result<String, ClientError> {
    let mut printed = 0usize;
    loop {
        let log = c.text(&format!("/api/jobs/{job}/log")).await?;
        if log.len() > printed {
            print!("{}", &log[printed..]);
            printed = log.len();
        }
        if !follow {
            return Ok(String::new());
        }
        let (_, j) = c
            .request(Method::GET, &format!("/api/jobs/{job}"), None)
            .await?;
        let status = j["status"].as_str().unwrap_or("");
        if !matches!(status, "queued" | "running") {
            let tail = c.text(&format!("/api/jobs/{job}/log")).await?;
            if tail.len() > printed {
                print!("{}", &tail[printed..]);
            }
            return Ok(format!("job {job} {status}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
