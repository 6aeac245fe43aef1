//! Table-driven tests: one row per phase and transition of spec §4.1 (phases) and §4.2 (job
//! statuses as the environment sees them).

use super::*;
use crate::condition::ConditionStatus::{False, True, Unknown};
use crate::condition::{ConditionStatus, Conditions};
use crate::error_code::JobErrorCode::*;
use crate::plan::{Action, WaitReason};

fn run(job_type: JobType) -> Action {
    Action::RunJob { job_type }
}

fn wait(reason: WaitReason) -> Action {
    Action::Wait { reason }
}

fn job(job_type: JobType) -> JobObservation {
    JobObservation::fixture(job_type)
}

fn cond(plan: &Plan<Phase>, type_: ConditionType) -> (ConditionStatus, &str) {
    let c = plan.conditions.iter().find(|c| c.type_ == type_);
    let c = c.unwrap_or_else(|| panic!("{type_} missing"));
    (c.status, c.reason.as_str())
}

struct Case {
    name: &'static str,
    spec: EnvSpec,
    observed: EnvObserved,
    ctx: Context,
    action: Action,
    phase: Phase,
    ready: (ConditionStatus, &'static str),
    reconciling: (ConditionStatus, &'static str),
    stalled: (ConditionStatus, &'static str),
}

fn cases() -> Vec<Case> {
    let ctx = Context::fixture;
    let spec = EnvSpec::fixture;
    let new = EnvObserved::fixture;
    let stall_exhausted = (True, reason::ATTEMPTS_EXHAUSTED);
    let stall_fatal = (True, reason::NON_RETRYABLE_ERROR);
    let not_stalled = (False, reason::AS_EXPECTED);
    vec![
        // --- provisioning / cloning: never Ready yet -------------------------------------------
        Case {
            name: "new production environment runs site_create",
            spec: spec(),
            observed: new(),
            ctx: ctx(),
            action: run(JobType::SiteCreate),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, reason::PROVISIONING),
            stalled: not_stalled,
        },
        Case {
            name: "new staging from a source runs env_create and shows cloning",
            spec: spec().staging_clone(),
            observed: new(),
            ctx: ctx(),
            action: run(JobType::EnvCreate),
            phase: Phase::Cloning,
            ready: (False, reason::CLONING),
            reconciling: (True, reason::CLONING),
            stalled: not_stalled,
        },
        Case {
            name: "new clone without a source runs env_create and shows provisioning",
            spec: spec().of_type(EnvironmentType::Clone),
            observed: new(),
            ctx: ctx(),
            action: run(JobType::EnvCreate),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, reason::PROVISIONING),
            stalled: not_stalled,
        },
        Case {
            name: "new environment waits for its node",
            spec: spec(),
            observed: new().node_not_ready(),
            ctx: ctx(),
            action: wait(WaitReason::NodeNotReady),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, "NodeNotReady"),
            stalled: not_stalled,
        },
        Case {
            name: "job queued: wait",
            spec: spec(),
            observed: new().with_job(job(JobType::SiteCreate).with_status(JobStatus::Queued)),
            ctx: ctx(),
            action: wait(WaitReason::JobInProgress),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, "JobInProgress"),
            stalled: not_stalled,
        },
        Case {
            name: "job running: wait, cloning",
            spec: spec().staging_clone(),
            observed: new().with_job(job(JobType::EnvCreate).with_status(JobStatus::Running)),
            ctx: ctx(),
            action: wait(WaitReason::JobInProgress),
            phase: Phase::Cloning,
            ready: (False, reason::CLONING),
            reconciling: (True, "JobInProgress"),
            stalled: not_stalled,
        },
        // --- running -> succeeded ----------------------------------------------------------------
        Case {
            name: "converge succeeded and healthy: active, nothing to do",
            spec: spec(),
            observed: EnvObserved::converged(1),
            ctx: ctx(),
            action: Action::Nothing,
            phase: Phase::Active,
            ready: (True, reason::HEALTHY),
            reconciling: (False, reason::CONVERGED),
            stalled: not_stalled,
        },
        Case {
            name: "first Ready makes the phase active even before ever_ready is recorded",
            spec: spec().staging_clone(),
            observed: EnvObserved {
                ever_ready: false,
                ..EnvObserved::converged(1)
            },
            ctx: ctx(),
            action: Action::Nothing,
            phase: Phase::Active,
            ready: (True, reason::HEALTHY),
            reconciling: (False, reason::CONVERGED),
            stalled: not_stalled,
        },
        // --- running -> queued (retryable failure, attempts left) --------------------------------
        Case {
            name: "converge exited 0 but unhealthy: retry scheduled",
            spec: spec(),
            observed: new()
                .applied(1)
                .healthy(Some(false))
                .exists_on_node(Some(true))
                .with_job(job(JobType::SiteCreate)),
            ctx: ctx().with_failed_attempts(1),
            action: wait(WaitReason::RetryScheduled),
            phase: Phase::Provisioning,
            ready: (False, reason::HEALTH_CHECK_FAILED),
            reconciling: (True, "RetryScheduled"),
            stalled: not_stalled,
        },
        Case {
            name: "unhealthy, retry due: converge again",
            spec: spec(),
            observed: new()
                .applied(1)
                .healthy(Some(false))
                .with_job(job(JobType::SiteCreate)),
            ctx: ctx().with_failed_attempts(1).retry_due(),
            action: run(JobType::SiteCreate),
            phase: Phase::Provisioning,
            ready: (False, reason::HEALTH_CHECK_FAILED),
            reconciling: (True, reason::HEALTH_CHECK_FAILED),
            stalled: not_stalled,
        },
        Case {
            name: "host unreachable, backoff running: wait",
            spec: spec(),
            observed: new().with_job(job(JobType::SiteCreate).failed(AnsibleHostUnreachable)),
            ctx: ctx().with_failed_attempts(1),
            action: wait(WaitReason::RetryScheduled),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, "RetryScheduled"),
            stalled: not_stalled,
        },
        Case {
            name: "host failed, backoff passed: run again",
            spec: spec(),
            observed: new().with_job(job(JobType::SiteCreate).failed(AnsibleHostFailed)),
            ctx: ctx().with_failed_attempts(2).retry_due(),
            action: run(JobType::SiteCreate),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, reason::PROVISIONING),
            stalled: not_stalled,
        },
        // --- running -> failed: Stalled, phase failed --------------------------------------------
        Case {
            name: "attempts exhausted: failed",
            spec: spec(),
            observed: new().with_job(job(JobType::SiteCreate).failed(AnsibleTimeout)),
            ctx: ctx().with_failed_attempts(3).retry_due(),
            action: Action::Nothing,
            phase: Phase::Failed,
            ready: (False, reason::PROVISIONING),
            reconciling: (False, reason::STALLED),
            stalled: stall_exhausted,
        },
        Case {
            name: "non-retryable error: failed at once",
            spec: spec().staging_clone(),
            observed: new().with_job(job(JobType::EnvCreate).failed(AnsibleSyntaxError)),
            ctx: ctx().with_failed_attempts(1),
            action: Action::Nothing,
            phase: Phase::Failed,
            ready: (False, reason::CLONING),
            reconciling: (False, reason::STALLED),
            stalled: stall_fatal,
        },
        Case {
            name: "failed job without an error code is not retried",
            spec: spec(),
            observed: new().with_job(job(JobType::SiteCreate).with_status(JobStatus::Failed)),
            ctx: ctx().with_failed_attempts(1),
            action: Action::Nothing,
            phase: Phase::Failed,
            ready: (False, reason::PROVISIONING),
            reconciling: (False, reason::STALLED),
            stalled: stall_fatal,
        },
        Case {
            name: "health check keeps failing: attempts exhausted",
            spec: spec(),
            observed: new()
                .applied(1)
                .healthy(Some(false))
                .with_job(job(JobType::SiteCreate)),
            ctx: ctx().with_failed_attempts(3).retry_due(),
            action: Action::Nothing,
            phase: Phase::Failed,
            ready: (False, reason::HEALTH_CHECK_FAILED),
            reconciling: (False, reason::STALLED),
            stalled: stall_exhausted,
        },
        Case {
            name: "a failed update of an active environment stalls it too",
            spec: spec().generation(2),
            observed: EnvObserved::converged(1).with_job(
                job(JobType::SiteCreate)
                    .for_generation(2)
                    .failed(JobTimeout),
            ),
            ctx: ctx().with_failed_attempts(1),
            action: Action::Nothing,
            phase: Phase::Failed,
            ready: (False, reason::SPEC_CHANGED),
            reconciling: (False, reason::STALLED),
            stalled: stall_fatal,
        },
        // --- reset ------------------------------------------------------------------------------
        Case {
            name: "reset of a failed environment runs the job again",
            spec: spec().reset_at("2026-02-18T11:00:00Z"),
            observed: new().with_job(job(JobType::SiteCreate).failed(AnsibleSyntaxError)),
            ctx: ctx().with_failed_attempts(3),
            action: run(JobType::SiteCreate),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, reason::PROVISIONING),
            stalled: (False, reason::RESET),
        },
        Case {
            name: "reset skips a running backoff",
            spec: spec().reset_at("r1"),
            observed: new().with_job(job(JobType::SiteCreate).failed(AnsibleHostFailed)),
            ctx: ctx().with_failed_attempts(1),
            action: run(JobType::SiteCreate),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, reason::PROVISIONING),
            stalled: (False, reason::RESET),
        },
        Case {
            name: "reset while the node is not ready: wait, reset stays pending",
            spec: spec().reset_at("r1"),
            observed: new()
                .node_not_ready()
                .with_job(job(JobType::SiteCreate).failed(AnsibleSyntaxError)),
            ctx: ctx().with_failed_attempts(3),
            action: wait(WaitReason::NodeNotReady),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, "NodeNotReady"),
            stalled: (False, reason::RESET),
        },
        Case {
            name: "a handled reset is not applied twice: a new failure stalls again",
            spec: spec().reset_at("r1"),
            observed: new()
                .handled_reset("r1")
                .with_job(job(JobType::SiteCreate).failed(AnsibleSyntaxError)),
            ctx: ctx().with_failed_attempts(1),
            action: Action::Nothing,
            phase: Phase::Failed,
            ready: (False, reason::PROVISIONING),
            reconciling: (False, reason::STALLED),
            stalled: stall_fatal,
        },
        // --- cancelled: back into reconciliation as by a reset -----------------------------------
        Case {
            name: "cancelled converge is run again",
            spec: spec(),
            observed: new().with_job(job(JobType::SiteCreate).with_status(JobStatus::Cancelled)),
            ctx: ctx(),
            action: run(JobType::SiteCreate),
            phase: Phase::Provisioning,
            ready: (False, reason::PROVISIONING),
            reconciling: (True, reason::PROVISIONING),
            stalled: not_stalled,
        },
        // --- active: pending work that does not change the phase ---------------------------------
        Case {
            name: "spec changed on an active environment: converge again, stays active",
            spec: spec().generation(2),
            observed: EnvObserved::converged(1),
            ctx: ctx(),
            action: run(JobType::SiteCreate),
            phase: Phase::Active,
            ready: (False, reason::SPEC_CHANGED),
            reconciling: (True, reason::SPEC_CHANGED),
            stalled: not_stalled,
        },
        Case {
            name: "a new generation resumes a failed environment without a reset",
            spec: spec().generation(2),
            observed: new().applied(1).ever_ready().with_job(
                job(JobType::SiteCreate)
                    .for_generation(1)
                    .failed(AnsibleSyntaxError),
            ),
            ctx: ctx(),
            action: run(JobType::SiteCreate),
            phase: Phase::Active,
            ready: (False, reason::SPEC_CHANGED),
            reconciling: (True, reason::SPEC_CHANGED),
            stalled: not_stalled,
        },
        Case {
            name: "drift: missing on the node is recreated",
            spec: spec().staging_clone(),
            observed: EnvObserved::converged(1).exists_on_node(Some(false)),
            ctx: ctx(),
            action: run(JobType::EnvCreate),
            phase: Phase::Active,
            ready: (False, reason::MISSING_ON_NODE),
            reconciling: (True, reason::MISSING_ON_NODE),
            stalled: not_stalled,
        },
        Case {
            name: "unknown health: run a health check",
            spec: spec(),
            observed: EnvObserved::converged(1).healthy(None),
            ctx: ctx(),
            action: run(JobType::HealthCheck),
            phase: Phase::Active,
            ready: (Unknown, reason::HEALTH_UNKNOWN),
            reconciling: (True, reason::HEALTH_UNKNOWN),
            stalled: not_stalled,
        },
        Case {
            name: "other work running on a converged environment: Ready, Reconciling",
            spec: spec(),
            observed: EnvObserved::converged(1)
                .with_job(job(JobType::BackupCreate).with_status(JobStatus::Running)),
            ctx: ctx(),
            action: wait(WaitReason::JobInProgress),
            phase: Phase::Active,
            ready: (True, reason::HEALTHY),
            reconciling: (True, "JobInProgress"),
            stalled: not_stalled,
        },
        Case {
            name: "a failed job of other work does not stall the environment",
            spec: spec(),
            observed: EnvObserved::converged(1)
                .with_job(job(JobType::BackupCreate).failed(AnsibleSyntaxError)),
            ctx: ctx().with_failed_attempts(3),
            action: Action::Nothing,
            phase: Phase::Active,
            ready: (True, reason::HEALTHY),
            reconciling: (False, reason::CONVERGED),
            stalled: not_stalled,
        },
        Case {
            name: "converged environment needs no node",
            spec: spec(),
            observed: EnvObserved::converged(1).node_not_ready(),
            ctx: ctx(),
            action: Action::Nothing,
            phase: Phase::Active,
            ready: (True, reason::HEALTHY),
            reconciling: (False, reason::CONVERGED),
            stalled: not_stalled,
        },
        // --- deleting: wins over everything -----------------------------------------------------
        Case {
            name: "deletion runs env_delete",
            spec: spec().generation(2).deleting(),
            observed: EnvObserved::converged(1),
            ctx: ctx(),
            action: run(JobType::EnvDelete),
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (True, reason::DELETING),
            stalled: not_stalled,
        },
        Case {
            name: "deletion waits for a running job",
            spec: spec().generation(2).deleting(),
            observed: EnvObserved::converged(1)
                .with_job(job(JobType::SiteCreate).with_status(JobStatus::Running)),
            ctx: ctx(),
            action: wait(WaitReason::JobInProgress),
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (True, "JobInProgress"),
            stalled: not_stalled,
        },
        Case {
            name: "deletion waits for the node",
            spec: spec().generation(2).deleting(),
            observed: EnvObserved::converged(1).node_not_ready(),
            ctx: ctx(),
            action: wait(WaitReason::NodeNotReady),
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (True, "NodeNotReady"),
            stalled: not_stalled,
        },
        Case {
            name: "successful teardown finalises",
            spec: spec().generation(2).deleting(),
            observed: EnvObserved::converged(1).with_job(job(JobType::EnvDelete).for_generation(2)),
            ctx: ctx(),
            action: Action::Finalize,
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (False, reason::TEARDOWN_COMPLETE),
            stalled: not_stalled,
        },
        Case {
            name: "a teardown of an older generation does not count",
            spec: spec().generation(3).deleting(),
            observed: EnvObserved::converged(1).with_job(job(JobType::EnvDelete).for_generation(2)),
            ctx: ctx(),
            action: run(JobType::EnvDelete),
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (True, reason::DELETING),
            stalled: not_stalled,
        },
        Case {
            name: "never attempted on the node: finalise at once",
            spec: spec().generation(2).deleting(),
            observed: new().node_not_ready(),
            ctx: ctx(),
            action: Action::Finalize,
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (False, reason::TEARDOWN_COMPLETE),
            stalled: not_stalled,
        },
        Case {
            name: "failed create still needs a teardown",
            spec: spec().generation(2).deleting(),
            observed: new().with_job(job(JobType::SiteCreate).failed(AnsibleSyntaxError)),
            ctx: ctx(),
            action: run(JobType::EnvDelete),
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (True, reason::DELETING),
            stalled: not_stalled,
        },
        Case {
            name: "teardown retry is scheduled",
            spec: spec().generation(2).deleting(),
            observed: EnvObserved::converged(1).with_job(
                job(JobType::EnvDelete)
                    .for_generation(2)
                    .failed(AnsibleHostUnreachable),
            ),
            ctx: ctx().with_failed_attempts(1),
            action: wait(WaitReason::RetryScheduled),
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (True, "RetryScheduled"),
            stalled: not_stalled,
        },
        Case {
            name: "stalled teardown stays deleting (deleting wins over failed)",
            spec: spec().generation(2).deleting(),
            observed: EnvObserved::converged(1).with_job(
                job(JobType::EnvDelete)
                    .for_generation(2)
                    .failed(AnsibleUnexpectedError),
            ),
            ctx: ctx().with_failed_attempts(1),
            action: Action::Nothing,
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (False, reason::STALLED),
            stalled: stall_fatal,
        },
        Case {
            name: "deletion of a stalled environment tears it down",
            spec: spec().deleting(),
            observed: new().with_job(job(JobType::SiteCreate).failed(AnsibleSyntaxError)),
            ctx: ctx().with_failed_attempts(1),
            action: run(JobType::EnvDelete),
            phase: Phase::Deleting,
            ready: (False, reason::DELETING),
            reconciling: (True, reason::DELETING),
            stalled: not_stalled,
        },
    ]
}

#[test]
fn phases_and_transitions() {
    for case in cases() {
        let plan = reconcile(&case.spec, &case.observed, &case.ctx);
        let n = case.name;
        assert_eq!(plan.action, case.action, "{n}: action");
        assert_eq!(plan.phase, case.phase, "{n}: phase");
        assert_eq!(cond(&plan, ConditionType::Ready), case.ready, "{n}: Ready");
        assert_eq!(
            cond(&plan, ConditionType::Reconciling),
            case.reconciling,
            "{n}: Reconciling"
        );
        assert_eq!(
            cond(&plan, ConditionType::Stalled),
            case.stalled,
            "{n}: Stalled"
        );
        assert_eq!(plan.conditions.len(), 4, "{n}: exactly the four conditions");
        assert!(
            plan.conditions
                .iter()
                .all(|c| c.observed_generation == case.spec.generation),
            "{n}"
        );
        let expected_requeue = match plan.action {
            Action::Finalize => None,
            Action::Wait {
                reason: WaitReason::RetryScheduled,
            } => Some(case.ctx.retry_delay_ms),
            _ => Some(case.ctx.resync_after_ms),
        };
        assert_eq!(plan.requeue_after_ms, expected_requeue, "{n}: requeue");
        let reset_handled = case.spec.reset_requested_at.is_some()
            && case.spec.reset_requested_at != case.observed.handled_reset_at
            && matches!(plan.action, Action::RunJob { .. } | Action::Nothing);
        assert_eq!(
            plan.handled_reset_at.is_some(),
            reset_handled,
            "{n}: handled reset"
        );
        if reset_handled {
            assert_eq!(plan.handled_reset_at, case.spec.reset_requested_at, "{n}");
        }
    }
}

#[test]
fn retry_message_names_the_error_code() {
    let plan = reconcile(
        &EnvSpec::fixture(),
        &EnvObserved::fixture()
            .applied(1)
            .healthy(Some(false))
            .with_job(job(JobType::SiteCreate)),
        &Context::fixture().with_failed_attempts(1),
    );
    let c = plan
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Reconciling)
        .unwrap();
    assert!(c.message.contains("HEALTH_CHECK_FAILED"), "{}", c.message);
    assert_eq!(plan.requeue_after_ms, Some(60_000));
}

#[test]
fn degraded_only_when_serving_and_the_last_change_failed() {
    let failing = job(JobType::SiteCreate)
        .for_generation(2)
        .failed(AnsibleHostFailed);
    let cases = [
        (
            "active, update failed",
            EnvObserved::converged(1).with_job(failing.clone()),
            (True, "AnsibleHostFailed"),
        ),
        (
            "never served",
            EnvObserved::fixture().with_job(failing),
            (False, reason::AS_EXPECTED),
        ),
        (
            "active, update pending",
            EnvObserved::converged(1),
            (False, reason::AS_EXPECTED),
        ),
    ];
    for (name, observed, expected) in cases {
        let plan = reconcile(
            &EnvSpec::fixture().generation(2),
            &observed,
            &Context::fixture().with_failed_attempts(1),
        );
        assert_eq!(cond(&plan, ConditionType::Degraded), expected, "{name}");
    }
}

#[test]
fn observed_generation_is_what_was_finished() {
    let cases = [
        (
            "converged",
            EnvSpec::fixture().generation(4),
            EnvObserved::converged(4),
            4,
        ),
        (
            "pending update",
            EnvSpec::fixture().generation(4),
            EnvObserved::converged(3),
            3,
        ),
        (
            "never applied",
            EnvSpec::fixture().generation(2),
            EnvObserved::fixture(),
            0,
        ),
        (
            "stalled",
            EnvSpec::fixture().generation(2),
            EnvObserved::fixture().with_job(
                job(JobType::SiteCreate)
                    .for_generation(2)
                    .failed(JobTimeout),
            ),
            2,
        ),
    ];
    for (name, spec, observed, expected) in cases {
        let plan = reconcile(&spec, &observed, &Context::fixture());
        assert_eq!(plan.observed_generation, expected, "{name}");
    }
}

#[test]
fn transition_times_survive_an_unchanged_status() {
    let spec = EnvSpec::fixture().generation(2);
    let first = reconcile(
        &spec,
        &EnvObserved::converged(1),
        &Context::fixture().at("2026-02-18T12:00:00Z"),
    );
    // Work goes on: Ready stays False, Reconciling stays True, so their transition times stay.
    let observed = EnvObserved::converged(1)
        .with_job(
            job(JobType::SiteCreate)
                .for_generation(2)
                .with_status(JobStatus::Running),
        )
        .with_conditions(first.conditions.clone());
    let second = reconcile(
        &spec,
        &observed,
        &Context::fixture().at("2026-02-18T12:01:00Z"),
    );
    for c in &second.conditions {
        assert_eq!(c.last_transition_at, "2026-02-18T12:00:00Z", "{}", c.type_);
    }
    // It lands: Ready and Reconciling flip and take the new time; Degraded and Stalled do not.
    let observed = EnvObserved::converged(2).with_conditions(second.conditions);
    let third = reconcile(
        &spec,
        &observed,
        &Context::fixture().at("2026-02-18T12:02:00Z"),
    );
    let at = |t| {
        third
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
            .last_transition_at
            .as_str()
    };
    assert_eq!(at(ConditionType::Ready), "2026-02-18T12:02:00Z");
    assert_eq!(at(ConditionType::Reconciling), "2026-02-18T12:02:00Z");
    assert_eq!(at(ConditionType::Degraded), "2026-02-18T12:00:00Z");
    assert_eq!(at(ConditionType::Stalled), "2026-02-18T12:00:00Z");
}

#[test]
fn other_stored_conditions_are_kept() {
    let mut extra = Conditions::new();
    extra.set(
        ConditionType::DriftClean,
        True,
        "Clean",
        "",
        1,
        "2026-01-01T00:00:00Z",
    );
    let plan = reconcile(
        &EnvSpec::fixture(),
        &EnvObserved::converged(1).with_conditions(extra.into_vec()),
        &Context::fixture(),
    );
    assert_eq!(plan.conditions.len(), 5);
    assert_eq!(plan.conditions[0].type_, ConditionType::DriftClean);
}

#[test]
fn attempt_failure_is_what_the_runtime_counts() {
    let spec = EnvSpec::fixture().generation(2);
    let cases = [
        (
            "failed converge",
            EnvObserved::fixture().with_job(
                job(JobType::SiteCreate)
                    .for_generation(2)
                    .failed(AnsibleHostFailed),
            ),
            Some(AnsibleHostFailed),
        ),
        (
            "succeeded but unhealthy",
            EnvObserved::fixture()
                .healthy(Some(false))
                .with_job(job(JobType::SiteCreate).for_generation(2)),
            Some(HealthCheckFailed),
        ),
        (
            "health check job found it unhealthy",
            EnvObserved::fixture()
                .healthy(Some(false))
                .with_job(job(JobType::HealthCheck).for_generation(2)),
            Some(HealthCheckFailed),
        ),
        (
            "older generation",
            EnvObserved::fixture().with_job(
                job(JobType::SiteCreate)
                    .for_generation(1)
                    .failed(AnsibleHostFailed),
            ),
            None,
        ),
        (
            "other work",
            EnvObserved::fixture().with_job(
                job(JobType::BackupCreate)
                    .for_generation(2)
                    .failed(AnsibleHostFailed),
            ),
            None,
        ),
        (
            "healthy",
            EnvObserved::fixture()
                .healthy(Some(true))
                .with_job(job(JobType::SiteCreate).for_generation(2)),
            None,
        ),
    ];
    for (name, observed, expected) in cases {
        assert_eq!(attempt_failure(&spec, &observed), expected, "{name}");
    }
    let deleting = spec.clone().deleting();
    let teardown_failed = EnvObserved::fixture().with_job(
        job(JobType::EnvDelete)
            .for_generation(2)
            .failed(AnsibleHostFailed),
    );
    assert_eq!(
        attempt_failure(&deleting, &teardown_failed),
        Some(AnsibleHostFailed)
    );
    let create_failed = EnvObserved::fixture().with_job(
        job(JobType::SiteCreate)
            .for_generation(2)
            .failed(AnsibleHostFailed),
    );
    assert_eq!(attempt_failure(&deleting, &create_failed), None);
}

#[test]
fn spec_serializes_with_spec_spellings() {
    let json = serde_json::to_value(EnvSpec::fixture().staging_clone()).unwrap();
    assert_eq!(json["environment_type"], "staging");
    let plan = reconcile(
        &EnvSpec::fixture(),
        &EnvObserved::fixture(),
        &Context::fixture(),
    );
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["phase"], "provisioning");
    assert_eq!(
        json["action"],
        serde_json::json!({"kind": "run_job", "job_type": "site_create"})
    );
    assert_eq!(serde_json::from_value::<Plan<Phase>>(json).unwrap(), plan);
}

#[test]
fn missing_data_is_degraded_and_never_recreated() {
    let observed = EnvObserved {
        data_missing: Some("the database".into()),
        ..EnvObserved::converged(1)
    };
    let plan = reconcile(&EnvSpec::fixture(), &observed, &Context::fixture());
    assert_eq!(
        plan.action,
        Action::Nothing,
        "no converge may recreate the database empty"
    );
    assert_eq!(plan.phase, Phase::Active);
    let get = |t| plan.conditions.iter().find(|c| c.type_ == t).unwrap();
    assert_eq!(get(ConditionType::Degraded).status, ConditionStatus::True);
    assert_eq!(get(ConditionType::Degraded).reason, reason::DATA_MISSING);
    assert!(get(ConditionType::Degraded)
        .message
        .contains("the database"));
    assert_eq!(get(ConditionType::Ready).status, ConditionStatus::False);
    // Deleting still works: teardown is not blocked by missing data.
    let plan = reconcile(
        &EnvSpec::fixture().deleting(),
        &observed,
        &Context::fixture(),
    );
    assert_eq!(plan.phase, Phase::Deleting);
    assert_ne!(plan.action, Action::Nothing);
}

#[test]
fn run_reasons() {
    let spec = EnvSpec::fixture();
    assert_eq!(run_reason(&spec, &EnvObserved::fixture(), 0), "create");
    assert_eq!(run_reason(&spec, &EnvObserved::fixture(), 1), "retry");
    let applied = EnvObserved::converged(spec.generation);
    assert_eq!(run_reason(&spec, &applied, 0), "drift");
    let newer = spec.clone().generation(spec.generation + 1);
    assert_eq!(run_reason(&newer, &applied, 0), "spec_change");
    let reset = spec.clone().reset_at("2026-11-23T10:00:00.000Z");
    assert_eq!(run_reason(&reset, &applied, 2), "reset");
    assert_eq!(
        run_reason(
            &reset,
            &applied.clone().handled_reset("2026-11-23T10:00:00.000Z"),
            0
        ),
        "drift"
    );
    assert_eq!(run_reason(&spec.deleting(), &applied, 1), "delete");
}

// ------------------------------------------------------------------ releases

fn release_ctx() -> Context {
    Context::fixture()
}

#[test]
fn a_declared_release_is_deployed_without_a_converge() {
    // generation 2 only declared release r1: no site_create, env_deploy at once
    let spec = EnvSpec::fixture().release_declared("r1");
    let observed = EnvObserved::converged(1);
    let plan = reconcile(&spec, &observed, &release_ctx());
    assert_eq!(plan.action, run(JobType::EnvDeploy));
    assert_eq!(plan.phase, Phase::Deploying);
    assert_eq!(cond(&plan, ConditionType::Ready), (True, reason::HEALTHY));
    assert_eq!(
        cond(&plan, ConditionType::Reconciling),
        (True, release_reason::DECLARED)
    );
    assert_eq!(run_reason(&spec, &observed, 0), "release");
}

#[test]
fn a_release_declared_with_another_pending_change_converges_first() {
    // the cache flag changed at generation 2, the release at generation 3: converge first
    let spec = EnvSpec::fixture().generation(2).release_declared("r1");
    let plan = reconcile(&spec, &EnvObserved::converged(1), &release_ctx());
    assert_eq!(plan.action, run(JobType::SiteCreate));
    // once converged (the converge keeps `current`), the release follows
    let plan = reconcile(&spec, &EnvObserved::converged(3), &release_ctx());
    assert_eq!(plan.action, run(JobType::EnvDeploy));
}

#[test]
fn deploying_while_the_job_runs_and_active_once_served() {
    let spec = EnvSpec::fixture().release_declared("r1");
    let running = EnvObserved::converged(1).with_job(
        job(JobType::EnvDeploy)
            .for_generation(2)
            .with_status(JobStatus::Running),
    );
    let plan = reconcile(&spec, &running, &release_ctx());
    assert_eq!(plan.action, wait(WaitReason::JobInProgress));
    assert_eq!(plan.phase, Phase::Deploying);
    let done = EnvObserved::converged(2)
        .with_job(job(JobType::EnvDeploy).for_generation(2))
        .serving("r1");
    let spec = spec.release_health(ReleaseHealth::Healthy);
    let plan = reconcile(&spec, &done, &release_ctx());
    assert_eq!(plan.action, Action::Nothing);
    assert_eq!(plan.phase, Phase::Active);
    assert_eq!(plan.observed_generation, 2);
    assert_eq!(
        cond(&plan, ConditionType::Degraded),
        (False, reason::AS_EXPECTED)
    );
}

#[test]
fn an_unhealthy_release_is_final_and_degrades() {
    let spec = EnvSpec::fixture()
        .release_declared("r2")
        .release_health(ReleaseHealth::Unhealthy);
    // the runtime applies a release-only generation once its release is judged
    let observed = EnvObserved::converged(2)
        .with_job(
            job(JobType::EnvDeploy)
                .for_generation(2)
                .failed(JobErrorCode::ReleaseUnhealthy),
        )
        .serving("r1");
    let plan = reconcile(&spec, &observed, &release_ctx());
    assert_eq!(plan.action, Action::Nothing, "never retried");
    assert_eq!(plan.phase, Phase::Active, "still serving r1");
    assert_eq!(
        cond(&plan, ConditionType::Degraded),
        (True, release_reason::UNHEALTHY)
    );
    let degraded = plan
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Degraded)
        .unwrap();
    assert!(
        degraded.message.contains("HTTP 500"),
        "{}",
        degraded.message
    );
    assert!(degraded.message.contains("r1"), "{}", degraded.message);
    assert_eq!(cond(&plan, ConditionType::Stalled).0, False);
    assert_eq!(attempt_failure(&spec, &observed), None);
    // a new declaration (here: a rollback to r1, which the node serves) clears it
    let mut back = spec.clone();
    back.generation += 1;
    back.release_generation = Some(back.generation);
    back.desired_release = Some(DesiredRelease {
        id: "r1".into(),
        health: ReleaseHealth::Healthy,
        notes: None,
        job_type: JobType::EnvDeploy,
        built_elsewhere: false,
    });
    let plan = reconcile(&back, &observed, &release_ctx());
    assert_eq!(plan.action, Action::Nothing);
    assert_eq!(cond(&plan, ConditionType::Degraded).0, False);
}

#[test]
fn a_failed_deploy_of_a_pending_release_is_retried_like_any_attempt() {
    let spec = EnvSpec::fixture().release_declared("r1");
    let observed = EnvObserved::converged(1).with_job(
        job(JobType::EnvDeploy)
            .for_generation(2)
            .failed(JobErrorCode::AnsibleHostUnreachable),
    );
    assert_eq!(
        attempt_failure(&spec, &observed),
        Some(JobErrorCode::AnsibleHostUnreachable)
    );
    let mut ctx = release_ctx();
    ctx.failed_attempts = 1;
    ctx.retry_due = true;
    let plan = reconcile(&spec, &observed, &ctx);
    assert_eq!(plan.action, run(JobType::EnvDeploy));
}

#[test]
fn current_switched_by_hand_is_repaired() {
    let spec = EnvSpec::fixture()
        .release_declared("r2")
        .release_health(ReleaseHealth::Healthy);
    let observed = EnvObserved::converged(2)
        .with_job(job(JobType::EnvDeploy).for_generation(2))
        .serving("r1");
    let plan = reconcile(&spec, &observed, &release_ctx());
    assert_eq!(plan.action, run(JobType::EnvDeploy));
    assert_eq!(
        cond(&plan, ConditionType::Reconciling),
        (True, release_reason::DRIFT)
    );
    assert_eq!(run_reason(&spec, &observed, 0), "drift");
}

#[test]
fn no_release_work_before_the_environment_is_healthy() {
    let spec = EnvSpec::fixture().release_declared("r1");
    let plan = reconcile(
        &spec,
        &EnvObserved::converged(1).healthy(Some(false)),
        &release_ctx(),
    );
    assert_eq!(plan.action, run(JobType::SiteCreate));
    let plan = reconcile(
        &spec,
        &EnvObserved::converged(1).healthy(None),
        &release_ctx(),
    );
    assert_eq!(plan.action, run(JobType::HealthCheck));
}

#[test]
fn a_pending_promotion_release_is_left_to_its_promotion() {
    let mut spec = EnvSpec::fixture().release_declared("p1");
    spec.desired_release.as_mut().unwrap().built_elsewhere = true;
    let plan = reconcile(&spec, &EnvObserved::converged(1), &release_ctx());
    assert_eq!(plan.action, Action::Nothing);
    // once judged healthy it is repaired like any release
    let spec = spec.release_health(ReleaseHealth::Healthy);
    let plan = reconcile(
        &spec,
        &EnvObserved::converged(1).serving("r0"),
        &release_ctx(),
    );
    assert_eq!(plan.action, run(JobType::EnvDeploy));
}

#[test]
fn an_update_release_runs_env_update() {
    let mut spec = EnvSpec::fixture().release_declared("u1");
    spec.desired_release.as_mut().unwrap().job_type = JobType::EnvUpdate;
    let plan = reconcile(&spec, &EnvObserved::converged(1), &release_ctx());
    assert_eq!(plan.action, run(JobType::EnvUpdate));
    assert_eq!(plan.phase, Phase::Deploying);
}

#[test]
fn a_drift_check_request_runs_once_without_a_converge() {
    let at = "2026-12-05T19:00:00Z";
    let spec = EnvSpec::fixture().staging_clone().drift_check_requested(at);
    // generation 2 holds only the request: no env_create, the drift check runs
    let observed = EnvObserved::converged(1);
    let plan = reconcile(&spec, &observed, &release_ctx());
    assert_eq!(plan.action, run(JobType::DriftCheck));
    assert_eq!(plan.phase, Phase::Active);
    assert_eq!(cond(&plan, ConditionType::Ready), (True, reason::HEALTHY));
    assert_eq!(
        cond(&plan, ConditionType::Reconciling),
        (True, request_reason::DRIFT_CHECK)
    );
    assert_eq!(run_reason(&spec, &observed, 0), "request");
    // while it runs: wait
    let running = observed.clone().with_job(
        job(JobType::DriftCheck)
            .for_generation(2)
            .with_status(JobStatus::Running),
    );
    assert_eq!(
        reconcile(&spec, &running, &release_ctx()).action,
        Action::Wait {
            reason: WaitReason::JobInProgress
        }
    );
    // handled (the runtime records the value it acted on): converged, even when the job failed
    for status in [JobStatus::Succeeded, JobStatus::Failed] {
        let done = observed
            .clone()
            .with_job(
                job(JobType::DriftCheck)
                    .for_generation(2)
                    .with_status(status),
            )
            .handled_drift_check(at);
        let plan = reconcile(&spec, &done, &release_ctx());
        assert_eq!(plan.action, Action::Nothing, "{status:?}");
        assert_eq!(plan.observed_generation, 2);
        assert_eq!(cond(&plan, ConditionType::Stalled).0, False);
    }
    // a newer request runs again
    let mut again = spec.clone();
    again.drift_check_requested_at = Some("2026-12-05T19:05:00Z".into());
    let plan = reconcile(
        &again,
        &observed.clone().handled_drift_check(at),
        &release_ctx(),
    );
    assert_eq!(plan.action, run(JobType::DriftCheck));
}

#[test]
fn no_drift_check_without_baseline_on_production_or_before_converged() {
    let at = "2026-12-05T19:00:00Z";
    let mut no_baseline = EnvSpec::fixture().staging_clone().drift_check_requested(at);
    no_baseline.has_drift_baseline = false;
    assert_eq!(
        reconcile(&no_baseline, &EnvObserved::converged(1), &release_ctx()).action,
        Action::Nothing
    );
    let production = EnvSpec::fixture().drift_check_requested(at);
    assert_eq!(
        reconcile(&production, &EnvObserved::converged(1), &release_ctx()).action,
        Action::Nothing
    );
    // another pending change converges first, an unhealthy environment converges first
    let spec = EnvSpec::fixture().staging_clone().drift_check_requested(at);
    assert_eq!(
        reconcile(
            &spec.clone().generation(3),
            &EnvObserved::converged(1),
            &release_ctx()
        )
        .action,
        run(JobType::EnvCreate)
    );
    assert_eq!(
        reconcile(
            &spec,
            &EnvObserved::converged(1).healthy(Some(false)),
            &release_ctx()
        )
        .action,
        run(JobType::EnvCreate)
    );
}
