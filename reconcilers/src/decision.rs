//! The part of a reconcile pass that is the same for every kind: given the work a resource needs,
//! choose the action (respecting a job in flight, the attempt gate and the target's readiness) and
//! derive the `Reconciling`, `Degraded` and `Stalled` conditions from that choice. Each kind only
//! says what work is needed, why, and what its `Ready` condition and phase are.

use crate::attempts::{judge, Stall, Verdict};
use crate::condition::{reason, Condition, ConditionStatus, ConditionType, Conditions};
use crate::error_code::JobErrorCode;
use crate::job::{JobObservation, JobType};
use crate::plan::{Action, Context, WaitReason};

/// What a resource needs, as judged by its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Work {
    /// Desired and observed agree.
    Done,
    /// Teardown is complete.
    Finalize,
    /// Work is needed but depends on other resources first (e.g. a node's environments).
    Blocked { wait: WaitReason, message: String },
    /// This job must run.
    Run(Need),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    pub job_type: JobType,
    /// False for observation, which retries forever instead of stalling.
    pub may_stall: bool,
    /// Why the job is needed, as a CamelCase reason for `Reconciling`.
    pub reason: &'static str,
    pub message: String,
}

/// The observed facts the shared part needs.
pub(crate) struct Inputs<'a> {
    pub latest_job: Option<&'a JobObservation>,
    /// Error of the latest attempt of the needed work for the current generation.
    pub failure: Option<JobErrorCode>,
    /// The reset request not handled yet, if any.
    pub reset_pending: Option<&'a str>,
    /// Whether whatever the job runs on (the node) can take work.
    pub target_ready: bool,
    /// Whether the resource has served before, so that a failure degrades it.
    pub served_before: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub action: Action,
    pub stall: Option<Stall>,
    pub requeue_after_ms: Option<u64>,
    pub handled_reset_at: Option<String>,
}

pub(crate) fn decide(work: &Work, inputs: &Inputs<'_>, ctx: &Context) -> Decision {
    let wait = |reason, requeue| Decision {
        action: Action::Wait { reason },
        stall: None,
        requeue_after_ms: Some(requeue),
        handled_reset_at: None,
    };
    // One mutation at a time: whatever the job is, nothing else starts until it ends.
    if inputs
        .latest_job
        .is_some_and(JobObservation::is_in_progress)
    {
        return wait(WaitReason::JobInProgress, ctx.resync_after_ms);
    }
    let handled = inputs.reset_pending.map(str::to_owned);
    match work {
        Work::Done => Decision {
            action: Action::Nothing,
            stall: None,
            requeue_after_ms: Some(ctx.resync_after_ms),
            handled_reset_at: handled,
        },
        Work::Finalize => Decision {
            action: Action::Finalize,
            stall: None,
            requeue_after_ms: None,
            handled_reset_at: None,
        },
        Work::Blocked { wait: reason, .. } => wait(*reason, ctx.resync_after_ms),
        Work::Run(need) => {
            match judge(
                inputs.failure,
                ctx,
                inputs.reset_pending.is_some(),
                need.may_stall,
            ) {
                Verdict::Stalled(stall) => Decision {
                    action: Action::Nothing,
                    stall: Some(stall),
                    requeue_after_ms: Some(ctx.resync_after_ms),
                    handled_reset_at: None,
                },
                Verdict::RetryLater { .. } => wait(WaitReason::RetryScheduled, ctx.retry_delay_ms),
                Verdict::Proceed if !inputs.target_ready => {
                    wait(WaitReason::NodeNotReady, ctx.resync_after_ms)
                }
                Verdict::Proceed => Decision {
                    action: Action::RunJob {
                        job_type: need.job_type,
                    },
                    stall: None,
                    requeue_after_ms: Some(ctx.resync_after_ms),
                    handled_reset_at: handled,
                },
            }
        }
    }
}

/// One condition's computed value, before it is merged into the stored list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derived {
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

impl Derived {
    pub fn new(status: ConditionStatus, reason: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// `Reconciling`: true while work is pending or running.
pub(crate) fn reconciling(
    work: &Work,
    decision: &Decision,
    inputs: &Inputs<'_>,
    ctx: &Context,
) -> Derived {
    use ConditionStatus::{False, True};
    let job_type = match work {
        Work::Run(need) => Some(need.job_type),
        _ => None,
    };
    let job_name = job_type.map_or("work", JobType::as_str);
    match &decision.action {
        Action::Wait { reason: wait } => {
            let message = match wait {
                WaitReason::JobInProgress => match inputs.latest_job {
                    Some(job) => format!("{} job is {}", job.job_type, job.status),
                    None => "a job is in progress".to_owned(),
                },
                WaitReason::NodeNotReady => {
                    format!("waiting for the node to be ready before running {job_name}")
                }
                WaitReason::RetryScheduled => format!(
                    "attempt {} failed with {}; {job_name} runs again in {} ms",
                    ctx.failed_attempts,
                    inputs.failure.map_or("an error", JobErrorCode::as_str),
                    ctx.retry_delay_ms,
                ),
                WaitReason::HostsEnvironments
                | WaitReason::EnvironmentsRemaining
                | WaitReason::DomainServed
                | WaitReason::TakenByOperation => match work {
                    Work::Blocked { message, .. } => message.clone(),
                    _ => String::new(),
                },
            };
            Derived::new(True, wait.as_str(), message)
        }
        Action::RunJob { job_type } => match work {
            Work::Run(need) => Derived::new(
                True,
                need.reason,
                format!("running {job_type}: {}", need.message),
            ),
            _ => Derived::new(True, job_type.as_str(), format!("running {job_type}")),
        },
        Action::Nothing => match decision.stall {
            Some(stall) => Derived::new(False, reason::STALLED, stall.message()),
            None => Derived::new(False, reason::CONVERGED, "nothing to do"),
        },
        Action::Finalize => Derived::new(False, reason::TEARDOWN_COMPLETE, "teardown is complete"),
    }
}

/// `Stalled`: true when no further attempt happens without the operator.
pub(crate) fn stalled(decision: &Decision, inputs: &Inputs<'_>) -> Derived {
    match (decision.stall, inputs.reset_pending) {
        (Some(stall), _) => Derived::new(ConditionStatus::True, stall.reason(), stall.message()),
        (None, Some(at)) => Derived::new(
            ConditionStatus::False,
            reason::RESET,
            format!("reset requested at {at}; attempts start again"),
        ),
        (None, None) => Derived::new(
            ConditionStatus::False,
            reason::AS_EXPECTED,
            "no attempt given up",
        ),
    }
}

/// `Degraded`: the resource served before, work is pending, and its last attempt failed — it keeps
/// serving its previous state while the change has not landed.
pub(crate) fn degraded(work: &Work, inputs: &Inputs<'_>) -> Derived {
    match (work, inputs.failure) {
        (Work::Run(need), Some(code)) if inputs.served_before => Derived::new(
            ConditionStatus::True,
            code.reason(),
            format!(
                "the last attempt of {} failed with {code}; the previous state keeps serving",
                inputs.latest_job.map_or(need.job_type, |j| j.job_type)
            ),
        ),
        _ => Derived::new(
            ConditionStatus::False,
            reason::AS_EXPECTED,
            "the last change landed or none is pending",
        ),
    }
}

/// Merges the derived conditions into the stored list, keeping transition times.
pub(crate) fn merge(
    previous: &[Condition],
    derived: [(ConditionType, Derived); 4],
    generation: i64,
    now: &str,
) -> Vec<Condition> {
    let mut conditions = Conditions::from_vec(previous.to_vec());
    for (type_, d) in derived {
        conditions.set(type_, d.status, d.reason, d.message, generation, now);
    }
    conditions.into_vec()
}
