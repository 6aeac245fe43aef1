//! The Ansible runner against a stand-in `ansible-playbook` (tests/fixtures/fake-ansible-playbook.sh):
//! invocation, exit codes, timeout and cancellation (whole process group), redaction, the private
//! run directory and the facts file. When a real ansible-playbook, sshd on 127.0.0.1:22 and root
//! are available, one more test runs a real playbook over SSH to localhost with a pinned host key.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pressluft::runner::{RunOutcome, RunRequest, Runner, RunnerError, Target};
use reconcilers::error_code::JobErrorCode;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "s3cr3t-Pa55word!";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-ansible-playbook.sh")
}

fn key_pair(comment: &str) -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    let private = key.to_openssh(LineEnding::LF).unwrap().to_string();
    let public = key.public_key().to_openssh().unwrap();
    (private, public)
}

struct Fixture {
    _dir: tempfile::TempDir,
    runner: Runner,
}

impl Fixture {
    fn new() -> Self {
        Self::with_binary(fixture())
    }

    fn with_binary(bin: PathBuf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ansible = dir.path().join("ansible");
        std::fs::create_dir_all(ansible.join("playbooks")).unwrap();
        std::fs::write(ansible.join("playbooks/test.yml"), "---\n").unwrap();
        std::fs::write(ansible.join("ansible.cfg"), "[defaults]\n").unwrap();
        let runner = Runner {
            ansible_dir: ansible,
            ansible_playbook: bin,
            work_dir: dir.path().join("data/run"),
            forkserver: None,
        };
        Fixture { _dir: dir, runner }
    }

    fn target(&self) -> Target {
        let (private, _) = key_pair("t");
        let (_, host_pub) = key_pair("host");
        Target {
            hostname: "127.0.0.1".into(),
            port: 2222,
            user: "deploy".into(),
            private_key_openssh: private,
            host_key: Some(host_pub),
        }
    }

    fn request(&self, vars: Value, timeout: Duration) -> RunRequest {
        RunRequest {
            playbook: "test.yml".into(),
            target: self.target(),
            vars: vars.as_object().cloned().unwrap_or_default(),
            secrets: vec![SECRET.into(), String::new()],
            timeout,
            cancel: CancellationToken::new(),
        }
    }

    async fn run(&self, req: RunRequest) -> (RunOutcome, Vec<String>) {
        let mut chunks = Vec::new();
        let out = self
            .runner
            .run(req, |l: &str| chunks.push(l.to_string()))
            .await
            .unwrap();
        (out, chunks)
    }

    /// The run directories left below the work dir (the `cp` socket dir is not one).
    fn leftover_run_dirs(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(&self.runner.work_dir) {
            Ok(rd) => rd
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap() != "cp")
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn log_value<'a>(log: &'a str, key: &str) -> Option<&'a str> {
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.split_whitespace().next().unwrap_or(""))
}

/// Gone, or a zombie waiting for a reaper (PID 1 in a container may not reap).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

#[tokio::test]
async fn exit_codes_map_to_job_error_codes() {
    let f = Fixture::new();
    let cases = [
        (0, None),
        (1, Some(JobErrorCode::AnsiblePlayError)),
        (2, Some(JobErrorCode::AnsibleHostFailed)),
        (4, Some(JobErrorCode::AnsibleHostUnreachable)),
        (5, Some(JobErrorCode::AnsibleSyntaxError)),
        (250, Some(JobErrorCode::AnsibleUnexpectedError)),
        (99, Some(JobErrorCode::AnsibleUnknownExit)),
    ];
    for (code, want) in cases {
        let (out, _) = f
            .run(f.request(json!({"fake_exit": code}), Duration::from_secs(20)))
            .await;
        assert_eq!(out.exit_code, Some(code), "exit {code}: {}", out.log);
        assert_eq!(out.error_code, want, "exit {code}");
        assert!(!out.cancelled);
        assert_eq!(out.succeeded(), code == 0);
        assert!(out.log.contains("PLAY RECAP done"));
    }
    assert!(f.leftover_run_dirs().is_empty());
}

#[tokio::test]
async fn invocation_files_and_redaction() {
    let f = Fixture::new();
    let req = f.request(
        json!({"fake_secret": SECRET, "fake_exit": 2, "site_id": "s1"}),
        Duration::from_secs(20),
    );
    let target = req.target.clone();
    let checked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut chunks = Vec::new();
    let seen = checked.clone();
    let out = f
        .runner
        .run(req, |l: &str| {
            chunks.push(l.to_string());
            // While the run is live: the run directory and its files are private.
            if let Some(inv) = l.strip_prefix("inventory=") {
                let inv = Path::new(inv.trim_end());
                let dir = inv.parent().unwrap();
                let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
                let mut s = seen.lock().unwrap();
                s.push(format!("dir={:o}", mode(dir)));
                for name in ["inventory.ini", "id", "known_hosts", "vars.json"] {
                    s.push(format!("{name}={:o}", mode(&dir.join(name))));
                }
                s.push(format!(
                    "known_hosts:{}",
                    std::fs::read_to_string(dir.join("known_hosts")).unwrap()
                ));
                s.push(format!(
                    "key:{}",
                    std::fs::read_to_string(dir.join("id")).unwrap()
                ));
                s.push(format!(
                    "vars:{}",
                    std::fs::read_to_string(dir.join("vars.json")).unwrap()
                ));
                s.push(format!("rundir:{}", dir.display()));
            }
        })
        .await
        .unwrap();

    assert_eq!(out.error_code, Some(JobErrorCode::AnsibleHostFailed));
    let checked = checked.lock().unwrap().clone();
    for want in [
        "dir=700",
        "inventory.ini=600",
        "id=600",
        "known_hosts=600",
        "vars.json=600",
    ] {
        assert!(checked.iter().any(|c| c == want), "{want} in {checked:?}");
    }
    let (kind, blob) = {
        let k = target.host_key.as_deref().unwrap();
        let mut it = k.split_whitespace();
        (it.next().unwrap(), it.next().unwrap())
    };
    assert!(checked
        .iter()
        .any(|c| c == &format!("known_hosts:[127.0.0.1]:2222 {kind} {blob}\n")));
    assert!(checked
        .iter()
        .any(|c| c == &format!("key:{}", target.private_key_openssh)));
    let vars_line = checked.iter().find(|c| c.starts_with("vars:")).unwrap();
    let vars: Value = serde_json::from_str(&vars_line["vars:".len()..]).unwrap();
    assert_eq!(vars["site_id"], "s1");

    // the directory is gone afterwards
    let rundir = checked
        .iter()
        .find_map(|c| c.strip_prefix("rundir:"))
        .unwrap();
    assert!(!Path::new(rundir).exists());
    assert!(f.leftover_run_dirs().is_empty());

    // invocation
    let log = &out.log;
    assert_eq!(log_value(log, "playbook"), Some("playbooks/test.yml"));
    assert_eq!(
        log_value(log, "cwd").map(PathBuf::from),
        Some(f.runner.ansible_dir.clone())
    );
    assert_eq!(
        log_value(log, "config").map(PathBuf::from),
        Some(f.runner.ansible_dir.join("ansible.cfg"))
    );
    assert!(log.contains("color=0 unbuffered=1"), "{log}");
    assert!(log.contains("stray=none"), "{log}");
    assert!(log_value(log, "vars").unwrap().ends_with("/vars.json"));
    let inv = log
        .lines()
        .find(|l| l.starts_with("inventory-text: "))
        .unwrap();
    assert!(inv.starts_with("inventory-text: [target]|127.0.0.1 ansible_host=127.0.0.1 ansible_port=2222 ansible_user=deploy ansible_ssh_private_key_file="), "{inv}");
    assert!(inv.contains(" ansible_control_path="), "{inv}");
    assert!(
        inv.contains("ansible_ssh_common_args='-o UserKnownHostsFile="),
        "{inv}"
    );
    assert!(
        inv.contains("/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes'"),
        "{inv}"
    );

    // redaction: stdout and stderr lines, log and streamed chunks
    assert!(!out.log.contains(SECRET));
    assert!(chunks.iter().all(|c| !c.contains(SECRET)));
    assert!(out
        .log
        .contains("TASK [connect] using password ******** now"));
    assert!(out.log.contains("warning: secret on stderr: ********"));
    assert_eq!(chunks.concat(), out.log);
    assert!(chunks
        .iter()
        .all(|c| c.ends_with('\n') && c.matches('\n').count() == 1));
}

#[tokio::test]
async fn unpinned_target_disables_host_key_checking() {
    let f = Fixture::new();
    let mut req = f.request(json!({}), Duration::from_secs(20));
    req.target.host_key = None;
    req.target.port = 22;
    let (out, _) = f.run(req).await;
    let inv = out
        .log
        .lines()
        .find(|l| l.starts_with("inventory-text: "))
        .unwrap();
    assert!(
        inv.contains(
            "'-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o IdentitiesOnly=yes'"
        ),
        "{inv}"
    );
    assert!(out.succeeded());
}

#[tokio::test]
async fn facts_are_parsed_and_stats_split_off() {
    let f = Fixture::new();
    let (out, _) = f
        .run(f.request(json!({"fake_facts": 1}), Duration::from_secs(20)))
        .await;
    assert!(out.succeeded(), "{}", out.log);
    let want: Map<String, Value> = json!({"php_version": "8.2", "wp_installed": true})
        .as_object()
        .cloned()
        .unwrap();
    assert_eq!(out.facts, want);
    assert_eq!(
        out.stats,
        Some(json!({"changed": 2, "failed": 0, "unreachable": 0}))
    );

    let (out, _) = f.run(f.request(json!({}), Duration::from_secs(20))).await;
    assert!(out.facts.is_empty());
    assert_eq!(out.stats, None);
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let f = Fixture::new();
    let started = std::time::Instant::now();
    let (out, chunks) = f
        .run(f.request(
            json!({"fake_sleep": 60, "fake_secret": SECRET}),
            Duration::from_millis(1500),
        ))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.error_code, Some(JobErrorCode::AnsibleTimeout));
    assert!(JobErrorCode::AnsibleTimeout.is_retryable());
    assert_eq!(out.exit_code, None);
    assert!(!out.cancelled);
    assert!(
        out.log
            .contains("pressluft: ansible-playbook killed: timeout"),
        "{}",
        out.log
    );
    assert!(!out.log.contains("PLAY RECAP"));
    assert!(chunks.last().unwrap().contains("timeout"));
    let child: u32 = log_value(&out.log, "child_pid").unwrap().parse().unwrap();
    for _ in 0..50 {
        if process_gone(child) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(process_gone(child), "the group's `sleep` {child} survived");
    assert!(!out.log.contains(SECRET));
    assert!(f.leftover_run_dirs().is_empty());
}

#[tokio::test]
async fn cancel_kills_the_run() {
    let f = Fixture::new();
    let req = f.request(json!({"fake_sleep": 60}), Duration::from_secs(60));
    let cancel = req.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        cancel.cancel();
    });
    let started = std::time::Instant::now();
    let (out, _) = f.run(req).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(out.cancelled);
    assert_eq!(out.error_code, None);
    assert_eq!(out.exit_code, None);
    assert!(!out.succeeded());
    assert!(out
        .log
        .contains("pressluft: ansible-playbook killed: run cancelled"));
    let child: u32 = log_value(&out.log, "child_pid").unwrap().parse().unwrap();
    for _ in 0..50 {
        if process_gone(child) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(process_gone(child), "the group's `sleep` {child} survived");
    assert!(f.leftover_run_dirs().is_empty());
}

#[tokio::test]
async fn dropping_the_run_kills_the_group() {
    let f = Fixture::new();
    let req = f.request(json!({"fake_sleep": 60}), Duration::from_secs(60));
    let pid = Arc::new(Mutex::new(None::<u32>));
    let seen = pid.clone();
    let run = f.runner.run(req, move |l: &str| {
        if let Some(p) = l.strip_prefix("child_pid=") {
            *seen.lock().unwrap() = p.trim().parse().ok();
        }
    });
    let r = tokio::time::timeout(Duration::from_millis(1500), run).await;
    assert!(r.is_err(), "the run should still be going");
    let child = pid.lock().unwrap().expect("child pid printed");
    for _ in 0..50 {
        if process_gone(child) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(process_gone(child), "the group's `sleep` {child} survived");
    assert!(f.leftover_run_dirs().is_empty());
}

#[tokio::test]
async fn start_failures_are_runner_errors() {
    let f = Fixture::with_binary(PathBuf::from("/nonexistent/venv/bin/ansible-playbook"));
    let e = f
        .runner
        .run(f.request(json!({}), Duration::from_secs(5)), |_: &str| {})
        .await
        .unwrap_err();
    assert!(matches!(e, RunnerError::MissingBinary(_)), "{e}");
    assert!(
        e.to_string()
            .contains("/nonexistent/venv/bin/ansible-playbook"),
        "{e}"
    );

    let f = Fixture::new();
    for bad in ["../test.yml", "missing.yml", "", "test.yml; rm -rf /"] {
        let mut req = f.request(json!({}), Duration::from_secs(5));
        req.playbook = bad.into();
        let e = f.runner.run(req, |_: &str| {}).await.unwrap_err();
        assert!(matches!(e, RunnerError::InvalidRequest(_)), "{bad}: {e}");
    }
    let mut req = f.request(json!({}), Duration::from_secs(5));
    req.target.hostname = "evil host ansible_connection=local".into();
    let e = f.runner.run(req, |_: &str| {}).await.unwrap_err();
    assert!(matches!(e, RunnerError::InvalidRequest(_)), "{e}");
    let mut req = f.request(json!({}), Duration::from_secs(5));
    req.target.host_key = Some("not a key".into());
    let e = f.runner.run(req, |_: &str| {}).await.unwrap_err();
    assert!(matches!(e, RunnerError::InvalidRequest(_)), "{e}");
    assert!(f.leftover_run_dirs().is_empty());

    let debug = format!(
        "{:?}",
        f.request(json!({"db_password": SECRET}), Duration::from_secs(1))
    );
    assert!(
        !debug.contains(SECRET) && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );
}

#[test]
fn tail_keeps_the_end_on_a_char_boundary() {
    let log = "x".repeat(20_000) + "ü-end";
    let t = Runner::tail(&log, 10 * 1024);
    assert!(t.len() <= 10 * 1024);
    assert!(t.ends_with("ü-end"));
    assert_eq!(Runner::tail("aü", 1), "");
    assert_eq!(Runner::tail("short", 10 * 1024), "short");
}

// ------------------------------------------------------------------------------------------------
// Real ansible-playbook over SSH to root@127.0.0.1 (skipped when not available).

fn real_ansible() -> Option<PathBuf> {
    let p = std::env::var_os("PRESSLUFT_ANSIBLE_PLAYBOOK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/pressluft/ansible-venv/bin/ansible-playbook"));
    p.is_file().then_some(p)
}

/// Removes the test's key from root's authorized_keys when dropped (also on panic).
struct AuthorizedKeyGuard(String);
impl Drop for AuthorizedKeyGuard {
    fn drop(&mut self) {
        let path = Path::new("/root/.ssh/authorized_keys");
        if let Ok(s) = std::fs::read_to_string(path) {
            let kept: String = s
                .lines()
                .filter(|l| !l.ends_with(&self.0))
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(path, kept);
        }
    }
}

#[tokio::test]
async fn real_playbook_over_ssh_to_localhost() {
    let Some(bin) = real_ansible() else {
        eprintln!("note: skipping: no ansible-playbook (PRESSLUFT_ANSIBLE_PLAYBOOK or /var/lib/pressluft/ansible-venv)");
        return;
    };
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if !matches!(root, Ok(true))
        || !pressluft::ssh::port_open("127.0.0.1", 22, Duration::from_secs(2)).await
    {
        eprintln!("note: skipping: needs root and sshd on 127.0.0.1:22");
        return;
    }
    let repo_ansible = Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible");
    let f = Fixture::with_binary(bin);
    let ansible = &f.runner.ansible_dir;
    std::fs::copy(
        repo_ansible.join("ansible.cfg"),
        ansible.join("ansible.cfg"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        repo_ansible.join("callback_plugins"),
        ansible.join("callback_plugins"),
    )
    .unwrap();
    std::fs::write(
        ansible.join("playbooks/test.yml"),
        r#"---
- name: Runner contract test
  hosts: all
  gather_facts: false
  tasks:
    - name: Show the secret (the runner must redact it)
      ansible.builtin.debug:
        msg: "token {{ test_secret }}"
    - name: Ask the node who we are
      ansible.builtin.command: id -un
      register: whoami
      changed_when: false
    - name: Report facts
      ansible.builtin.set_fact:
        pressluft_facts:
          remote_user: "{{ whoami.stdout }}"
          site_id: "{{ site_id }}"
          via_forkserver: "{{ lookup('ansible.builtin.env', 'PRESSLUFT_FORKSERVER') }}"
"#,
    )
    .unwrap();

    let marker = format!("pressluft-runner-test-{:08x}", rand::random::<u32>());
    let (private, public) = key_pair(&marker);
    let _guard = AuthorizedKeyGuard(marker);
    assert!(pressluft::ssh::authorize_locally(&public, Path::new("/root")).unwrap());
    let host_key = pressluft::ssh::fetch_host_key("127.0.0.1", 22, Duration::from_secs(10))
        .await
        .unwrap();

    let request = |host_key: String| RunRequest {
        playbook: "test.yml".into(),
        target: Target {
            hostname: "127.0.0.1".into(),
            port: 22,
            user: "root".into(),
            private_key_openssh: private.clone(),
            host_key: Some(host_key),
        },
        vars: json!({"test_secret": SECRET, "site_id": "s-1"})
            .as_object()
            .cloned()
            .unwrap(),
        secrets: vec![SECRET.into()],
        timeout: Duration::from_secs(120),
        cancel: CancellationToken::new(),
    };

    // A wrong pinned key first (no shared connection exists for it): unreachable, nothing ran.
    let (_, wrong) = key_pair("wrong");
    let (out, _) = f.run(request(wrong)).await;
    assert_eq!(
        out.error_code,
        Some(JobErrorCode::AnsibleHostUnreachable),
        "{}",
        out.log
    );
    assert_eq!(
        out.stats,
        Some(json!({"changed": 0, "failed": 0, "unreachable": 1}))
    );

    let (out, chunks) = f.run(request(host_key.clone())).await;
    assert!(out.succeeded(), "{}", out.log);
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(
        out.facts.get("remote_user"),
        Some(&json!("root")),
        "{:?}",
        out.facts
    );
    assert_eq!(out.facts.get("site_id"), Some(&json!("s-1")));
    assert_eq!(
        out.stats,
        Some(json!({"changed": 0, "failed": 0, "unreachable": 0}))
    );
    assert!(out.log.contains("token ********"), "{}", out.log);
    assert!(!out.log.contains(SECRET));
    assert!(chunks.iter().all(|c| !c.contains(SECRET)));
    assert!(f.leftover_run_dirs().is_empty());
    assert_eq!(out.facts.get("via_forkserver"), Some(&json!("")));
    eprintln!("real playbook run took {:?}", out.duration);

    // The same run forked from a pre-started ansible-playbook: same result, facts, redaction.
    std::os::unix::fs::symlink(
        repo_ansible.join("forkserver.py"),
        ansible.join("forkserver.py"),
    )
    .unwrap();
    let fs = pressluft::runner::Forkserver::start(
        &ansible.join("forkserver.py"),
        ansible,
        &f.runner.ansible_playbook,
        f._dir.path().join("fs.sock"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !fs.serving() {
        assert!(
            std::time::Instant::now() < deadline,
            "forkserver not serving"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut forked = Fixture {
        _dir: tempfile::tempdir().unwrap(),
        runner: f.runner.clone(),
    };
    forked.runner.forkserver = Some(Arc::new(fs));
    let (out, chunks) = forked.run(request(host_key.clone())).await;
    assert!(out.succeeded(), "{}", out.log);
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.facts.get("via_forkserver"), Some(&json!("1")));
    assert_eq!(out.facts.get("remote_user"), Some(&json!("root")));
    assert_eq!(out.facts.get("site_id"), Some(&json!("s-1")));
    assert!(out.log.contains("token ********"), "{}", out.log);
    assert!(out.log.contains("PLAY RECAP"), "{}", out.log);
    assert!(chunks.iter().all(|c| !c.contains(SECRET)));
    eprintln!("forked playbook run took {:?}", out.duration);
    // A failing run keeps its exit code through the server.
    let (_, wrong) = key_pair("wrong");
    let (out, _) = forked.run(request(wrong)).await;
    assert_eq!(
        out.error_code,
        Some(JobErrorCode::AnsibleHostUnreachable),
        "{}",
        out.log
    );
    // A run killed at its timeout ends at once, the forked ansible-playbook included.
    std::fs::write(
        ansible.join("playbooks/test.yml"),
        "---\n- name: Sleeper\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Sleep\n      ansible.builtin.command: sleep 60\n      changed_when: false\n",
    )
    .unwrap();
    let mut slow = request(host_key.clone());
    slow.timeout = Duration::from_secs(4);
    let started = std::time::Instant::now();
    let (out, _) = forked.run(slow).await;
    assert_eq!(
        out.error_code,
        Some(JobErrorCode::AnsibleTimeout),
        "{}",
        out.log
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    let server = forked.runner.forkserver.as_ref().unwrap().pid().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        // the server reaps its children: none is left once the run is gone
        let left = std::process::Command::new("pgrep")
            .args(["-P", &server.to_string()])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&left.stdout).trim().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the forked run was not killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
