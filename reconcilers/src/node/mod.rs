//! The node reconciler: provision a node for the current generation of its spec, keep knowing
//! whether it answers, and let it go once it hosts nothing.
//!
//! # What is needed (first match wins)
//!
//! | desired / observed | action |
//! |---|---|
//! | deletion requested, a job in flight | wait for it |
//! | deletion requested, still hosts environments | wait (`HostsEnvironments`) |
//! | deletion requested, hosts nothing | `Finalize` (Pressluft forgets the node; nothing is removed from it) |
//! | current generation not provisioned | `node_provision` |
//! | provisioned, last probe unreachable or no probe result | `node_probe` |
//! | otherwise | nothing: converged |
//!
//! A re-provision is requested by setting `provision_requested_at` (which bumps the generation).
//! Provisioning follows the attempt gate of [`crate::attempts`] and can stall; a probe is
//! observation and never stalls: while the node does not answer it is probed again after each
//! backoff (capped), so a node that comes back heals by itself. A probe that ran but found the
//! node unreachable counts as a failed attempt with `ANSIBLE_HOST_UNREACHABLE`, so probes never
//! run back to back.
//!
//! # Phase (spec §2 `node_status`; transitions are a spec gap, decided here)
//!
//! `decommissioned` (deletion requested) → `unreachable` (last probe says so) → `provisioning`
//! (never provisioned) → `active`. There is no `failed`: a stalled provisioning keeps its phase and
//! says `Stalled=True`. A re-provision of a provisioned node keeps it `active` with
//! `Reconciling=True`, like pending work on an active environment.

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::condition::{reason, Condition, ConditionStatus, ConditionType};
use crate::decision::{self, Derived, Inputs, Need, Work};
use crate::error_code::JobErrorCode;
use crate::job::{JobObservation, JobStatus, JobType};
use crate::phase::NodePhase;
use crate::plan::{Context, Plan, WaitReason};

/// The desired state of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub generation: i64,
    pub deletion_requested: bool,
    /// Request field: provision again (bumps the generation; the generation is what is compared).
    pub provision_requested_at: Option<String>,
}

/// What the runtime observed about the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeObserved {
    /// Generation of the last successful `node_provision`.
    pub provisioned_generation: Option<i64>,
    /// Last probe (or provisioning run): answers over SSH. `None` = unknown.
    pub reachable: Option<bool>,
    /// The latest node-wide job (`node_provision`, `node_probe`, `backup_cleanup`, …).
    pub latest_job: Option<JobObservation>,
    /// Some environment (deleted or not) still has this node as its host.
    pub hosts_environments: bool,
    /// The conditions stored by the previous pass.
    pub conditions: Vec<Condition>,
    /// Local node: what its last provisioning reported about the control plane's server block
    /// (the digest of its input) differs from the desired one (`control_plane_domain`, the ACME
    /// settings, the service's address, the DNS answer), or the panel's certificate is due for
    /// renewal. Provisioning runs again without a generation bump.
    #[serde(default)]
    pub panel_stale: bool,
}

/// Whether environments may run jobs on this node: provisioned once and answering. A pending
/// re-provision does not block them (node-wide exclusivity is the work queue's concern).
pub fn can_host_environments(observed: &NodeObserved) -> bool {
    observed.provisioned_generation.is_some() && observed.reachable == Some(true)
}

/// The error of the latest attempt of the node's own work for the current generation; the runtime
/// counts these as failed attempts.
pub fn attempt_failure(desired: &NodeSpec, observed: &NodeObserved) -> Option<JobErrorCode> {
    let job = observed.latest_job.as_ref()?;
    if job.generation != desired.generation {
        return None;
    }
    match (job.job_type, job.status) {
        (JobType::NodeProvision | JobType::NodeProbe, JobStatus::Failed) => job.failure(),
        (JobType::NodeProbe, JobStatus::Succeeded) if observed.reachable == Some(false) => {
            Some(JobErrorCode::AnsibleHostUnreachable)
        }
        _ => None,
    }
}

/// One reconcile pass. Pure: the same inputs always give the same plan.
/// Why a job this reconciler asked for runs: `delete`, `retry`, `provision` (never provisioned),
/// `spec_change` (a newer generation, e.g. a requested re-provision), `panel` (the control plane's
/// server block or certificate) or `drift` (services down).
pub fn run_reason(
    desired: &NodeSpec,
    observed: &NodeObserved,
    failed_attempts: u32,
) -> &'static str {
    if desired.deletion_requested {
        "delete"
    } else if failed_attempts > 0 {
        "retry"
    } else {
        match observed.provisioned_generation {
            None => "provision",
            Some(g) if g < desired.generation => "spec_change",
            Some(_) if observed.panel_stale && observed.reachable == Some(true) => "panel",
            Some(_) => "drift",
        }
    }
}

pub fn reconcile(desired: &NodeSpec, observed: &NodeObserved, ctx: &Context) -> Plan<NodePhase> {
    let work = node_work(desired, observed);
    let inputs = Inputs {
        latest_job: observed.latest_job.as_ref(),
        failure: attempt_failure(desired, observed),
        // Nodes have no reset request: a new provision request (new generation) resumes them.
        reset_pending: None,
        // The node is its own target: a job against it is how we find out whether it answers.
        target_ready: true,
        served_before: observed.provisioned_generation.is_some(),
    };
    let decision = decision::decide(&work, &inputs, ctx);

    let phase = if desired.deletion_requested {
        NodePhase::Decommissioned
    } else if observed.reachable == Some(false) {
        NodePhase::Unreachable
    } else if observed.provisioned_generation.is_none() {
        NodePhase::Provisioning
    } else {
        NodePhase::Active
    };

    let finished = decision.stall.is_some() || matches!(work, Work::Done | Work::Finalize);
    let observed_generation = if finished {
        desired.generation
    } else {
        observed.provisioned_generation.unwrap_or(0)
    };

    let conditions = decision::merge(
        &observed.conditions,
        [
            (
                ConditionType::Ready,
                ready_condition(desired, observed, &work),
            ),
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
        observed_generation,
        requeue_after_ms: decision.requeue_after_ms,
        handled_reset_at: None,
    }
}

fn node_work(desired: &NodeSpec, observed: &NodeObserved) -> Work {
    if desired.deletion_requested {
        return if observed.hosts_environments {
            Work::Blocked {
                wait: WaitReason::HostsEnvironments,
                message: "the node still hosts environments; delete or move them first".to_owned(),
            }
        } else {
            Work::Finalize
        };
    }
    let run = |job_type, may_stall, reason: &'static str, message: &str| {
        Work::Run(Need {
            job_type,
            may_stall,
            reason,
            message: message.to_owned(),
        })
    };
    match observed.provisioned_generation {
        None => run(
            JobType::NodeProvision,
            true,
            reason::PROVISIONING,
            "provisioning the node",
        ),
        Some(p) if p < desired.generation => run(
            JobType::NodeProvision,
            true,
            reason::SPEC_CHANGED,
            "provisioning the node for its new spec",
        ),
        Some(_) => match observed.reachable {
            Some(true) if observed.panel_stale => run(
                JobType::NodeProvision,
                true,
                reason::PANEL_CHANGED,
                "serving the control plane's new configuration",
            ),
            Some(true) => Work::Done,
            Some(false) => run(
                JobType::NodeProbe,
                false,
                reason::UNREACHABLE,
                "probing the unreachable node",
            ),
            None => run(
                JobType::NodeProbe,
                false,
                reason::REACHABILITY_UNKNOWN,
                "probing the node",
            ),
        },
    }
}

fn ready_condition(desired: &NodeSpec, observed: &NodeObserved, work: &Work) -> Derived {
    use ConditionStatus::{False, True, Unknown};
    if desired.deletion_requested {
        return Derived::new(False, reason::DECOMMISSIONING, "deletion requested");
    }
    if observed.reachable == Some(false) {
        return Derived::new(
            False,
            reason::UNREACHABLE,
            "the last probe could not reach the node",
        );
    }
    match work {
        Work::Done => Derived::new(
            True,
            reason::PROVISIONED,
            format!(
                "generation {} is provisioned and the node answers",
                desired.generation
            ),
        ),
        Work::Run(need) if need.reason == reason::REACHABILITY_UNKNOWN => {
            Derived::new(Unknown, need.reason, "no probe result since provisioning")
        }
        Work::Run(need) => Derived::new(False, need.reason, need.message.clone()),
        Work::Finalize | Work::Blocked { .. } => {
            Derived::new(False, reason::DECOMMISSIONING, "deletion requested")
        }
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl NodeSpec {
    /// A node at generation 1, not being deleted.
    pub fn fixture() -> Self {
        Self {
            generation: 1,
            deletion_requested: false,
            provision_requested_at: None,
        }
    }

    pub fn generation(mut self, generation: i64) -> Self {
        self.generation = generation;
        self
    }

    pub fn deleting(mut self) -> Self {
        self.deletion_requested = true;
        self
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl NodeObserved {
    /// A registered node nothing has been done to.
    pub fn fixture() -> Self {
        Self {
            provisioned_generation: None,
            reachable: None,
            latest_job: None,
            hosts_environments: false,
            conditions: Vec::new(),
            panel_stale: false,
        }
    }

    /// Provisioned at `generation` and answering.
    pub fn provisioned(generation: i64) -> Self {
        Self {
            provisioned_generation: Some(generation),
            reachable: Some(true),
            latest_job: Some(
                JobObservation::fixture(JobType::NodeProvision).for_generation(generation),
            ),
            ..Self::fixture()
        }
    }

    pub fn with_job(mut self, job: JobObservation) -> Self {
        self.latest_job = Some(job);
        self
    }

    pub fn reachable(mut self, reachable: Option<bool>) -> Self {
        self.reachable = reachable;
        self
    }

    pub fn hosting_environments(mut self) -> Self {
        self.hosts_environments = true;
        self
    }

    pub fn panel_stale(mut self) -> Self {
        self.panel_stale = true;
        self
    }
}
