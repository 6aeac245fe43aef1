//! The backup reconciler: produce a backup on its node until it is `completed` (every artifact
//! stored and read back with a matching checksum), and remove its stored artifacts when it is
//! deleted or its retention has passed. The row stays for audit with `deleted_at`.
//!
//! # What is needed (first match wins)
//!
//! | desired / observed | work |
//! |---|---|
//! | deletion requested, or retention passed on a completed backup; artifacts already removed | none |
//! | … nothing was ever attempted (no job, not completed) | none: `Finalize` (nothing is stored) |
//! | … otherwise | `backup_cleanup` |
//! | completed | none |
//! | the job of the operation it gates is queued or running and takes it (an import's pre-import backup) | wait (`TakenByOperation`) |
//! | otherwise | `backup_create` |
//!
//! `backup_create` is idempotent per backup id on the node (a completed backup reports its facts
//! again), so an attempt interrupted by a crash simply runs again. Failures follow the attempt
//! rules of [`crate::attempts`]: retryable codes (`BACKUP_*`) wait with backoff, and once every
//! attempt failed the backup is `failed` with its last error code.
//!
//! # Phase
//!
//! `expired` once the artifacts are removed, or while a completed backup's removal is pending;
//! `completed`; `failed` (stalled); `running` once an attempt started; else `pending`.

use serde::{Deserialize, Serialize};

use crate::condition::{reason, Condition, ConditionStatus, ConditionType};
use crate::decision::{self, Derived, Inputs, Need, Work};
use crate::error_code::JobErrorCode;
use crate::job::{JobObservation, JobType};
use crate::plan::{Context, Plan};
use crate::str_enum::str_enum;

str_enum! {
    /// Spec §2 `backup_status`.
    pub enum BackupPhase : "backup phase" {
        Pending => "pending",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Expired => "expired",
    }
}

/// The desired state of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSpec {
    pub generation: i64,
    /// The operator deleted it: its stored artifacts go, the row stays.
    pub deletion_requested: bool,
    /// `retention_until` has passed (time-based retention or a schedule's keep rules).
    pub retention_passed: bool,
}

/// What the runtime observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupObserved {
    pub node_ready: bool,
    /// Stored and verified (`completed_at` set from the node's facts).
    pub completed: bool,
    /// The stored artifacts were removed (`deleted_at` set).
    pub deleted: bool,
    /// The latest job of this backup, of any type.
    pub latest_job: Option<JobObservation>,
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    /// The job of the operation this backup gates is queued or running and takes the backup
    /// itself (an import's `site_import` / `site_adopt`: beside staging the archive, recorded from
    /// its facts); a `backup_create` of its own would only queue behind it.
    #[serde(default)]
    pub taken_by_job: bool,
}

/// Whether the backup's artifacts must go.
pub fn removal_requested(desired: &BackupSpec, observed: &BackupObserved) -> bool {
    desired.deletion_requested || (desired.retention_passed && observed.completed)
}

fn work(desired: &BackupSpec, observed: &BackupObserved) -> Work {
    if removal_requested(desired, observed) {
        if observed.deleted {
            return Work::Done;
        }
        if observed.latest_job.is_none() && !observed.completed {
            return Work::Finalize;
        }
        return Work::Run(Need {
            job_type: JobType::BackupCleanup,
            may_stall: true,
            reason: reason::DELETING,
            message: "removing the backup's artifacts from its storage".into(),
        });
    }
    if observed.completed {
        return Work::Done;
    }
    if observed.taken_by_job {
        return Work::Blocked {
            wait: crate::plan::WaitReason::TakenByOperation,
            message: "taken by the job of the operation it protects".into(),
        };
    }
    Work::Run(Need {
        job_type: JobType::BackupCreate,
        may_stall: true,
        reason: "BackupPending",
        message: "dumping, archiving, storing and verifying the artifacts".into(),
    })
}

/// The error of the latest attempt of the needed job for the current generation.
pub fn attempt_failure(desired: &BackupSpec, observed: &BackupObserved) -> Option<JobErrorCode> {
    let job = observed.latest_job.as_ref()?;
    let needed = match work(desired, observed) {
        Work::Run(need) => need.job_type,
        _ => return None,
    };
    (job.job_type == needed && job.generation == desired.generation)
        .then(|| job.failure())
        .flatten()
}

/// One reconcile pass. Pure.
pub fn reconcile(
    desired: &BackupSpec,
    observed: &BackupObserved,
    ctx: &Context,
) -> Plan<BackupPhase> {
    use ConditionStatus::{False, True};
    let work = work(desired, observed);
    let inputs = Inputs {
        latest_job: observed.latest_job.as_ref(),
        failure: attempt_failure(desired, observed),
        reset_pending: None,
        target_ready: observed.node_ready,
        served_before: false,
    };
    let decision = decision::decide(&work, &inputs, ctx);
    let removing = removal_requested(desired, observed);
    let attempted = observed
        .latest_job
        .as_ref()
        .is_some_and(|j| j.job_type == JobType::BackupCreate);
    let phase = if observed.deleted || (removing && observed.completed) {
        BackupPhase::Expired
    } else if observed.completed {
        BackupPhase::Completed
    } else if decision.stall.is_some() {
        BackupPhase::Failed
    } else if attempted || observed.taken_by_job {
        BackupPhase::Running
    } else {
        BackupPhase::Pending
    };
    let ready = match phase {
        BackupPhase::Completed => Derived::new(
            True,
            "Verified",
            "every artifact is stored and its checksum was read back",
        ),
        BackupPhase::Expired => Derived::new(
            False,
            "Expired",
            if observed.deleted {
                "the artifacts were removed from the storage"
            } else {
                "the artifacts are being removed from the storage"
            },
        ),
        BackupPhase::Failed => Derived::new(False, "Failed", "no attempt left"),
        _ => Derived::new(False, "InProgress", "the backup is not stored yet"),
    };
    let finished = decision.stall.is_some() || matches!(work, Work::Done | Work::Finalize);
    let conditions = decision::merge(
        &observed.conditions,
        [
            (ConditionType::Ready, ready),
            (
                ConditionType::Reconciling,
                decision::reconciling(&work, &decision, &inputs, ctx),
            ),
            (ConditionType::Degraded, decision::degraded(&work, &inputs)),
            (
                ConditionType::Stalled,
                decision::stalled(&decision, &inputs),
            ),
        ],
        desired.generation,
        &ctx.now,
    );
    Plan {
        action: decision.action,
        phase,
        conditions,
        observed_generation: if finished {
            desired.generation
        } else {
            observed.observed_generation
        },
        requeue_after_ms: decision.requeue_after_ms,
        handled_reset_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobStatus;
    use crate::plan::Action;
    use proptest::prelude::*;

    fn spec() -> BackupSpec {
        BackupSpec {
            generation: 1,
            deletion_requested: false,
            retention_passed: false,
        }
    }

    fn obs() -> BackupObserved {
        BackupObserved {
            node_ready: true,
            completed: false,
            deleted: false,
            latest_job: None,
            observed_generation: 0,
            conditions: vec![],
            taken_by_job: false,
        }
    }

    fn job(t: JobType) -> JobObservation {
        JobObservation::fixture(t)
    }

    fn run(t: JobType) -> Action {
        Action::RunJob { job_type: t }
    }

    #[test]
    fn table() {
        let ctx = Context::fixture();
        let failed_ctx = Context {
            failed_attempts: 1,
            retry_due: true,
            ..Context::fixture()
        };
        let exhausted = Context {
            failed_attempts: 3,
            retry_due: true,
            ..Context::fixture()
        };
        let deleting = BackupSpec {
            deletion_requested: true,
            generation: 2,
            ..spec()
        };
        let expired = BackupSpec {
            retention_passed: true,
            ..spec()
        };
        let storage_failed = job(JobType::BackupCreate).failed(JobErrorCode::BackupStorageFailed);
        #[rustfmt::skip]
        let cases: Vec<(&str, BackupSpec, BackupObserved, &Context, Action, BackupPhase)> = vec![
            ("new backup runs", spec(), obs(), &ctx, run(JobType::BackupCreate), BackupPhase::Pending),
            ("node not ready waits", spec(), BackupObserved { node_ready: false, ..obs() }, &ctx,
                Action::Wait { reason: crate::plan::WaitReason::NodeNotReady }, BackupPhase::Pending),
            ("running job waits", spec(), BackupObserved { latest_job: Some(job(JobType::BackupCreate).with_status(JobStatus::Running)), ..obs() }, &ctx,
                Action::Wait { reason: crate::plan::WaitReason::JobInProgress }, BackupPhase::Running),
            ("crash: cancelled attempt runs again", spec(), BackupObserved { latest_job: Some(job(JobType::BackupCreate).with_status(JobStatus::Cancelled)), ..obs() }, &ctx,
                run(JobType::BackupCreate), BackupPhase::Running),
            ("retryable failure, backoff passed", spec(), BackupObserved { latest_job: Some(storage_failed.clone()), ..obs() }, &failed_ctx,
                run(JobType::BackupCreate), BackupPhase::Running),
            ("attempts exhausted: failed", spec(), BackupObserved { latest_job: Some(storage_failed.clone()), ..obs() }, &exhausted,
                Action::Nothing, BackupPhase::Failed),
            ("completed: nothing", spec(), BackupObserved { completed: true, latest_job: Some(job(JobType::BackupCreate)), ..obs() }, &ctx,
                Action::Nothing, BackupPhase::Completed),
            ("deleted completed backup: cleanup", deleting.clone(), BackupObserved { completed: true, latest_job: Some(job(JobType::BackupCreate)), ..obs() }, &ctx,
                run(JobType::BackupCleanup), BackupPhase::Expired),
            ("retention passed: cleanup", expired.clone(), BackupObserved { completed: true, latest_job: Some(job(JobType::BackupCreate)), ..obs() }, &ctx,
                run(JobType::BackupCleanup), BackupPhase::Expired),
            ("retention passed on a pending backup: it still runs", expired, obs(), &ctx,
                run(JobType::BackupCreate), BackupPhase::Pending),
            ("cleanup done", deleting.clone(), BackupObserved { completed: true, deleted: true, latest_job: Some(job(JobType::BackupCleanup).for_generation(2)), ..obs() }, &ctx,
                Action::Nothing, BackupPhase::Expired),
            ("taken by the import's job: waits, running", spec(), BackupObserved { taken_by_job: true, ..obs() }, &ctx,
                Action::Wait { reason: crate::plan::WaitReason::TakenByOperation }, BackupPhase::Running),
            ("taken by a job that stored it: done", spec(), BackupObserved { taken_by_job: true, completed: true, ..obs() }, &ctx,
                Action::Nothing, BackupPhase::Completed),
            ("the taking job is over and did not store it: runs its own", spec(), obs(), &ctx,
                run(JobType::BackupCreate), BackupPhase::Pending),
            ("never attempted: finalize", deleting.clone(), obs(), &ctx, Action::Finalize, BackupPhase::Pending),
            ("failed backup deleted: cleanup removes partial artifacts", deleting, BackupObserved { latest_job: Some(storage_failed), ..obs() }, &ctx,
                run(JobType::BackupCleanup), BackupPhase::Running),
        ];
        for (name, d, o, c, action, phase) in cases {
            let p = reconcile(&d, &o, c);
            assert_eq!(p.action, action, "{name}");
            assert_eq!(p.phase, phase, "{name}");
        }
    }

    #[test]
    fn failure_counts_only_for_the_needed_job() {
        let o = BackupObserved {
            latest_job: Some(job(JobType::BackupCreate).failed(JobErrorCode::BackupDumpFailed)),
            ..obs()
        };
        assert_eq!(
            attempt_failure(&spec(), &o),
            Some(JobErrorCode::BackupDumpFailed)
        );
        let deleting = BackupSpec {
            deletion_requested: true,
            ..spec()
        };
        assert_eq!(attempt_failure(&deleting, &o), None);
    }

    #[test]
    fn completed_is_ready() {
        let o = BackupObserved {
            completed: true,
            ..obs()
        };
        let p = reconcile(&spec(), &o, &Context::fixture());
        let ready = p
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Ready)
            .unwrap();
        assert_eq!(ready.status, ConditionStatus::True);
        assert_eq!(p.observed_generation, 1);
    }

    proptest! {
        /// From any state, applying plans with jobs that succeed ends with nothing to do, and the
        /// backup completed (or its artifacts removed when it goes).
        #[test]
        fn converges(deleting in any::<bool>(), expired in any::<bool>(), completed in any::<bool>(),
                     deleted in any::<bool>(), job in 0u8..4) {
            let d = BackupSpec { generation: 1, deletion_requested: deleting, retention_passed: expired };
            let latest = match job {
                0 => None,
                1 => Some(JobObservation::fixture(JobType::BackupCreate)),
                2 => Some(JobObservation::fixture(JobType::BackupCreate).with_status(JobStatus::Cancelled)),
                _ => Some(JobObservation::fixture(JobType::BackupCleanup)),
            };
            let mut o = BackupObserved { completed, deleted: deleted && completed, latest_job: latest, ..obs() };
            let ctx = Context::fixture();
            for _ in 0..5 {
                let p = reconcile(&d, &o, &ctx);
                match p.action {
                    Action::RunJob { job_type: JobType::BackupCreate } => {
                        o.completed = true;
                        o.latest_job = Some(JobObservation::fixture(JobType::BackupCreate));
                    }
                    Action::RunJob { job_type: JobType::BackupCleanup } => {
                        o.deleted = true;
                        o.latest_job = Some(JobObservation::fixture(JobType::BackupCleanup));
                    }
                    Action::Finalize => { o.deleted = true; }
                    _ => {}
                }
            }
            let p = reconcile(&d, &o, &ctx);
            prop_assert!(matches!(p.action, Action::Nothing), "{:?}", p.action);
            if removal_requested(&d, &o) {
                prop_assert!(o.deleted);
            } else {
                let want = if o.deleted { BackupPhase::Expired } else { BackupPhase::Completed };
                prop_assert_eq!(p.phase, want);
            }
        }
    }
}
