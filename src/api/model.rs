//! The API's resource shapes and their mapping from stored rows. Desired-state shapes carry the
//! spec, `generation`, `observed_generation`, the derived `status` and `conditions`.
use poem_openapi::{Enum, Object};

use crate::store::entity::{
    api_tokens, audit_logs, backups, domains, environments, events, jobs, nodes, sites,
};

/// A Kubernetes-style condition.
#[derive(Debug, Clone, Object, serde::Deserialize, serde::Serialize)]
pub struct Condition {
    /// Ready, Reconciling, Degraded, Stalled (promotions also DriftClean, BackupFresh).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    pub last_transition_at: String,
    #[serde(default)]
    pub observed_generation: Option<i64>,
}

pub fn parse_conditions(json: &str) -> Vec<Condition> {
    serde_json::from_str(json).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "kebab-case")]
pub enum PromotionPreset {
    ContentProtect,
    CommerceProtect,
}

impl PromotionPreset {
    pub fn as_str(self) -> &'static str {
        match self {
            PromotionPreset::ContentProtect => "content-protect",
            PromotionPreset::CommerceProtect => "commerce-protect",
        }
    }
}

#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum EnvironmentType {
    Production,
    Staging,
    Clone,
}

impl EnvironmentType {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentType::Production => "production",
            EnvironmentType::Staging => "staging",
            EnvironmentType::Clone => "clone",
        }
    }
}

#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum BackupScope {
    Db,
    Files,
    Full,
}

impl BackupScope {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupScope::Db => "db",
            BackupScope::Files => "files",
            BackupScope::Full => "full",
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// The derived phase: provisioning, active, cloning, deploying, restoring, deleting, failed.
    pub status: String,
    pub primary_environment_id: Option<String>,
    pub reset_requested_at: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    pub state_version: i64,
    pub deletion_requested_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<sites::Model> for Site {
    fn from(m: sites::Model) -> Self {
        Site {
            conditions: parse_conditions(&m.conditions),
            id: m.id,
            name: m.name,
            slug: m.slug,
            status: m.status,
            primary_environment_id: m.primary_environment_id,
            reset_requested_at: m.reset_requested_at,
            generation: m.generation,
            observed_generation: m.observed_generation,
            state_version: m.state_version,
            deletion_requested_at: m.deletion_requested_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct Environment {
    pub id: String,
    pub site_id: String,
    pub name: String,
    pub slug: String,
    pub environment_type: String,
    pub status: String,
    pub node_id: String,
    pub source_environment_id: Option<String>,
    pub promotion_preset: String,
    pub preview_url: String,
    pub primary_domain_id: Option<String>,
    pub desired_release_id: Option<String>,
    pub current_release_id: Option<String>,
    pub wp_admin_login: String,
    pub drift_status: String,
    pub drift_baseline_id: Option<String>,
    pub drift_checked_at: Option<String>,
    pub last_drift_check_id: Option<String>,
    pub fastcgi_cache_enabled: bool,
    pub redis_cache_enabled: bool,
    pub fastcgi_cache_ttl_seconds: i64,
    pub update_scope: Option<String>,
    pub update_requested_at: Option<String>,
    pub cache_purge_requested_at: Option<String>,
    pub drift_check_requested_at: Option<String>,
    pub reset_requested_at: Option<String>,
    /// When a restore drill last proved one of this environment's backups restorable (read
    /// responses of one environment; absent in lists and write answers).
    pub last_verified_backup_at: Option<String>,
    /// A temporary environment: when this passes, its deletion is requested (event `Expired`).
    pub expires_at: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    pub state_version: i64,
    pub deletion_requested_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<environments::Model> for Environment {
    fn from(m: environments::Model) -> Self {
        Environment {
            conditions: parse_conditions(&m.conditions),
            id: m.id,
            site_id: m.site_id,
            name: m.name,
            slug: m.slug,
            environment_type: m.environment_type,
            status: m.status,
            node_id: m.node_id,
            source_environment_id: m.source_environment_id,
            promotion_preset: m.promotion_preset,
            preview_url: m.preview_url,
            primary_domain_id: m.primary_domain_id,
            desired_release_id: m.desired_release_id,
            current_release_id: m.current_release_id,
            wp_admin_login: m.wp_admin_login,
            drift_status: m.drift_status,
            drift_baseline_id: m.drift_baseline_id,
            drift_checked_at: m.drift_checked_at,
            last_drift_check_id: m.last_drift_check_id,
            fastcgi_cache_enabled: m.fastcgi_cache_enabled,
            redis_cache_enabled: m.redis_cache_enabled,
            fastcgi_cache_ttl_seconds: m.fastcgi_cache_ttl_seconds,
            update_scope: m.update_scope,
            update_requested_at: m.update_requested_at,
            cache_purge_requested_at: m.cache_purge_requested_at,
            drift_check_requested_at: m.drift_check_requested_at,
            reset_requested_at: m.reset_requested_at,
            expires_at: m.expires_at,
            last_verified_backup_at: None,
            generation: m.generation,
            observed_generation: m.observed_generation,
            state_version: m.state_version,
            deletion_requested_at: m.deletion_requested_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub public_ip: Option<String>,
    pub ssh_port: i64,
    pub ssh_user: String,
    pub is_local: bool,
    /// The pinned SSH host key (OpenSSH public key format), once known.
    pub host_key: Option<String>,
    /// active, provisioning, unreachable, decommissioned.
    pub status: String,
    pub last_seen_at: Option<String>,
    pub provision_requested_at: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    pub state_version: i64,
    pub deletion_requested_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The local node: how its nginx serves the control plane, from its last provisioning.
    pub panel: Option<NodePanel>,
}

/// The control plane as the local node's nginx serves it (`control_plane_domain`).
#[derive(Debug, Clone, Object)]
pub struct NodePanel {
    /// Where the dashboard answers: `http://<node address>/`, or `https://<domain>/`.
    pub url: Option<String>,
    /// The domain served over HTTPS (null while none is, e.g. DNS not pointing yet).
    pub domain: Option<String>,
    pub certificate_issuer: Option<String>,
    pub certificate_not_after: Option<String>,
}

impl From<nodes::Model> for Node {
    fn from(m: nodes::Model) -> Self {
        let facts: crate::runtime::observed::NodeFacts =
            crate::runtime::observed::parse(m.observed.as_deref());
        let fact = |k: &str| {
            facts
                .facts
                .get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        let panel = facts.facts.get("panel_digest").map(|_| NodePanel {
            url: fact("panel_url"),
            domain: fact("panel_domain"),
            certificate_issuer: fact("panel_certificate_issuer"),
            certificate_not_after: fact("panel_certificate_not_after"),
        });
        Node {
            panel,
            conditions: parse_conditions(&m.conditions),
            id: m.id,
            name: m.name,
            hostname: m.hostname,
            public_ip: m.public_ip,
            ssh_port: m.ssh_port,
            ssh_user: m.ssh_user,
            is_local: m.is_local,
            host_key: m.host_key,
            status: m.status,
            last_seen_at: m.last_seen_at,
            provision_requested_at: m.provision_requested_at,
            generation: m.generation,
            observed_generation: m.observed_generation,
            state_version: m.state_version,
            deletion_requested_at: m.deletion_requested_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct Domain {
    pub id: String,
    pub environment_id: String,
    pub hostname: String,
    /// The environment's primary domain: its site URL (exactly one per environment with domains).
    pub primary: bool,
    /// `www.<hostname>` redirects to the hostname.
    pub www_redirect: bool,
    /// `acme` (certificate by ACME HTTP-01, renewed by reconciliation), `custom` (uploaded) or
    /// `none` (HTTP only).
    pub tls_mode: String,
    /// The domain's phase: pending, active, failed, disabled.
    pub tls_status: String,
    pub tls_issuer: String,
    pub last_error_code: Option<String>,
    /// The last DNS answer (asked before any ACME request).
    pub dns: Option<DomainDns>,
    /// The certificate installed on the node.
    pub certificate: Option<DomainCertificate>,
    pub generation: i64,
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    pub state_version: i64,
    pub deletion_requested_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Object)]
pub struct DomainDns {
    pub addresses: Vec<String>,
    pub points_to_node: bool,
    pub detail: String,
    pub checked_at: String,
}

#[derive(Debug, Clone, Object)]
pub struct DomainCertificate {
    pub issuer: String,
    /// Lower-case hex.
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub names: Vec<String>,
    pub obtained_at: String,
}

impl Domain {
    /// The API view of a row; `primary_domain_id` is its environment's.
    pub fn view(m: domains::Model, primary_domain_id: Option<&str>) -> Self {
        let facts: crate::runtime::observed::DomainFacts =
            crate::runtime::observed::parse(m.observed.as_deref());
        Domain {
            conditions: parse_conditions(&m.conditions),
            primary: primary_domain_id == Some(m.id.as_str()),
            www_redirect: m.www_redirect,
            tls_mode: m.tls_mode,
            last_error_code: m.last_error_code,
            dns: facts.dns.map(|d| DomainDns {
                addresses: d.addresses,
                points_to_node: d.points_to_node,
                detail: d.detail,
                checked_at: d.checked_at,
            }),
            certificate: facts.certificate.map(|c| DomainCertificate {
                issuer: c.issuer,
                serial: c.serial,
                not_before: c.not_before,
                not_after: c.not_after,
                names: c.names,
                obtained_at: c.obtained_at,
            }),
            id: m.id,
            environment_id: m.environment_id,
            hostname: m.hostname,
            tls_status: m.status,
            tls_issuer: m.tls_issuer,
            generation: m.generation,
            observed_generation: m.observed_generation,
            state_version: m.state_version,
            deletion_requested_at: m.deletion_requested_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct Backup {
    pub id: String,
    pub environment_id: String,
    pub backup_scope: String,
    /// pending, running, completed, failed, expired (expired is derived from retention_until).
    pub status: String,
    pub storage_type: String,
    pub storage_path: String,
    pub retention_until: String,
    /// SHA-256 of the stored `manifest.json`.
    pub checksum: Option<String>,
    pub size_bytes: Option<i64>,
    pub completed_at: Option<String>,
    pub deleted_at: Option<String>,
    /// Why it was taken: operator, schedule, pre_restore, drill, gate.
    pub reason: String,
    /// The schedule that took it.
    pub schedule_id: Option<String>,
    /// The manifest (format, scope, WordPress and PHP versions, site URL, artifacts with name,
    /// size and sha256), once completed.
    pub manifest: Option<serde_json::Value>,
    /// When a restore drill last proved this backup restorable.
    pub verified_at: Option<String>,
    /// The error code of the last failed attempt.
    pub last_error_code: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    pub state_version: i64,
    pub deletion_requested_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Backup {
    /// `expired` is derived: a completed backup whose retention has passed.
    pub fn from_model(m: backups::Model, now: &str) -> Self {
        let status = if m.status == "completed" && m.retention_until.as_str() <= now {
            "expired".to_string()
        } else {
            m.status
        };
        Backup {
            conditions: parse_conditions(&m.conditions),
            id: m.id,
            environment_id: m.environment_id,
            backup_scope: m.backup_scope,
            status,
            storage_type: m.storage_type,
            storage_path: m.storage_path,
            retention_until: m.retention_until,
            checksum: m.checksum,
            size_bytes: m.size_bytes,
            completed_at: m.completed_at,
            deleted_at: m.deleted_at,
            reason: m.reason,
            schedule_id: m.schedule_id,
            manifest: m
                .manifest
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
            verified_at: m.verified_at,
            last_error_code: m.last_error_code,
            generation: m.generation,
            observed_generation: m.observed_generation,
            state_version: m.state_version,
            deletion_requested_at: m.deletion_requested_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct Job {
    pub id: String,
    pub job_type: String,
    /// Why it was launched: create, spec_change, drift, retry, reset, delete, provision.
    pub reason: String,
    /// queued, running, succeeded, failed, cancelled.
    pub status: String,
    pub site_id: Option<String>,
    pub environment_id: Option<String>,
    pub node_id: Option<String>,
    pub resource_type: String,
    pub resource_id: String,
    pub generation: i64,
    pub playbook: String,
    pub attempt_count: i64,
    pub max_attempts: i64,
    pub run_after: Option<String>,
    pub locked_at: Option<String>,
    pub locked_by: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    pub error_code: Option<String>,
    /// The last 10 KB of the redacted log of a failed run.
    pub error_message: Option<String>,
    pub cancel_requested_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<jobs::Model> for Job {
    fn from(m: jobs::Model) -> Self {
        Job {
            id: m.id,
            job_type: m.job_type,
            reason: m.reason,
            status: m.status,
            site_id: m.site_id,
            environment_id: m.environment_id,
            node_id: m.node_id,
            resource_type: m.resource_type,
            resource_id: m.resource_id,
            generation: m.generation,
            playbook: m.playbook,
            attempt_count: m.attempt_count,
            max_attempts: m.max_attempts,
            run_after: m.run_after,
            locked_at: m.locked_at,
            locked_by: m.locked_by,
            started_at: m.started_at,
            finished_at: m.finished_at,
            exit_code: m.exit_code,
            error_code: m.error_code,
            error_message: m.error_message,
            cancel_requested_at: m.cancel_requested_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Event {
    pub id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub site_id: Option<String>,
    pub environment_id: Option<String>,
    pub reason: String,
    pub message: String,
    pub created_at: String,
}

impl From<events::Model> for Event {
    fn from(m: events::Model) -> Self {
        Event {
            id: m.id,
            resource_type: m.resource_type,
            resource_id: m.resource_id,
            site_id: m.site_id,
            environment_id: m.environment_id,
            reason: m.reason,
            message: m.message,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct AuditEntry {
    pub id: String,
    pub user_id: Option<String>,
    pub api_token_id: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub result: String,
    pub created_at: String,
}

impl From<audit_logs::Model> for AuditEntry {
    fn from(m: audit_logs::Model) -> Self {
        AuditEntry {
            id: m.id,
            user_id: m.user_id,
            api_token_id: m.api_token_id,
            action: m.action,
            resource_type: m.resource_type,
            resource_id: m.resource_id,
            result: m.result,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<api_tokens::Model> for ApiToken {
    fn from(m: api_tokens::Model) -> Self {
        ApiToken {
            id: m.id,
            name: m.name,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            revoked_at: m.revoked_at,
        }
    }
}

macro_rules! page_type {
    ($name:ident, $item:ty) => {
        /// A page of results, oldest first; pass `next_cursor` as `cursor` to read the next page.
        #[derive(Debug, Clone, Object)]
        pub struct $name {
            pub items: Vec<$item>,
            pub next_cursor: Option<String>,
        }
    };
}

page_type!(SitePage, Site);
page_type!(EnvironmentPage, Environment);
page_type!(NodePage, Node);
page_type!(DomainPage, Domain);
page_type!(BackupPage, Backup);
page_type!(JobPage, Job);
page_type!(EventPage, Event);
page_type!(AuditPage, AuditEntry);
