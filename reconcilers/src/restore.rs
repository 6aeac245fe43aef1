//! The restore reconciler: restore a completed backup into an environment of the same site,
//! behind its gates, with a rollback point.
//!
//! # Steps (first match wins)
//!
//! | observed | step |
//! |---|---|
//! | the restore already `succeeded` or `failed` | nothing (final) |
//! | an `env_restore` job is queued or running | wait |
//! | the last `env_restore` succeeded | finish `succeeded` |
//! | the last `env_restore` failed with a code that is not retried (`RESTORE_CHECKSUM_MISMATCH`, `RESTORE_ROLLED_BACK`) or with no attempt left | finish `failed` with that code |
//! | … retryable, backoff running | wait |
//! | the backup is not completed (still running: wait; failed or gone: finish `failed`) | |
//! | not a drill, no pre-restore backup declared yet | declare one (full, reason `pre_restore`) |
//! | the pre-restore backup is still running | wait |
//! | the pre-restore backup failed or is gone | finish `failed` (never restore without a rollback point) |
//! | a drill whose scratch environment is not Ready yet | wait |
//! | the node is not ready | wait |
//! | otherwise | run `env_restore` |
//!
//! A cancelled `env_restore` (the control plane died while it ran) runs again: the node side is
//! idempotent per restore and checks the backup before it touches anything. Drills restore into a
//! scratch environment and take no pre-restore backup (there is nothing to protect).

use serde::{Deserialize, Serialize};

use crate::attempts::{judge, Verdict};
use crate::condition::{Condition, ConditionStatus, ConditionType, Conditions};
use crate::error_code::JobErrorCode;
use crate::job::{JobObservation, JobStatus, JobType};
use crate::plan::Context;
use crate::str_enum::str_enum;

str_enum! {
    /// Spec §2 `operation_status` as restores use it.
    pub enum OperationStatus : "operation status" {
        Pending => "pending",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

/// A backup the restore depends on, as far as the restore cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupState {
    InProgress,
    Completed,
    /// Failed with this code (its last error).
    Failed(Option<JobErrorCode>),
    /// Deleted, expired or its row is gone.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSpec {
    pub generation: i64,
    pub drill: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreObserved {
    /// The stored status (final once `succeeded` or `failed`).
    pub status: OperationStatus,
    pub backup: BackupState,
    /// `None` until the pre-restore backup is declared.
    pub pre_backup: Option<BackupState>,
    /// Drills: the scratch environment is Ready. Other restores: the target is not being deleted.
    pub target_ready: bool,
    pub node_ready: bool,
    /// The latest `env_restore` job of this restore.
    pub latest_job: Option<JobObservation>,
    pub conditions: Vec<Condition>,
}

/// What the runtime does next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    Nothing,
    /// Look again later (or when a backup or the target changes); the reason is CamelCase.
    Wait {
        reason: String,
    },
    /// Declare the target's pre-restore backup (full) and record it as `pre_backup_id`.
    DeclarePreBackup,
    RunJob {
        job_type: JobType,
    },
    /// Store the final status (and the error code of a failure).
    Finish {
        status: OperationStatus,
        error_code: Option<JobErrorCode>,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    pub step: Step,
    pub phase: OperationStatus,
    pub conditions: Vec<Condition>,
    pub requeue_after_ms: Option<u64>,
}

fn wait(reason: &str) -> Step {
    Step::Wait {
        reason: reason.to_owned(),
    }
}

fn fail(code: Option<JobErrorCode>, message: impl Into<String>) -> Step {
    Step::Finish {
        status: OperationStatus::Failed,
        error_code: code,
        message: message.into(),
    }
}

fn next_step(desired: &RestoreSpec, observed: &RestoreObserved, ctx: &Context) -> Step {
    if matches!(
        observed.status,
        OperationStatus::Succeeded | OperationStatus::Failed
    ) {
        return Step::Nothing;
    }
    if let Some(job) = &observed.latest_job {
        match job.status {
            s if s.is_in_progress() => return wait("JobInProgress"),
            JobStatus::Succeeded => {
                return Step::Finish {
                    status: OperationStatus::Succeeded,
                    error_code: None,
                    message: "the backup was restored and the environment is healthy".into(),
                }
            }
            JobStatus::Failed => {
                let code = job.failure();
                match judge(code, ctx, false, true) {
                    Verdict::Stalled(stall) => return fail(code, stall.message()),
                    Verdict::RetryLater { .. } => return wait("RetryScheduled"),
                    Verdict::Proceed => {}
                }
            }
            _ => {}
        }
    }
    match observed.backup {
        BackupState::Completed => {}
        BackupState::InProgress => return wait("BackupNotCompleted"),
        BackupState::Failed(_) | BackupState::Gone => {
            return fail(
                Some(JobErrorCode::RestoreStorageUnreadable),
                "the backup is not completed or no longer stored",
            )
        }
    }
    if !desired.drill {
        match observed.pre_backup {
            None => return Step::DeclarePreBackup,
            Some(BackupState::Completed) => {}
            Some(BackupState::InProgress) => return wait("PreRestoreBackupRunning"),
            Some(BackupState::Failed(code)) => {
                return fail(
                    code.or(Some(JobErrorCode::BackupStorageFailed)),
                    "the pre-restore backup failed: nothing was restored without a rollback point",
                )
            }
            Some(BackupState::Gone) => {
                return fail(
                    Some(JobErrorCode::BackupStorageFailed),
                    "the pre-restore backup is gone: nothing was restored without a rollback point",
                )
            }
        }
    }
    if !observed.target_ready {
        return wait("TargetNotReady");
    }
    if !observed.node_ready {
        return wait("NodeNotReady");
    }
    Step::RunJob {
        job_type: JobType::EnvRestore,
    }
}

/// One pass. Pure.
pub fn reconcile(desired: &RestoreSpec, observed: &RestoreObserved, ctx: &Context) -> RestorePlan {
    use ConditionStatus::{False, True};
    let step = next_step(desired, observed, ctx);
    let phase = match &step {
        Step::Nothing => observed.status,
        Step::Finish { status, .. } => *status,
        Step::Wait { reason } if reason == "BackupNotCompleted" => OperationStatus::Pending,
        Step::Wait { .. } | Step::DeclarePreBackup | Step::RunJob { .. } => {
            OperationStatus::Running
        }
    };
    let (ready, reconciling) = match &step {
        Step::Nothing | Step::Finish { .. } => {
            let (r, m) = match (&step, phase) {
                (
                    Step::Finish {
                        message,
                        error_code,
                        ..
                    },
                    _,
                ) => (
                    error_code.map_or("Restored", JobErrorCode::reason),
                    message.clone(),
                ),
                (_, OperationStatus::Succeeded) => ("Restored", "the restore succeeded".to_owned()),
                _ => ("Failed", "the restore failed".to_owned()),
            };
            let ready_status = if phase == OperationStatus::Succeeded {
                True
            } else {
                False
            };
            (
                (ready_status, r.to_owned(), m),
                (
                    False,
                    "Finished".to_owned(),
                    "the restore is over".to_owned(),
                ),
            )
        }
        Step::Wait { reason } => (
            (
                False,
                "InProgress".to_owned(),
                "the restore has not finished".to_owned(),
            ),
            (True, reason.clone(), format!("waiting: {reason}")),
        ),
        Step::DeclarePreBackup => (
            (
                False,
                "InProgress".to_owned(),
                "the restore has not finished".to_owned(),
            ),
            (
                True,
                "PreRestoreBackup".to_owned(),
                "taking the pre-restore backup of the target".to_owned(),
            ),
        ),
        Step::RunJob { .. } => (
            (
                False,
                "InProgress".to_owned(),
                "the restore has not finished".to_owned(),
            ),
            (
                True,
                "Restoring".to_owned(),
                "running env_restore".to_owned(),
            ),
        ),
    };
    let mut conditions = Conditions::from_vec(observed.conditions.clone());
    conditions.set(
        ConditionType::Ready,
        ready.0,
        ready.1,
        ready.2,
        desired.generation,
        &ctx.now,
    );
    conditions.set(
        ConditionType::Reconciling,
        reconciling.0,
        reconciling.1,
        reconciling.2,
        desired.generation,
        &ctx.now,
    );
    let stalled = phase == OperationStatus::Failed;
    conditions.set(
        ConditionType::Stalled,
        if stalled { True } else { False },
        if stalled { "Failed" } else { "AsExpected" },
        if stalled {
            "the restore failed; declare a new one"
        } else {
            "no attempt given up"
        },
        desired.generation,
        &ctx.now,
    );
    let requeue_after_ms = match &step {
        Step::Nothing | Step::Finish { .. } => None,
        Step::Wait { reason } if reason == "RetryScheduled" => Some(ctx.retry_delay_ms),
        // Waiting on a backup or a scratch environment: look again soon even without a wake-up.
        Step::Wait { .. } => Some(ctx.resync_after_ms.min(5_000)),
        _ => Some(ctx.resync_after_ms),
    };
    RestorePlan {
        step,
        phase,
        conditions: conditions.into_vec(),
        requeue_after_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec() -> RestoreSpec {
        RestoreSpec {
            generation: 1,
            drill: false,
        }
    }

    fn obs() -> RestoreObserved {
        RestoreObserved {
            status: OperationStatus::Pending,
            backup: BackupState::Completed,
            pre_backup: None,
            target_ready: true,
            node_ready: true,
            latest_job: None,
            conditions: vec![],
        }
    }

    fn restore_job() -> JobObservation {
        JobObservation::fixture(JobType::EnvRestore)
    }

    #[test]
    fn gates_in_order() {
        let ctx = Context::fixture();
        let step = |o: RestoreObserved| reconcile(&spec(), &o, &ctx).step;
        assert_eq!(step(obs()), Step::DeclarePreBackup);
        assert_eq!(
            step(RestoreObserved {
                backup: BackupState::InProgress,
                ..obs()
            }),
            wait("BackupNotCompleted")
        );
        assert!(matches!(
            step(RestoreObserved {
                backup: BackupState::Gone,
                ..obs()
            }),
            Step::Finish {
                status: OperationStatus::Failed,
                error_code: Some(JobErrorCode::RestoreStorageUnreadable),
                ..
            }
        ));
        assert_eq!(
            step(RestoreObserved {
                pre_backup: Some(BackupState::InProgress),
                ..obs()
            }),
            wait("PreRestoreBackupRunning")
        );
        assert!(matches!(
            step(RestoreObserved {
                pre_backup: Some(BackupState::Failed(Some(JobErrorCode::BackupStorageFailed))),
                ..obs()
            }),
            Step::Finish {
                status: OperationStatus::Failed,
                error_code: Some(JobErrorCode::BackupStorageFailed),
                ..
            }
        ));
        let gated = RestoreObserved {
            pre_backup: Some(BackupState::Completed),
            ..obs()
        };
        assert_eq!(
            step(gated.clone()),
            Step::RunJob {
                job_type: JobType::EnvRestore
            }
        );
        assert_eq!(
            step(RestoreObserved {
                node_ready: false,
                ..gated.clone()
            }),
            wait("NodeNotReady")
        );
        // drills take no pre-restore backup but wait for their scratch environment
        let drill = RestoreSpec {
            drill: true,
            ..spec()
        };
        assert_eq!(
            reconcile(&drill, &obs(), &ctx).step,
            Step::RunJob {
                job_type: JobType::EnvRestore
            }
        );
        assert_eq!(
            reconcile(
                &drill,
                &RestoreObserved {
                    target_ready: false,
                    ..obs()
                },
                &ctx
            )
            .step,
            wait("TargetNotReady")
        );
    }

    #[test]
    fn job_outcomes() {
        let ctx = Context::fixture();
        let with = |j: JobObservation| RestoreObserved {
            pre_backup: Some(BackupState::Completed),
            latest_job: Some(j),
            status: OperationStatus::Running,
            ..obs()
        };
        let p = reconcile(&spec(), &with(restore_job()), &ctx);
        assert!(matches!(
            p.step,
            Step::Finish {
                status: OperationStatus::Succeeded,
                ..
            }
        ));
        assert_eq!(p.phase, OperationStatus::Succeeded);
        for code in [
            JobErrorCode::RestoreChecksumMismatch,
            JobErrorCode::RestoreRolledBack,
        ] {
            let p = reconcile(&spec(), &with(restore_job().failed(code)), &ctx);
            assert_eq!(p.phase, OperationStatus::Failed, "{code}");
            assert!(matches!(p.step, Step::Finish { error_code: Some(c), .. } if c == code));
        }
        // retryable: waits for the backoff, then runs again, then gives up
        let j = restore_job().failed(JobErrorCode::RestoreStorageUnreadable);
        let waiting = Context {
            failed_attempts: 1,
            retry_due: false,
            ..Context::fixture()
        };
        assert_eq!(
            reconcile(&spec(), &with(j.clone()), &waiting).step,
            wait("RetryScheduled")
        );
        let due = Context {
            failed_attempts: 1,
            retry_due: true,
            ..Context::fixture()
        };
        assert!(matches!(
            reconcile(&spec(), &with(j.clone()), &due).step,
            Step::RunJob { .. }
        ));
        let exhausted = Context {
            failed_attempts: 3,
            retry_due: true,
            ..Context::fixture()
        };
        assert!(matches!(
            reconcile(&spec(), &with(j), &exhausted).step,
            Step::Finish {
                status: OperationStatus::Failed,
                ..
            }
        ));
        // interrupted by a crash: runs again
        let cancelled = restore_job().with_status(JobStatus::Cancelled);
        assert!(matches!(
            reconcile(&spec(), &with(cancelled), &ctx).step,
            Step::RunJob { .. }
        ));
        // in flight
        let running = restore_job().with_status(JobStatus::Running);
        let p = reconcile(&spec(), &with(running), &ctx);
        assert_eq!(p.step, wait("JobInProgress"));
        assert_eq!(p.phase, OperationStatus::Running);
    }

    #[test]
    fn final_states_stay() {
        for s in [OperationStatus::Succeeded, OperationStatus::Failed] {
            let p = reconcile(
                &spec(),
                &RestoreObserved { status: s, ..obs() },
                &Context::fixture(),
            );
            assert_eq!(
                (p.step, p.phase, p.requeue_after_ms),
                (Step::Nothing, s, None)
            );
        }
    }

    fn backup_state() -> impl Strategy<Value = BackupState> {
        prop_oneof![
            Just(BackupState::InProgress),
            Just(BackupState::Completed),
            Just(BackupState::Failed(None)),
            Just(BackupState::Gone),
        ]
    }

    proptest! {
        /// With backups that complete and jobs that succeed, every restore ends (succeeded, or
        /// failed when a backup it needs failed), and a finished one stays finished.
        #[test]
        fn every_restore_ends(drill in any::<bool>(), backup in backup_state(),
                              pre in proptest::option::of(backup_state()), target in any::<bool>()) {
            let d = RestoreSpec { generation: 1, drill };
            let mut o = RestoreObserved { backup, pre_backup: pre, target_ready: target, ..obs() };
            let ctx = Context::fixture();
            for _ in 0..8 {
                let p = reconcile(&d, &o, &ctx);
                match p.step {
                    Step::DeclarePreBackup => o.pre_backup = Some(BackupState::InProgress),
                    Step::Wait { .. } => {
                        // time passes: backups complete, the scratch environment gets Ready
                        if o.backup == BackupState::InProgress { o.backup = BackupState::Completed; }
                        if o.pre_backup == Some(BackupState::InProgress) { o.pre_backup = Some(BackupState::Completed); }
                        o.target_ready = true;
                    }
                    Step::RunJob { .. } => o.latest_job = Some(restore_job()),
                    Step::Finish { status, .. } => o.status = status,
                    Step::Nothing => {}
                }
            }
            let p = reconcile(&d, &o, &ctx);
            prop_assert_eq!(p.step, Step::Nothing);
            prop_assert!(matches!(o.status, OperationStatus::Succeeded | OperationStatus::Failed));
            let needed_ok = backup != BackupState::Failed(None) && backup != BackupState::Gone
                && (drill || !matches!(pre, Some(BackupState::Failed(_)) | Some(BackupState::Gone)));
            prop_assert_eq!(o.status == OperationStatus::Succeeded, needed_ok);
        }
    }
}
