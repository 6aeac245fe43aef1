//! In-process wake-ups: an API write or a finished job announces which resource changed, so the
//! reconcilers pick it up within milliseconds and event streams push without polling delay. The
//! database stays the source of truth: a missed wake-up is repaired by the periodic resync.
use tokio::sync::broadcast;

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
        }
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
}

impl Default for Notifier {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self { tx }
    }
}

impl Notifier {
    pub fn changed(&self, kind: Kind, id: &str) {
        // No receiver yet is fine: the resync will find the work.
        let _ = self.tx.send(Change {
            kind,
            id: id.to_string(),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}
