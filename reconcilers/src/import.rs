//! The import reconciler: import an existing WordPress site from an archive into an environment,
//! behind a fresh backup of the target (the rollback point).
//!
//! # Steps (first match wins)
//!
//! | observed | step |
//! |---|---|
//! | the import already `succeeded` or `failed` | nothing (final) |
//! | a `site_import` job is queued or running | wait |
//! | the last `site_import` succeeded | finish `succeeded` |
//! | the last `site_import` failed with a code that is not retried (bad archive codes, `IMPORT_UNHEALTHY`) or with no attempt left | finish `failed` with that code |
//! | … retryable (`IMPORT_SOURCE_UNAVAILABLE`, `IMPORT_FAILED`, Ansible), backoff running | wait |
//! | the target environment is gone or being deleted | finish `failed` |
//! | no pre-import backup yet and the target was never created on its node (an adoption declares its site in the same request) | wait (`TargetNotCreated`, phase `pending`); finish `failed` when the target's creation gave up (`failed`) |
//! | no pre-import backup declared yet | declare one (full, reason `gate`) |
//! | the pre-import backup failed or is gone | finish `failed` (never import without a rollback point) |
//! | the node is not ready | wait |
//! | otherwise (the pre-import backup stored, or declared and not stored yet) | run `site_import` (`site_adopt` when the source is a site reached over SSH: an adoption) |
//!
//! A pre-import backup that is not stored yet is taken by the `site_import` job itself, beside
//! staging the archive and before anything of the target changes (its facts complete the
//! backup; the backup reconciler waits while that job is queued or running). One job instead of
//! two saves a playbook run and the queue between them; the rollback point still exists before
//! the switch, and a job that could not store it changes nothing and fails (retried like the
//! import; the backup reconciler then tries on its own).
//!
//! The gates reuse the restore's types ([`crate::restore`]): an import is a restore whose source
//! is an archive. A cancelled `site_import` (the control plane died while it ran) runs again: the
//! node side checks the whole archive before it touches anything and removes what an interrupted
//! run left.

use serde::{Deserialize, Serialize};

use crate::attempts::{judge, Verdict};
use crate::condition::{ConditionStatus, ConditionType, Conditions};
use crate::error_code::JobErrorCode;
use crate::job::{JobObservation, JobStatus, JobType};
use crate::plan::Context;
pub use crate::restore::{BackupState, OperationStatus, RestorePlan as ImportPlan, Step};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSpec {
    pub generation: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportObserved {
    /// The stored status (final once `succeeded` or `failed`).
    pub status: OperationStatus,
    /// `None` until the pre-import backup is declared.
    pub pre_backup: Option<BackupState>,
    /// The target exists and is not being deleted.
    pub target_live: bool,
    pub node_ready: bool,
    /// The latest `site_import` (`site_adopt`) job of this import.
    pub latest_job: Option<JobObservation>,
    pub conditions: Vec<crate::condition::Condition>,
    /// The source is a WordPress site read over SSH (an adoption): `site_adopt` runs instead of
    /// `site_import`.
    #[serde(default)]
    pub adoption: bool,
    /// The target environment was created on its node (applied once): an adoption declares its
    /// site in the same request, and there is nothing to back up before it exists.
    #[serde(default = "yes")]
    pub target_created: bool,
    /// The target is `failed` (its creation gave up): an import waiting for it never starts.
    #[serde(default)]
    pub target_failed: bool,
}

fn yes() -> bool {
    true
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

fn next_step(observed: &ImportObserved, ctx: &Context) -> Step {
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
                    message: "the site was imported and the environment is healthy".into(),
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
    if !observed.target_live {
        return fail(
            Some(JobErrorCode::ImportFailed),
            "the target environment is gone or being deleted",
        );
    }
    if observed.pre_backup.is_none() && !observed.target_created {
        if observed.target_failed {
            return fail(
                Some(JobErrorCode::ImportFailed),
                "the target environment could not be created",
            );
        }
        return wait("TargetNotCreated");
    }
    match observed.pre_backup {
        None => return Step::DeclarePreBackup,
        // not stored yet: the job takes it first
        Some(BackupState::Completed | BackupState::InProgress) => {}
        Some(BackupState::Failed(code)) => {
            return fail(
                code.or(Some(JobErrorCode::BackupStorageFailed)),
                "the pre-import backup failed: nothing was imported without a rollback point",
            )
        }
        Some(BackupState::Gone) => {
            return fail(
                Some(JobErrorCode::BackupStorageFailed),
                "the pre-import backup is gone: nothing was imported without a rollback point",
            )
        }
    }
    if !observed.node_ready {
        return wait("NodeNotReady");
    }
    Step::RunJob {
        job_type: if observed.adoption {
            JobType::SiteAdopt
        } else {
            JobType::SiteImport
        },
    }
}

/// One pass. Pure.
pub fn reconcile(desired: &ImportSpec, observed: &ImportObserved, ctx: &Context) -> ImportPlan {
    use ConditionStatus::{False, True};
    let step = next_step(observed, ctx);
    let phase = match &step {
        Step::Nothing => observed.status,
        Step::Finish { status, .. } => *status,
        Step::Wait { reason }
            if (reason == "NodeNotReady" || reason == "TargetNotCreated")
                && observed.pre_backup.is_none() =>
        {
            OperationStatus::Pending
        }
        Step::Wait { .. } | Step::DeclarePreBackup | Step::RunJob { .. } => {
            OperationStatus::Running
        }
    };
    let in_progress = (
        False,
        "InProgress".to_owned(),
        "the import has not finished".to_owned(),
    );
    let (ready, reconciling) = match &step {
        Step::Nothing | Step::Finish { .. } => {
            let (reason, message) = match &step {
                Step::Finish {
                    message,
                    error_code,
                    ..
                } => (
                    error_code.map_or("Imported", JobErrorCode::reason),
                    message.clone(),
                ),
                _ if phase == OperationStatus::Succeeded => {
                    ("Imported", "the import succeeded".to_owned())
                }
                _ => ("Failed", "the import failed".to_owned()),
            };
            (
                (
                    if phase == OperationStatus::Succeeded {
                        True
                    } else {
                        False
                    },
                    reason.to_owned(),
                    message,
                ),
                (
                    False,
                    "Finished".to_owned(),
                    "the import is over".to_owned(),
                ),
            )
        }
        Step::Wait { reason } => (
            in_progress,
            (True, reason.clone(), format!("waiting: {reason}")),
        ),
        Step::DeclarePreBackup => (
            in_progress,
            (
                True,
                "PreImportBackup".to_owned(),
                "taking the pre-import backup of the target".to_owned(),
            ),
        ),
        Step::RunJob { .. } => (
            in_progress,
            (
                True,
                "Importing".to_owned(),
                "running site_import".to_owned(),
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
            "the import failed; declare a new one"
        } else {
            "no attempt given up"
        },
        desired.generation,
        &ctx.now,
    );
    let requeue_after_ms = match &step {
        Step::Nothing | Step::Finish { .. } => None,
        Step::Wait { reason } if reason == "RetryScheduled" => Some(ctx.retry_delay_ms),
        Step::Wait { .. } => Some(ctx.resync_after_ms.min(5_000)),
        _ => Some(ctx.resync_after_ms),
    };
    ImportPlan {
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

    fn spec() -> ImportSpec {
        ImportSpec { generation: 1 }
    }

    fn obs() -> ImportObserved {
        ImportObserved {
            status: OperationStatus::Pending,
            pre_backup: None,
            target_live: true,
            node_ready: true,
            latest_job: None,
            conditions: vec![],
            adoption: false,
            target_created: true,
            target_failed: false,
        }
    }

    fn import_job() -> JobObservation {
        JobObservation::fixture(JobType::SiteImport)
    }

    #[test]
    fn gates_in_order() {
        let ctx = Context::fixture();
        let step = |o: ImportObserved| reconcile(&spec(), &o, &ctx).step;
        assert_eq!(step(obs()), Step::DeclarePreBackup);
        assert_eq!(
            step(ImportObserved {
                pre_backup: Some(BackupState::InProgress),
                ..obs()
            }),
            Step::RunJob {
                job_type: JobType::SiteImport
            },
            "a pre-import backup not stored yet is taken by the job"
        );
        assert_eq!(
            step(ImportObserved {
                pre_backup: Some(BackupState::InProgress),
                node_ready: false,
                ..obs()
            }),
            wait("NodeNotReady")
        );
        assert!(matches!(
            step(ImportObserved {
                pre_backup: Some(BackupState::Failed(None)),
                ..obs()
            }),
            Step::Finish {
                status: OperationStatus::Failed,
                error_code: Some(JobErrorCode::BackupStorageFailed),
                ..
            }
        ));
        assert!(matches!(
            step(ImportObserved {
                pre_backup: Some(BackupState::Gone),
                ..obs()
            }),
            Step::Finish {
                status: OperationStatus::Failed,
                ..
            }
        ));
        let gated = ImportObserved {
            pre_backup: Some(BackupState::Completed),
            ..obs()
        };
        assert_eq!(
            step(gated.clone()),
            Step::RunJob {
                job_type: JobType::SiteImport
            }
        );
        assert_eq!(
            step(ImportObserved {
                node_ready: false,
                ..gated.clone()
            }),
            wait("NodeNotReady")
        );
        assert!(matches!(
            step(ImportObserved {
                target_live: false,
                ..gated
            }),
            Step::Finish {
                status: OperationStatus::Failed,
                error_code: Some(JobErrorCode::ImportFailed),
                ..
            }
        ));
    }

    #[test]
    fn bad_archives_fail_at_once_and_downloads_are_retried() {
        let ctx = Context::fixture();
        let with = |j: JobObservation| ImportObserved {
            pre_backup: Some(BackupState::Completed),
            latest_job: Some(j),
            status: OperationStatus::Running,
            ..obs()
        };
        let p = reconcile(&spec(), &with(import_job()), &ctx);
        assert_eq!(p.phase, OperationStatus::Succeeded);
        for code in [
            JobErrorCode::ImportInvalidArchive,
            JobErrorCode::ImportUnsafeArchive,
            JobErrorCode::ImportMissingDump,
            JobErrorCode::ImportPrefixMismatch,
            JobErrorCode::ImportTooLarge,
            JobErrorCode::ImportChecksumMismatch,
            JobErrorCode::ImportUnhealthy,
        ] {
            assert!(!code.is_retryable(), "{code}");
            let p = reconcile(&spec(), &with(import_job().failed(code)), &ctx);
            assert_eq!(p.phase, OperationStatus::Failed, "{code}");
            assert!(matches!(p.step, Step::Finish { error_code: Some(c), .. } if c == code));
            let ready = p
                .conditions
                .iter()
                .find(|c| c.type_ == ConditionType::Ready)
                .unwrap();
            assert_eq!(ready.reason, code.reason());
        }
        let j = import_job().failed(JobErrorCode::ImportSourceUnavailable);
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
        let cancelled = import_job().with_status(JobStatus::Cancelled);
        assert!(matches!(
            reconcile(&spec(), &with(cancelled), &ctx).step,
            Step::RunJob { .. }
        ));
        let running = import_job().with_status(JobStatus::Running);
        assert_eq!(
            reconcile(&spec(), &with(running), &ctx).step,
            wait("JobInProgress")
        );
    }

    #[test]
    fn adoptions_wait_for_their_new_target_and_run_site_adopt() {
        let ctx = Context::fixture();
        let new_site = ImportObserved {
            adoption: true,
            target_created: false,
            ..obs()
        };
        let p = reconcile(&spec(), &new_site, &ctx);
        assert_eq!(p.step, wait("TargetNotCreated"));
        assert_eq!(p.phase, OperationStatus::Pending);
        assert!(matches!(
            reconcile(
                &spec(),
                &ImportObserved {
                    target_failed: true,
                    ..new_site.clone()
                },
                &ctx
            )
            .step,
            Step::Finish {
                status: OperationStatus::Failed,
                error_code: Some(JobErrorCode::ImportFailed),
                ..
            }
        ));
        assert_eq!(
            reconcile(
                &spec(),
                &ImportObserved {
                    target_created: true,
                    ..new_site.clone()
                },
                &ctx
            )
            .step,
            Step::DeclarePreBackup
        );
        let gated = ImportObserved {
            target_created: true,
            pre_backup: Some(BackupState::Completed),
            ..new_site
        };
        assert_eq!(
            reconcile(&spec(), &gated, &ctx).step,
            Step::RunJob {
                job_type: JobType::SiteAdopt
            }
        );
        // a source that cannot be reached is retried; a refused one is not
        let with = |code| ImportObserved {
            latest_job: Some(JobObservation::fixture(JobType::SiteAdopt).failed(code)),
            status: OperationStatus::Running,
            ..gated.clone()
        };
        let due = Context {
            failed_attempts: 1,
            retry_due: true,
            ..Context::fixture()
        };
        assert!(matches!(
            reconcile(&spec(), &with(JobErrorCode::AdoptSourceUnreachable), &due).step,
            Step::RunJob {
                job_type: JobType::SiteAdopt
            }
        ));
        for code in [
            JobErrorCode::AdoptHostKeyMismatch,
            JobErrorCode::AdoptNotWordpress,
            JobErrorCode::AdoptDatabaseUnreachable,
            JobErrorCode::AdoptMultisiteUnsupported,
        ] {
            assert!(matches!(
                reconcile(&spec(), &with(code), &due).step,
                Step::Finish { status: OperationStatus::Failed, error_code: Some(c), .. } if c == code
            ));
        }
    }

    proptest! {
        /// With backups that complete and jobs that succeed, every import ends, and a finished
        /// one stays finished.
        #[test]
        fn every_import_ends(pre_fails in any::<bool>(), live in any::<bool>()) {
            let mut o = ImportObserved { target_live: live, ..obs() };
            // a failed attempt's backoff has passed by the next pass
            let ctx = Context { retry_due: true, ..Context::fixture() };
            for _ in 0..8 {
                match reconcile(&spec(), &o, &ctx).step {
                    Step::DeclarePreBackup => o.pre_backup = Some(BackupState::InProgress),
                    Step::Wait { .. } => {}
                    // the job takes the backup first: when that fails it changes nothing and
                    // fails; the backup reconciler then fails the backup on its own
                    Step::RunJob { .. } if o.pre_backup == Some(BackupState::InProgress) && pre_fails => {
                        o.latest_job = Some(import_job().failed(JobErrorCode::ImportFailed));
                        o.pre_backup = Some(BackupState::Failed(None));
                    }
                    Step::RunJob { .. } => {
                        o.latest_job = Some(import_job());
                        o.pre_backup = Some(BackupState::Completed);
                    }
                    Step::Finish { status, .. } => o.status = status,
                    Step::Nothing => {}
                }
            }
            prop_assert_eq!(reconcile(&spec(), &o, &ctx).step, Step::Nothing);
            prop_assert_eq!(o.status == OperationStatus::Succeeded, live && !pre_fails);
        }
    }
}
