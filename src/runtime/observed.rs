//! What the runtime stores as observed state (the `observed` JSON column of a resource): facts
//! from the playbooks and probes, and its own bookkeeping for the reconcilers.
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvFacts {
    /// Generation the last successful converge applied.
    pub applied_generation: Option<i64>,
    pub healthy: Option<bool>,
    pub exists_on_node: Option<bool>,
    pub ever_ready: bool,
    pub handled_reset_at: Option<String>,
    /// Data the probe found missing (never recreated; reported as Degraded).
    #[serde(default)]
    pub data_missing: Option<String>,
    /// Digest of the server block and pool the last converge rendered; the probe compares the
    /// files on the node with it, so a hand edit counts as drift.
    #[serde(default)]
    pub config_hash: Option<String>,
    /// Consecutive failed preview-URL requests of the probe (reset by a success).
    #[serde(default)]
    pub http_failures: u32,
    /// What the last converge or health check reported (user, pool, release, checks, …).
    #[serde(default)]
    pub facts: Value,
    /// Digest of the routes (domains, certificates, site URL) the last converge rendered.
    #[serde(default)]
    pub routes_digest: Option<String>,
    /// The domains the last converge rendered.
    #[serde(default)]
    pub served_domains: Vec<String>,
    /// The release directory `current` points to (the last deploy's facts, then every probe).
    #[serde(default)]
    pub current_release: Option<String>,
    /// The last `drift_check_requested_at` a `drift_check` job was created for.
    #[serde(default)]
    pub handled_drift_check_at: Option<String>,
}

/// A domain's observed state: its DNS answer and its installed certificate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainFacts {
    #[serde(default)]
    pub dns: Option<DnsFacts>,
    #[serde(default)]
    pub certificate: Option<CertificateFacts>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsFacts {
    pub addresses: Vec<String>,
    pub points_to_node: bool,
    pub detail: String,
    pub checked_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CertificateFacts {
    /// The domain generation it was installed for.
    pub generation: i64,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub names: Vec<String>,
    /// When Pressluft last obtained or replaced it.
    pub obtained_at: String,
    /// When it was last renewed (replaced because it was inside the renewal window).
    #[serde(default)]
    pub renewed_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFacts {
    pub provisioned_generation: Option<i64>,
    pub reachable: Option<bool>,
    pub php_version: Option<String>,
    #[serde(default)]
    pub facts: Value,
    /// Local node: prerequisites Pressluft could not provide itself (operator-facing messages).
    #[serde(default)]
    pub problems: Vec<String>,
    /// Node services the last probe found stopped: the node is provisioned again.
    #[serde(default)]
    pub services_down: Vec<String>,
    /// Free and total bytes of the sites' file system, from the last probe.
    #[serde(default)]
    pub disk_free_bytes: Option<u64>,
    #[serde(default)]
    pub disk_total_bytes: Option<u64>,
}

pub fn parse<T: for<'de> Deserialize<'de> + Default>(s: Option<&str>) -> T {
    s.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

pub fn render<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}
