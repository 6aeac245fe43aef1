//! The prober: one SSH session per node and round, read-only, that reports the facts of every
//! environment on the node in one command (a fixed Python script; the only arguments are ids and
//! host names Pressluft generated, each checked against a strict pattern and single-quoted).
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runner::Target;
use crate::ssh::{self, SshError};

/// What the probe reports about one environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvProbe {
    pub root: bool,
    pub current: bool,
    pub server_block: bool,
    pub pool: bool,
    pub database: bool,
    pub uploads: bool,
    pub http_status: u16,
    pub http_wordpress: bool,
    /// Whether this round made the HTTP request (see [`Probed::http`]); when not, `http_status`
    /// and `http_wordpress` say nothing.
    #[serde(default)]
    pub http_checked: bool,
    /// SHA-256 of the server block and the pool as they are on the node (the same digest the
    /// environment module reports for what it rendered); absent when either file is missing.
    #[serde(default)]
    pub config_hash: Option<String>,
    /// The release directory `current` points to (`releases/<name>` → `<name>`), if any.
    #[serde(default)]
    pub current_release: Option<String>,
}

impl EnvProbe {
    /// Everything Pressluft renders onto the node is in place.
    pub fn present(&self) -> bool {
        self.root && self.current && self.server_block && self.pool
    }

    pub fn serving(&self) -> bool {
        self.http_status == 200 && self.http_wordpress
    }

    /// Data that must never be recreated empty.
    pub fn missing_data(&self) -> Option<&'static str> {
        if !self.root {
            return None;
        }
        if !self.database {
            Some("the database")
        } else if !self.uploads {
            Some("the uploads directory")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProbe {
    /// Node services by name (`nginx`, `php-fpm`, `mariadb`, `redis`): running or not.
    pub services: BTreeMap<String, bool>,
    pub environments: BTreeMap<String, EnvProbe>,
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
    /// CPU the script used on the node (its own and its children's).
    #[serde(default)]
    pub cpu_ms: Option<u64>,
}

impl NodeProbe {
    pub fn services_down(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|(_, up)| !**up)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// An environment to look at: its id, site id and preview host.
#[derive(Debug, Clone)]
pub struct Probed {
    pub environment_id: String,
    pub site_id: String,
    /// The host WordPress is served on (the site URL's), requested over HTTPS when `https`.
    pub host: String,
    pub https: bool,
    /// Request the preview URL this round (a WordPress bootstrap, the costly part of a probe).
    pub http: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("probe command exited with {0}: {1}")]
    Failed(u32, String),
    #[error("probe output is not the expected JSON: {0}")]
    Output(String),
    #[error("refusing to probe with an argument Pressluft did not generate: {0}")]
    Argument(String),
}

/// Runs when the SSH user is root; other users run it through `sudo -n`.
const SCRIPT: &str = r#"
import glob, hashlib, http.client, json, os, shutil, socket, ssl, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
def up(*names):
    return any(subprocess.run(["pgrep", "-x", n], capture_output=True).returncode == 0 for n in names)
out = {"services": {"nginx": up("nginx"), "php-fpm": bool(subprocess.run(["pgrep", "-f", "^php-fpm: master"], capture_output=True).returncode == 0),
                    "mariadb": up("mariadbd", "mysqld"), "redis": up("redis-server")}, "environments": {}}
try:
    dbs = set(subprocess.run(["mariadb", "-N", "-e", "SHOW DATABASES"], capture_output=True, text=True, timeout=5).stdout.split())
except Exception:
    dbs = set()
def config_hash(block, pools, dropin):
    try:
        with open(block, "rb") as f:
            nginx = f.read()
        with open(pools[0], "rb") as f:
            pool = f.read()
    except (OSError, IndexError):
        return None
    data = nginx + b"\0" + pool
    if os.path.isfile(dropin):
        try:
            with open(dropin, "rb") as f:
                data += b"\0" + f.read()
        except OSError:
            return None
    return hashlib.sha256(data).hexdigest()
def connect(host, https):
    if not https:
        return http.client.HTTPConnection("127.0.0.1", 80, timeout=5)
    # the certificate may come from a CA this node does not trust (tests): no chain check
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection(host, 443, timeout=5, context=ctx)
    c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 443), timeout=5), server_hostname=host)
    return c
def one(arg):
    env, site, host, want_http, https = arg.split("|")
    user = "pl_" + env.replace("-", "")[-16:]
    root = "/var/www/sites/%s/%s" % (site, env)
    cur = os.path.join(root, "current")
    block = "/etc/nginx/sites-enabled/pressluft-env-%s.conf" % env
    pools = sorted(glob.glob("/etc/php/*/fpm/pool.d/%s.conf" % user))
    e = {"root": os.path.isdir(root), "current": os.path.isfile(os.path.join(cur, "wp-load.php")),
         "server_block": os.path.isfile(block), "pool": bool(pools),
         "database": user in dbs, "uploads": os.path.isdir(os.path.join(root, "shared", "uploads")),
         "http_status": 0, "http_wordpress": False, "http_checked": want_http == "1",
         "config_hash": config_hash(block, pools, os.path.join(cur, "wp-content", "object-cache.php")),
         "current_release": None}
    try:
        t = os.readlink(cur).rstrip("/")
        if t.startswith("releases/") and "/" not in t[9:]:
            e["current_release"] = t[9:]
    except OSError:
        pass
    for attempt in ((0, 1) if want_http == "1" else ()):
        # HEAD first: WordPress answers it after template_redirect (which sends the api.w.org
        # Link header) without rendering the theme, a fraction of a page view. GET when that
        # header is missing (e.g. removed by a plugin).
        for method in ("HEAD", "GET"):
            try:
                c = connect(host, https == "1")
                c.request(method, "/", headers={"Host": host, "User-Agent": "pressluft-probe"})
                r = c.getresponse()
                body = r.read(262144).decode("utf-8", "replace")
                e["http_status"] = r.status
                e["http_wordpress"] = "/wp-content/" in body or "/wp-includes/" in body or "api.w.org" in (r.getheader("Link") or "")
            except Exception:
                e["http_status"], e["http_wordpress"] = 0, False
            if e["http_status"] != 200 or e["http_wordpress"]:
                break
        if e["http_status"] == 200 and e["http_wordpress"]:
            break
        if attempt == 0:
            time.sleep(1)
    return env, e
with ThreadPoolExecutor(max_workers=8) as pool:
    for env, e in pool.map(one, sys.argv[1:]):
        out["environments"][env] = e
st = shutil.disk_usage("/var/www" if os.path.isdir("/var/www") else "/")
out["disk_free_bytes"], out["disk_total_bytes"] = st.free, st.total
t = os.times()
out["cpu_ms"] = int((t.user + t.system + t.children_user + t.children_system) * 1000)
print(json.dumps(out))
"#;

fn checked(kind: &str, v: &str, ok: impl Fn(char) -> bool, max: usize) -> Result<(), ProbeError> {
    if v.is_empty() || v.len() > max || !v.chars().all(ok) {
        return Err(ProbeError::Argument(format!("{kind} {v:?}")));
    }
    Ok(())
}

/// The remote command: the fixed script and one quoted `env|site|host|http` argument per
/// environment.
pub fn command(envs: &[Probed], sudo: bool) -> Result<String, ProbeError> {
    let is_id = |c: char| c.is_ascii_hexdigit() || c == '-';
    let mut args = Vec::with_capacity(envs.len());
    for e in envs {
        checked("environment id", &e.environment_id, is_id, 36)?;
        checked("site id", &e.site_id, is_id, 36)?;
        checked(
            "host",
            &e.host,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-',
            253,
        )?;
        args.push(format!(
            "'{}|{}|{}|{}|{}'",
            e.environment_id,
            e.site_id,
            e.host,
            if e.http { 1 } else { 0 },
            if e.https { 1 } else { 0 }
        ));
    }
    debug_assert!(
        !SCRIPT.contains('\''),
        "the script is single-quoted as a whole"
    );
    Ok(format!(
        "{}python3 -c '{}' {}",
        if sudo { "sudo -n " } else { "" },
        SCRIPT,
        args.join(" ")
    ))
}

/// One probe round against one node.
pub async fn probe(target: &Target, envs: &[Probed]) -> Result<NodeProbe, ProbeError> {
    let cmd = command(envs, target.user != "root")?;
    let out = ssh::exec(target, &cmd, Duration::from_secs(20)).await?;
    if out.exit_status != 0 {
        return Err(ProbeError::Failed(
            out.exit_status,
            out.stderr.chars().take(500).collect(),
        ));
    }
    serde_json::from_str(out.stdout.trim()).map_err(|e| ProbeError::Output(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(id: &str, host: &str) -> Probed {
        Probed {
            environment_id: id.into(),
            site_id: "01a20882-8ec1-70ec-b907-21a1856348a9".into(),
            host: host.into(),
            https: false,
            http: true,
        }
    }

    #[test]
    fn command_quotes_generated_arguments_and_refuses_others() {
        let c = command(
            &[env(
                "01a20882-8ec1-70ec-b907-21a2ff7705a2",
                "ff7705a2.127-0-0-1.sslip.io",
            )],
            false,
        )
        .unwrap();
        assert!(c.starts_with("python3 -c '"));
        assert!(c.ends_with("'01a20882-8ec1-70ec-b907-21a2ff7705a2|01a20882-8ec1-70ec-b907-21a1856348a9|ff7705a2.127-0-0-1.sslip.io|1|0'"));
        assert!(command(&[env("x'; rm -rf /", "h")], false).is_err());
        assert!(command(&[env("01a20882-8ec1-70ec-b907-21a2ff7705a2", "a b")], false).is_err());
        assert!(command(
            &[env("01a20882-8ec1-70ec-b907-21a2ff7705a2", "$(id)")],
            false
        )
        .is_err());
        assert!(command(&[], true).unwrap().starts_with("sudo -n python3"));
        assert!(!SCRIPT.contains('\''));
    }

    #[test]
    fn the_script_runs_and_reports_json() {
        // The script is plain Python: it must at least run here and report an absent environment.
        let out = std::process::Command::new("python3")
            .args(["-c", SCRIPT, "01a20882-0000-7000-8000-000000000000|01a20882-0000-7000-8000-000000000001|nothing.invalid|1|0"])
            .output();
        let Ok(out) = out else { return };
        let p: NodeProbe = serde_json::from_slice(&out.stdout).expect("JSON from the probe script");
        let e = &p.environments["01a20882-0000-7000-8000-000000000000"];
        assert!(!e.root && !e.present() && !e.serving());
        assert_eq!(
            e.missing_data(),
            None,
            "an environment that never existed has no data to miss"
        );
        assert!(p.disk_total_bytes > 0);
    }

    #[test]
    fn missing_data() {
        let mut e = EnvProbe {
            root: true,
            current: true,
            server_block: true,
            pool: true,
            database: true,
            uploads: true,
            http_status: 200,
            http_wordpress: true,
            http_checked: true,
            config_hash: None,
            current_release: None,
        };
        assert!(e.present() && e.serving() && e.missing_data().is_none());
        e.database = false;
        assert_eq!(e.missing_data(), Some("the database"));
    }
}
