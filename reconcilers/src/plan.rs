//! What every reconcile function takes besides desired and observed state ([`Context`]) and what it
//! returns ([`Plan`]).

use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::job::JobType;
use crate::str_enum::str_enum;

/// Facts a reconciler may not fetch itself: the time, settings and the attempt bookkeeping the
/// runtime keeps per resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// RFC 3339; used only as the transition time of conditions that change in this pass.
    pub now: String,
    /// Attempts allowed in total, the first included (spec R9; default 3). 0 is read as 1.
    pub max_attempts: u32,
    /// Consecutive failed attempts for the current generation since the last success or reset.
    /// The runtime resets it when the generation changes, on success, when a plan reports
    /// `handled_reset_at`, and when a job of the resource is cancelled.
    pub failed_attempts: u32,
    /// The wait before the next attempt, computed by the runtime with
    /// [`crate::backoff_policy::retry_delay`]; echoed as `requeue_after_ms` while a retry waits.
    pub retry_delay_ms: u64,
    /// Whether that wait has passed since the last failed attempt finished.
    pub retry_due: bool,
    /// Period of the safety-net resync; the requeue of every plan that is not waiting for a retry.
    pub resync_after_ms: u64,
}

str_enum! {
    /// Why a plan waits. The spelling doubles as the `Reconciling` condition's reason.
    pub enum WaitReason : "wait reason" {
        /// A job for the resource is queued or running: one mutation at a time.
        JobInProgress => "JobInProgress",
        /// The node that hosts the resource is not ready for work yet.
        NodeNotReady => "NodeNotReady",
        /// The last attempt failed with a retryable error; the backoff has not passed yet.
        RetryScheduled => "RetryScheduled",
        /// A node cannot go while it hosts environments.
        HostsEnvironments => "HostsEnvironments",
        /// A site cannot go while it has environments.
        EnvironmentsRemaining => "EnvironmentsRemaining",
        /// A domain being removed is still rendered by its environment.
        DomainServed => "DomainServed",
        /// A gate backup is being taken by the job of the operation it protects (an import's
        /// `site_import` takes its pre-import backup itself, beside staging the archive).
        TakenByOperation => "TakenByOperation",
    }
}

/// The next step for the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do (converged, or stalled until the operator acts).
    Nothing,
    /// Nothing to do now; look again after `requeue_after_ms` or when woken.
    Wait { reason: WaitReason },
    /// Run one job of this type for the resource. The runtime builds its extra-vars from the
    /// database; the reconciler only decides which job.
    RunJob { job_type: JobType },
    /// Teardown is done: the runtime may delete the resource's row(s).
    Finalize,
}

/// A reconciler's answer: the next action and the derived status. `P` is the kind's phase type
/// ([`crate::phase::Phase`] for sites and environments, [`crate::phase::NodePhase`] for nodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan<P> {
    pub action: Action,
    pub phase: P,
    /// The full condition list to store (previous conditions merged, transition times kept).
    pub conditions: Vec<Condition>,
    /// The generation the runtime has finished acting on: the current one once converged,
    /// stalled or finalised, else the last one applied (0 for none).
    pub observed_generation: i64,
    /// When to run the reconciler again even if nothing wakes it; `None` after `Finalize`.
    pub requeue_after_ms: Option<u64>,
    /// `Some(t)` when this plan acts on the reset requested at `t`: the runtime records `t` as
    /// handled (the observed `handled_reset_at`) and sets the attempt counter to 0.
    pub handled_reset_at: Option<String>,
}

#[cfg(any(test, feature = "fixtures"))]
impl Context {
    /// Defaults of the spec: 3 attempts, nothing failed yet, 1 min retry, 5 min resync.
    pub fn fixture() -> Self {
        Self {
            now: "2026-02-18T12:00:00Z".into(),
            max_attempts: crate::backoff_policy::DEFAULT_MAX_ATTEMPTS,
            failed_attempts: 0,
            retry_delay_ms: crate::backoff_policy::DEFAULT_BASE_MS,
            retry_due: false,
            resync_after_ms: 300_000,
        }
    }

    pub fn with_failed_attempts(mut self, failed: u32) -> Self {
        self.failed_attempts = failed;
        self
    }

    pub fn retry_due(mut self) -> Self {
        self.retry_due = true;
        self
    }

    pub fn at(mut self, now: &str) -> Self {
        self.now = now.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialize_with_a_kind_tag() {
        let cases = [
            (Action::Nothing, serde_json::json!({"kind": "nothing"})),
            (
                Action::Wait {
                    reason: WaitReason::RetryScheduled,
                },
                serde_json::json!({"kind": "wait", "reason": "RetryScheduled"}),
            ),
            (
                Action::RunJob {
                    job_type: JobType::EnvDelete,
                },
                serde_json::json!({"kind": "run_job", "job_type": "env_delete"}),
            ),
            (Action::Finalize, serde_json::json!({"kind": "finalize"})),
        ];
        for (action, json) in cases {
            assert_eq!(serde_json::to_value(&action).unwrap(), json);
            assert_eq!(serde_json::from_value::<Action>(json).unwrap(), action);
        }
    }
}
