//! The write path shared by the API handlers and `POST /api/apply`: a write runs inside an open
//! transaction, appends its events and audit entries there, and notes which reconcilers to wake.
//! They are woken only after the transaction committed (a rolled-back apply wakes nobody).
use crate::notify::Kind;
use crate::store::audit::Actor;
use crate::store::events::NewEvent;
use crate::store::WriteTx;

use super::error::ApiError;
use super::AppState;

pub struct Write<'a> {
    pub tx: &'a WriteTx,
    pub st: &'a AppState,
    actor: Actor,
    wakes: Vec<(Kind, String)>,
}

impl<'a> Write<'a> {
    pub fn new(tx: &'a WriteTx, st: &'a AppState, actor: Actor) -> Self {
        Write {
            tx,
            st,
            actor,
            wakes: Vec::new(),
        }
    }

    /// Wake `kind`'s reconciler for `id` once the transaction commits.
    pub fn wake(&mut self, kind: Kind, id: &str) {
        let w = (kind, id.to_string());
        if !self.wakes.contains(&w) {
            self.wakes.push(w);
        }
    }

    pub async fn event(&self, e: NewEvent<'_>) -> Result<(), ApiError> {
        crate::store::events::append(self.tx, e).await?;
        Ok(())
    }

    /// An accepted write in the audit log.
    pub async fn audit(
        &self,
        action: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<(), ApiError> {
        crate::store::audit::append(
            self.tx,
            &self.actor,
            action,
            resource_type,
            resource_id,
            "accepted",
        )
        .await?;
        Ok(())
    }

    /// A write that is complete once committed (nothing left to reconcile), in the audit log.
    pub async fn audit_done(
        &self,
        action: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<(), ApiError> {
        crate::store::audit::append(
            self.tx,
            &self.actor,
            action,
            resource_type,
            resource_id,
            "succeeded",
        )
        .await?;
        Ok(())
    }

    pub fn into_wakes(self) -> Vec<(Kind, String)> {
        self.wakes
    }
}

impl AppState {
    /// Commits `tx` and then wakes what the writes noted.
    pub async fn commit_and_wake(
        &self,
        tx: WriteTx,
        wakes: Vec<(Kind, String)>,
    ) -> Result<(), ApiError> {
        self.commit(tx).await?;
        for (kind, id) in wakes {
            self.notifier.changed(kind, &id);
        }
        Ok(())
    }
}
