//! The real binary: `pressluft serve` on a free port with a fresh data directory, driven by the
//! `pressluft` CLI and by plain HTTP, then stopped with SIGTERM.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pressluft");

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(admin_password: Option<&str>) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(BIN);
    // No local node: these tests drive the API and the CLI, not this machine (tests/e2e.rs does).
    cmd.args([
        "serve",
        "--no-local-node",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir.path().join("data"))
    .env("PRESSLUFT_ADMIN_EMAIL", "ops@example.com")
    .env_remove("PRESSLUFT_SECRET_KEY")
    .env_remove("PRESSLUFT_DATABASE_URL")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    match admin_password {
        Some(p) => cmd.env("PRESSLUFT_ADMIN_PASSWORD", p),
        None => cmd.env_remove("PRESSLUFT_ADMIN_PASSWORD"),
    };
    // on PostgreSQL (scripts/test-postgres.sh) the server gets a fresh database there
    if let Some(url) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::fresh_postgres_database())
    {
        cmd.args(["--database-url", &url]);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // Collect what the server prints (the generated password, once).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let printed: Vec<String> = rx.try_iter().collect();
    let config = dir.path().join("cli.json");
    (
        Server {
            child,
            url,
            _dir: dir,
            config,
        },
        printed.join("\n"),
    )
}

fn cli(s: &Server, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("PRESSLUFT_SERVER", &s.url)
        .env("PRESSLUFT_CONFIG", &s.config)
        .env_remove("PRESSLUFT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_and_http_walkthrough() {
    let (srv, _) = start(Some("s3cret-pass"));

    // Before login the CLI says so.
    let (ok, _, err) = cli(&srv, &["get", "sites"], None);
    assert!(!ok);
    assert!(err.contains("not logged in"), "{err}");

    let (ok, out, err) = cli(
        &srv,
        &["login", "--email", "ops@example.com", "--password-stdin"],
        Some("s3cret-pass\n"),
    );
    assert!(ok, "{out}{err}");
    let saved = std::fs::read_to_string(&srv.config).unwrap();
    assert!(saved.contains("plt_"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&srv.config).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A node to place the site on (unreachable on purpose: nothing runs on this machine).
    let (ok, out, err) = cli(
        &srv,
        &[
            "create",
            "node",
            "--name",
            "web-1",
            "--hostname",
            "127.0.0.1",
            "--ssh-port",
            "1",
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let node: serde_json::Value = serde_json::from_str(&out).unwrap();
    let node_id = node["id"].as_str().unwrap().to_string();
    let (ok, out, err) = cli(
        &srv,
        &[
            "create", "site", "--name", "Blog", "--slug", "blog", "--node", &node_id,
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("blog") && out.contains("provisioning"),
        "{out}"
    );

    let (ok, out, _) = cli(&srv, &["get", "sites"], None);
    assert!(ok);
    assert!(out.lines().next().unwrap().starts_with("ID"), "{out}");
    assert!(out.contains("blog"));

    let (ok, out, _) = cli(&srv, &["get", "sites", "-o", "json"], None);
    assert!(ok);
    let sites: serde_json::Value = serde_json::from_str(&out).unwrap();
    let site_id = sites[0]["id"].as_str().unwrap().to_string();
    let env_id = sites[0]["primary_environment_id"]
        .as_str()
        .unwrap()
        .to_string();

    let (ok, out, _) = cli(&srv, &["get", "environments", "--site", "blog"], None);
    assert!(ok);
    assert!(
        out.contains("production") && out.contains(".sslip.io"),
        "{out}"
    );
    let (ok, out, _) = cli(&srv, &["describe", "environment", &env_id], None);
    assert!(ok);
    assert!(out.contains("environment_type: production"), "{out}");
    let (ok, out, _) = cli(&srv, &["describe", "site", "blog", "-o", "json"], None);
    assert!(ok);
    assert!(out.contains(&site_id));

    // Update with the current version works; with a stale one: conflict.
    let (ok, out, err) = cli(
        &srv,
        &[
            "update",
            "site",
            "blog",
            "--name",
            "Blog 2",
            "--state-version",
            "1",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("Blog 2"));
    let (ok, _, err) = cli(
        &srv,
        &[
            "update",
            "site",
            "blog",
            "--name",
            "Blog 3",
            "--state-version",
            "1",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("conflict"), "{err}");

    // The same over plain HTTP with the saved token (what curl would send).
    let token = serde_json::from_str::<serde_json::Value>(&saved).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let http = reqwest::blocking_like::Client::new(&srv.url, &token);
    let (status, body) = http.send(
        "PATCH",
        &format!("/api/sites/{site_id}"),
        Some(r#"{"state_version": 1, "name": "stale"}"#),
    );
    assert_eq!(status, 409);
    assert!(body.contains("\"code\":\"conflict\""), "{body}");
    let (status, body) = http.send("GET", &format!("/api/environments/{env_id}"), None);
    assert_eq!(status, 200);
    assert!(body.contains("\"environment_type\":\"production\""));
    let (status, _) = http.send("GET", "/api/openapi.json", None);
    assert_eq!(status, 200);

    // Delete through the CLI: marked for deletion.
    let (ok, out, err) = cli(&srv, &["delete", "site", "blog", "-o", "json"], None);
    assert!(ok, "{err}");
    assert!(out.contains("deletion_requested_at"), "{out}");

    // Events and jobs listings work from the CLI.
    let (ok, out, _) = cli(&srv, &["get", "events"], None);
    assert!(ok);
    assert!(out.contains("DeletionRequested"), "{out}");
    let (ok, _, _) = cli(&srv, &["get", "jobs"], None);
    assert!(ok);
}

#[test]
fn first_start_prints_a_generated_password_once_and_stops_on_sigterm() {
    let (mut srv, printed) = start(None);
    let password = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password printed: {printed}"))
        .to_string();
    let (ok, _, err) = cli(
        &srv,
        &["login", "--email", "ops@example.com", "--password-stdin"],
        Some(&format!("{password}\n")),
    );
    assert!(ok, "{err}");
    // Graceful stop on SIGTERM.
    let pid = srv.child.id() as i32;
    // SAFETY: sending a signal to our own child process.
    unsafe_kill(pid);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = srv.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn unsafe_kill(pid: i32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// A tiny blocking HTTP client over reqwest's async one, so the test reads like curl.
mod reqwest {
    pub mod blocking_like {
        pub struct Client {
            base: String,
            token: String,
            rt: tokio::runtime::Runtime,
        }

        impl Client {
            pub fn new(base: &str, token: &str) -> Self {
                Client {
                    base: base.to_string(),
                    token: token.to_string(),
                    rt: tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap(),
                }
            }

            pub fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
                self.rt.block_on(async {
                    let c = ::reqwest::Client::new();
                    let mut rb = c
                        .request(method.parse().unwrap(), format!("{}{path}", self.base))
                        .bearer_auth(&self.token);
                    if let Some(b) = body {
                        rb = rb
                            .header("content-type", "application/json")
                            .body(b.to_string());
                    }
                    let r = rb.send().await.unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                })
            }
        }
    }
}

/// Issue 7: `backup`, `get backups --status`, `schedule-backups`, `restore` and `drill`.
#[test]
fn backup_commands() {
    let (srv, _) = start(Some("s3cret-pass"));
    let (ok, _, err) = cli(
        &srv,
        &["login", "--email", "ops@example.com", "--password-stdin"],
        Some("s3cret-pass\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = cli(
        &srv,
        &[
            "create",
            "node",
            "--name",
            "web-1",
            "--hostname",
            "127.0.0.1",
            "--ssh-port",
            "1",
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let node: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out, err) = cli(
        &srv,
        &[
            "create",
            "site",
            "--name",
            "Vault",
            "--slug",
            "vault",
            "--node",
            node["id"].as_str().unwrap(),
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let site: serde_json::Value = serde_json::from_str(&out).unwrap();
    let env = site["primary_environment_id"].as_str().unwrap().to_string();

    let (ok, out, err) = cli(&srv, &["backup", &env, "--scope", "db"], None);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("backup ") && out.contains("pending"),
        "{out}"
    );
    let backup_id = out.split_whitespace().nth(1).unwrap().to_string();
    let (ok, out, _) = cli(
        &srv,
        &[
            "get",
            "backups",
            "--environment",
            &env,
            "--status",
            "pending",
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok && out.contains(&backup_id), "{out}");
    let (ok, out, _) = cli(
        &srv,
        &["get", "backups", "--status", "completed", "-o", "json"],
        None,
    );
    assert!(ok && !out.contains(&backup_id), "{out}");
    let (ok, _, err) = cli(&srv, &["get", "backups", "--status", "nonsense"], None);
    assert!(!ok && err.contains("bad_request"), "{err}");

    let (ok, out, err) = cli(
        &srv,
        &[
            "schedule-backups",
            &env,
            "--every",
            "1h",
            "--keep-last",
            "3",
            "--keep-days",
            "7",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("schedule") && out.contains("next run at"),
        "{out}"
    );
    let (ok, _, err) = cli(
        &srv,
        &["schedule-backups", &env, "--cron", "61 * * * *"],
        None,
    );
    assert!(!ok && err.contains("minute field"), "{err}");

    // A backup that is not completed cannot be restored or drilled.
    let (ok, _, err) = cli(&srv, &["restore", &env, "--backup", &backup_id], None);
    assert!(!ok && err.contains("conflict"), "{err}");
    let (ok, _, err) = cli(&srv, &["drill", &backup_id], None);
    assert!(!ok && err.contains("conflict"), "{err}");

    // Imports: declared (pending here: no node work runs), credentials never printed; a URL the
    // API refuses names the field.
    let (ok, out, err) = cli(
        &srv,
        &[
            "import",
            &env,
            "--archive-url",
            "https://mover:pw-secret@example.test/site.tgz",
            "--table-prefix",
            "mysite_",
        ],
        None,
    );
    assert!(
        ok && out.starts_with("import ") && out.contains("pending"),
        "{out}{err}"
    );
    assert!(!out.contains("pw-secret") && !err.contains("pw-secret"));
    let (ok, _, err) = cli(
        &srv,
        &["import", &env, "--archive-url", "ftp://x/y.tgz"],
        None,
    );
    assert!(!ok && err.contains("archive_url"), "{err}");
}

/// `pressluft promote`, `get promotions`, `describe promotion`: a staging environment without a
/// drift baseline (its node never cloned it) is promoted; the promotion ends `blocked` with
/// `DriftClean=False` (NoBaseline) and nothing runs; production itself cannot be promoted.
#[test]
fn promotion_commands() {
    let (srv, _) = start(Some("s3cret-pass"));
    let (ok, _, err) = cli(
        &srv,
        &["login", "--email", "ops@example.com", "--password-stdin"],
        Some("s3cret-pass\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = cli(
        &srv,
        &[
            "create",
            "node",
            "--name",
            "web-1",
            "--hostname",
            "127.0.0.1",
            "--ssh-port",
            "1",
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let node: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out, err) = cli(
        &srv,
        &[
            "create",
            "site",
            "--name",
            "Promo",
            "--slug",
            "promo",
            "--node",
            node["id"].as_str().unwrap(),
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let site: serde_json::Value = serde_json::from_str(&out).unwrap();
    let prod = site["primary_environment_id"].as_str().unwrap().to_string();
    let (ok, out, err) = cli(
        &srv,
        &[
            "create",
            "environment",
            "--site",
            "promo",
            "--name",
            "Staging",
            "--slug",
            "staging",
            "--source",
            &prod,
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let staging: serde_json::Value = serde_json::from_str(&out).unwrap();
    let staging = staging["id"].as_str().unwrap().to_string();

    let (ok, _, err) = cli(&srv, &["promote", &prod], None);
    assert!(!ok && err.contains("conflict"), "production: {err}");
    let (ok, _, err) = cli(&srv, &["promote", &staging, "--preset", "nonsense"], None);
    assert!(!ok && err.contains("bad_request"), "{err}");

    let (ok, out, err) = cli(&srv, &["promote", &staging], None);
    assert!(ok, "{err}");
    assert!(out.starts_with("promotion "), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let (ok, out, err) = cli(&srv, &["get", "promotions", &staging, "-o", "json"], None);
    assert!(ok && out.contains(&id), "{out} {err}");
    let (ok, out, _) = cli(&srv, &["get", "promotions", &prod], None);
    assert!(ok && out.contains(&id), "production lists it too: {out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let p = loop {
        let (ok, out, err) = cli(&srv, &["describe", "promotion", &id, "-o", "json"], None);
        assert!(ok, "{err}");
        let p: serde_json::Value = serde_json::from_str(&out).unwrap();
        if p["status"] == "blocked" || Instant::now() > deadline {
            break p;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(p["status"], "blocked", "{p}");
    let drift = p["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DriftClean")
        .cloned()
        .unwrap();
    assert_eq!(
        (drift["status"].as_str(), drift["reason"].as_str()),
        (Some("False"), Some("NoBaseline")),
        "{p}"
    );
    // blocked is final: --wait reports it as a failure
    let (ok, _, err) = cli(&srv, &["promote", &staging, "--wait"], None);
    assert!(!ok && err.contains("blocked"), "{err}");
    // drift-check: production, and an environment without a baseline, are refused (409)
    let (ok, _, err) = cli(&srv, &["drift-check", &prod], None);
    assert!(!ok && err.contains("conflict"), "production: {err}");
    let (ok, _, err) = cli(&srv, &["drift-check", &staging, "--wait"], None);
    assert!(
        !ok && err.contains("conflict") && err.contains("baseline"),
        "{err}"
    );
}

#[test]
fn release_commands() {
    let (srv, _) = start(Some("s3cret-pass"));
    let (ok, _, err) = cli(
        &srv,
        &["login", "--email", "ops@example.com", "--password-stdin"],
        Some("s3cret-pass\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = cli(
        &srv,
        &[
            "create",
            "node",
            "--name",
            "web-1",
            "--hostname",
            "127.0.0.1",
            "--ssh-port",
            "1",
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let node: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out, err) = cli(
        &srv,
        &[
            "create",
            "site",
            "--name",
            "Rel",
            "--slug",
            "rel",
            "--node",
            node["id"].as_str().unwrap(),
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let site: serde_json::Value = serde_json::from_str(&out).unwrap();
    let env = site["primary_environment_id"].as_str().unwrap().to_string();

    // exactly one source; strict validation with the field named
    let (ok, _, err) = cli(&srv, &["deploy", &env], None);
    assert!(!ok && err.contains("--git"), "{err}");
    let (ok, _, err) = cli(&srv, &["deploy", &env, "--upload", "file:///x.rar"], None);
    assert!(!ok && err.contains("bad_request"), "{err}");
    let (ok, _, err) = cli(
        &srv,
        &["deploy", &env, "--git", "file:///srv/site.git"],
        None,
    );
    assert!(!ok && err.contains("bad_request"), "{err}");

    // declared: a pending release, the environment's desired one
    let (ok, out, err) = cli(
        &srv,
        &[
            "deploy",
            &env,
            "--git",
            "https://bot:tok3n@git.example.test/site.git#main",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("release "), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let (ok, out, err) = cli(&srv, &["get", "releases", &env, "-o", "json"], None);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    assert_eq!(list[0]["health_status"], "pending");
    assert_eq!(list[0]["desired"], true);
    assert_eq!(list[0]["current"], false);
    assert!(
        !out.contains("tok3n") && out.contains("****@git.example.test"),
        "credentials redacted: {out}"
    );
    let (ok, out, _) = cli(&srv, &["get", "releases", &env], None);
    assert!(ok && out.contains(&id) && out.contains("pending"), "{out}");
    let (ok, out, err) = cli(&srv, &["describe", "environment", &env, "-o", "json"], None);
    assert!(ok, "{err}");
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["desired_release_id"], id.as_str(), "{e}");

    // rollback: to a release of this environment only
    let (ok, _, err) = cli(
        &srv,
        &["rollback", &env, "01a24739-3ca0-7405-b550-4e1359bebcd4"],
        None,
    );
    assert!(!ok && err.contains("not_found"), "{err}");
    let (ok, out, err) = cli(&srv, &["rollback", &env, &id], None);
    assert!(ok, "already desired: {err}");
    assert!(out.contains(&id), "{out}");

    // an update request: an `update` release with the scope, update_scope recorded
    let (ok, _, err) = cli(&srv, &["apply-updates", &env, "--scope", "nonsense"], None);
    assert!(!ok && err.contains("bad_request"), "{err}");
    let (ok, out, err) = cli(&srv, &["apply-updates", &env, "--scope", "plugins"], None);
    assert!(ok, "{err}");
    let upd = out.split_whitespace().nth(1).unwrap().to_string();
    let (ok, out, err) = cli(&srv, &["describe", "release", &upd, "-o", "json"], None);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["source_type"], "update", "{r}");
    assert_eq!(r["source_ref"], "scope:plugins", "{r}");
    let (ok, out, _) = cli(&srv, &["describe", "environment", &env, "-o", "json"], None);
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && e["update_scope"] == "plugins", "{e}");
}

/// `pressluft export` and `pressluft diff -f FILE|DIR` (exit 0 in sync, 1 changes, 2 errors),
/// with deterministic output.
#[test]
fn export_and_diff_round_trip_with_exit_codes() {
    let (srv, _) = start(Some("s3cret-pass"));
    let (ok, out, err) = cli(
        &srv,
        &["login", "--email", "ops@example.com", "--password-stdin"],
        Some("s3cret-pass\n"),
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cli(
        &srv,
        &[
            "create",
            "node",
            "--name",
            "web-1",
            "--hostname",
            "127.0.0.1",
            "--ssh-port",
            "1",
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let node: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, _, err) = cli(
        &srv,
        &[
            "create",
            "site",
            "--name",
            "Blog",
            "--slug",
            "blog",
            "--node",
            node["id"].as_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{err}");

    let code = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("PRESSLUFT_SERVER", &srv.url)
            .env("PRESSLUFT_CONFIG", &srv.config)
            .env_remove("PRESSLUFT_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, exported, err) = cli(&srv, &["export"], None);
    assert!(ok, "{err}");
    assert!(
        exported.contains(
            "kind: Site\nmetadata:\n  name: blog\nspec:\n  display_name: Blog\n  node: web-1\n"
        ),
        "{exported}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.yaml");
    std::fs::write(&file, &exported).unwrap();
    let (c, out, err) = code(&["diff", "-f", file.to_str().unwrap()]);
    assert_eq!(c, Some(0), "{out}{err}");
    assert!(
        out.ends_with("0 to create, 0 to change, 0 to prune, 4 unchanged.\n"),
        "{out}"
    );

    // A directory: one file changes the site, another adds a domain.
    let set = dir.path().join("set");
    std::fs::create_dir(&set).unwrap();
    std::fs::write(
        set.join("a-site.yaml"),
        "apiVersion: pressluft.dev/v1\nkind: Site\nmetadata: {name: blog}\nspec: {display_name: Blog Two}\n",
    )
    .unwrap();
    std::fs::write(
        set.join("b-domain.json"),
        r#"{"apiVersion": "pressluft.dev/v1", "kind": "Domain", "metadata": {"name": "blog.example.com"}, "spec": {"site": "blog", "environment": "production", "tls_mode": "none"}}"#,
    )
    .unwrap();
    let (c, out, err) = code(&["diff", "-f", set.to_str().unwrap()]);
    assert_eq!(c, Some(1), "{out}{err}");
    assert_eq!(
        out,
        "~ Site/blog (change)
    display_name: \"Blog\" -> \"Blog Two\"
+ Domain/blog.example.com (create)
    environment: \"production\"
    site: \"blog\"
    tls_mode: \"none\"
1 to create, 1 to change, 0 to prune, 0 unchanged.
"
    );

    // Problems name their file and document; exit 2.
    std::fs::write(
        set.join("c-bad.yaml"),
        "apiVersion: pressluft.dev/v1\nkind: Environment\nmetadata: {name: qa}\nspec: {site: blog, type: stagin}\n---\nkind: Nope\n",
    )
    .unwrap();
    let (c, out, err) = code(&["diff", "-f", set.to_str().unwrap()]);
    assert_eq!(c, Some(2), "{out}{err}");
    assert!(err.contains("c-bad.yaml (document 0), spec.type: invalid_value: type must be one of production, staging, clone"), "{err}");
    assert!(
        err.contains("c-bad.yaml (document 1), apiVersion: missing_field"),
        "{err}"
    );
    assert!(err.ends_with("problems; nothing was written.\n"), "{err}");
    // Standard input works too.
    let mut child = Command::new(BIN)
        .args(["diff", "-f", "-"])
        .env("PRESSLUFT_SERVER", &srv.url)
        .env("PRESSLUFT_CONFIG", &srv.config)
        .env_remove("PRESSLUFT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(exported.as_bytes())
            .unwrap();
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // apply: refused sets write nothing (exit 2); a dry run writes nothing; the apply prints
    // the plan and its receipt; afterwards diff is in sync and re-applying changes nothing.
    let (c, _, err) = code(&["apply", "-f", set.to_str().unwrap()]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.ends_with("problems; nothing was written.\n"), "{err}");
    std::fs::remove_file(set.join("c-bad.yaml")).unwrap();
    let (c, out, err) = code(&["apply", "--dry-run", "-f", set.to_str().unwrap()]);
    assert_eq!(c, Some(0), "{out}{err}");
    assert!(
        out.ends_with(
            "1 to create, 1 to change, 0 to prune, 0 unchanged.\ndry run: nothing was written\n"
        ),
        "{out}"
    );
    let (c, out, err) = code(&["apply", "-f", set.to_str().unwrap()]);
    assert_eq!(c, Some(0), "{out}{err}");
    let (plan, receipt) = out.split_at(out.find("applied: receipt ").expect(&out));
    assert!(
        plan.ends_with("1 to create, 1 to change, 0 to prune, 0 unchanged.\n"),
        "{out}"
    );
    assert!(is_uuid_line(receipt), "{out}");
    let (c, out, err) = code(&["diff", "-f", set.to_str().unwrap()]);
    assert_eq!(c, Some(0), "{out}{err}");
    let (c, out, err) = code(&["apply", "-f", set.to_str().unwrap(), "--apply-set", "blog"]);
    assert_eq!(c, Some(0), "{out}{err}");
    assert!(
        out.starts_with("0 to create, 0 to change, 0 to prune, 2 unchanged.\n"),
        "{out}"
    );
    // The apply set: synced; its resources in a stable order (health depends on the node).
    let (c, out, err) = code(&["apply-sets", "blog"]);
    assert_eq!(c, Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("blog: synced, "), "{out}");
    let resources: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        resources,
        vec!["Domain/blog.example.com", "Site/blog"],
        "{out}"
    );
    let (c, _, err) = code(&["apply-sets", "nope"]);
    assert_eq!(c, Some(1), "{err}");
    assert!(err.contains("apply set not found"), "{err}");
    // A secret reference needs its variable.
    std::fs::write(
        set.join("d-settings.yaml"),
        "apiVersion: pressluft.dev/v1\nkind: Settings\nmetadata: {name: settings}\nspec: {backup_s3_secret_access_key: {env: PL_CLI_TEST_UNSET}}\n",
    )
    .unwrap();
    let (c, _, err) = code(&["apply", "-f", set.to_str().unwrap()]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("PL_CLI_TEST_UNSET, which is not set"), "{err}");
}

fn is_uuid_line(s: &str) -> bool {
    s.strip_prefix("applied: receipt ")
        .and_then(|r| r.strip_suffix('\n'))
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
}
