//! Pressluft's SSH identity and direct SSH to nodes (russh, no `ssh` binary).
//!
//! Ansible does the mutations (see [`crate::runner`]); this module covers what happens around
//! them without a playbook: the one ed25519 key pair Pressluft logs in with (kept encrypted in the
//! secret store), authorizing it for the local node, reading a node's host key once so it can be
//! pinned at registration, and single-command node queries / reachability probes (spec §12) that
//! only ever talk to a server presenting the pinned key.
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;
use sea_orm::ConnectionTrait;

use crate::runner::Target;
use crate::secrets::SecretBox;
use crate::store;

/// Secret-store id of Pressluft's own SSH key pair.
pub const CONTROL_KEY_ID: &str = "ssh/control_key";
/// The comment on Pressluft's public key (what an operator sees in `authorized_keys`).
pub const CONTROL_KEY_COMMENT: &str = "pressluft";
/// Each of stdout / stderr of [`exec`] is cut at this size: node queries answer in a few lines.
const EXEC_OUTPUT_LIMIT: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("SSH connection failed: {0}")]
    Connect(String),
    #[error("SSH timed out after {}s", .0.as_secs_f32())]
    Timeout(Duration),
    #[error("host key mismatch: the server presented {presented}, but {expected} is pinned")]
    HostKeyMismatch { expected: String, presented: String },
    #[error("no host key is pinned for this node; refusing to connect")]
    HostKeyNotPinned,
    #[error("SSH authentication as {user} with Pressluft's key was refused")]
    AuthFailed { user: String },
    #[error("unusable SSH key: {0}")]
    Key(String),
    #[error("SSH protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl SshError {
    /// True when the node could not be reached at all (network, sshd down, no answer in time), as
    /// opposed to a node that answered but was refused or refused us.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::Timeout(_))
    }
}

/// Pressluft's key pair in OpenSSH formats.
#[derive(Clone)]
pub struct ControlKey {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----…`. Secret.
    pub private_openssh: String,
    /// `ssh-ed25519 AAAA… pressluft`
    pub public_openssh: String,
}

impl std::fmt::Debug for ControlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlKey")
            .field("private_openssh", &"<redacted>")
            .field("public_openssh", &self.public_openssh)
            .finish()
    }
}

/// Returns Pressluft's SSH key pair, creating it (ed25519) on first use. The private key is stored
/// encrypted under [`CONTROL_KEY_ID`], so every start and every replica uses the same identity.
pub async fn control_key(
    db: &impl ConnectionTrait,
    sb: &SecretBox,
) -> Result<ControlKey, SshError> {
    let pem = match store::secrets::get(db, sb, CONTROL_KEY_ID).await? {
        Some(pem) => pem,
        None => {
            let fresh = generate_private(CONTROL_KEY_COMMENT)?;
            store::secrets::get_or_create(db, sb, CONTROL_KEY_ID, || fresh).await?;
            // read back: what is stored is the identity, whoever wrote it
            store::secrets::get(db, sb, CONTROL_KEY_ID)
                .await?
                .ok_or_else(|| SshError::Key("control key vanished after it was stored".into()))?
        }
    };
    let key = PrivateKey::from_openssh(&pem)
        .map_err(|e| SshError::Key(format!("stored control key does not parse: {e}")))?;
    let public_openssh = key
        .public_key()
        .to_openssh()
        .map_err(|e| SshError::Key(e.to_string()))?;
    Ok(ControlKey {
        private_openssh: pem,
        public_openssh,
    })
}

/// A new ed25519 private key in OpenSSH format.
fn generate_private(comment: &str) -> Result<String, SshError> {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment(comment);
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| SshError::Key(e.to_string()))?;
    Ok(pem.to_string())
}

/// `"type base64"` of an OpenSSH public key line, ignoring any comment.
fn key_type_and_blob(public_openssh: &str) -> Option<(&str, &str)> {
    let mut it = public_openssh.split_whitespace();
    Some((it.next()?, it.next()?))
}

fn openssh_without_comment(key: &PublicKey) -> Result<String, SshError> {
    let line = key.to_openssh().map_err(|e| SshError::Key(e.to_string()))?;
    let (kind, blob) = key_type_and_blob(&line)
        .ok_or_else(|| SshError::Key("public key has no OpenSSH form".into()))?;
    Ok(format!("{kind} {blob}"))
}

fn parse_public(public_openssh: &str) -> Result<PublicKey, SshError> {
    let (kind, blob) = key_type_and_blob(public_openssh)
        .ok_or_else(|| SshError::Key(format!("not an OpenSSH public key: {public_openssh:?}")))?;
    PublicKey::from_openssh(&format!("{kind} {blob}"))
        .map_err(|e| SshError::Key(format!("public key does not parse: {e}")))
}

/// Adds `public_openssh` to `home/.ssh/authorized_keys` unless that key is already there (with
/// any comment or options). Creates `.ssh` (0700) and the file (0600) when missing. Returns
/// whether it wrote. This is how the control plane's own host becomes a node reachable over SSH
/// to localhost, exactly like a remote one.
pub fn authorize_locally(public_openssh: &str, home: &Path) -> std::io::Result<bool> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
    if public_openssh.contains(['\n', '\r']) {
        return Err(invalid("public key must be a single line"));
    }
    let Some((kind, blob)) = key_type_and_blob(public_openssh) else {
        return Err(invalid("not an OpenSSH public key"));
    };
    if parse_public(public_openssh).is_err() {
        return Err(invalid("public key does not parse"));
    }
    let ssh_dir = home.join(".ssh");
    if !ssh_dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&ssh_dir)?;
    }
    let path = ssh_dir.join("authorized_keys");
    let existing = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let present = existing.lines().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        fields.windows(2).any(|w| w[0] == kind && w[1] == blob)
    });
    if present {
        return Ok(false);
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)?;
    let mut line = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(public_openssh.trim());
    line.push('\n');
    f.write_all(line.as_bytes())?;
    f.sync_all()?;
    Ok(true)
}

/// russh handler that records the server's host key and accepts it only when it equals the
/// pinned one (`expected`); with no expectation it records and refuses, so nothing is sent after
/// the key exchange.
struct HostKeyCheck {
    expected: Option<PublicKey>,
    seen: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Pressluft advertises no certificate algorithms, so this is a plain key; a certificate
        // would be judged by the key it certifies, which must still be the pinned one.
        let key = server_key.public_key();
        let ok = self
            .expected
            .as_ref()
            .is_some_and(|e| e.key_data() == key.key_data());
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(key);
        }
        Ok(ok)
    }
}

fn map_russh(e: russh::Error) -> SshError {
    use russh::Error as E;
    match e {
        E::IO(e) => SshError::Connect(e.to_string()),
        E::HUP
        | E::Disconnect
        | E::ConnectionTimeout
        | E::KeepaliveTimeout
        | E::InactivityTimeout => SshError::Connect(e.to_string()),
        other => SshError::Protocol(other.to_string()),
    }
}

/// Opens a session, checking the host key with a [`HostKeyCheck`]. `prefer` puts the pinned key's
/// algorithm first so the server presents that key (it may have several).
async fn open(
    host: &str,
    port: u16,
    expected: Option<PublicKey>,
    seen: Arc<Mutex<Option<PublicKey>>>,
) -> Result<client::Handle<HostKeyCheck>, russh::Error> {
    let mut config = client::Config::default();
    if let Some(e) = &expected {
        let alg = e.algorithm();
        let mut order = vec![alg.clone()];
        order.extend(config.preferred.key.iter().filter(|a| **a != alg).cloned());
        config.preferred.key = order.into();
    }
    let handler = HostKeyCheck { expected, seen };
    client::connect(Arc::new(config), (host, port), handler).await
}

/// Connects to `host:port` and returns the server's host public key as `"ssh-ed25519 AAAA…"`
/// (ed25519 preferred when the server has several). Used once, to pin the key when a node is
/// registered; the session is refused right after the key exchange.
pub async fn fetch_host_key(host: &str, port: u16, timeout: Duration) -> Result<String, SshError> {
    let seen = Arc::new(Mutex::new(None));
    let attempt = open(host, port, None, seen.clone());
    let res = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| SshError::Timeout(timeout))?;
    let key = seen.lock().ok().and_then(|mut s| s.take());
    match (res, key) {
        (_, Some(key)) => openssh_without_comment(&key),
        (Err(e), None) => Err(map_russh(e)),
        (Ok(_), None) => Err(SshError::Protocol(
            "the server presented no host key".into(),
        )),
    }
}

/// The result of one remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_status: u32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs one command on the target (spec §12: one round trip, hard timeout). The command runs on
/// a channel of the node's pooled connection ([`pool`]): one authenticated SSH connection per
/// node and identity serves every probe and node query, so a probe round costs a channel, not a
/// key exchange. A connection found dead before the command started is replaced and the command
/// retried once; one that times out is dropped (the remote command gets SIGHUP). The server must
/// present the pinned host key; there is no trust-on-first-use here.
pub async fn exec(
    target: &Target,
    command: &str,
    timeout: Duration,
) -> Result<ExecOutput, SshError> {
    let pinned = target
        .host_key
        .as_deref()
        .ok_or(SshError::HostKeyNotPinned)?;
    let expected = parse_public(pinned)?;
    let key = PrivateKey::from_openssh(&target.private_key_openssh)
        .map_err(|e| SshError::Key(format!("private key does not parse: {e}")))?;
    // A pooled connection outlives sshd being stopped or the port being closed, but every
    // playbook opens new connections: the node counts as reachable only while it accepts one
    // (a TCP handshake: cheap next to the key exchange the pool saves).
    if !port_open(
        &target.hostname,
        target.port,
        timeout.min(Duration::from_secs(5)),
    )
    .await
    {
        return Err(SshError::Connect(format!(
            "{}:{} does not accept SSH connections",
            target.hostname, target.port
        )));
    }
    let pool_key = PoolKey::of(target, pinned);
    let used: Arc<Mutex<Option<Arc<client::Handle<HostKeyCheck>>>>> = Arc::default();
    let r = tokio::time::timeout(
        timeout,
        exec_pooled(target, &pool_key, expected, key, command, used.clone()),
    )
    .await;
    match r {
        Ok(r) => r,
        Err(_) => {
            // drop the connection the command hung on: the remote command gets SIGHUP
            if let Some(h) = used.lock().ok().and_then(|mut u| u.take()) {
                pool::discard(&pool_key, &h);
            }
            Err(SshError::Timeout(timeout))
        }
    }
}

/// What identifies a pooled connection: where, as whom, with which pinned host key and which
/// client key (a hash of it; the pool never keeps a private key).
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    host: String,
    port: u16,
    user: String,
    host_key: String,
    identity: [u8; 32],
}

impl PoolKey {
    fn of(target: &Target, pinned: &str) -> Self {
        use sha2::Digest;
        PoolKey {
            host: target.hostname.clone(),
            port: target.port,
            user: target.user.clone(),
            host_key: pinned.to_string(),
            identity: sha2::Sha256::digest(target.private_key_openssh.as_bytes()).into(),
        }
    }
}

/// SSH connections kept per node for [`exec`]: reused while alive and used at least once every
/// [`pool::IDLE`]; idle ones are closed by the next caller.
pub mod pool {
    use super::*;
    use std::collections::HashMap;
    use std::time::Instant;

    /// A connection unused this long is closed.
    pub const IDLE: Duration = Duration::from_secs(120);

    pub(super) type Conn = Arc<client::Handle<HostKeyCheck>>;

    struct Entry {
        conn: Option<Conn>,
        last_used: Instant,
    }

    type Slot = Arc<tokio::sync::Mutex<Entry>>;

    fn slots() -> &'static Mutex<HashMap<PoolKey, Slot>> {
        static POOL: std::sync::OnceLock<Mutex<HashMap<PoolKey, Slot>>> =
            std::sync::OnceLock::new();
        POOL.get_or_init(Default::default)
    }

    static CONNECTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    /// Connections opened by the pool since start (tests and the benchmark read it).
    pub fn connects() -> u64 {
        CONNECTS.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Open pooled connections.
    pub fn open_connections() -> usize {
        let slots: Vec<Slot> = slots().lock().expect("pool").values().cloned().collect();
        slots
            .iter()
            .filter(|s| {
                s.try_lock()
                    .map(|e| e.conn.as_ref().is_some_and(|c| !c.is_closed()))
                    .unwrap_or(true)
            })
            .count()
    }

    fn close(conn: Conn) {
        tokio::spawn(async move {
            let _ = conn
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
        });
    }

    /// The live connection for `key`, or a new one (connecting is serialized per key, so
    /// concurrent callers share one). `fresh` forces a new connection.
    pub(super) async fn get(
        key: &PoolKey,
        target: &Target,
        expected: PublicKey,
        private: PrivateKey,
        fresh: bool,
    ) -> Result<(Conn, bool), SshError> {
        sweep(key);
        let slot = slots()
            .lock()
            .expect("pool")
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Entry {
                    conn: None,
                    last_used: Instant::now(),
                }))
            })
            .clone();
        let mut e = slot.lock().await;
        let reusable = !fresh && e.last_used.elapsed() < IDLE;
        if let Some(c) = e.conn.as_ref().filter(|c| reusable && !c.is_closed()) {
            let c = c.clone();
            e.last_used = Instant::now();
            return Ok((c, true));
        }
        if let Some(old) = e.conn.take() {
            close(old);
        }
        let conn = Arc::new(super::connect(target, expected, private).await?);
        CONNECTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        e.conn = Some(conn.clone());
        e.last_used = Instant::now();
        Ok((conn, false))
    }

    /// Drops `conn` from the pool (if it is still the pooled one) and closes it.
    pub(super) fn discard(key: &PoolKey, conn: &Conn) {
        let slot = slots().lock().expect("pool").get(key).cloned();
        if let Some(slot) = slot {
            if let Ok(mut e) = slot.try_lock() {
                if e.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                    e.conn = None;
                }
            }
        }
        close(conn.clone());
    }

    /// Closes connections idle for longer than [`IDLE`] (other than `keep`'s) and forgets them.
    fn sweep(keep: &PoolKey) {
        let mut map = slots().lock().expect("pool");
        map.retain(|k, slot| {
            if k == keep {
                return true;
            }
            let Ok(mut e) = slot.try_lock() else {
                return true;
            };
            if e.last_used.elapsed() < IDLE {
                return true;
            }
            if let Some(c) = e.conn.take() {
                close(c);
            }
            false
        });
    }

    /// Closes every pooled connection (tests).
    pub fn clear() {
        let all: Vec<Slot> = slots()
            .lock()
            .expect("pool")
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in all {
            if let Ok(mut e) = s.try_lock() {
                if let Some(c) = e.conn.take() {
                    close(c);
                }
            }
        }
    }
}

/// [`exec`] on a pooled connection; `used` names the connection the command went to.
async fn exec_pooled(
    target: &Target,
    pool_key: &PoolKey,
    expected: PublicKey,
    key: PrivateKey,
    command: &str,
    used: Arc<Mutex<Option<pool::Conn>>>,
) -> Result<ExecOutput, SshError> {
    let (conn, reused) = pool::get(pool_key, target, expected.clone(), key.clone(), false).await?;
    if let Ok(mut u) = used.lock() {
        *u = Some(conn.clone());
    }
    let channel = match conn.channel_open_session().await {
        Ok(c) => c,
        Err(russh::Error::ChannelOpenFailure(why)) if !conn.is_closed() => {
            // A live connection refusing another channel (sshd's MaxSessions, 10 by default, all
            // busy): this command gets a connection of its own, closed after it.
            tracing::debug!(host = %target.hostname, reason = ?why, "pooled SSH connection refused a channel; using a separate one");
            let own = connect(target, expected, key).await?;
            let channel = own.channel_open_session().await.map_err(map_russh)?;
            let out = run_on_channel(channel, command).await;
            let _ = own
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            return out;
        }
        Err(e) if reused => {
            // The pooled connection died (sshd restarted, network cut, the server's idle
            // timeout): nothing ran yet, so one retry on a new connection.
            tracing::debug!(host = %target.hostname, error = %e, "pooled SSH connection is gone; reconnecting");
            pool::discard(pool_key, &conn);
            let (conn, _) = pool::get(pool_key, target, expected, key, true).await?;
            if let Ok(mut u) = used.lock() {
                *u = Some(conn.clone());
            }
            conn.channel_open_session().await.map_err(map_russh)?
        }
        Err(e) => return Err(map_russh(e)),
    };
    run_on_channel(channel, command).await
}

/// Opens an authenticated session to the target; the server must present `expected`.
async fn connect(
    target: &Target,
    expected: PublicKey,
    key: PrivateKey,
) -> Result<client::Handle<HostKeyCheck>, SshError> {
    let seen = Arc::new(Mutex::new(None));
    let pinned_text = openssh_without_comment(&expected)?;
    let mut session = match open(&target.hostname, target.port, Some(expected), seen.clone()).await
    {
        Ok(s) => s,
        Err(russh::Error::UnknownKey) => {
            let presented = seen
                .lock()
                .ok()
                .and_then(|s| s.as_ref().map(openssh_without_comment))
                .transpose()?
                .unwrap_or_else(|| "no key".into());
            return Err(SshError::HostKeyMismatch {
                expected: pinned_text,
                presented,
            });
        }
        Err(e) => return Err(map_russh(e)),
    };

    let hash = if key.algorithm().is_rsa() {
        session
            .best_supported_rsa_hash()
            .await
            .map_err(map_russh)?
            .flatten()
    } else {
        None
    };
    let auth = session
        .authenticate_publickey(
            target.user.clone(),
            PrivateKeyWithHashAlg::new(Arc::new(key), hash),
        )
        .await
        .map_err(map_russh)?;
    if !auth.success() {
        return Err(SshError::AuthFailed {
            user: target.user.clone(),
        });
    }
    Ok(session)
}

async fn run_on_channel(
    channel: russh::Channel<client::Msg>,
    command: &str,
) -> Result<ExecOutput, SshError> {
    channel.exec(true, command).await.map_err(map_russh)?;
    collect_output(channel).await
}

/// Runs one command on a connection of its own with `body` as its stdin, each chunk sent as it
/// arrives (the SSH window holds the sender back when the remote side is slower), then EOF; the
/// command's output when it ended. `idle` bounds the connect, the wait for each next chunk and the
/// command's end after EOF. When `body` fails or stalls the connection is closed without EOF (the
/// remote command sees its stdin end: the caller's command must not trust a short input).
pub async fn exec_upload<S, E>(
    target: &Target,
    command: &str,
    mut body: S,
    idle: Duration,
) -> Result<ExecOutput, SshError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures_util::StreamExt;
    let pinned = target
        .host_key
        .as_deref()
        .ok_or(SshError::HostKeyNotPinned)?;
    let expected = parse_public(pinned)?;
    let key = PrivateKey::from_openssh(&target.private_key_openssh)
        .map_err(|e| SshError::Key(format!("private key does not parse: {e}")))?;
    let session = tokio::time::timeout(idle, connect(target, expected, key))
        .await
        .map_err(|_| SshError::Timeout(idle))??;
    let result = async {
        let channel = session.channel_open_session().await.map_err(map_russh)?;
        channel.exec(true, command).await.map_err(map_russh)?;
        loop {
            match tokio::time::timeout(idle, body.next()).await {
                Err(_) => return Err(SshError::Timeout(idle)),
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(SshError::Protocol(format!("the upload broke off: {e}")))
                }
                Ok(Some(Ok(chunk))) => channel.data(&chunk[..]).await.map_err(map_russh)?,
            }
        }
        channel.eof().await.map_err(map_russh)?;
        tokio::time::timeout(idle, collect_output(channel))
            .await
            .map_err(|_| SshError::Timeout(idle))?
    }
    .await;
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    result
}

/// A started command's stdout, stderr (both capped) and exit status.
async fn collect_output(mut channel: russh::Channel<client::Msg>) -> Result<ExecOutput, SshError> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut exit_status = None;
    let mut signal = None;
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => append_capped(&mut stdout, &data),
            ChannelMsg::ExtendedData { data, ext: 1 } => append_capped(&mut stderr, &data),
            ChannelMsg::ExitStatus { exit_status: s } => exit_status = Some(s),
            ChannelMsg::ExitSignal { signal_name, .. } => signal = Some(signal_name),
            _ => {}
        }
    }
    let exit_status = match (exit_status, signal) {
        (Some(s), _) => s,
        (None, Some(sig)) => {
            return Err(SshError::Protocol(format!(
                "remote command was killed by signal {sig:?}"
            )))
        }
        (None, None) => {
            return Err(SshError::Protocol(
                "remote command ended without an exit status".into(),
            ))
        }
    };
    Ok(ExecOutput {
        exit_status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

fn append_capped(buf: &mut Vec<u8>, data: &[u8]) {
    let room = EXEC_OUTPUT_LIMIT.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
}

/// How [`exec_stream`] runs its command. Not `Debug`: `stdin` may carry secrets.
pub struct StreamOptions {
    /// Connect, authenticate and start the command within this.
    pub start_timeout: Duration,
    /// The remote command sent nothing (no output, no end) for this long: aborted.
    pub idle_timeout: Duration,
    /// The consumer took no chunk for this long (a stalled HTTP client): aborted.
    pub stall_timeout: Duration,
    /// Written to the command's stdin, which is then closed; zeroed once sent. Secrets go here,
    /// never on the command line (which any user of the node can read with `ps`).
    pub stdin: Vec<u8>,
    /// Strings replaced by `***` in the stderr that is logged.
    pub redact: Vec<String>,
    /// What runs, for the log (no secrets).
    pub label: String,
}

/// Chunks (SSH packets, at most 32 KiB each) buffered between the SSH session and the consumer.
/// With russh's own channel buffer and the SSH window this bounds what a stream holds in memory,
/// whatever the size of the output: a slow consumer stops the session reading, which stops the
/// remote command writing.
const STREAM_CHUNKS: usize = 16;
/// The stderr of [`exec_stream`] kept for the log.
const STREAM_STDERR_LIMIT: usize = 64 * 1024;

/// The stdout of a remote command as a stream of chunks ([`exec_stream`]). It ends after the
/// command exited with status 0; any failure (non-zero exit, signal, timeout, lost connection)
/// is the last item, an error. Dropping the stream ends the SSH session (the remote command then
/// dies of SIGPIPE or a hang-up).
pub struct ExecStream {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
}

impl futures_util::Stream for ExecStream {
    type Item = Result<bytes::Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Runs one command on the target and streams its stdout with backpressure (for output of any
/// size: backup artifacts). Errors before the command started (connection, host key, auth,
/// `start_timeout`) are returned here; later ones end the stream. Stderr is captured apart
/// (capped) and logged, redacted, when the command fails.
pub async fn exec_stream(
    target: &Target,
    command: &str,
    mut opts: StreamOptions,
) -> Result<ExecStream, SshError> {
    let pinned = target
        .host_key
        .as_deref()
        .ok_or(SshError::HostKeyNotPinned)?;
    let expected = parse_public(pinned)?;
    let key = PrivateKey::from_openssh(&target.private_key_openssh)
        .map_err(|e| SshError::Key(format!("private key does not parse: {e}")))?;
    let stdin = std::mem::take(&mut opts.stdin);
    let start = async {
        let session = connect(target, expected, key).await?;
        let channel = session.channel_open_session().await.map_err(map_russh)?;
        channel.exec(true, command).await.map_err(map_russh)?;
        if !stdin.is_empty() {
            channel.data(&stdin[..]).await.map_err(map_russh)?;
        }
        channel.eof().await.map_err(map_russh)?;
        Ok::<_, SshError>((session, channel))
    };
    let started = tokio::time::timeout(opts.start_timeout, start).await;
    let mut stdin = stdin;
    stdin.fill(0);
    let (session, channel) = started.map_err(|_| SshError::Timeout(opts.start_timeout))??;
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
    tokio::spawn(pump(session, channel, tx, opts));
    Ok(ExecStream { rx })
}

enum StreamEnd {
    /// The channel closed; the exit status decides.
    Closed,
    /// The consumer dropped the stream.
    ConsumerGone,
    Failed(String),
}

/// Moves stdout chunks from the SSH channel to the consumer until the channel closes.
async fn pump(
    session: client::Handle<HostKeyCheck>,
    mut channel: russh::Channel<client::Msg>,
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    opts: StreamOptions,
) {
    let mut stderr = Vec::new();
    let (mut exit_status, mut signal) = (None, None);
    let mut bytes_out: u64 = 0;
    let end = loop {
        let msg = tokio::select! {
            _ = tx.closed() => break StreamEnd::ConsumerGone,
            m = tokio::time::timeout(opts.idle_timeout, channel.wait()) => m,
        };
        let msg = match msg {
            Err(_) => {
                break StreamEnd::Failed(format!(
                    "the remote command sent nothing for {}s",
                    opts.idle_timeout.as_secs()
                ))
            }
            Ok(None) => break StreamEnd::Closed,
            Ok(Some(m)) => m,
        };
        match msg {
            ChannelMsg::Data { data } => {
                let n = data.len() as u64;
                match tokio::time::timeout(opts.stall_timeout, tx.send(Ok(data))).await {
                    Ok(Ok(())) => bytes_out += n,
                    Ok(Err(_)) => break StreamEnd::ConsumerGone,
                    Err(_) => {
                        break StreamEnd::Failed(format!(
                            "the consumer took nothing for {}s",
                            opts.stall_timeout.as_secs()
                        ))
                    }
                }
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                let room = STREAM_STDERR_LIMIT.saturating_sub(stderr.len());
                stderr.extend_from_slice(&data[..data.len().min(room)]);
            }
            ChannelMsg::ExitStatus { exit_status: s } => exit_status = Some(s),
            ChannelMsg::ExitSignal { signal_name, .. } => signal = Some(signal_name),
            _ => {}
        }
    };
    let _ = channel.close().await;
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    let end = match end {
        StreamEnd::Closed => match (exit_status, signal) {
            (Some(0), _) => StreamEnd::Closed,
            (Some(s), _) => StreamEnd::Failed(format!("the remote command exited with status {s}")),
            (None, Some(sig)) => {
                StreamEnd::Failed(format!("the remote command was killed by signal {sig:?}"))
            }
            (None, None) => {
                StreamEnd::Failed("the remote command ended without an exit status".into())
            }
        },
        other => other,
    };
    let mut stderr = String::from_utf8_lossy(&stderr).trim().to_string();
    for s in opts.redact.iter().filter(|s| !s.is_empty()) {
        stderr = stderr.replace(s.as_str(), "***");
    }
    match end {
        StreamEnd::Closed => {
            tracing::debug!(what = %opts.label, bytes = bytes_out, stderr = %stderr, "remote stream complete")
        }
        StreamEnd::ConsumerGone => tracing::info!(
            what = %opts.label,
            bytes = bytes_out,
            "remote stream: the consumer went away; SSH session closed"
        ),
        StreamEnd::Failed(why) => {
            tracing::warn!(what = %opts.label, bytes = bytes_out, error = %why, stderr = %stderr, "remote stream failed");
            let e = std::io::Error::other(why);
            let _ = tokio::time::timeout(opts.stall_timeout, tx.send(Err(e))).await;
        }
    }
}

/// Whether something accepts TCP connections on `host:port` within `timeout` (cheap check
/// before SSH: "is sshd running at all?").
pub async fn port_open(host: &str, port: u16, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    async fn test_db() -> (tempfile::TempDir, sea_orm::DatabaseConnection) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::test_database(dir.path()).await;
        (dir, db)
    }

    #[tokio::test]
    async fn control_key_is_created_once_and_stored_encrypted() {
        let (_dir, db) = test_db().await;
        let sb = SecretBox::from_key(&[3u8; 32]);
        let a = control_key(&db, &sb).await.unwrap();
        assert!(a
            .private_openssh
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(a.public_openssh.starts_with("ssh-ed25519 AAAA"));
        assert!(a.public_openssh.ends_with(" pressluft"));
        let b = control_key(&db, &sb).await.unwrap();
        assert_eq!(a.private_openssh, b.private_openssh);
        assert_eq!(a.public_openssh, b.public_openssh);

        use sea_orm::EntityTrait;
        let row = store::entity::secrets::Entity::find_by_id(CONTROL_KEY_ID.to_string())
            .one(&db)
            .await
            .unwrap()
            .expect("stored");
        assert!(!row.ciphertext.contains("OPENSSH"));
        assert!(!row
            .ciphertext
            .contains(key_type_and_blob(&a.public_openssh).unwrap().1));

        let debug = format!("{a:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        assert!(debug.contains("ssh-ed25519"));
    }

    #[test]
    fn authorize_locally_is_idempotent_and_private() {
        let home = tempfile::tempdir().unwrap();
        let key = PrivateKey::from_openssh(generate_private("pressluft").unwrap()).unwrap();
        let public = key.public_key().to_openssh().unwrap();
        assert!(authorize_locally(&public, home.path()).unwrap());
        assert!(!authorize_locally(&public, home.path()).unwrap());
        // same key, other comment: still present
        let (kind, blob) = key_type_and_blob(&public).unwrap();
        assert!(!authorize_locally(&format!("{kind} {blob} other"), home.path()).unwrap());
        let ssh = home.path().join(".ssh");
        let file = ssh.join("authorized_keys");
        assert_eq!(
            std::fs::metadata(&ssh).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{public}\n")
        );

        // appends after an existing last line without newline, keeps what was there
        let other = PrivateKey::from_openssh(generate_private("x").unwrap()).unwrap();
        let other_pub = other.public_key().to_openssh().unwrap();
        std::fs::write(&file, format!("command=\"true\" {other_pub}")).unwrap();
        assert!(authorize_locally(&public, home.path()).unwrap());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("command=\"true\" {other_pub}\n{public}\n")
        );
        assert!(authorize_locally("ssh-ed25519 AAAA\nssh-rsa x", home.path()).is_err());
        assert!(authorize_locally("garbage", home.path()).is_err());
    }

    #[tokio::test]
    async fn exec_refuses_without_a_pinned_key() {
        let t = Target {
            hostname: "127.0.0.1".into(),
            port: 22,
            user: "root".into(),
            private_key_openssh: generate_private("t").unwrap(),
            host_key: None,
        };
        let e = exec(&t, "true", Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(e, SshError::HostKeyNotPinned), "{e}");
        assert!(!e.is_unreachable());
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        // bind and drop to find a port nobody listens on
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = fetch_host_key("127.0.0.1", port, Duration::from_secs(3))
            .await
            .unwrap_err();
        assert!(e.is_unreachable(), "{e}");
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

    /// Against the real sshd on 127.0.0.1:22, as root (skipped otherwise). One test so that the
    /// key it authorizes and removes cannot race with another test's.
    #[tokio::test]
    async fn against_local_sshd() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || !port_open("127.0.0.1", 22, Duration::from_secs(2)).await {
            eprintln!("note: skipping against_local_sshd: needs root and sshd on 127.0.0.1:22");
            return;
        }
        let host_key = fetch_host_key("127.0.0.1", 22, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(host_key.starts_with("ssh-ed25519 AAAA"), "{host_key}");
        assert_eq!(host_key.split_whitespace().count(), 2);

        let marker = format!("pressluft-ssh-test-{}", crate::ids::random_token(6));
        let private = generate_private(&marker).unwrap();
        let public = PrivateKey::from_openssh(&private)
            .unwrap()
            .public_key()
            .to_openssh()
            .unwrap();
        let _guard = AuthorizedKeyGuard(marker.clone());
        assert!(authorize_locally(&public, Path::new("/root")).unwrap());

        let mut target = Target {
            hostname: "127.0.0.1".into(),
            port: 22,
            user: "root".into(),
            private_key_openssh: private.clone(),
            host_key: Some(host_key.clone()),
        };
        let out = exec(&target, "echo hi", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.exit_status, 0);
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "");

        let out = exec(&target, "echo oops >&2; exit 3", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.exit_status, 3);
        assert_eq!(out.stderr, "oops\n");

        let e = exec(&target, "sleep 5", Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(e, SshError::Timeout(_)), "{e}");

        stream_against_local_sshd(&target).await;

        pool_against_local_sshd(&target).await;

        // a different pinned key of the same type: refused before authenticating
        let wrong = PrivateKey::from_openssh(generate_private("w").unwrap())
            .unwrap()
            .public_key()
            .to_openssh()
            .unwrap();
        target.host_key = Some(wrong);
        let e = exec(&target, "echo hi", Duration::from_secs(10))
            .await
            .unwrap_err();
        match &e {
            SshError::HostKeyMismatch { presented, .. } => assert_eq!(presented, &host_key),
            other => panic!("expected a mismatch, got {other}"),
        }
        assert!(!e.is_unreachable());

        // right host key, key not authorized: authentication refused
        target.host_key = Some(host_key);
        target.private_key_openssh = generate_private("unauthorized").unwrap();
        let e = exec(&target, "echo hi", Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(e, SshError::AuthFailed { .. }), "{e}");
    }

    /// [`exec`] reuses one connection per node: many commands (also concurrent ones) run on one
    /// sshd connection process; after that connection is killed the next command reconnects
    /// and succeeds; a timed-out command's connection is dropped.
    async fn pool_against_local_sshd(target: &Target) {
        // $PPID of the remote shell is the sshd process serving the connection
        let conn_pid = |t: Target| async move {
            let out = exec(&t, "echo $PPID", Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(out.exit_status, 0);
            out.stdout.trim().parse::<u32>().unwrap()
        };
        let first = conn_pid(target.clone()).await;
        let started = std::time::Instant::now();
        for _ in 0..10 {
            assert_eq!(conn_pid(target.clone()).await, first);
        }
        let sequential = started.elapsed();
        let concurrent: Vec<u32> =
            futures_util::future::join_all((0..5).map(|_| conn_pid(target.clone()))).await;
        assert!(
            concurrent.iter().all(|p| *p == first),
            "{concurrent:?} vs {first}"
        );
        // for comparison: a fresh connection per command (what exec did before the pool)
        let started = std::time::Instant::now();
        for _ in 0..5 {
            pool::clear();
            conn_pid(target.clone()).await;
        }
        let fresh = started.elapsed() / 5;
        eprintln!(
            "per command: {:?} on the pooled connection, {fresh:?} with a connection each",
            sequential / 10
        );

        // the connection dies under the pool: the next command reconnects
        let first = conn_pid(target.clone()).await;
        let killed = std::process::Command::new("kill")
            .arg(first.to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = conn_pid(target.clone()).await;
        assert_ne!(second, first);
        assert_eq!(conn_pid(target.clone()).await, second);

        // a command that times out takes its connection with it
        let e = exec(target, "sleep 30", Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(e, SshError::Timeout(_)), "{e}");
        let third = conn_pid(target.clone()).await;
        assert_ne!(third, second);
    }

    /// [`exec_stream`]: every byte in order, stdin reaches the command, a failure is the last
    /// item, idle timeout, and backpressure (an unread stream stops the remote writer).
    async fn stream_against_local_sshd(target: &Target) {
        use futures_util::StreamExt;
        let opts = |stdin: &[u8], idle: Duration| StreamOptions {
            start_timeout: Duration::from_secs(10),
            idle_timeout: idle,
            stall_timeout: Duration::from_secs(10),
            stdin: stdin.to_vec(),
            redact: vec!["hidden".into()],
            label: "test".into(),
        };
        let long = Duration::from_secs(10);
        let mut s = exec_stream(target, "seq 1 700000", opts(b"", long))
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
            chunks += 1;
        }
        let want: String = (1..=700_000).map(|i| format!("{i}\n")).collect();
        assert!(got == want.as_bytes(), "every byte, in order");
        assert!(chunks > 10, "{chunks} chunks");

        let out: Vec<_> = exec_stream(
            target,
            "read -r a; echo \"got $a\"",
            opts(b"hidden\n", long),
        )
        .await
        .unwrap()
        .collect()
        .await;
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(&out[0].as_ref().unwrap()[..], b"got hidden\n");

        let out: Vec<_> = exec_stream(
            target,
            "echo part; echo hidden oops >&2; exit 4",
            opts(b"", long),
        )
        .await
        .unwrap()
        .collect()
        .await;
        assert_eq!(&out[0].as_ref().unwrap()[..], b"part\n");
        let e = out.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(e.contains("status 4"), "{e}");

        let out: Vec<_> = exec_stream(
            target,
            "echo a; sleep 5",
            opts(b"", Duration::from_millis(500)),
        )
        .await
        .unwrap()
        .collect()
        .await;
        let e = out.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(e.contains("sent nothing"), "{e}");

        // Backpressure: 200 MB to write in 1-MB blocks (each counted in a file), nobody reads:
        // the writer stops after what the SSH window and the buffers hold (a few MB), and
        // dropping the stream ends it.
        let marker = format!("/tmp/.pl-stream-count-{}", crate::ids::random_token(6));
        let blocks = |m: &str| -> u32 {
            std::fs::read_to_string(m)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        let cmd = format!(
            "i=0; while [ $i -lt 200 ]; do head -c 1000000 /dev/zero || exit 1; i=$((i+1)); echo $i > {marker}; done"
        );
        let s = exec_stream(target, &cmd, opts(b"", long)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let written = blocks(&marker);
        eprintln!("exec_stream: {written} MB written while nobody read");
        assert!(
            written < 40,
            "the remote command wrote {written} MB that nobody read"
        );
        drop(s);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = blocks(&marker);
        assert!(
            after <= written + 1,
            "still writing after the stream was dropped: {after}"
        );
        // the same command, read: all 200 MB arrive
        let mut s = exec_stream(target, &cmd, opts(b"", long)).await.unwrap();
        let mut n = 0usize;
        while let Some(c) = s.next().await {
            n += c.unwrap().len();
        }
        assert_eq!(n, 200_000_000);
        let _ = std::fs::remove_file(&marker);
    }
}
