//! Property tests for nodes with a simulator in which every job succeeds and the node answers.

use proptest::prelude::*;

use super::*;
use crate::plan::Action;

const MAX_STEPS: usize = 10;

fn arb_job(max_generation: i64) -> impl Strategy<Value = JobObservation> {
    // Biased towards the reconciler's own jobs, so their failures are common enough to matter.
    let job_type = prop_oneof![
        3 => prop::sample::select(vec![JobType::NodeProvision, JobType::NodeProbe]),
        1 => prop::sample::select(JobType::ALL),
    ];
    (
        job_type,
        prop::sample::select(JobStatus::ALL),
        1..=max_generation,
        prop::option::of(prop::sample::select(JobErrorCode::ALL)),
    )
        .prop_map(
            |(job_type, status, generation, error_code)| JobObservation {
                job_type,
                status,
                generation,
                error_code,
                finished_at: None,
            },
        )
}

fn arb_state() -> impl Strategy<Value = (NodeSpec, NodeObserved, Context)> {
    (1i64..6, any::<bool>()).prop_flat_map(|(generation, deletion_requested)| {
        (
            Just(NodeSpec {
                generation,
                deletion_requested,
                provision_requested_at: None,
            }),
            (
                prop::option::of(1..=generation),
                prop::option::of(any::<bool>()),
                prop::option::of(arb_job(generation)),
                any::<bool>(),
            )
                .prop_map(
                    |(provisioned_generation, reachable, latest_job, hosts_environments)| {
                        NodeObserved {
                            provisioned_generation,
                            reachable,
                            latest_job,
                            hosts_environments,
                            conditions: Vec::new(),
                            panel_stale: false,
                        }
                    },
                ),
            (
                1u32..5,
                0u32..6,
                any::<bool>(),
                0u64..1_000_000,
                1u64..1_000_000,
            )
                .prop_map(
                    |(
                        max_attempts,
                        failed_attempts,
                        retry_due,
                        retry_delay_ms,
                        resync_after_ms,
                    )| Context {
                        now: "2026-02-18T12:00:00Z".to_owned(),
                        max_attempts,
                        failed_attempts,
                        retry_delay_ms,
                        retry_due,
                        resync_after_ms,
                    },
                ),
        )
    })
}

struct Simulator {
    spec: NodeSpec,
    observed: NodeObserved,
    ctx: Context,
}

impl Simulator {
    fn succeed(&mut self, job_type: JobType, generation: i64) {
        self.observed.latest_job =
            Some(JobObservation::fixture(job_type).for_generation(generation));
        self.ctx.failed_attempts = 0;
        self.ctx.retry_due = false;
        match job_type {
            JobType::NodeProvision => {
                self.observed.provisioned_generation = Some(generation);
                self.observed.reachable = Some(true);
            }
            JobType::NodeProbe => self.observed.reachable = Some(true),
            _ => {}
        }
    }

    fn apply(&mut self, plan: &Plan<NodePhase>, step: usize) {
        self.observed.conditions = plan.conditions.clone();
        match &plan.action {
            Action::RunJob { job_type } => self.succeed(*job_type, self.spec.generation),
            Action::Wait {
                reason: WaitReason::JobInProgress,
            } => {
                let job = self.observed.latest_job.clone().expect("waiting on a job");
                self.succeed(job.job_type, job.generation);
            }
            Action::Wait {
                reason: WaitReason::RetryScheduled,
            } => self.ctx.retry_due = true,
            // The operator deletes or moves the environments.
            Action::Wait {
                reason: WaitReason::HostsEnvironments,
            } => self.observed.hosts_environments = false,
            Action::Wait { reason } => panic!("nodes never wait for {reason}"),
            // Stalled: the operator requests provisioning again (a new generation).
            Action::Nothing => {
                self.spec.generation += 1;
                self.spec.provision_requested_at = Some(format!("sim-{step}"));
                self.ctx.failed_attempts = 0;
            }
            Action::Finalize => unreachable!(),
        }
    }
}

fn is_stalled(plan: &Plan<NodePhase>) -> bool {
    plan.conditions
        .iter()
        .any(|c| c.type_ == ConditionType::Stalled && c.status == ConditionStatus::True)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// From any observed state, applying plans repeatedly converges to `Nothing` + `active`, or to
    /// `Finalize` when deletion is requested.
    #[test]
    fn repeated_application_converges((spec, observed, ctx) in arb_state()) {
        let mut sim = Simulator { spec, observed, ctx };
        for step in 0..MAX_STEPS {
            let plan = reconcile(&sim.spec, &sim.observed, &sim.ctx);
            match plan.action {
                Action::Finalize => {
                    prop_assert!(sim.spec.deletion_requested);
                    return Ok(());
                }
                Action::Nothing if !is_stalled(&plan) => {
                    prop_assert!(!sim.spec.deletion_requested);
                    prop_assert_eq!(plan.phase, NodePhase::Active);
                    prop_assert_eq!(plan.observed_generation, sim.spec.generation);
                    return Ok(());
                }
                _ => sim.apply(&plan, step),
            }
        }
        prop_assert!(false, "no convergence within {} steps", MAX_STEPS);
    }

    /// A provisioned, answering node yields no action; only the resync requeues it.
    #[test]
    fn converged_yields_no_action((spec, observed, ctx) in arb_state()) {
        let spec = NodeSpec { deletion_requested: false, ..spec };
        let observed = NodeObserved {
            provisioned_generation: Some(spec.generation),
            reachable: Some(true),
            latest_job: observed.latest_job.filter(|j| j.status.is_terminal()),
            ..observed
        };
        let plan = reconcile(&spec, &observed, &ctx);
        prop_assert_eq!(plan.action, Action::Nothing);
        prop_assert_eq!(plan.phase, NodePhase::Active);
        prop_assert_eq!(plan.requeue_after_ms, Some(ctx.resync_after_ms));
    }

    /// Same inputs, same plan.
    #[test]
    fn deterministic((spec, observed, ctx) in arb_state()) {
        prop_assert_eq!(reconcile(&spec, &observed, &ctx), reconcile(&spec.clone(), &observed.clone(), &ctx.clone()));
    }

    /// Rules that hold for every plan.
    #[test]
    fn invariants((spec, observed, ctx) in arb_state()) {
        let plan = reconcile(&spec, &observed, &ctx);
        prop_assert_eq!(plan.conditions.len(), 4);
        if observed.latest_job.as_ref().is_some_and(|j| j.is_in_progress()) {
            prop_assert_eq!(&plan.action, &Action::Wait { reason: WaitReason::JobInProgress });
        }
        if spec.deletion_requested {
            prop_assert_eq!(plan.phase, NodePhase::Decommissioned);
            let runs_job = matches!(plan.action, Action::RunJob { .. });
            prop_assert!(!runs_job);
        }
        if plan.action == Action::Finalize {
            prop_assert!(!observed.hosts_environments);
        }
        if is_stalled(&plan) {
            prop_assert_eq!(&plan.action, &Action::Nothing);
            prop_assert_ne!(observed.provisioned_generation, Some(spec.generation));
        }
    }
}
