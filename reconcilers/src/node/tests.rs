//! Table-driven tests: one row per node phase and per job transition as the node sees it.

use super::*;
use crate::condition::ConditionStatus::{False, True, Unknown};
use crate::error_code::JobErrorCode::*;
use crate::plan::Action;

fn job(job_type: JobType) -> JobObservation {
    JobObservation::fixture(job_type)
}

fn cond(plan: &Plan<NodePhase>, type_: ConditionType) -> (ConditionStatus, &str) {
    let c = plan.conditions.iter().find(|c| c.type_ == type_);
    let c = c.unwrap_or_else(|| panic!("{type_} missing"));
    (c.status, c.reason.as_str())
}

const PROVISION: Action = Action::RunJob {
    job_type: JobType::NodeProvision,
};
const PROBE: Action = Action::RunJob {
    job_type: JobType::NodeProbe,
};
const RETRY: Action = Action::Wait {
    reason: WaitReason::RetryScheduled,
};
const BUSY: Action = Action::Wait {
    reason: WaitReason::JobInProgress,
};

/// name, spec, observed, ctx, action, phase, Ready (status, reason), Stalled (status, reason)
type Row = (
    &'static str,
    NodeSpec,
    NodeObserved,
    Context,
    Action,
    NodePhase,
    Expect,
    Expect,
);
type Expect = (ConditionStatus, &'static str);

#[test]
fn phases_and_transitions() {
    let ctx = Context::fixture;
    let spec = NodeSpec::fixture;
    let new = NodeObserved::fixture;
    let ok = (False, reason::AS_EXPECTED);
    #[rustfmt::skip]
    let cases: Vec<Row> = vec![
        // name, spec, observed, ctx, action, phase, Ready, Stalled
        ("new node is provisioned", spec(), new(), ctx(), PROVISION, NodePhase::Provisioning, (False, reason::PROVISIONING), ok),
        ("provisioning queued", spec(), new().with_job(job(JobType::NodeProvision).with_status(JobStatus::Queued)), ctx(), BUSY, NodePhase::Provisioning, (False, reason::PROVISIONING), ok),
        ("provisioning running", spec(), new().with_job(job(JobType::NodeProvision).with_status(JobStatus::Running)), ctx(), BUSY, NodePhase::Provisioning, (False, reason::PROVISIONING), ok),
        ("provisioned and answering: active", spec(), NodeObserved::provisioned(1), ctx(), Action::Nothing, NodePhase::Active, (True, reason::PROVISIONED), ok),
        ("provisioning unreachable, backoff running", spec(), new().reachable(Some(false)).with_job(job(JobType::NodeProvision).failed(AnsibleHostUnreachable)), ctx().with_failed_attempts(1), RETRY, NodePhase::Unreachable, (False, reason::UNREACHABLE), ok),
        ("provisioning failed, backoff passed", spec(), new().with_job(job(JobType::NodeProvision).failed(AnsibleHostFailed)), ctx().with_failed_attempts(2).retry_due(), PROVISION, NodePhase::Provisioning, (False, reason::PROVISIONING), ok),
        ("provisioning attempts exhausted", spec(), new().with_job(job(JobType::NodeProvision).failed(AnsibleHostFailed)), ctx().with_failed_attempts(3).retry_due(), Action::Nothing, NodePhase::Provisioning, (False, reason::PROVISIONING), (True, reason::ATTEMPTS_EXHAUSTED)),
        ("provisioning non-retryable", spec(), new().with_job(job(JobType::NodeProvision).failed(AnsibleSyntaxError)), ctx().with_failed_attempts(1), Action::Nothing, NodePhase::Provisioning, (False, reason::PROVISIONING), (True, reason::NON_RETRYABLE_ERROR)),
        ("cancelled provisioning runs again", spec(), new().with_job(job(JobType::NodeProvision).with_status(JobStatus::Cancelled)), ctx(), PROVISION, NodePhase::Provisioning, (False, reason::PROVISIONING), ok),
        ("re-provision request on an active node", spec().generation(2), NodeObserved::provisioned(1), ctx(), PROVISION, NodePhase::Active, (False, reason::SPEC_CHANGED), ok),
        ("stalled re-provision keeps the node active", spec().generation(2), NodeObserved::provisioned(1).with_job(job(JobType::NodeProvision).for_generation(2).failed(JobTimeout)), ctx().with_failed_attempts(1), Action::Nothing, NodePhase::Active, (False, reason::SPEC_CHANGED), (True, reason::NON_RETRYABLE_ERROR)),
        ("a new provision request resumes a stalled node", spec().generation(3), NodeObserved::provisioned(1).with_job(job(JobType::NodeProvision).for_generation(2).failed(JobTimeout)), ctx(), PROVISION, NodePhase::Active, (False, reason::SPEC_CHANGED), ok),
        ("no probe result: probe", spec(), NodeObserved::provisioned(1).reachable(None), ctx(), PROBE, NodePhase::Active, (Unknown, reason::REACHABILITY_UNKNOWN), ok),
        ("last probe unreachable: probe again", spec(), NodeObserved::provisioned(1).reachable(Some(false)), ctx(), PROBE, NodePhase::Unreachable, (False, reason::UNREACHABLE), ok),
        ("failed probe waits for the backoff", spec(), NodeObserved::provisioned(1).reachable(Some(false)).with_job(job(JobType::NodeProbe).failed(AnsibleHostUnreachable)), ctx().with_failed_attempts(1), RETRY, NodePhase::Unreachable, (False, reason::UNREACHABLE), ok),
        ("probe that found it unreachable waits too", spec(), NodeObserved::provisioned(1).reachable(Some(false)).with_job(job(JobType::NodeProbe)), ctx().with_failed_attempts(1), RETRY, NodePhase::Unreachable, (False, reason::UNREACHABLE), ok),
        ("probing never stalls", spec(), NodeObserved::provisioned(1).reachable(Some(false)).with_job(job(JobType::NodeProbe).failed(AnsibleHostUnreachable)), ctx().with_failed_attempts(50).retry_due(), PROBE, NodePhase::Unreachable, (False, reason::UNREACHABLE), ok),
        ("node-wide job running on an active node", spec(), NodeObserved::provisioned(1).with_job(job(JobType::BackupCleanup).with_status(JobStatus::Running)), ctx(), BUSY, NodePhase::Active, (True, reason::PROVISIONED), ok),
        ("deletion waits for its environments", spec().deleting(), NodeObserved::provisioned(1).hosting_environments(), ctx(), Action::Wait { reason: WaitReason::HostsEnvironments }, NodePhase::Decommissioned, (False, reason::DECOMMISSIONING), ok),
        ("deletion waits for a running job", spec().deleting(), NodeObserved::provisioned(1).with_job(job(JobType::NodeProbe).with_status(JobStatus::Running)), ctx(), BUSY, NodePhase::Decommissioned, (False, reason::DECOMMISSIONING), ok),
        ("deletion of an empty node finalises", spec().deleting(), NodeObserved::provisioned(1), ctx(), Action::Finalize, NodePhase::Decommissioned, (False, reason::DECOMMISSIONING), ok),
        ("deletion of an unreachable node finalises", spec().deleting(), new().reachable(Some(false)), ctx(), Action::Finalize, NodePhase::Decommissioned, (False, reason::DECOMMISSIONING), ok),
    ];
    for (name, spec, observed, ctx, action, phase, ready, stalled) in cases {
        let plan = reconcile(&spec, &observed, &ctx);
        assert_eq!(plan.action, action, "{name}: action");
        assert_eq!(plan.phase, phase, "{name}: phase");
        assert_eq!(cond(&plan, ConditionType::Ready), ready, "{name}: Ready");
        assert_eq!(
            cond(&plan, ConditionType::Stalled),
            stalled,
            "{name}: Stalled"
        );
        assert_eq!(plan.conditions.len(), 4, "{name}");
        assert_eq!(plan.handled_reset_at, None, "{name}");
        let reconciling = cond(&plan, ConditionType::Reconciling).0;
        let expect_reconciling = matches!(plan.action, Action::RunJob { .. } | Action::Wait { .. });
        assert_eq!(
            reconciling == True,
            expect_reconciling,
            "{name}: Reconciling"
        );
    }
}

#[test]
fn degraded_when_a_provisioned_node_fails_its_new_spec() {
    let plan = reconcile(
        &NodeSpec::fixture().generation(2),
        &NodeObserved::provisioned(1).with_job(
            job(JobType::NodeProvision)
                .for_generation(2)
                .failed(AnsibleHostFailed),
        ),
        &Context::fixture().with_failed_attempts(1),
    );
    assert_eq!(
        cond(&plan, ConditionType::Degraded),
        (True, "AnsibleHostFailed")
    );
    assert_eq!(plan.observed_generation, 1);
    let plan = reconcile(
        &NodeSpec::fixture(),
        &NodeObserved::fixture().with_job(job(JobType::NodeProvision).failed(AnsibleHostFailed)),
        &Context::fixture().with_failed_attempts(1),
    );
    assert_eq!(
        cond(&plan, ConditionType::Degraded),
        (False, reason::AS_EXPECTED)
    );
}

#[test]
fn who_can_host_environments() {
    assert!(can_host_environments(&NodeObserved::provisioned(1)));
    assert!(!can_host_environments(
        &NodeObserved::provisioned(1).reachable(Some(false))
    ));
    assert!(!can_host_environments(
        &NodeObserved::provisioned(1).reachable(None)
    ));
    assert!(!can_host_environments(
        &NodeObserved::fixture().reachable(Some(true))
    ));
}

#[test]
fn phase_spelling_in_plans() {
    let plan = reconcile(
        &NodeSpec::fixture().deleting(),
        &NodeObserved::fixture(),
        &Context::fixture(),
    );
    assert_eq!(
        serde_json::to_value(&plan).unwrap()["phase"],
        "decommissioned"
    );
}

#[test]
fn run_reasons() {
    let spec = NodeSpec::fixture();
    assert_eq!(run_reason(&spec, &NodeObserved::fixture(), 0), "provision");
    assert_eq!(run_reason(&spec, &NodeObserved::fixture(), 2), "retry");
    let provisioned = NodeObserved::provisioned(spec.generation);
    assert_eq!(run_reason(&spec, &provisioned, 0), "drift");
    let newer = spec.clone().generation(spec.generation + 1);
    assert_eq!(run_reason(&newer, &provisioned, 0), "spec_change");
    assert_eq!(
        run_reason(&spec, &provisioned.clone().panel_stale(), 0),
        "panel"
    );
    assert_eq!(run_reason(&spec.deleting(), &provisioned, 0), "delete");
}

/// The local node's control-plane server block changed (domain, ACME settings, renewal due):
/// provisioning runs again without a generation bump, the node stays active, and once the
/// provisioning reports the desired panel nothing more happens.
#[test]
fn stale_panel_provisions_again_without_a_generation_bump() {
    let spec = NodeSpec::fixture();
    let stale = NodeObserved::provisioned(spec.generation).panel_stale();
    let plan = reconcile(&spec, &stale, &Context::fixture());
    assert_eq!(
        plan.action,
        Action::RunJob {
            job_type: JobType::NodeProvision
        }
    );
    assert_eq!(plan.phase, NodePhase::Active);
    // unreachable: probe first, the panel waits
    let plan = reconcile(&spec, &stale.clone().reachable(None), &Context::fixture());
    assert_eq!(
        plan.action,
        Action::RunJob {
            job_type: JobType::NodeProbe
        }
    );
    let plan = reconcile(
        &spec,
        &NodeObserved::provisioned(spec.generation),
        &Context::fixture(),
    );
    assert_eq!(plan.action, Action::Nothing);
}
