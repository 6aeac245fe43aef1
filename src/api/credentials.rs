//! A short-lived in-process cache of verified credentials (API tokens and session cookies).
//!
//! Without it every request costs a database lookup before its own work; with it a read is one
//! query. Revocation and logout through this process evict at once. Another replica (PostgreSQL
//! deployments) sees a revocation after at most [`CACHE_TTL`], the same trade Kubernetes makes
//! with its token-review cache (docs/decisions.md).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::auth::Principal;

/// How long a verified credential is trusted without asking the database again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Bound on entries; when full the cache starts over (a credential flood cannot grow memory).
const MAX_ENTRIES: usize = 4096;

#[derive(Clone)]
struct Entry {
    principal: Principal,
    /// Trusted until then: the earlier of now + TTL and the credential's own expiry.
    valid_until: Instant,
}

/// Keyed by the SHA-256 (hex) of the secret, as stored in the database: the cache never holds a
/// secret itself.
#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl CredentialCache {
    pub fn get(&self, secret_hash: &str) -> Option<Principal> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(secret_hash) {
            Some(e) if e.valid_until > Instant::now() => Some(e.principal.clone()),
            Some(_) => {
                entries.remove(secret_hash);
                None
            }
            None => None,
        }
    }

    /// Remembers a credential just verified against the database. `expires_in` is what is left
    /// of its own lifetime (sessions), if it has one.
    pub fn put(&self, secret_hash: String, principal: Principal, expires_in: Option<Duration>) {
        let ttl = expires_in.map_or(CACHE_TTL, |e| e.min(CACHE_TTL));
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            secret_hash,
            Entry {
                principal,
                valid_until: Instant::now() + ttl,
            },
        );
    }

    /// Forgets an API token (revoked).
    pub fn evict_token(&self, token_id: &str) {
        self.evict(|p| p.api_token_id.as_deref() == Some(token_id));
    }

    /// Forgets a session (logged out).
    pub fn evict_session(&self, session_id: &str) {
        self.evict(|p| p.session_id.as_deref() == Some(session_id));
    }

    fn evict(&self, matches: impl Fn(&Principal) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| !matches(&e.principal));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(token: Option<&str>, session: Option<&str>) -> Principal {
        Principal {
            user_id: "u".into(),
            api_token_id: token.map(Into::into),
            session_id: session.map(Into::into),
        }
    }

    #[test]
    fn hit_then_eviction_by_token_and_session() {
        let c = CredentialCache::default();
        c.put("h1".into(), principal(Some("t1"), None), None);
        c.put("h2".into(), principal(None, Some("s1")), None);
        assert!(c.get("h1").is_some());
        assert!(c.get("h2").is_some());
        c.evict_token("t1");
        assert!(c.get("h1").is_none());
        assert!(c.get("h2").is_some());
        c.evict_session("s1");
        assert!(c.get("h2").is_none());
    }

    #[test]
    fn entries_expire_with_the_credential() {
        let c = CredentialCache::default();
        c.put(
            "h".into(),
            principal(None, Some("s")),
            Some(Duration::from_millis(0)),
        );
        assert!(c.get("h").is_none());
    }

    #[test]
    fn bounded() {
        let c = CredentialCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            c.put(format!("h{i}"), principal(Some("t"), None), None);
        }
        assert!(c.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
