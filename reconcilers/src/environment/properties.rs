//! Property tests over arbitrary desired/observed states, driven by a small pure simulator that
//! plays the runtime and a world in which every job succeeds.

use proptest::prelude::*;

use super::*;
use crate::plan::{Action, WaitReason};

const MAX_STEPS: usize = 12;

fn arb_job(max_generation: i64) -> impl Strategy<Value = JobObservation> {
    // Biased towards the reconciler's own jobs, so their failures are common enough to matter.
    let job_type = prop_oneof![
        3 => prop::sample::select(vec![JobType::SiteCreate, JobType::EnvCreate, JobType::HealthCheck, JobType::EnvDelete]),
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
                finished_at: status
                    .is_terminal()
                    .then(|| "2026-02-18T11:00:00Z".to_owned()),
            },
        )
}

fn arb_reset() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(vec!["r1".to_owned(), "r2".to_owned()]))
}

fn arb_spec() -> impl Strategy<Value = EnvSpec> {
    (
        1i64..6,
        prop::sample::select(EnvironmentType::ALL),
        any::<bool>(),
        any::<bool>(),
        arb_reset(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                generation,
                environment_type,
                created_from_source,
                deletion_requested,
                reset_requested_at,
                fastcgi,
                redis,
            )| EnvSpec {
                generation,
                environment_type,
                created_from_source,
                deletion_requested,
                reset_requested_at,
                fastcgi_cache_enabled: fastcgi,
                redis_cache_enabled: redis,
                release_generation: None,
                desired_release: None,
                drift_check_requested_at: None,
                has_drift_baseline: false,
            },
        )
}

fn arb_observed(generation: i64) -> impl Strategy<Value = EnvObserved> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1..=generation),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(arb_job(generation)),
        arb_reset(),
    )
        .prop_map(
            |(
                node_ready,
                ever_ready,
                applied_generation,
                healthy,
                exists_on_node,
                latest_job,
                handled_reset_at,
            )| EnvObserved {
                node_ready,
                ever_ready,
                applied_generation,
                healthy,
                exists_on_node,
                latest_job,
                handled_reset_at,
                data_missing: None,
                routes_outdated: false,
                current_release: None,
                handled_drift_check_at: None,
                conditions: Vec::new(),
            },
        )
}

fn arb_ctx() -> impl Strategy<Value = Context> {
    (
        1u32..5,
        0u32..6,
        0u64..1_000_000,
        any::<bool>(),
        1u64..1_000_000,
    )
        .prop_map(
            |(max_attempts, failed_attempts, retry_delay_ms, retry_due, resync_after_ms)| Context {
                now: "2026-02-18T12:00:00Z".to_owned(),
                max_attempts,
                failed_attempts,
                retry_delay_ms,
                retry_due,
                resync_after_ms,
            },
        )
}

fn arb_state() -> impl Strategy<Value = (EnvSpec, EnvObserved, Context)> {
    arb_spec().prop_flat_map(|spec| {
        let generation = spec.generation;
        (Just(spec), arb_observed(generation), arb_ctx())
    })
}

/// The runtime and a world where every job succeeds: applies a plan's outcome to the state.
struct Simulator {
    spec: EnvSpec,
    observed: EnvObserved,
    ctx: Context,
}

impl Simulator {
    fn succeed(&mut self, job_type: JobType, generation: i64) {
        self.observed.latest_job =
            Some(JobObservation::fixture(job_type).for_generation(generation));
        self.ctx.failed_attempts = 0;
        self.ctx.retry_due = false;
        match job_type {
            JobType::SiteCreate | JobType::EnvCreate => {
                self.observed.applied_generation = Some(generation);
                self.observed.healthy = Some(true);
                self.observed.exists_on_node = Some(true);
            }
            JobType::HealthCheck => self.observed.healthy = Some(true),
            JobType::EnvDelete => {
                self.observed.exists_on_node = Some(false);
                self.observed.healthy = None;
            }
            _ => {}
        }
    }

    fn apply(&mut self, plan: &Plan<Phase>, step: usize) {
        // The runtime stores the status first …
        if let Some(at) = &plan.handled_reset_at {
            self.observed.handled_reset_at = Some(at.clone());
            self.ctx.failed_attempts = 0;
        }
        if plan
            .conditions
            .iter()
            .any(|c| c.type_ == ConditionType::Ready && c.status == ConditionStatus::True)
        {
            self.observed.ever_ready = true;
        }
        self.observed.conditions = plan.conditions.clone();
        // … then executes the action; the world answers.
        match &plan.action {
            Action::RunJob { job_type } => self.succeed(*job_type, self.spec.generation),
            Action::Wait {
                reason: WaitReason::JobInProgress,
            } => {
                let job = self.observed.latest_job.clone().expect("waiting on a job");
                self.succeed(job.job_type, job.generation);
            }
            Action::Wait {
                reason: WaitReason::NodeNotReady,
            } => self.observed.node_ready = true,
            Action::Wait {
                reason: WaitReason::RetryScheduled,
            } => self.ctx.retry_due = true,
            Action::Wait { reason } => panic!("environments never wait for {reason}"),
            // Stalled: the operator resets it.
            Action::Nothing => self.spec.reset_requested_at = Some(format!("sim-reset-{step}")),
            Action::Finalize => unreachable!("the loop stops at Finalize"),
        }
    }
}

fn is_stalled(plan: &Plan<Phase>) -> bool {
    plan.conditions
        .iter()
        .any(|c| c.type_ == ConditionType::Stalled && c.status == ConditionStatus::True)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// From any observed state, applying plans repeatedly converges: to `Nothing` + `active`, or
    /// to `Finalize` when deletion is requested.
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
                    prop_assert_eq!(plan.phase, Phase::Active);
                    prop_assert_eq!(plan.observed_generation, sim.spec.generation);
                    return Ok(());
                }
                _ => sim.apply(&plan, step),
            }
        }
        prop_assert!(false, "no convergence within {} steps: {:?}", MAX_STEPS, reconcile(&sim.spec, &sim.observed, &sim.ctx));
    }

    /// A converged environment yields no action, whatever the attempt bookkeeping, node
    /// readiness or history of other jobs; its only requeue is the resync.
    #[test]
    fn converged_yields_no_action(
        (spec, observed, ctx) in arb_state(),
        exists in prop::option::of(Just(true)),
    ) {
        let spec = EnvSpec { deletion_requested: false, ..spec };
        let observed = EnvObserved {
            applied_generation: Some(spec.generation),
            healthy: Some(true),
            exists_on_node: exists,
            latest_job: observed.latest_job.filter(|j| j.status.is_terminal()),
            handled_reset_at: spec.reset_requested_at.clone(),
            ..observed
        };
        let plan = reconcile(&spec, &observed, &ctx);
        prop_assert!(!is_stalled(&plan));
        prop_assert_eq!(plan.action, Action::Nothing);
        prop_assert_eq!(plan.phase, Phase::Active);
        prop_assert_eq!(plan.requeue_after_ms, Some(ctx.resync_after_ms));
        prop_assert_eq!(plan.handled_reset_at, None);
    }

    /// Same inputs, same plan.
    #[test]
    fn deterministic((spec, observed, ctx) in arb_state()) {
        let first = reconcile(&spec, &observed, &ctx);
        let second = reconcile(&spec.clone(), &observed.clone(), &ctx.clone());
        prop_assert_eq!(first, second);
    }

    /// Rules that hold for every plan.
    #[test]
    fn invariants((spec, observed, ctx) in arb_state()) {
        let plan = reconcile(&spec, &observed, &ctx);
        let mut types: Vec<ConditionType> = plan.conditions.iter().map(|c| c.type_).collect();
        types.sort_by_key(|t| t.as_str());
        prop_assert_eq!(types, vec![ConditionType::Degraded, ConditionType::Ready, ConditionType::Reconciling, ConditionType::Stalled]);
        if observed.latest_job.as_ref().is_some_and(|j| j.is_in_progress()) {
            prop_assert_eq!(&plan.action, &Action::Wait { reason: WaitReason::JobInProgress });
        }
        if let Action::RunJob { job_type } = plan.action {
            prop_assert!(observed.node_ready);
            prop_assert_eq!(job_type == JobType::EnvDelete, spec.deletion_requested);
        }
        if is_stalled(&plan) {
            prop_assert_eq!(&plan.action, &Action::Nothing);
        }
        if spec.deletion_requested {
            prop_assert_eq!(plan.phase, Phase::Deleting);
        } else {
            prop_assert_eq!(plan.phase == Phase::Failed, is_stalled(&plan));
        }
        prop_assert_eq!(plan.requeue_after_ms.is_none(), plan.action == Action::Finalize);
    }
}
