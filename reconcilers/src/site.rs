//! The site reconciler. A site does no node work of its own: its environments do. Its phase and
//! conditions mirror theirs, and a deleted site goes once its environments are gone.
//!
//! # Ranking (settles the spec gap "site status reflects the most impactful work pending on any
//! of its environments", `resources-and-states.md` §3.1, §4.1)
//!
//! The site shows the highest-ranked phase among its environments:
//!
//! `deleting` > `failed` > `provisioning` > `cloning` > `restoring` > `deploying` > `active`
//!
//! Why this order: teardown overrides everything because it is irreversible and final; a stalled
//! environment needs the operator, which is more urgent than any work still progressing;
//! `provisioning` and `cloning` mean something is not serving at all yet; `restoring` replaces
//! data while `deploying` only replaces code; `active` is the resting state. A site marked for
//! deletion is `deleting` whatever its environments show; a site without environments yet is
//! `provisioning` (its production environment is created with it).
//!
//! Conditions aggregate the environments' conditions: `Ready` when every environment is Ready;
//! `Reconciling`, `Degraded`, `Stalled` when any environment is.

use serde::{Deserialize, Serialize};

use crate::condition::{reason, Condition, ConditionStatus, ConditionType, Conditions};
use crate::phase::Phase;
use crate::plan::{Action, Context, Plan, WaitReason};

/// The desired state of a site, as far as its status goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSpec {
    pub generation: i64,
    pub deletion_requested: bool,
}

/// One environment of the site as last reconciled: its stored phase and conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentSummary {
    pub phase: Phase,
    pub conditions: Vec<Condition>,
}

/// The site's environments (rows that still exist, deleting ones included) and its stored
/// conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteObserved {
    pub environments: Vec<EnvironmentSummary>,
    pub conditions: Vec<Condition>,
}

/// Rank of a phase for the site summary: higher is more impactful.
pub const fn rank(phase: Phase) -> u8 {
    match phase {
        Phase::Deleting => 6,
        Phase::Failed => 5,
        Phase::Provisioning => 4,
        Phase::Cloning => 3,
        Phase::Restoring => 2,
        Phase::Deploying => 1,
        Phase::Active => 0,
    }
}

/// The most impactful of the environments' phases; `None` for no environments.
pub fn most_impactful(env_phases: &[Phase]) -> Option<Phase> {
    env_phases.iter().copied().max_by_key(|p| rank(*p))
}

/// The site's phase and conditions from its environments'. `previous` is the site's stored
/// condition list (transition times are kept).
pub fn derive(
    desired: &SiteSpec,
    environments: &[EnvironmentSummary],
    previous: &[Condition],
    now: &str,
) -> (Phase, Vec<Condition>) {
    use ConditionStatus::{False, True};
    let total = environments.len();
    let count = |type_| {
        environments
            .iter()
            .filter(|e| Conditions::from_vec(e.conditions.clone()).is_true(type_))
            .count()
    };
    let phases: Vec<Phase> = environments.iter().map(|e| e.phase).collect();
    let phase = if desired.deletion_requested {
        Phase::Deleting
    } else {
        most_impactful(&phases).unwrap_or(Phase::Provisioning)
    };

    let ready = count(ConditionType::Ready);
    let reconciling = count(ConditionType::Reconciling);
    let degraded = count(ConditionType::Degraded);
    let stalled = count(ConditionType::Stalled);

    let ready_c = if desired.deletion_requested {
        (False, reason::DELETING, "deletion requested".to_owned())
    } else if total == 0 {
        (
            False,
            reason::NO_ENVIRONMENTS,
            "the site has no environment yet".to_owned(),
        )
    } else if ready == total {
        (
            True,
            reason::ENVIRONMENTS_READY,
            format!("{ready} of {total} environments are ready"),
        )
    } else {
        (
            False,
            reason::ENVIRONMENTS_NOT_READY,
            format!("{ready} of {total} environments are ready"),
        )
    };
    let reconciling_c = if desired.deletion_requested && total > 0 {
        (
            True,
            WaitReason::EnvironmentsRemaining.as_str(),
            format!("waiting for {total} environments to be deleted"),
        )
    } else if desired.deletion_requested {
        (
            False,
            reason::TEARDOWN_COMPLETE,
            "every environment is deleted".to_owned(),
        )
    } else if reconciling > 0 {
        (
            True,
            reason::ENVIRONMENTS_RECONCILING,
            format!("{reconciling} of {total} environments are reconciling"),
        )
    } else {
        (
            False,
            reason::CONVERGED,
            "no environment is reconciling".to_owned(),
        )
    };
    let any = |n: usize, reason_true: &'static str, what: &str| {
        if n > 0 {
            (
                True,
                reason_true,
                format!("{n} of {total} environments are {what}"),
            )
        } else {
            (
                False,
                reason::AS_EXPECTED,
                format!("no environment is {what}"),
            )
        }
    };
    let degraded_c = any(degraded, reason::ENVIRONMENTS_DEGRADED, "degraded");
    let stalled_c = any(stalled, reason::ENVIRONMENTS_STALLED, "stalled");

    let mut conditions = Conditions::from_vec(previous.to_vec());
    for (type_, (status, reason, message)) in [
        (ConditionType::Ready, ready_c),
        (ConditionType::Reconciling, reconciling_c),
        (ConditionType::Degraded, degraded_c),
        (ConditionType::Stalled, stalled_c),
    ] {
        conditions.set(type_, status, reason, message, desired.generation, now);
    }
    (phase, conditions.into_vec())
}

/// One reconcile pass. A deleted site waits for its environments (whose own reconcilers tear them
/// down), then finalises; otherwise there is nothing to do beyond deriving the status. Site spec
/// changes need no node work, so the current generation is always the observed one.
pub fn reconcile(desired: &SiteSpec, observed: &SiteObserved, ctx: &Context) -> Plan<Phase> {
    let (phase, conditions) = derive(
        desired,
        &observed.environments,
        &observed.conditions,
        &ctx.now,
    );
    let (action, requeue_after_ms) =
        match (desired.deletion_requested, observed.environments.is_empty()) {
            (true, true) => (Action::Finalize, None),
            (true, false) => (
                Action::Wait {
                    reason: WaitReason::EnvironmentsRemaining,
                },
                Some(ctx.resync_after_ms),
            ),
            (false, _) => (Action::Nothing, Some(ctx.resync_after_ms)),
        };
    Plan {
        action,
        phase,
        conditions,
        observed_generation: desired.generation,
        requeue_after_ms,
        handled_reset_at: None,
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl SiteSpec {
    pub fn fixture() -> Self {
        Self {
            generation: 1,
            deletion_requested: false,
        }
    }

    pub fn deleting(mut self) -> Self {
        self.deletion_requested = true;
        self
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl EnvironmentSummary {
    /// An environment in `phase` whose conditions say exactly what is listed as True.
    pub fn fixture(phase: Phase, true_conditions: &[ConditionType]) -> Self {
        let mut conditions = Conditions::new();
        for &t in [
            ConditionType::Ready,
            ConditionType::Reconciling,
            ConditionType::Degraded,
            ConditionType::Stalled,
        ]
        .iter()
        {
            let status = if true_conditions.contains(&t) {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            };
            conditions.set(t, status, "Fixture", "", 1, "2026-02-18T12:00:00Z");
        }
        Self {
            phase,
            conditions: conditions.into_vec(),
        }
    }

    /// Active and Ready, nothing pending.
    pub fn active() -> Self {
        Self::fixture(Phase::Active, &[ConditionType::Ready])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ConditionStatus::{False, True};
    use ConditionType::*;

    fn cond(conditions: &[Condition], type_: ConditionType) -> (ConditionStatus, String) {
        let c = conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status, c.reason.clone())
    }

    #[test]
    fn ranking_is_total_and_as_documented() {
        let order = [
            Phase::Deleting,
            Phase::Failed,
            Phase::Provisioning,
            Phase::Cloning,
            Phase::Restoring,
            Phase::Deploying,
            Phase::Active,
        ];
        for pair in order.windows(2) {
            assert!(rank(pair[0]) > rank(pair[1]), "{} > {}", pair[0], pair[1]);
            assert_eq!(most_impactful(&[pair[1], pair[0]]), Some(pair[0]));
        }
        assert_eq!(order.len(), Phase::ALL.len());
        assert_eq!(most_impactful(&[]), None);
    }

    /// name, spec, environments, site phase, Ready (status, reason)
    type Row = (
        &'static str,
        SiteSpec,
        Vec<EnvironmentSummary>,
        Phase,
        (ConditionStatus, &'static str),
    );

    #[test]
    fn site_phase_table() {
        let env = EnvironmentSummary::fixture;
        let cases: Vec<Row> = vec![
            (
                "no environment yet",
                SiteSpec::fixture(),
                vec![],
                Phase::Provisioning,
                (False, reason::NO_ENVIRONMENTS),
            ),
            (
                "production provisioning",
                SiteSpec::fixture(),
                vec![env(Phase::Provisioning, &[Reconciling])],
                Phase::Provisioning,
                (False, reason::ENVIRONMENTS_NOT_READY),
            ),
            (
                "all active",
                SiteSpec::fixture(),
                vec![EnvironmentSummary::active(), EnvironmentSummary::active()],
                Phase::Active,
                (True, reason::ENVIRONMENTS_READY),
            ),
            (
                "a clone is cloning",
                SiteSpec::fixture(),
                vec![
                    EnvironmentSummary::active(),
                    env(Phase::Cloning, &[Reconciling]),
                ],
                Phase::Cloning,
                (False, reason::ENVIRONMENTS_NOT_READY),
            ),
            (
                "deploying",
                SiteSpec::fixture(),
                vec![
                    EnvironmentSummary::active(),
                    env(Phase::Deploying, &[Ready, Reconciling]),
                ],
                Phase::Deploying,
                (True, reason::ENVIRONMENTS_READY),
            ),
            (
                "restoring beats deploying",
                SiteSpec::fixture(),
                vec![env(Phase::Deploying, &[]), env(Phase::Restoring, &[])],
                Phase::Restoring,
                (False, reason::ENVIRONMENTS_NOT_READY),
            ),
            (
                "failed beats provisioning",
                SiteSpec::fixture(),
                vec![
                    env(Phase::Provisioning, &[]),
                    env(Phase::Failed, &[Stalled]),
                ],
                Phase::Failed,
                (False, reason::ENVIRONMENTS_NOT_READY),
            ),
            (
                "a deleting environment",
                SiteSpec::fixture(),
                vec![
                    env(Phase::Failed, &[Stalled]),
                    env(Phase::Deleting, &[Reconciling]),
                ],
                Phase::Deleting,
                (False, reason::ENVIRONMENTS_NOT_READY),
            ),
            (
                "site deletion wins",
                SiteSpec::fixture().deleting(),
                vec![EnvironmentSummary::active()],
                Phase::Deleting,
                (False, reason::DELETING),
            ),
        ];
        for (name, spec, envs, phase, ready) in cases {
            let (got, conditions) = derive(&spec, &envs, &[], "2026-02-18T12:00:00Z");
            assert_eq!(got, phase, "{name}");
            assert_eq!(
                cond(&conditions, Ready),
                (ready.0, ready.1.to_owned()),
                "{name}"
            );
            assert_eq!(conditions.len(), 4, "{name}");
        }
    }

    #[test]
    fn aggregated_conditions() {
        let envs = [
            EnvironmentSummary::fixture(Phase::Active, &[Ready, Reconciling, Degraded]),
            EnvironmentSummary::fixture(Phase::Failed, &[Stalled]),
        ];
        let (_, c) = derive(&SiteSpec::fixture(), &envs, &[], "t");
        assert_eq!(
            cond(&c, Reconciling),
            (True, reason::ENVIRONMENTS_RECONCILING.into())
        );
        assert_eq!(
            cond(&c, Degraded),
            (True, reason::ENVIRONMENTS_DEGRADED.into())
        );
        assert_eq!(
            cond(&c, Stalled),
            (True, reason::ENVIRONMENTS_STALLED.into())
        );
        let (_, c) = derive(
            &SiteSpec::fixture(),
            &[EnvironmentSummary::active()],
            &[],
            "t",
        );
        assert_eq!(cond(&c, Reconciling), (False, reason::CONVERGED.into()));
        assert_eq!(cond(&c, Stalled), (False, reason::AS_EXPECTED.into()));
    }

    #[test]
    fn deletion_finalises_once_the_environments_are_gone() {
        let ctx = Context::fixture();
        let observed = SiteObserved {
            environments: vec![EnvironmentSummary::fixture(Phase::Deleting, &[Reconciling])],
            conditions: vec![],
        };
        let plan = reconcile(&SiteSpec::fixture().deleting(), &observed, &ctx);
        assert_eq!(
            plan.action,
            Action::Wait {
                reason: WaitReason::EnvironmentsRemaining
            }
        );
        assert_eq!(plan.phase, Phase::Deleting);
        let plan = reconcile(
            &SiteSpec::fixture().deleting(),
            &SiteObserved {
                environments: vec![],
                conditions: vec![],
            },
            &ctx,
        );
        assert_eq!(plan.action, Action::Finalize);
        assert_eq!(plan.requeue_after_ms, None);
        assert_eq!(
            cond(&plan.conditions, Reconciling),
            (False, reason::TEARDOWN_COMPLETE.into())
        );
    }

    fn arb_env() -> impl Strategy<Value = EnvironmentSummary> {
        (
            prop::sample::select(Phase::ALL),
            prop::collection::vec(
                prop::sample::select(vec![Ready, Reconciling, Degraded, Stalled]),
                0..4,
            ),
        )
            .prop_map(|(phase, trues)| EnvironmentSummary::fixture(phase, &trues))
    }

    fn arb_site() -> impl Strategy<Value = (SiteSpec, SiteObserved)> {
        (
            1i64..5,
            any::<bool>(),
            prop::collection::vec(arb_env(), 0..5),
        )
            .prop_map(|(generation, deletion_requested, environments)| {
                (
                    SiteSpec {
                        generation,
                        deletion_requested,
                    },
                    SiteObserved {
                        environments,
                        conditions: vec![],
                    },
                )
            })
    }

    proptest! {
        /// The summary does not depend on the order of the environments and is one of their phases.
        #[test]
        fn ranking_ignores_order(phases in prop::collection::vec(prop::sample::select(Phase::ALL), 1..6)) {
            let mut reversed = phases.clone();
            reversed.reverse();
            let top = most_impactful(&phases).unwrap();
            prop_assert_eq!(Some(top), most_impactful(&reversed));
            prop_assert!(phases.contains(&top));
            prop_assert!(phases.iter().all(|p| rank(*p) <= rank(top)));
        }

        /// Applying plans converges: a deleted site finalises once its environment reconcilers have
        /// removed the environments (the simulator removes them); any other site settles at once.
        #[test]
        fn repeated_application_converges((spec, mut observed) in arb_site()) {
            let ctx = Context::fixture();
            for _ in 0..3 {
                let plan = reconcile(&spec, &observed, &ctx);
                match plan.action {
                    Action::Finalize => { prop_assert!(spec.deletion_requested); return Ok(()); }
                    Action::Nothing => { prop_assert!(!spec.deletion_requested); return Ok(()); }
                    Action::Wait { reason: WaitReason::EnvironmentsRemaining } => observed.environments.clear(),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert!(false, "no convergence");
        }

        /// A site whose environments are all active and Ready yields no action and is Ready.
        #[test]
        fn converged_yields_no_action(n in 1usize..5, generation in 1i64..5) {
            let observed = SiteObserved { environments: vec![EnvironmentSummary::active(); n], conditions: vec![] };
            let plan = reconcile(&SiteSpec { generation, deletion_requested: false }, &observed, &Context::fixture());
            prop_assert_eq!(plan.action, Action::Nothing);
            prop_assert_eq!(plan.phase, Phase::Active);
            prop_assert_eq!(plan.requeue_after_ms, Some(Context::fixture().resync_after_ms));
            prop_assert_eq!(cond(&plan.conditions, Ready).0, True);
        }

        /// Same inputs, same plan.
        #[test]
        fn deterministic((spec, observed) in arb_site()) {
            let ctx = Context::fixture();
            prop_assert_eq!(reconcile(&spec, &observed, &ctx), reconcile(&spec.clone(), &observed.clone(), &ctx.clone()));
        }
    }
}
