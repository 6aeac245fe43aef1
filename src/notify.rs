//! Wake-ups: an API write or a finished job announces which resource changed, so the
//! reconcilers pick it up within milliseconds and event streams push without polling delay. The
//! database stays the source of truth: a missed wake-up is repaired by the periodic resync.
//! On PostgreSQL, [`bridge_postgres`] carries them between replicas: every local change is also
//! sent as `NOTIFY pressluft_wake, '<kind>:<id>@<origin>'`, and notifications of the other
//! replicas are delivered to the local subscribers.
use std::sync::{Arc, OnceLock};

use tokio::sync::{broadcast, mpsc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Node,
    Site,
    Environment,
    Domain,
    Backup,
    Restore,
    Promotion,
    Schedule,
    Job,
    Import,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Site => "site",
            Kind::Environment => "environment",
            Kind::Domain => "domain",
            Kind::Backup => "backup",
            Kind::Restore => "restore",
            Kind::Promotion => "promotion",
            Kind::Schedule => "backup_schedule",
            Kind::Job => "job",
            Kind::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "node" => Kind::Node,
            "site" => Kind::Site,
            "environment" => Kind::Environment,
            "domain" => Kind::Domain,
            "backup" => Kind::Backup,
            "restore" => Kind::Restore,
            "promotion" => Kind::Promotion,
            "backup_schedule" => Kind::Schedule,
            "job" => Kind::Job,
            "import" => Kind::Import,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct Notifier {
    tx: broadcast::Sender<Change>,
    /// Tells apart this process's notifications from the other replicas'.
    origin: Arc<str>,
    /// Set by [`bridge_postgres`]: changes to announce to the other replicas.
    remote: Arc<OnceLock<mpsc::UnboundedSender<Change>>>,
}

impl Default for Notifier {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            tx,
            origin: format!("{:016x}", rand::random::<u64>()).into(),
            remote: Arc::default(),
        }
    }
}

impl Notifier {
    pub fn changed(&self, kind: Kind, id: &str) {
        let change = Change {
            kind,
            id: id.to_string(),
        };
        if let Some(remote) = self.remote.get() {
            let _ = remote.send(change.clone());
        }
        // No receiver yet is fine: the resync will find the work.
        let _ = self.tx.send(change);
    }

    /// A change another replica announced: local subscribers only.
    fn changed_elsewhere(&self, change: Change) {
        let _ = self.tx.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

const CHANNEL: &str = "pressluft_wake";

fn payload(origin: &str, c: &Change) -> String {
    format!("{}:{}@{origin}", c.kind.as_str(), c.id)
}

/// `<kind>:<id>@<origin>` → the change, unless it is our own.
fn parse_payload(own: &str, p: &str) -> Option<Change> {
    let (change, origin) = p.rsplit_once('@')?;
    if origin == own {
        return None;
    }
    let (kind, id) = change.split_once(':')?;
    Some(Change {
        kind: Kind::parse(kind)?,
        id: id.to_string(),
    })
}

/// Carries wake-ups between the replicas on one PostgreSQL database (runs until aborted): local
/// changes go out as `NOTIFY pressluft_wake` (batched, one statement per burst), and a
/// `LISTEN pressluft_wake` connection feeds the other replicas' changes to local subscribers.
/// A notifier is bridged once; a second call returns at once.
pub async fn bridge_postgres(db: sea_orm::DatabaseConnection, notifier: Notifier) {
    use sea_orm::sqlx;
    let pool = db.get_postgres_connection_pool().clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    if notifier.remote.set(tx).is_err() {
        return;
    }
    let origin = notifier.origin.clone();
    let publish = {
        let pool = pool.clone();
        let origin = origin.clone();
        async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![payload(&origin, &first)];
                while batch.len() < 500 {
                    match rx.try_recv() {
                        Ok(c) => {
                            let p = payload(&origin, &c);
                            if !batch.contains(&p) {
                                batch.push(p);
                            }
                        }
                        Err(_) => break,
                    }
                }
                let r = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                    .bind(CHANNEL)
                    .bind(&batch)
                    .execute(&pool)
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "wake-up for the other replicas not sent (they find the work at their next resync)");
                }
            }
        }
    };
    let listen = async move {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Some(c) = parse_payload(&origin, n.payload()) {
                            notifier.changed_elsewhere(c);
                        }
                    }
                    // The connection dropped (notifications meanwhile are lost; the resync
                    // repairs that): the next call reconnects.
                    Ok(None) => {
                        tracing::warn!("LISTEN connection lost; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN failed; reconnecting");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        break;
                    }
                }
            }
        }
    };
    tokio::join!(publish, listen);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_skip_our_own() {
        let c = Change {
            kind: Kind::Schedule,
            id: "0193-ab".into(),
        };
        let p = payload("me", &c);
        assert_eq!(p, "backup_schedule:0193-ab@me");
        assert_eq!(parse_payload("other", &p), Some(c));
        assert_eq!(parse_payload("me", &p), None);
        assert_eq!(parse_payload("other", "bogus:x@y"), None);
    }
}
