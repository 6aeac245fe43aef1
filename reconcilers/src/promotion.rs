//! The promotion reconciler: a non-production environment promoted to its site's production
//! environment behind the drift gate, with a fresh backup of production as the rollback point.
//!
//! # Steps (first match wins)
//!
//! | observed | step |
//! |---|---|
//! | the promotion is `succeeded`, `failed` or `blocked` | nothing (final) |
//! | an `env_promote` job is queued or running | wait `JobInProgress` |
//! | the last `env_promote` succeeded | finish `succeeded` |
//! | the last `env_promote` failed with a code that is not retried (`PROMOTION_ROLLED_BACK`) or with no attempt left | finish `failed` with that code |
//! | … retryable, backoff running | wait `RetryScheduled` |
//! | the source or production is gone or being deleted | finish `failed` (`PROMOTION_FAILED`) |
//! | the source has no drift baseline | `blocked`, `DriftClean=False` reason `NoBaseline` |
//! | no drift result yet, a `drift_check` queued or running | wait `DriftCheckRunning` |
//! | no drift result yet, the last `drift_check` failed: not retried / exhausted | finish `failed` with its code |
//! | … retryable, backoff running | wait `RetryScheduled` |
//! | no drift result yet, node not ready | wait `NodeNotReady` |
//! | no drift result yet | run `drift_check` |
//! | the drift check says `drifted` | `blocked`, `DriftClean=False` reason `Drifted` (message: what drifted) |
//! | clean, no pre-promotion backup chosen, a fresh one exists | use it (`BackupFresh=True`) |
//! | clean, no pre-promotion backup chosen, none fresh | declare one (full, reason `pre_promotion`) |
//! | the pre-promotion backup is still running | wait `PreBackupRunning` |
//! | the pre-promotion backup failed or is gone | finish `failed` (never promote without a rollback point) |
//! | production not ready | wait `TargetNotReady` |
//! | the node is not ready | wait `NodeNotReady` |
//! | otherwise | run `env_promote` |
//!
//! Only the drift gate blocks, and `blocked` is final: there is no override (decision "Promotion
//! gate"). A cancelled job (the control plane died while it ran) runs again: both playbooks are
//! idempotent per promotion.

use serde::{Deserialize, Serialize};

use crate::attempts::{judge, Verdict};
use crate::condition::{Condition, ConditionStatus, ConditionType, Conditions};
use crate::error_code::JobErrorCode;
use crate::job::{JobObservation, JobStatus, JobType};
use crate::plan::Context;
use crate::restore::BackupState;
use crate::str_enum::str_enum;

str_enum! {
    /// Spec §2 `operation_status` as promotions use it (`blocked`: the drift gate said no).
    pub enum PromotionStatus : "promotion status" {
        Pending => "pending",
        Running => "running",
        Blocked => "blocked",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

impl PromotionStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Blocked | Self::Succeeded | Self::Failed)
    }
}

/// The result of this promotion's own drift check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Drift {
    Clean,
    /// What drifted, for people (tables, files).
    Drifted {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionSpec {
    pub generation: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionObserved {
    /// The stored status (final once `succeeded`, `failed` or `blocked`).
    pub status: PromotionStatus,
    /// The source and production exist and neither is being deleted.
    pub environments_exist: bool,
    /// The source has a drift baseline.
    pub has_baseline: bool,
    /// This promotion's drift check result, once it ran.
    pub drift: Option<Drift>,
    /// The latest `drift_check` job of this promotion.
    pub drift_job: Option<JobObservation>,
    /// A completed full backup of production within the freshness window (its id).
    pub fresh_backup: Option<String>,
    /// `None` until the pre-promotion backup is chosen (reused or declared).
    pub pre_backup: Option<BackupState>,
    /// Production is Ready.
    pub target_ready: bool,
    pub node_ready: bool,
    /// The latest `env_promote` job of this promotion.
    pub promote_job: Option<JobObservation>,
    pub conditions: Vec<Condition>,
}

/// What the runtime does next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    Nothing,
    /// Look again later; the reason is CamelCase.
    Wait {
        reason: String,
    },
    RunJob {
        job_type: JobType,
    },
    /// The gate is unmet: store `blocked` (final) with `DriftClean=False`.
    Block {
        reason: String,
        message: String,
    },
    /// Record this fresh backup as the pre-promotion backup.
    UseBackup {
        backup_id: String,
    },
    /// Declare production's pre-promotion backup (full) and record it as `pre_backup_id`.
    DeclarePreBackup,
    /// Store the final status (and the error code of a failure).
    Finish {
        status: PromotionStatus,
        error_code: Option<JobErrorCode>,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionPlan {
    pub step: Step,
    pub phase: PromotionStatus,
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
        status: PromotionStatus::Failed,
        error_code: code,
        message: message.into(),
    }
}

fn next_step(observed: &PromotionObserved, ctx: &Context) -> Step {
    if observed.status.is_final() {
        return Step::Nothing;
    }
    if let Some(job) = &observed.promote_job {
        match job.status {
            s if s.is_in_progress() => return wait("JobInProgress"),
            JobStatus::Succeeded => {
                return Step::Finish {
                    status: PromotionStatus::Succeeded,
                    error_code: None,
                    message: "promoted; production is healthy".into(),
                }
            }
            JobStatus::Failed => {
                let code = job.failure();
                match judge(code, ctx, false, true) {
                    Verdict::Stalled(stall) => {
                        let message = if code == Some(JobErrorCode::PromotionRolledBack) {
                            "production was unhealthy after the promotion and was rolled back"
                                .into()
                        } else {
                            stall.message()
                        };
                        return fail(code, message);
                    }
                    Verdict::RetryLater { .. } => return wait("RetryScheduled"),
                    Verdict::Proceed => {}
                }
            }
            _ => {}
        }
    }
    if !observed.environments_exist {
        return fail(
            Some(JobErrorCode::PromotionFailed),
            "the source or the production environment is gone or being deleted",
        );
    }
    if !observed.has_baseline {
        return Step::Block {
            reason: "NoBaseline".into(),
            message: "the source environment has no drift baseline (it was not cloned from \
                      production): nothing on production was changed"
                .into(),
        };
    }
    match &observed.drift {
        None => {
            if let Some(job) = &observed.drift_job {
                match job.status {
                    s if s.is_in_progress() => return wait("DriftCheckRunning"),
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
            if !observed.node_ready {
                return wait("NodeNotReady");
            }
            return Step::RunJob {
                job_type: JobType::DriftCheck,
            };
        }
        Some(Drift::Drifted { reason }) => {
            return Step::Block {
                reason: "Drifted".into(),
                message: format!("production drifted: {reason}; nothing on production was changed"),
            }
        }
        Some(Drift::Clean) => {}
    }
    match &observed.pre_backup {
        None => {
            return match &observed.fresh_backup {
                Some(id) => Step::UseBackup {
                    backup_id: id.clone(),
                },
                None => Step::DeclarePreBackup,
            }
        }
        Some(BackupState::Completed) => {}
        Some(BackupState::InProgress) => return wait("PreBackupRunning"),
        Some(BackupState::Failed(code)) => {
            return fail(
                code.or(Some(JobErrorCode::BackupStorageFailed)),
                "the pre-promotion backup failed: nothing was promoted without a rollback point",
            )
        }
        Some(BackupState::Gone) => {
            return fail(
                Some(JobErrorCode::BackupStorageFailed),
                "the pre-promotion backup is gone: nothing was promoted without a rollback point",
            )
        }
    }
    if !observed.target_ready {
        return wait("TargetNotReady");
    }
    if !observed.node_ready {
        return wait("NodeNotReady");
    }
    Step::RunJob {
        job_type: JobType::EnvPromote,
    }
}

/// One pass. Pure.
pub fn reconcile(
    desired: &PromotionSpec,
    observed: &PromotionObserved,
    ctx: &Context,
) -> PromotionPlan {
    use ConditionStatus::{False, True, Unknown};
    let step = next_step(observed, ctx);
    let phase = match &step {
        Step::Nothing => observed.status,
        Step::Finish { status, .. } => *status,
        Step::Block { .. } => PromotionStatus::Blocked,
        Step::Wait { .. }
        | Step::RunJob { .. }
        | Step::UseBackup { .. }
        | Step::DeclarePreBackup => PromotionStatus::Running,
    };
    let mut c = Conditions::from_vec(observed.conditions.clone());
    let g = desired.generation;
    let now = &ctx.now;
    // DriftClean: what the gate knows.
    match (&step, &observed.drift) {
        (Step::Block { reason, message }, _) => {
            c.set(ConditionType::DriftClean, False, reason, message, g, now)
        }
        (_, Some(Drift::Clean)) => c.set(
            ConditionType::DriftClean,
            True,
            "Clean",
            "production's overwritable data equals the baseline",
            g,
            now,
        ),
        (Step::Nothing, _) => {}
        (_, _) => c.set(
            ConditionType::DriftClean,
            Unknown,
            "NotChecked",
            "the drift check has not run yet",
            g,
            now,
        ),
    }
    match (&step, &observed.pre_backup) {
        (Step::UseBackup { backup_id }, _) => c.set(
            ConditionType::BackupFresh,
            True,
            "Reused",
            format!("backup {backup_id} is fresh: it is the rollback point"),
            g,
            now,
        ),
        (Step::DeclarePreBackup, _) | (_, Some(BackupState::InProgress)) => c.set(
            ConditionType::BackupFresh,
            False,
            "BackupRunning",
            "taking a full backup of production (the rollback point)",
            g,
            now,
        ),
        (_, Some(BackupState::Completed))
            if !c
                .get(ConditionType::BackupFresh)
                .is_some_and(|x| x.status == True) =>
        {
            c.set(
                ConditionType::BackupFresh,
                True,
                "Taken",
                "the pre-promotion backup is completed",
                g,
                now,
            )
        }
        _ => {}
    }
    let finished = matches!(
        step,
        Step::Nothing | Step::Finish { .. } | Step::Block { .. }
    );
    let (ready_status, ready_reason, ready_msg) = match (&step, phase) {
        (_, PromotionStatus::Succeeded) => (True, "Promoted".to_owned(), "promoted".to_owned()),
        (
            Step::Finish {
                error_code,
                message,
                ..
            },
            _,
        ) => (
            False,
            error_code.map_or("Failed", JobErrorCode::reason).to_owned(),
            message.clone(),
        ),
        (Step::Block { reason, message }, _) => (False, reason.clone(), message.clone()),
        (Step::Nothing, s) => (
            False,
            if s == PromotionStatus::Blocked {
                "Blocked"
            } else {
                "Failed"
            }
            .to_owned(),
            format!("the promotion is {s}"),
        ),
        _ => (
            False,
            "InProgress".to_owned(),
            "the promotion has not finished".to_owned(),
        ),
    };
    if !(matches!(step, Step::Nothing)
        && c.get(ConditionType::Ready)
            .is_some_and(|x| x.observed_generation == g))
    {
        c.set(
            ConditionType::Ready,
            ready_status,
            ready_reason,
            ready_msg,
            g,
            now,
        );
    }
    let (rec_status, rec_reason, rec_msg) = match &step {
        _ if finished => (
            False,
            "Finished".to_owned(),
            "the promotion is over".to_owned(),
        ),
        Step::Wait { reason } => (True, reason.clone(), format!("waiting: {reason}")),
        Step::RunJob { job_type } => (
            True,
            if *job_type == JobType::DriftCheck {
                "CheckingDrift"
            } else {
                "Promoting"
            }
            .to_owned(),
            format!("running {job_type}"),
        ),
        _ => (
            True,
            "PreBackup".to_owned(),
            "choosing the pre-promotion backup of production".to_owned(),
        ),
    };
    c.set(
        ConditionType::Reconciling,
        rec_status,
        rec_reason,
        rec_msg,
        g,
        now,
    );
    let stalled = phase == PromotionStatus::Failed;
    c.set(
        ConditionType::Stalled,
        if stalled { True } else { False },
        if stalled { "Failed" } else { "AsExpected" },
        if stalled {
            "the promotion failed; declare a new one"
        } else {
            "no attempt given up"
        },
        g,
        now,
    );
    let requeue_after_ms = match &step {
        Step::Nothing | Step::Finish { .. } | Step::Block { .. } => None,
        Step::Wait { reason } if reason == "RetryScheduled" => Some(ctx.retry_delay_ms),
        Step::Wait { .. } => Some(ctx.resync_after_ms.min(5_000)),
        _ => Some(ctx.resync_after_ms.min(5_000)),
    };
    PromotionPlan {
        step,
        phase,
        conditions: c.into_vec(),
        requeue_after_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec() -> PromotionSpec {
        PromotionSpec { generation: 1 }
    }

    fn obs() -> PromotionObserved {
        PromotionObserved {
            status: PromotionStatus::Pending,
            environments_exist: true,
            has_baseline: true,
            drift: None,
            drift_job: None,
            fresh_backup: None,
            pre_backup: None,
            target_ready: true,
            node_ready: true,
            promote_job: None,
            conditions: vec![],
        }
    }

    /// Clean drift check, completed pre-promotion backup: ready to promote.
    fn gated() -> PromotionObserved {
        PromotionObserved {
            status: PromotionStatus::Running,
            drift: Some(Drift::Clean),
            drift_job: Some(JobObservation::fixture(JobType::DriftCheck)),
            pre_backup: Some(BackupState::Completed),
            ..obs()
        }
    }

    fn step(o: PromotionObserved) -> Step {
        reconcile(&spec(), &o, &Context::fixture()).step
    }

    fn cond(p: &PromotionPlan, t: ConditionType) -> Condition {
        p.conditions
            .iter()
            .find(|c| c.type_ == t)
            .cloned()
            .unwrap_or_else(|| panic!("no {t} condition"))
    }

    #[test]
    fn final_states_stay() {
        for s in [
            PromotionStatus::Succeeded,
            PromotionStatus::Failed,
            PromotionStatus::Blocked,
        ] {
            let p = reconcile(
                &spec(),
                &PromotionObserved { status: s, ..obs() },
                &Context::fixture(),
            );
            assert_eq!(
                (p.step, p.phase, p.requeue_after_ms),
                (Step::Nothing, s, None)
            );
        }
    }

    #[test]
    fn promote_job_in_flight_waits() {
        for s in [JobStatus::Queued, JobStatus::Running] {
            let p = reconcile(
                &spec(),
                &PromotionObserved {
                    promote_job: Some(JobObservation::fixture(JobType::EnvPromote).with_status(s)),
                    ..gated()
                },
                &Context::fixture(),
            );
            assert_eq!(p.step, wait("JobInProgress"));
            assert_eq!(p.phase, PromotionStatus::Running);
            assert_eq!(
                cond(&p, ConditionType::Reconciling).status,
                ConditionStatus::True
            );
        }
    }

    #[test]
    fn promote_job_succeeded_finishes() {
        let p = reconcile(
            &spec(),
            &PromotionObserved {
                promote_job: Some(JobObservation::fixture(JobType::EnvPromote)),
                ..gated()
            },
            &Context::fixture(),
        );
        assert!(matches!(
            p.step,
            Step::Finish {
                status: PromotionStatus::Succeeded,
                ..
            }
        ));
        assert_eq!(p.phase, PromotionStatus::Succeeded);
        assert_eq!(cond(&p, ConditionType::Ready).status, ConditionStatus::True);
        assert_eq!(
            cond(&p, ConditionType::Reconciling).status,
            ConditionStatus::False
        );
    }

    #[test]
    fn rolled_back_is_final_failure() {
        let p = reconcile(
            &spec(),
            &PromotionObserved {
                promote_job: Some(
                    JobObservation::fixture(JobType::EnvPromote)
                        .failed(JobErrorCode::PromotionRolledBack),
                ),
                ..gated()
            },
            &Context::fixture().with_failed_attempts(1),
        );
        assert!(matches!(
            p.step,
            Step::Finish {
                status: PromotionStatus::Failed,
                error_code: Some(JobErrorCode::PromotionRolledBack),
                ..
            }
        ));
        assert_eq!(
            cond(&p, ConditionType::Stalled).status,
            ConditionStatus::True
        );
        assert_eq!(cond(&p, ConditionType::Ready).reason, "PromotionRolledBack");
    }

    #[test]
    fn retryable_promote_failure_waits_reruns_then_gives_up() {
        let j = JobObservation::fixture(JobType::EnvPromote).failed(JobErrorCode::PromotionFailed);
        let with = || PromotionObserved {
            promote_job: Some(j.clone()),
            ..gated()
        };
        let waiting = Context {
            failed_attempts: 1,
            retry_due: false,
            ..Context::fixture()
        };
        let p = reconcile(&spec(), &with(), &waiting);
        assert_eq!(p.step, wait("RetryScheduled"));
        assert_eq!(p.requeue_after_ms, Some(waiting.retry_delay_ms));
        let due = Context {
            failed_attempts: 1,
            retry_due: true,
            ..Context::fixture()
        };
        assert_eq!(
            reconcile(&spec(), &with(), &due).step,
            Step::RunJob {
                job_type: JobType::EnvPromote
            }
        );
        let exhausted = Context {
            failed_attempts: 3,
            retry_due: true,
            ..Context::fixture()
        };
        assert!(matches!(
            reconcile(&spec(), &with(), &exhausted).step,
            Step::Finish {
                status: PromotionStatus::Failed,
                error_code: Some(JobErrorCode::PromotionFailed),
                ..
            }
        ));
        // interrupted by a crash: runs again
        let cancelled = PromotionObserved {
            promote_job: Some(
                JobObservation::fixture(JobType::EnvPromote).with_status(JobStatus::Cancelled),
            ),
            ..gated()
        };
        assert_eq!(
            step(cancelled),
            Step::RunJob {
                job_type: JobType::EnvPromote
            }
        );
    }

    #[test]
    fn environments_gone_fails() {
        assert!(matches!(
            step(PromotionObserved {
                environments_exist: false,
                ..obs()
            }),
            Step::Finish {
                status: PromotionStatus::Failed,
                error_code: Some(JobErrorCode::PromotionFailed),
                ..
            }
        ));
    }

    #[test]
    fn no_baseline_blocks() {
        let p = reconcile(
            &spec(),
            &PromotionObserved {
                has_baseline: false,
                ..obs()
            },
            &Context::fixture(),
        );
        assert!(matches!(&p.step, Step::Block { reason, .. } if reason == "NoBaseline"));
        assert_eq!(p.phase, PromotionStatus::Blocked);
        let d = cond(&p, ConditionType::DriftClean);
        assert_eq!(
            (d.status, d.reason.as_str()),
            (ConditionStatus::False, "NoBaseline")
        );
        assert_eq!(p.requeue_after_ms, None);
        assert_eq!(
            cond(&p, ConditionType::Stalled).status,
            ConditionStatus::False
        );
    }

    #[test]
    fn drift_check_runs_first_and_waits() {
        let p = reconcile(&spec(), &obs(), &Context::fixture());
        assert_eq!(
            p.step,
            Step::RunJob {
                job_type: JobType::DriftCheck
            }
        );
        assert_eq!(
            cond(&p, ConditionType::DriftClean).status,
            ConditionStatus::Unknown
        );
        assert_eq!(cond(&p, ConditionType::Reconciling).reason, "CheckingDrift");
        assert_eq!(
            step(PromotionObserved {
                drift_job: Some(
                    JobObservation::fixture(JobType::DriftCheck).with_status(JobStatus::Running)
                ),
                ..obs()
            }),
            wait("DriftCheckRunning")
        );
        assert_eq!(
            step(PromotionObserved {
                node_ready: false,
                ..obs()
            }),
            wait("NodeNotReady")
        );
    }

    #[test]
    fn failed_drift_check_retries_then_fails() {
        let j =
            JobObservation::fixture(JobType::DriftCheck).failed(JobErrorCode::AnsibleHostFailed);
        let with = || PromotionObserved {
            drift_job: Some(j.clone()),
            ..obs()
        };
        let waiting = Context {
            failed_attempts: 1,
            retry_due: false,
            ..Context::fixture()
        };
        assert_eq!(
            reconcile(&spec(), &with(), &waiting).step,
            wait("RetryScheduled")
        );
        let due = Context {
            failed_attempts: 1,
            retry_due: true,
            ..Context::fixture()
        };
        assert_eq!(
            reconcile(&spec(), &with(), &due).step,
            Step::RunJob {
                job_type: JobType::DriftCheck
            }
        );
        let exhausted = Context {
            failed_attempts: 3,
            ..Context::fixture()
        };
        assert!(matches!(
            reconcile(&spec(), &with(), &exhausted).step,
            Step::Finish {
                status: PromotionStatus::Failed,
                error_code: Some(JobErrorCode::AnsibleHostFailed),
                ..
            }
        ));
    }

    #[test]
    fn drifted_blocks_with_the_reason() {
        let p = reconcile(
            &spec(),
            &PromotionObserved {
                drift: Some(Drift::Drifted {
                    reason: "tables changed on production since the baseline: options".into(),
                }),
                ..obs()
            },
            &Context::fixture(),
        );
        assert_eq!(p.phase, PromotionStatus::Blocked);
        let d = cond(&p, ConditionType::DriftClean);
        assert_eq!(
            (d.status, d.reason.as_str()),
            (ConditionStatus::False, "Drifted")
        );
        assert!(d.message.contains("options"), "{}", d.message);
        // final: the next pass does nothing and keeps the reason
        let again = reconcile(
            &spec(),
            &PromotionObserved {
                status: PromotionStatus::Blocked,
                conditions: p.conditions.clone(),
                ..obs()
            },
            &Context::fixture(),
        );
        assert_eq!(again.step, Step::Nothing);
        assert_eq!(cond(&again, ConditionType::DriftClean).reason, "Drifted");
    }

    #[test]
    fn fresh_backup_reused_else_declared() {
        let clean = PromotionObserved {
            drift: Some(Drift::Clean),
            ..obs()
        };
        let p = reconcile(
            &spec(),
            &PromotionObserved {
                fresh_backup: Some("b1".into()),
                ..clean.clone()
            },
            &Context::fixture(),
        );
        assert_eq!(
            p.step,
            Step::UseBackup {
                backup_id: "b1".into()
            }
        );
        assert_eq!(
            cond(&p, ConditionType::BackupFresh).status,
            ConditionStatus::True
        );
        assert_eq!(
            cond(&p, ConditionType::DriftClean).status,
            ConditionStatus::True
        );
        let p = reconcile(&spec(), &clean, &Context::fixture());
        assert_eq!(p.step, Step::DeclarePreBackup);
        assert_eq!(
            cond(&p, ConditionType::BackupFresh).status,
            ConditionStatus::False
        );
    }

    #[test]
    fn pre_backup_states() {
        let with = |b: BackupState| PromotionObserved {
            pre_backup: Some(b),
            ..gated()
        };
        assert_eq!(
            step(with(BackupState::InProgress)),
            wait("PreBackupRunning")
        );
        assert!(matches!(
            step(with(BackupState::Failed(Some(
                JobErrorCode::BackupDumpFailed
            )))),
            Step::Finish {
                status: PromotionStatus::Failed,
                error_code: Some(JobErrorCode::BackupDumpFailed),
                ..
            }
        ));
        assert!(matches!(
            step(with(BackupState::Gone)),
            Step::Finish {
                status: PromotionStatus::Failed,
                error_code: Some(JobErrorCode::BackupStorageFailed),
                ..
            }
        ));
    }

    #[test]
    fn target_and_node_gates_then_promote() {
        assert_eq!(
            step(PromotionObserved {
                target_ready: false,
                ..gated()
            }),
            wait("TargetNotReady")
        );
        assert_eq!(
            step(PromotionObserved {
                node_ready: false,
                ..gated()
            }),
            wait("NodeNotReady")
        );
        let p = reconcile(&spec(), &gated(), &Context::fixture());
        assert_eq!(
            p.step,
            Step::RunJob {
                job_type: JobType::EnvPromote
            }
        );
        assert_eq!(cond(&p, ConditionType::Reconciling).reason, "Promoting");
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
        /// With jobs that succeed and backups that complete, every promotion ends: succeeded when
        /// the gate is clean and the rollback point is usable, blocked when drifted or without a
        /// baseline, failed otherwise; a finished one stays finished.
        #[test]
        fn every_promotion_ends(baseline in any::<bool>(), drifted in any::<bool>(),
                                fresh in any::<bool>(), pre in proptest::option::of(backup_state()),
                                target in any::<bool>()) {
            let mut o = PromotionObserved { has_baseline: baseline, pre_backup: pre,
                                            target_ready: target, ..obs() };
            let ctx = Context::fixture();
            for _ in 0..10 {
                let p = reconcile(&spec(), &o, &ctx);
                match p.step {
                    Step::RunJob { job_type: JobType::DriftCheck } => {
                        o.drift_job = Some(JobObservation::fixture(JobType::DriftCheck));
                        o.drift = Some(if drifted { Drift::Drifted { reason: "x".into() } } else { Drift::Clean });
                    }
                    Step::RunJob { .. } => o.promote_job = Some(JobObservation::fixture(JobType::EnvPromote)),
                    Step::UseBackup { .. } => o.pre_backup = Some(BackupState::Completed),
                    Step::DeclarePreBackup => o.pre_backup = Some(BackupState::InProgress),
                    Step::Wait { .. } => {
                        if o.pre_backup == Some(BackupState::InProgress) { o.pre_backup = Some(BackupState::Completed); }
                        o.target_ready = true;
                    }
                    Step::Block { .. } => o.status = PromotionStatus::Blocked,
                    Step::Finish { status, .. } => o.status = status,
                    Step::Nothing => {}
                }
                if fresh && o.pre_backup.is_none() { o.fresh_backup = Some("b".into()); }
            }
            prop_assert_eq!(reconcile(&spec(), &o, &ctx).step, Step::Nothing);
            let expected = if !baseline || drifted {
                PromotionStatus::Blocked
            } else if matches!(pre, Some(BackupState::Failed(_)) | Some(BackupState::Gone)) {
                PromotionStatus::Failed
            } else {
                PromotionStatus::Succeeded
            };
            prop_assert_eq!(o.status, expected);
        }
    }
}
