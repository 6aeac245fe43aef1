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
