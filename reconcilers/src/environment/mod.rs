//! The environment reconciler: make one WordPress environment on its node match its spec, keep it
//! matching (self-healing), tear it down when deleted, and derive its phase and conditions.
//!
//! # What is needed (first match wins)
//!
//! | desired / observed | job |
//! |---|---|
//! | deletion requested, no successful `env_delete` for the current generation | `env_delete` |
//! | … and nothing was ever attempted on the node (no job, never applied, not found) | none: `Finalize` |
//! | … successful `env_delete` for the current generation | none: `Finalize` |
//! | never applied | the converge job |
//! | applied generation < generation | the converge job |
//! | applied, but the probe no longer finds it on the node (drift) | the converge job |
//! | applied, last health check failed | the converge job |
//! | applied, no health result known | `health_check` |
//! | healthy, desired release ≠ the release the node serves, not judged `unhealthy` | `env_deploy` (`env_update` for an update) |
//! | healthy, desired release judged `unhealthy` | nothing: `Degraded=True` `ReleaseUnhealthy` (final for that release) |
//! | healthy, release settled, a drift check requested and not handled, baseline known | `drift_check` (against production) |
//! | otherwise | nothing: converged |
//!
//! # Releases
//!
//! Declaring a release (deploy, rollback, update request) bumps the generation and records it as
//! `release_generation`: when the only change since the applied generation is that declaration
//! (`applied + 1 == generation == release_generation`), no converge runs; the release work does,
//! and its success applies the generation. The release the node serves is observed (the deploy's
//! facts, then every probe: `current` → `releases/<id>`), so a `current` switched by hand to
//! another directory is drift the deploy job repairs. An unhealthy release is never retried; a new
//! declaration (another release, or a rollback) is the way on. A `promotion` release still
//! `pending` is built by its Promotion, not here.
//!
//! # Drift check requests
//!
//! `POST …/drift-check` sets `drift_check_requested_at` (and, like a release declaration, records
//! its generation as `release_generation`: the request needs no converge). The reconciler asks for
//! one `drift_check` per requested value once the environment is converged, healthy and its
//! release settled; the runtime runs it against the site's production with this environment's
//! baseline and records the value it acted on (`handled_drift_check_at`), so a value runs once
//! (a failed check is reported on the job and the environment's `last_error_code`, not retried:
//! a new request is the way on). Production and environments without a baseline never run one.
//!
//! The converge job is `site_create` for production and `env_create` for staging and clone. Both are
//! converge playbooks: idempotent, they create what is missing and re-render what exists (cache
//! flags included), and they finish with the health check, reporting `healthy`. `env_create` must
//! not clone over an environment that already exists. (Routing a cache-flag-only change to
//! `env_cache_toggle` is a possible refinement; re-running the converge job is always correct.)
//!
//! # How it runs
//!
//! A queued or running job of the environment (any type) → `Wait`. Otherwise the attempt gate of
//! [`crate::attempts`] applies to the latest attempt of the needed work for the current
//! generation: a converge that exited 0 but left the environment unhealthy counts as a failed
//! attempt with `HEALTH_CHECK_FAILED` (retryable). A job needs its node ready.
//!
//! # Phase (spec §4.1, first match wins)
//!
//! `deleting` (deletion requested) → `failed` (Stalled) → `provisioning` / `cloning` (never Ready
//! yet; `cloning` when created from a source) → `active`. `deploying` and `restoring` belong to the
//! release and restore work, not modelled here.
//!
//! # Decided here
//!
//! * Failures count per generation: a failure of a job started for an older generation neither
//!   stalls nor delays the current one, so a new spec change on a `failed` environment resumes work
//!   without a reset (spec §4.1 leaves this open).
//! * A reset is handled (reported in [`Plan::handled_reset_at`]) only in a pass that acts on it
//!   (runs the job, or finds nothing to do); while it waits for a job or the node it stays pending,
//!   so the old failure can never stall the resource again after the reset.

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::condition::{reason, Condition, ConditionStatus, ConditionType};
use crate::decision::{self, Derived, Inputs, Need, Work};
use crate::error_code::JobErrorCode;
use crate::job::{JobObservation, JobStatus, JobType};
use crate::phase::Phase;
use crate::plan::{Context, Plan};
use crate::str_enum::str_enum;

str_enum! {
    /// Spec §2 `environment_type`.
    pub enum EnvironmentType : "environment type" {
        Production => "production",
        Staging => "staging",
        Clone => "clone",
    }
}

/// The desired state of an environment, as far as this reconciler needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvSpec {
    /// +1 on every spec change, request fields included.
    pub generation: i64,
    pub environment_type: EnvironmentType,
    /// Created from a source environment (`source_environment_id` set): shows `cloning`, not
    /// `provisioning`, until its first Ready.
    pub created_from_source: bool,
    pub deletion_requested: bool,
    /// Request field: reset a `failed` environment.
    pub reset_requested_at: Option<String>,
    /// Cache intent; rendered by the converge job, listed so a change is part of the spec.
    pub fastcgi_cache_enabled: bool,
    pub redis_cache_enabled: bool,
    /// The generation whose only change was a release declaration (see the module docs).
    #[serde(default)]
    pub release_generation: Option<i64>,
    /// The release the environment should serve (`desired_release_id`) and its verdict.
    #[serde(default)]
    pub desired_release: Option<DesiredRelease>,
    /// Request field: check production for drift against this environment's baseline.
    #[serde(default)]
    pub drift_check_requested_at: Option<String>,
    /// The environment has a drift baseline (recorded when it was cloned from production).
    #[serde(default)]
    pub has_drift_baseline: bool,
}

str_enum! {
    /// A release's `health_status` as far as the reconciler cares.
    pub enum ReleaseHealth : "release health" {
        /// Declared, not judged yet (also `unknown`, the old default).
        Pending => "pending",
        Healthy => "healthy",
        Unhealthy => "unhealthy",
    }
}

/// The environment's desired release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredRelease {
    /// The release id = its directory name on the node (`releases/<id>`).
    pub id: String,
    pub health: ReleaseHealth,
    /// Why it is unhealthy.
    pub notes: Option<String>,
    /// `env_deploy` (git, upload, rollback, promotion releases) or `env_update` (an update).
    pub job_type: JobType,
    /// Built by another operation (a promotion) while `pending`: not deployed from here.
    pub built_elsewhere: bool,
}

/// Reasons of the release work.
pub mod release_reason {
    pub const DECLARED: &str = "ReleaseDeclared";
    pub const DRIFT: &str = "ReleaseDrift";
    pub const UNHEALTHY: &str = "ReleaseUnhealthy";
}

/// Reasons of request-field work.
pub mod request_reason {
    pub const DRIFT_CHECK: &str = "DriftCheckRequested";
}

/// What the runtime observed about the environment and its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvObserved {
    /// The hosting node can take work (see [`crate::node::can_host_environments`]).
    pub node_ready: bool,
    /// The environment has been Ready at least once (set by the runtime from a plan's Ready=True).
    pub ever_ready: bool,
    /// Generation the last successful converge applied.
    pub applied_generation: Option<i64>,
    /// Last health check: final HTTP 200 with WordPress content, installed, database answers.
    /// Every converge and `health_check` job reports it.
    pub healthy: Option<bool>,
    /// From the node probe; a successful converge sets it to `Some(true)`.
    pub exists_on_node: Option<bool>,
    /// The latest job of this environment, of any type.
    pub latest_job: Option<JobObservation>,
    /// The last `reset_requested_at` a plan handled.
    pub handled_reset_at: Option<String>,
    /// Data of an existing environment that the probe found missing (e.g. "the database"). It is
    /// reported as `Degraded` and left for a restore: data is never recreated empty.
    #[serde(default)]
    pub data_missing: Option<String>,
    /// The environment's routes (its domains, their certificates, the site URL) differ from
    /// what its last converge rendered: converge again without a generation bump.
    #[serde(default)]
    pub routes_outdated: bool,
    /// The release directory `current` points to on the node (last deploy, then every probe).
    #[serde(default)]
    pub current_release: Option<String>,
    /// The last `drift_check_requested_at` the runtime ran a `drift_check` for.
    #[serde(default)]
    pub handled_drift_check_at: Option<String>,
    /// The conditions stored by the previous pass (their transition times are kept).
    pub conditions: Vec<Condition>,
}

/// The job that converges this environment onto its node.
pub fn converge_job(desired: &EnvSpec) -> JobType {
    match desired.environment_type {
        EnvironmentType::Production => JobType::SiteCreate,
        EnvironmentType::Staging | EnvironmentType::Clone => JobType::EnvCreate,
    }
}

/// The error of the latest attempt of the work this environment needs, for the current
/// generation: a failed job of the reconciler's own kinds, or a converge / health check that
/// succeeded while the environment is unhealthy (`HEALTH_CHECK_FAILED`). The runtime counts these
/// as failed attempts.
pub fn attempt_failure(desired: &EnvSpec, observed: &EnvObserved) -> Option<JobErrorCode> {
    let job = observed.latest_job.as_ref()?;
    if job.generation != desired.generation {
        return None;
    }
    if desired.deletion_requested {
        return (job.job_type == JobType::EnvDelete)
            .then(|| job.failure())
            .flatten();
    }
    if matches!(job.job_type, JobType::EnvDeploy | JobType::EnvUpdate) {
        // A judged release is final: its failure is no failed attempt of the environment.
        return match desired.desired_release.as_ref().map(|r| r.health) {
            Some(ReleaseHealth::Pending) => job.failure(),
            _ => None,
        };
    }
    if !matches!(
        job.job_type,
        JobType::SiteCreate | JobType::EnvCreate | JobType::HealthCheck
    ) {
        return None;
    }
    match job.status {
        JobStatus::Failed => job.failure(),
        JobStatus::Succeeded if observed.healthy == Some(false) => {
            Some(JobErrorCode::HealthCheckFailed)
        }
        _ => None,
    }
}

/// One reconcile pass. Pure: the same inputs always give the same plan.
pub fn reconcile(desired: &EnvSpec, observed: &EnvObserved, ctx: &Context) -> Plan<Phase> {
    if let Some(what) = observed
        .data_missing
        .as_deref()
        .filter(|_| !desired.deletion_requested)
    {
        return data_missing(desired, observed, ctx, what);
    }
    let work = if desired.deletion_requested {
        teardown_work(desired, observed)
    } else {
        converge_work(desired, observed)
    };
    let inputs = Inputs {
        latest_job: observed.latest_job.as_ref(),
        failure: attempt_failure(desired, observed),
        reset_pending: pending_reset(desired, observed),
        target_ready: observed.node_ready,
        served_before: observed.ever_ready,
    };
    let decision = decision::decide(&work, &inputs, ctx);
    let ready_now = matches!(work, Work::Done);

    let releasing = is_release_work(&work)
        || observed.latest_job.as_ref().is_some_and(|j| {
            j.is_in_progress() && matches!(j.job_type, JobType::EnvDeploy | JobType::EnvUpdate)
        });
    let phase = if desired.deletion_requested {
        Phase::Deleting
    } else if decision.stall.is_some() {
        Phase::Failed
    } else if releasing && observed.ever_ready {
        Phase::Deploying
    } else if ready_now || observed.ever_ready {
        Phase::Active
    } else if desired.created_from_source {
        Phase::Cloning
    } else {
        Phase::Provisioning
    };

    let finished = decision.stall.is_some() || matches!(work, Work::Done | Work::Finalize);
    let observed_generation = if finished {
        desired.generation
    } else {
        observed.applied_generation.unwrap_or(0)
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
            (
                ConditionType::Degraded,
                unhealthy_release(desired, observed, &work)
                    .unwrap_or_else(|| decision::degraded(&work, &inputs)),
            ),
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
        handled_reset_at: decision.handled_reset_at,
    }
}

/// Missing data blocks every converge: a rerun would create it empty and hide the loss.
fn data_missing(
    desired: &EnvSpec,
    observed: &EnvObserved,
    ctx: &Context,
    what: &str,
) -> Plan<Phase> {
    use ConditionStatus::{False, True};
    let message =
        format!("{what} is missing on the node; restore a backup (it is never recreated empty)");
    let phase = if observed.ever_ready {
        Phase::Active
    } else if desired.created_from_source {
        Phase::Cloning
    } else {
        Phase::Provisioning
    };
    let conditions = decision::merge(
        &observed.conditions,
        [
            (
                ConditionType::Ready,
                Derived::new(False, reason::DATA_MISSING, message.clone()),
            ),
            (
                ConditionType::Reconciling,
                Derived::new(False, reason::DATA_MISSING, "waiting for the operator"),
            ),
            (
                ConditionType::Degraded,
                Derived::new(True, reason::DATA_MISSING, message),
            ),
            (
                ConditionType::Stalled,
                Derived::new(
                    False,
                    reason::AS_EXPECTED,
                    "nothing is retried while data is missing",
                ),
            ),
        ],
        desired.generation,
        &ctx.now,
    );
    Plan {
        action: crate::plan::Action::Nothing,
        phase,
        conditions,
        observed_generation: observed.applied_generation.unwrap_or(0),
        requeue_after_ms: Some(ctx.resync_after_ms),
        handled_reset_at: None,
    }
}

/// Why a job this reconciler asked for runs (recorded with the job, counted in the metrics):
/// `delete`, `reset`, `retry`, `create`, `spec_change`, or `drift` (the spec was applied, yet
/// the node no longer matches it).
pub fn run_reason(desired: &EnvSpec, observed: &EnvObserved, failed_attempts: u32) -> &'static str {
    if desired.deletion_requested {
        "delete"
    } else if pending_reset(desired, observed).is_some() {
        "reset"
    } else if failed_attempts > 0 {
        "retry"
    } else if matches!(converge_work(desired, observed), Work::Run(ref n) if n.job_type == JobType::DriftCheck)
    {
        "request"
    } else if matches!(converge_work(desired, observed), Work::Run(ref n) if matches!(n.job_type, JobType::EnvDeploy | JobType::EnvUpdate))
    {
        if release_only_pending(desired, observed) {
            "release"
        } else {
            "drift"
        }
    } else {
        match observed.applied_generation {
            None => "create",
            Some(g) if g < desired.generation => "spec_change",
            Some(_) if observed.routes_outdated && observed.exists_on_node != Some(false) => {
                "routes"
            }
            Some(_) => "drift",
        }
    }
}

/// The drift check request the runtime has not acted on yet, if it can run at all (not
/// production, not being deleted, a baseline to compare with).
pub fn pending_drift_check<'a>(desired: &'a EnvSpec, observed: &EnvObserved) -> Option<&'a str> {
    desired
        .drift_check_requested_at
        .as_deref()
        .filter(|at| observed.handled_drift_check_at.as_deref() != Some(*at))
        .filter(|_| {
            desired.has_drift_baseline
                && !desired.deletion_requested
                && desired.environment_type != EnvironmentType::Production
        })
}

fn pending_reset<'a>(desired: &'a EnvSpec, observed: &EnvObserved) -> Option<&'a str> {
    desired
        .reset_requested_at
        .as_deref()
        .filter(|at| observed.handled_reset_at.as_deref() != Some(*at))
}

fn teardown_work(desired: &EnvSpec, observed: &EnvObserved) -> Work {
    let torn_down = observed.latest_job.as_ref().is_some_and(|j| {
        j.job_type == JobType::EnvDelete
            && j.status == JobStatus::Succeeded
            && j.generation >= desired.generation
    });
    // No job row means no playbook ever started (intent is recorded before acting), so there is
    // nothing on the node to remove unless a probe says otherwise.
    let never_attempted = observed.latest_job.is_none()
        && observed.applied_generation.is_none()
        && observed.exists_on_node != Some(true);
    if torn_down || never_attempted {
        return Work::Finalize;
    }
    Work::Run(Need {
        job_type: JobType::EnvDelete,
        may_stall: true,
        reason: reason::DELETING,
        message: "removing the environment from its node".to_owned(),
    })
}

fn converge_work(desired: &EnvSpec, observed: &EnvObserved) -> Work {
    let need = |job_type, reason: &'static str, message: String| {
        Work::Run(Need {
            job_type,
            may_stall: true,
            reason,
            message,
        })
    };
    let converge = converge_job(desired);
    match observed.applied_generation {
        None if desired.created_from_source => need(
            converge,
            reason::CLONING,
            "creating the environment from its source".into(),
        ),
        None => need(
            converge,
            reason::PROVISIONING,
            "creating the environment".into(),
        ),
        Some(applied)
            if applied < desired.generation && !release_only_pending(desired, observed) =>
        {
            need(
                converge,
                reason::SPEC_CHANGED,
                format!(
                    "applying generation {} (applied: {applied})",
                    desired.generation
                ),
            )
        }
        Some(_) if observed.exists_on_node == Some(false) => need(
            converge,
            reason::MISSING_ON_NODE,
            "the environment is missing on its node; recreating it".into(),
        ),
        Some(_) if observed.routes_outdated => need(
            converge,
            reason::ROUTES_CHANGED,
            "its domains, certificates or site URL changed; rendering them".into(),
        ),
        Some(_) => match observed.healthy {
            Some(true) => match release_work(desired, observed) {
                Work::Done => drift_check_work(desired, observed),
                work => work,
            },
            Some(false) => need(
                converge,
                reason::HEALTH_CHECK_FAILED,
                "the last health check failed; converging again".into(),
            ),
            None => need(
                JobType::HealthCheck,
                reason::HEALTH_UNKNOWN,
                "no health check result for the applied generation".into(),
            ),
        },
    }
}

/// The only spec change not applied yet is a release declaration: no converge is needed for it.
fn release_only_pending(desired: &EnvSpec, observed: &EnvObserved) -> bool {
    observed
        .applied_generation
        .is_some_and(|a| a + 1 == desired.generation)
        && desired.release_generation == Some(desired.generation)
}

/// Converged, healthy, release settled: a drift check request not handled yet runs now.
fn drift_check_work(desired: &EnvSpec, observed: &EnvObserved) -> Work {
    match pending_drift_check(desired, observed) {
        Some(at) => Work::Run(Need {
            job_type: JobType::DriftCheck,
            // a request runs once: a failure is reported, never retried or stalled on
            may_stall: false,
            reason: request_reason::DRIFT_CHECK,
            message: format!("checking production for drift (requested at {at})"),
        }),
        None => Work::Done,
    }
}

fn is_release_work(work: &Work) -> bool {
    matches!(work, Work::Run(n) if matches!(n.job_type, JobType::EnvDeploy | JobType::EnvUpdate))
}

/// Converged and healthy: is the desired release the one the node serves?
fn release_work(desired: &EnvSpec, observed: &EnvObserved) -> Work {
    let Some(r) = desired.desired_release.as_ref() else {
        return Work::Done;
    };
    if observed.current_release.as_deref() == Some(r.id.as_str())
        || r.health == ReleaseHealth::Unhealthy
        || (r.built_elsewhere && r.health == ReleaseHealth::Pending)
    {
        return Work::Done;
    }
    let (reason, message) =
        if r.health == ReleaseHealth::Pending || release_only_pending(desired, observed) {
            (
                release_reason::DECLARED,
                format!("release {} is declared; building and switching to it", r.id),
            )
        } else {
            (
                release_reason::DRIFT,
                format!(
                    "the node serves {} instead of release {}; switching back",
                    observed.current_release.as_deref().unwrap_or("no release"),
                    r.id
                ),
            )
        };
    Work::Run(Need {
        job_type: r.job_type,
        may_stall: true,
        reason,
        message,
    })
}

/// `Degraded=True ReleaseUnhealthy` while the desired release is judged unhealthy and the node
/// keeps serving another one.
fn unhealthy_release(desired: &EnvSpec, observed: &EnvObserved, work: &Work) -> Option<Derived> {
    let r = desired.desired_release.as_ref()?;
    if r.health != ReleaseHealth::Unhealthy
        || desired.deletion_requested
        || !matches!(work, Work::Done)
        || observed.current_release.as_deref() == Some(r.id.as_str())
    {
        return None;
    }
    Some(Derived::new(
        ConditionStatus::True,
        release_reason::UNHEALTHY,
        format!(
            "release {} is unhealthy ({}); the environment keeps serving {}",
            r.id,
            r.notes.as_deref().unwrap_or("no reason recorded"),
            observed
                .current_release
                .as_deref()
                .unwrap_or("its previous release")
        ),
    ))
}

fn ready_condition(desired: &EnvSpec, observed: &EnvObserved, work: &Work) -> Derived {
    use ConditionStatus::{False, True, Unknown};
    if desired.deletion_requested {
        return Derived::new(False, reason::DELETING, "deletion requested");
    }
    if let Work::Run(need) = work {
        if need.job_type == JobType::DriftCheck {
            // production is read, this environment keeps serving
            return Derived::new(
                True,
                reason::HEALTHY,
                format!("serving its current release; {}", need.message),
            );
        }
        if is_release_work(work) {
            // the previous release keeps serving while the new one is built and checked
            return Derived::new(
                True,
                reason::HEALTHY,
                format!("serving its current release; {}", need.message),
            );
        }
    }
    match work {
        Work::Done => Derived::new(
            True,
            reason::HEALTHY,
            format!(
                "generation {} is applied and the health check passed",
                desired.generation
            ),
        ),
        Work::Run(need) => {
            let status = if need.reason == reason::HEALTH_UNKNOWN {
                Unknown
            } else {
                False
            };
            let message = match need.reason {
                reason::HEALTH_CHECK_FAILED => match observed.latest_job.as_ref() {
                    Some(job) => format!("the health check after {} failed", job.job_type),
                    None => "the last health check failed".to_owned(),
                },
                _ => need.message.clone(),
            };
            Derived::new(status, need.reason, message)
        }
        Work::Finalize | Work::Blocked { .. } => {
            Derived::new(False, reason::DELETING, "deletion requested")
        }
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl EnvSpec {
    /// A production environment at generation 1, caches on.
    pub fn fixture() -> Self {
        Self {
            generation: 1,
            environment_type: EnvironmentType::Production,
            created_from_source: false,
            deletion_requested: false,
            reset_requested_at: None,
            fastcgi_cache_enabled: true,
            redis_cache_enabled: true,
            release_generation: None,
            desired_release: None,
            drift_check_requested_at: None,
            has_drift_baseline: false,
        }
    }

    /// A drift check requested at `at` (the request's generation bump included), with a
    /// baseline.
    pub fn drift_check_requested(mut self, at: &str) -> Self {
        self.generation += 1;
        self.release_generation = Some(self.generation);
        self.drift_check_requested_at = Some(at.into());
        self.has_drift_baseline = true;
        self
    }

    /// Declares release `id` (pending, deployed by `env_deploy`) as the only change of the next
    /// generation.
    pub fn release_declared(mut self, id: &str) -> Self {
        self.generation += 1;
        self.release_generation = Some(self.generation);
        self.desired_release = Some(DesiredRelease {
            id: id.into(),
            health: ReleaseHealth::Pending,
            notes: None,
            job_type: JobType::EnvDeploy,
            built_elsewhere: false,
        });
        self
    }

    pub fn release_health(mut self, health: ReleaseHealth) -> Self {
        if let Some(r) = self.desired_release.as_mut() {
            r.health = health;
            if health == ReleaseHealth::Unhealthy {
                r.notes = Some("HTTP 500 from http://x.test/".into());
            }
        }
        self
    }

    pub fn generation(mut self, generation: i64) -> Self {
        self.generation = generation;
        self
    }

    /// A staging environment created from production.
    pub fn staging_clone(mut self) -> Self {
        self.environment_type = EnvironmentType::Staging;
        self.created_from_source = true;
        self
    }

    pub fn of_type(mut self, environment_type: EnvironmentType) -> Self {
        self.environment_type = environment_type;
        self
    }

    pub fn deleting(mut self) -> Self {
        self.deletion_requested = true;
        self
    }

    pub fn reset_at(mut self, at: &str) -> Self {
        self.reset_requested_at = Some(at.into());
        self
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl EnvObserved {
    /// A brand-new environment on a ready node: nothing applied, nothing run.
    pub fn fixture() -> Self {
        Self {
            node_ready: true,
            ever_ready: false,
            applied_generation: None,
            healthy: None,
            exists_on_node: None,
            latest_job: None,
            handled_reset_at: None,
            data_missing: None,
            routes_outdated: false,
            current_release: None,
            handled_drift_check_at: None,
            conditions: Vec::new(),
        }
    }

    pub fn handled_drift_check(mut self, at: &str) -> Self {
        self.handled_drift_check_at = Some(at.into());
        self
    }

    pub fn serving(mut self, release: &str) -> Self {
        self.current_release = Some(release.into());
        self
    }

    /// Converged at `generation`: applied, healthy, present, Ready before, last converge succeeded.
    pub fn converged(generation: i64) -> Self {
        Self {
            ever_ready: true,
            applied_generation: Some(generation),
            healthy: Some(true),
            exists_on_node: Some(true),
            latest_job: Some(
                JobObservation::fixture(JobType::SiteCreate).for_generation(generation),
            ),
            ..Self::fixture()
        }
    }

    pub fn with_job(mut self, job: JobObservation) -> Self {
        self.latest_job = Some(job);
        self
    }

    pub fn node_not_ready(mut self) -> Self {
        self.node_ready = false;
        self
    }

    pub fn ever_ready(mut self) -> Self {
        self.ever_ready = true;
        self
    }

    pub fn applied(mut self, generation: i64) -> Self {
        self.applied_generation = Some(generation);
        self
    }

    pub fn healthy(mut self, healthy: Option<bool>) -> Self {
        self.healthy = healthy;
        self
    }

    pub fn exists_on_node(mut self, exists: Option<bool>) -> Self {
        self.exists_on_node = exists;
        self
    }

    pub fn handled_reset(mut self, at: &str) -> Self {
        self.handled_reset_at = Some(at.into());
        self
    }

    pub fn with_conditions(mut self, conditions: Vec<Condition>) -> Self {
        self.conditions = conditions;
        self
    }
}
