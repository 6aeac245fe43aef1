//! The control plane's own server block on the local node (`pressluft_panel`, run by
//! `node_provision`): the dashboard and the API through the node's nginx, on the node's address
//! over HTTP, or on `control_plane_domain` over HTTPS with a certificate from the ACME directory.
//!
//! Its desired state follows from the settings, the service's listen address and the DNS answer
//! for the domain (no ACME request before the name points at the node, like site domains). Its
//! digest goes to the playbook, which echoes it back as `panel_digest` once the panel converged;
//! the node loop provisions again when the two differ or the certificate is due for renewal —
//! without a generation bump, like an environment's routes digest.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::observed::{self, NodeFacts};
use super::{Result, Runtime};
use crate::settings;
use crate::store::{self, entity::nodes};

/// Settings the panel depends on: a change wakes the local node.
pub const PANEL_SETTINGS: [&str; 6] = [
    "control_plane_domain",
    "acme_directory_url",
    "acme_email",
    "acme_ca_file",
    "dns_resolver",
    "tls_renew_before_days",
];

/// A DNS answer is reused this long.
const DNS_TTL: Duration = Duration::from_secs(20);

/// What the panel's server block renders (its digest is compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Panel {
    /// The service's address (loopback when it listens on all addresses).
    pub upstream: String,
    /// The node's addresses: served over HTTP while no domain is served.
    pub server_names: Vec<String>,
    /// The control plane's domain, once its DNS points at the node (or its certificate exists).
    pub domain: Option<String>,
    /// ACME settings: part of the panel only with a domain.
    pub acme_directory_url: Option<String>,
    pub acme_email: Option<String>,
    pub acme_ca_file: Option<String>,
}

impl Panel {
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(observed::render(self).as_bytes()))
    }
}

#[derive(Debug, Clone)]
pub struct PanelPlan {
    pub panel: Panel,
    /// The served certificate is inside the renewal window: certbot must replace it.
    pub force_renew: bool,
    /// `control_plane_domain` is set but held back: why (the DNS answer).
    pub dns_waiting: Option<String>,
}

impl PanelPlan {
    /// Whether the node's last provisioning left the panel other than desired.
    pub fn stale(&self, facts: &NodeFacts) -> bool {
        self.force_renew
            || facts.facts.get("panel_digest").and_then(Value::as_str)
                != Some(self.panel.digest().as_str())
    }

    /// The `pressluft_panel` extra-vars of `node_provision`.
    pub fn insert_vars(&self, v: &mut Map<String, Value>) {
        let p = &self.panel;
        v.insert("panel_upstream".into(), json!(p.upstream));
        v.insert("panel_server_names".into(), json!(p.server_names));
        v.insert(
            "panel_domain".into(),
            json!(p.domain.clone().unwrap_or_default()),
        );
        v.insert("panel_force_renew".into(), json!(self.force_renew));
        v.insert("panel_digest".into(), json!(p.digest()));
        if p.domain.is_some() {
            for (k, val) in [
                ("acme_directory_url", &p.acme_directory_url),
                ("acme_email", &p.acme_email),
                ("acme_ca_file", &p.acme_ca_file),
            ] {
                v.insert(k.into(), json!(val.clone().unwrap_or_default()));
            }
        }
    }
}

/// The proxy target for a listen address: an unspecified address is reached over loopback.
pub fn upstream_of(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port()).to_string()
}

/// The local node's desired panel; `None` for other nodes or without a known listen address.
pub(super) async fn desired(rt: &Runtime, node: &nodes::Model) -> Result<Option<PanelPlan>> {
    let Some(listen) = rt.cfg.panel_upstream.filter(|_| node.is_local) else {
        return Ok(None);
    };
    let facts: NodeFacts = observed::parse(node.observed.as_deref());
    let all = store::settings::all(&rt.db).await?;
    let mut server_names: Vec<String> = Vec::new();
    for a in [node.public_ip.as_deref(), Some(node.hostname.as_str())]
        .into_iter()
        .flatten()
    {
        if let Ok(ip) = a.parse::<IpAddr>() {
            let ip = ip.to_string();
            if !server_names.contains(&ip) {
                server_names.push(ip);
            }
        }
    }
    let served = facts
        .facts
        .get("panel_domain")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut domain = all.get("control_plane_domain").cloned();
    let mut dns_waiting = None;
    if let Some(d) = domain.as_deref().filter(|d| served.as_deref() != Some(*d)) {
        let resolver = all.get("dns_resolver").and_then(|r| r.parse().ok());
        let (points, detail) = dns_verdict(d, resolver, node.public_ip.as_deref()).await;
        if !points {
            dns_waiting = Some(detail);
            domain = None;
        }
    }
    let renew_before_days = all
        .get("tls_renew_before_days")
        .and_then(|x| x.parse::<i64>().ok())
        .unwrap_or(settings::DEFAULT_TLS_RENEW_BEFORE_DAYS);
    let now = time::OffsetDateTime::now_utc();
    let at = |k: &str| {
        facts
            .facts
            .get(k)
            .and_then(Value::as_str)
            .and_then(crate::clock::parse)
    };
    // a certificate younger than an hour is never renewed (a window longer than its lifetime
    // would renew it on every pass)
    let force_renew = domain.is_some()
        && served == domain
        && at("panel_certificate_not_after")
            .is_some_and(|t| t - now < time::Duration::days(renew_before_days))
        && at("panel_certificate_not_before").is_none_or(|t| now - t > time::Duration::hours(1));
    let with_domain = |k: &str| {
        domain.as_ref().map(|_| match k {
            "acme_directory_url" => all
                .get(k)
                .cloned()
                .unwrap_or_else(|| settings::DEFAULT_ACME_DIRECTORY_URL.to_string()),
            _ => all.get(k).cloned().unwrap_or_default(),
        })
    };
    let panel = Panel {
        upstream: upstream_of(listen),
        server_names,
        acme_directory_url: with_domain("acme_directory_url"),
        acme_email: with_domain("acme_email"),
        acme_ca_file: with_domain("acme_ca_file"),
        domain,
    };
    Ok(Some(PanelPlan {
        panel,
        force_renew,
        dns_waiting,
    }))
}

/// When a DNS verdict was made, whether the name points at the node, and the detail.
type DnsEntry = (Instant, bool, String);

/// Whether `host` resolves to the node (answers cached for [`DNS_TTL`]).
async fn dns_verdict(
    host: &str,
    resolver: Option<SocketAddr>,
    node_ip: Option<&str>,
) -> (bool, String) {
    static CACHE: Mutex<Option<HashMap<String, DnsEntry>>> = Mutex::new(None);
    let key = format!("{host}|{resolver:?}|{node_ip:?}");
    if let Some((at, points, detail)) = CACHE
        .lock()
        .expect("dns cache")
        .get_or_insert_with(HashMap::new)
        .get(&key)
        .cloned()
    {
        if at.elapsed() < DNS_TTL {
            return (points, detail);
        }
    }
    let answer = crate::dns::resolve(host, resolver).await;
    let (points, detail) = answer.verdict(host, node_ip);
    CACHE
        .lock()
        .expect("dns cache")
        .get_or_insert_with(HashMap::new)
        .insert(key, (Instant::now(), points, detail.clone()));
    (points, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_is_loopback_for_unspecified_addresses() {
        assert_eq!(
            upstream_of("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080"
        );
        assert_eq!(upstream_of("[::]:9000".parse().unwrap()), "[::1]:9000");
        assert_eq!(
            upstream_of("127.0.0.1:8080".parse().unwrap()),
            "127.0.0.1:8080"
        );
    }

    #[test]
    fn stale_until_the_node_reports_the_digest() {
        let plan = PanelPlan {
            panel: Panel {
                upstream: "127.0.0.1:8080".into(),
                server_names: vec!["203.0.113.5".into()],
                domain: Some("panel.example.com".into()),
                acme_directory_url: Some("https://acme.example/dir".into()),
                acme_email: Some(String::new()),
                acme_ca_file: Some(String::new()),
            },
            force_renew: false,
            dns_waiting: None,
        };
        let mut facts = NodeFacts::default();
        assert!(plan.stale(&facts));
        facts.facts = json!({ "panel_digest": plan.panel.digest() });
        assert!(!plan.stale(&facts));
        let mut other = plan.clone();
        other.panel.domain = None;
        assert_ne!(other.panel.digest(), plan.panel.digest());
        assert!(other.stale(&facts));
        let renew = PanelPlan {
            force_renew: true,
            ..plan.clone()
        };
        assert!(renew.stale(&facts));
        let mut v = Map::new();
        plan.insert_vars(&mut v);
        assert_eq!(v["panel_domain"], "panel.example.com");
        assert_eq!(v["panel_digest"], json!(plan.panel.digest()));
        assert_eq!(v["acme_directory_url"], "https://acme.example/dir");
    }
}
