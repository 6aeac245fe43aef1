//! The domain reconciler: obtain (and renew) a domain's certificate on its environment's node, and
//! remove it after the environment stopped serving the name. Serving itself — the HTTP and HTTPS
//! server blocks, the redirect, the site URL — is rendered by the environment's converge from its
//! routes (the domains with their certificates); this reconciler only owns the certificate.
//!
//! # What is needed (first match wins)
//!
//! | desired / observed | work |
//! |---|---|
//! | deletion requested, the environment still renders the name | wait (`DomainServed`) |
//! | … no certificate was ever installed and no job ran | `Finalize` |
//! | … `domain_remove` succeeded for the current generation | `Finalize` |
//! | … otherwise | `domain_remove` |
//! | TLS mode `none` | nothing: the environment serves it over HTTP |
//! | `acme` and the DNS answer does not include the node's address | nothing, `DNS_NOT_POINTING`, recheck soon: **no ACME request** |
//! | no certificate for the current generation, or it does not cover the names | `domain_add` (`Issuing`) |
//! | `acme`, fewer than `renew_before_secs` left, and the last issue is over an hour old | `domain_add` with renewal (`Renewing`) |
//! | otherwise | nothing |
//!
//! Renewal is observation, not a timer: the certificate's expiry is observed state. A renewal
//! that still leaves the certificate inside the window (e.g. a window longer than the ACME
//! server's certificate lifetime) is not repeated for an hour, so the reconciler never loops hot.
//! (The first issue does not count: a window longer than a fresh certificate renews it at once.)
//! Failures count per generation with backoff (`ACME_RATE_LIMITED` and friends are retryable;
//! `CERTIFICATE_INVALID` is not: the operator uploads another certificate).
//!
//! # Phase (`tls_status`)
//!
//! `failed` (Stalled) → `active` (certificate installed, or mode `none`) → `pending`.

use serde::{Deserialize, Serialize};

use crate::condition::{reason, ConditionStatus, ConditionType};
use crate::decision::{self, Derived, Inputs, Need, Work};
use crate::error_code::JobErrorCode;
use crate::job::{JobObservation, JobStatus, JobType};
use crate::plan::{Action, Context, Plan, WaitReason};
use crate::str_enum::str_enum;

/// Renewals that did not leave the window are not repeated sooner than this.
pub const RENEWAL_QUIET_SECS: i64 = 3600;
/// How soon a domain whose DNS does not point at the node is checked again.
pub const DNS_RECHECK_MS: u64 = 30_000;

str_enum! {
    /// How a domain gets its certificate.
    pub enum TlsMode : "TLS mode" {
        /// ACME HTTP-01 through the node's nginx (the default).
        Acme => "acme",
        /// An uploaded certificate and key.
        Custom => "custom",
        /// Plain HTTP.
        None => "none",
    }
}

str_enum! {
    /// Spec `tls_status`: the domain's phase.
    pub enum DomainPhase : "domain phase" {
        Pending => "pending",
        Active => "active",
        Failed => "failed",
        Disabled => "disabled",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSpec {
    pub generation: i64,
    pub tls_mode: TlsMode,
    pub deletion_requested: bool,
    /// From the settings (`tls_renew_before_days`).
    pub renew_before_secs: i64,
}

/// The installed certificate, as the last `domain_add` (or the probe) reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateState {
    /// The domain generation it was installed for (names and mode of that generation).
    pub generation: i64,
    /// Seconds until it expires (negative: expired), computed by the runtime from `not_after`.
    pub expires_in_secs: i64,
    /// Seconds since the last renewal (not the first issue), if it was ever renewed.
    pub secs_since_renewal: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainObserved {
    pub node_ready: bool,
    /// `acme` only: does the DNS answer include the node's address? `None`: not known.
    pub dns_points_to_node: Option<bool>,
    /// Human detail of the DNS answer, for the condition message.
    pub dns_detail: String,
    pub certificate: Option<CertificateState>,
    /// The environment's last converge rendered this domain.
    pub served: bool,
    pub latest_job: Option<JobObservation>,
    pub conditions: Vec<crate::condition::Condition>,
}

/// The error of the latest attempt of this domain's work for the current generation.
pub fn attempt_failure(desired: &DomainSpec, observed: &DomainObserved) -> Option<JobErrorCode> {
    let job = observed.latest_job.as_ref()?;
    if job.generation != desired.generation {
        return None;
    }
    let expected = if desired.deletion_requested {
        JobType::DomainRemove
    } else {
        JobType::DomainAdd
    };
    (job.job_type == expected).then(|| job.failure()).flatten()
}

/// Why a `domain_add` / `domain_remove` runs: `delete`, `retry`, `create`, `spec_change`, `renew`.
pub fn run_reason(desired: &DomainSpec, observed: &DomainObserved, failed: u32) -> &'static str {
    if desired.deletion_requested {
        "delete"
    } else if failed > 0 {
        "retry"
    } else {
        match &observed.certificate {
            None => "create",
            Some(c) if c.generation < desired.generation => "spec_change",
            Some(_) => "renew",
        }
    }
}

/// Whether the `domain_add` this plan runs must replace a valid certificate (renewal).
pub fn force_renewal(desired: &DomainSpec, observed: &DomainObserved) -> bool {
    observed.certificate.as_ref().is_some_and(|c| {
        c.generation >= desired.generation && c.expires_in_secs < desired.renew_before_secs
    })
}

fn work(desired: &DomainSpec, observed: &DomainObserved) -> Work {
    if desired.deletion_requested {
        if observed.served {
            return Work::Blocked {
                wait: WaitReason::DomainServed,
                message: "waiting for the environment to stop serving the name".into(),
            };
        }
        let removed = observed.latest_job.as_ref().is_some_and(|j| {
            j.job_type == JobType::DomainRemove
                && j.status == JobStatus::Succeeded
                && j.generation >= desired.generation
        });
        if removed || (observed.certificate.is_none() && observed.latest_job.is_none()) {
            return Work::Finalize;
        }
        return Work::Run(Need {
            job_type: JobType::DomainRemove,
            may_stall: true,
            reason: reason::DELETING,
            message: "removing the certificate from the node".into(),
        });
    }
    if desired.tls_mode == TlsMode::None {
        return Work::Done;
    }
    let issue = |reason: &'static str, message: String| {
        Work::Run(Need {
            job_type: JobType::DomainAdd,
            may_stall: true,
            reason,
            message,
        })
    };
    match &observed.certificate {
        None => issue(reason::ISSUING, "obtaining the certificate".into()),
        Some(c) if c.generation < desired.generation => issue(
            reason::ISSUING,
            "replacing the certificate for the changed domain".into(),
        ),
        Some(c)
            if desired.tls_mode == TlsMode::Acme
                && c.expires_in_secs < desired.renew_before_secs
                && c.secs_since_renewal.is_none_or(|s| s >= RENEWAL_QUIET_SECS) =>
        {
            issue(
                reason::RENEWING,
                format!(
                    "the certificate expires in {} days; renewing",
                    c.expires_in_secs.div_euclid(86_400)
                ),
            )
        }
        Some(_) => Work::Done,
    }
}

/// One reconcile pass. Pure: the same inputs always give the same plan.
pub fn reconcile(
    desired: &DomainSpec,
    observed: &DomainObserved,
    ctx: &Context,
) -> Plan<DomainPhase> {
    use ConditionStatus::{False, True};
    // The DNS gate comes before any ACME request (and is not a failed attempt: nothing ran).
    if !desired.deletion_requested
        && desired.tls_mode == TlsMode::Acme
        && observed.dns_points_to_node != Some(true)
        && observed.certificate.is_none()
        && !observed
            .latest_job
            .as_ref()
            .is_some_and(JobObservation::is_in_progress)
    {
        let message = if observed.dns_points_to_node.is_none() {
            format!("DNS not checked yet: {}", observed.dns_detail)
        } else {
            observed.dns_detail.clone()
        };
        let conditions = decision::merge(
            &observed.conditions,
            [
                (
                    ConditionType::Ready,
                    Derived::new(False, reason::DNS_NOT_POINTING, message.clone()),
                ),
                (
                    ConditionType::Reconciling,
                    Derived::new(
                        True,
                        reason::DNS_NOT_POINTING,
                        "no certificate is requested until the DNS points at the node; rechecking",
                    ),
                ),
                (
                    ConditionType::Degraded,
                    Derived::new(False, reason::AS_EXPECTED, "nothing served yet"),
                ),
                (
                    ConditionType::Stalled,
                    Derived::new(False, reason::AS_EXPECTED, "the DNS is checked again"),
                ),
            ],
            desired.generation,
            &ctx.now,
        );
        return Plan {
            action: Action::Nothing,
            phase: DomainPhase::Pending,
            conditions,
            observed_generation: 0,
            requeue_after_ms: Some(DNS_RECHECK_MS),
            handled_reset_at: None,
        };
    }

    let work = work(desired, observed);
    let inputs = Inputs {
        latest_job: observed.latest_job.as_ref(),
        failure: attempt_failure(desired, observed),
        reset_pending: None,
        target_ready: observed.node_ready,
        served_before: observed.served,
    };
    let mut decision = decision::decide(&work, &inputs, ctx);
    // Renewal windows and DNS are time-dependent observations: look again within a minute.
    if let Some(ms) = decision.requeue_after_ms.as_mut() {
        *ms = (*ms).min(60_000);
    }
    let installed = desired.tls_mode == TlsMode::None
        || observed
            .certificate
            .as_ref()
            .is_some_and(|c| c.generation >= desired.generation && c.expires_in_secs > 0);
    let phase = if decision.stall.is_some() {
        DomainPhase::Failed
    } else if installed {
        DomainPhase::Active
    } else {
        DomainPhase::Pending
    };
    let ready = if desired.deletion_requested {
        Derived::new(False, reason::DELETING, "deletion requested")
    } else if installed && observed.served {
        Derived::new(
            True,
            reason::SERVING,
            if desired.tls_mode == TlsMode::None {
                "served over HTTP by its environment"
            } else {
                "certificate installed and served by its environment"
            },
        )
    } else if installed {
        Derived::new(
            False,
            reason::WAITING_FOR_ENVIRONMENT,
            "installed; waiting for the environment to serve it",
        )
    } else {
        match &work {
            Work::Run(need) => Derived::new(False, need.reason, need.message.clone()),
            _ => Derived::new(False, reason::ISSUING, "no certificate yet"),
        }
    };
    let finished = decision.stall.is_some() || matches!(work, Work::Done | Work::Finalize);
    let conditions = decision::merge(
        &observed.conditions,
        [
            (ConditionType::Ready, ready),
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
        observed_generation: if finished {
            desired.generation
        } else {
            observed.certificate.as_ref().map_or(0, |c| c.generation)
        },
        requeue_after_ms: decision.requeue_after_ms,
        handled_reset_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobStatus;

    const DAY: i64 = 86_400;

    fn spec() -> DomainSpec {
        DomainSpec {
            generation: 1,
            tls_mode: TlsMode::Acme,
            deletion_requested: false,
            renew_before_secs: 30 * DAY,
        }
    }

    fn observed() -> DomainObserved {
        DomainObserved {
            node_ready: true,
            dns_points_to_node: Some(true),
            dns_detail: "shop.example.test → 127.0.0.1 (the node)".into(),
            certificate: None,
            served: false,
            latest_job: None,
            conditions: vec![],
        }
    }

    fn cert(
        generation: i64,
        expires_in_days: i64,
        secs_since_renewal: Option<i64>,
    ) -> Option<CertificateState> {
        Some(CertificateState {
            generation,
            expires_in_secs: expires_in_days * DAY,
            secs_since_renewal,
        })
    }

    fn job(job_type: JobType, status: JobStatus, code: Option<JobErrorCode>) -> JobObservation {
        JobObservation {
            job_type,
            status,
            generation: 1,
            error_code: code,
            finished_at: Some("2026-02-18T11:00:00Z".into()),
        }
    }

    fn ready(plan: &Plan<DomainPhase>) -> (ConditionStatus, String) {
        let c = plan
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Ready)
            .unwrap();
        (c.status, c.reason.clone())
    }

    fn run(job_type: JobType) -> Action {
        Action::RunJob { job_type }
    }

    #[test]
    fn dns_not_pointing_makes_no_acme_request_and_rechecks_soon() {
        for dns in [Some(false), None] {
            let o = DomainObserved {
                dns_points_to_node: dns,
                ..observed()
            };
            let p = reconcile(&spec(), &o, &Context::fixture());
            assert_eq!(p.action, Action::Nothing, "dns {dns:?}");
            assert_eq!(p.phase, DomainPhase::Pending);
            assert_eq!(
                ready(&p),
                (ConditionStatus::False, reason::DNS_NOT_POINTING.into())
            );
            assert_eq!(p.requeue_after_ms, Some(DNS_RECHECK_MS));
        }
    }

    #[test]
    fn custom_and_none_need_no_dns() {
        let o = DomainObserved {
            dns_points_to_node: Some(false),
            ..observed()
        };
        let custom = DomainSpec {
            tls_mode: TlsMode::Custom,
            ..spec()
        };
        assert_eq!(
            reconcile(&custom, &o, &Context::fixture()).action,
            run(JobType::DomainAdd)
        );
        let none = DomainSpec {
            tls_mode: TlsMode::None,
            ..spec()
        };
        let p = reconcile(&none, &o, &Context::fixture());
        assert_eq!(p.action, Action::Nothing);
        assert_eq!(p.phase, DomainPhase::Active);
    }

    #[test]
    fn issues_then_waits_for_the_environment_then_serves() {
        let p = reconcile(&spec(), &observed(), &Context::fixture());
        assert_eq!(p.action, run(JobType::DomainAdd));
        assert_eq!(run_reason(&spec(), &observed(), 0), "create");
        let o = DomainObserved {
            certificate: cert(1, 89, None),
            latest_job: Some(job(JobType::DomainAdd, JobStatus::Succeeded, None)),
            ..observed()
        };
        let p = reconcile(&spec(), &o, &Context::fixture());
        assert_eq!(p.action, Action::Nothing);
        assert_eq!(p.phase, DomainPhase::Active);
        assert_eq!(
            ready(&p),
            (
                ConditionStatus::False,
                reason::WAITING_FOR_ENVIRONMENT.into()
            )
        );
        let p = reconcile(
            &spec(),
            &DomainObserved { served: true, ..o },
            &Context::fixture(),
        );
        assert_eq!(p.action, Action::Nothing);
        assert_eq!(ready(&p), (ConditionStatus::True, reason::SERVING.into()));
        // a pointed DNS that later breaks does not take a served certificate away
        let o = DomainObserved {
            served: true,
            dns_points_to_node: Some(false),
            certificate: cert(1, 89, None),
            ..observed()
        };
        assert_eq!(
            reconcile(&spec(), &o, &Context::fixture()).action,
            Action::Nothing
        );
    }

    #[test]
    fn renews_inside_the_window_but_never_hot() {
        let o = DomainObserved {
            certificate: cert(1, 20, None),
            served: true,
            ..observed()
        };
        let p = reconcile(&spec(), &o, &Context::fixture());
        assert_eq!(p.action, run(JobType::DomainAdd));
        assert!(force_renewal(&spec(), &o));
        assert_eq!(run_reason(&spec(), &o, 0), "renew");
        // just renewed, still inside the window (window longer than the lifetime): quiet
        let o = DomainObserved {
            certificate: cert(1, 20, Some(60)),
            ..o
        };
        let p = reconcile(&spec(), &o, &Context::fixture());
        assert_eq!(p.action, Action::Nothing);
        assert!(p.requeue_after_ms.unwrap() <= 60_000);
        // outside the window: nothing
        let o = DomainObserved {
            certificate: cert(1, 45, Some(80 * DAY)),
            ..o
        };
        assert_eq!(
            reconcile(&spec(), &o, &Context::fixture()).action,
            Action::Nothing
        );
        assert!(!force_renewal(&spec(), &o));
    }

    #[test]
    fn a_changed_domain_gets_a_new_certificate() {
        let s = DomainSpec {
            generation: 2,
            ..spec()
        };
        let o = DomainObserved {
            certificate: cert(1, 80, None),
            served: true,
            ..observed()
        };
        assert_eq!(
            reconcile(&s, &o, &Context::fixture()).action,
            run(JobType::DomainAdd)
        );
        assert!(!force_renewal(&s, &o));
        assert_eq!(run_reason(&s, &o, 0), "spec_change");
    }

    #[test]
    fn failures_back_off_and_invalid_certificates_stall() {
        let o = DomainObserved {
            latest_job: Some(job(
                JobType::DomainAdd,
                JobStatus::Failed,
                Some(JobErrorCode::AcmeRateLimited),
            )),
            ..observed()
        };
        let p = reconcile(&spec(), &o, &Context::fixture().with_failed_attempts(1));
        assert_eq!(
            p.action,
            Action::Wait {
                reason: WaitReason::RetryScheduled
            }
        );
        let p = reconcile(
            &spec(),
            &o,
            &Context::fixture().with_failed_attempts(1).retry_due(),
        );
        assert_eq!(p.action, run(JobType::DomainAdd));
        let o = DomainObserved {
            latest_job: Some(job(
                JobType::DomainAdd,
                JobStatus::Failed,
                Some(JobErrorCode::CertificateInvalid),
            )),
            ..observed()
        };
        let custom = DomainSpec {
            tls_mode: TlsMode::Custom,
            ..spec()
        };
        let p = reconcile(
            &custom,
            &o,
            &Context::fixture().with_failed_attempts(1).retry_due(),
        );
        assert_eq!(p.action, Action::Nothing);
        assert_eq!(p.phase, DomainPhase::Failed);
    }

    #[test]
    fn deletion_waits_for_the_environment_then_removes_then_finalizes() {
        let s = DomainSpec {
            deletion_requested: true,
            ..spec()
        };
        let o = DomainObserved {
            certificate: cert(1, 80, None),
            served: true,
            latest_job: Some(job(JobType::DomainAdd, JobStatus::Succeeded, None)),
            ..observed()
        };
        assert_eq!(
            reconcile(&s, &o, &Context::fixture()).action,
            Action::Wait {
                reason: WaitReason::DomainServed
            }
        );
        let o = DomainObserved { served: false, ..o };
        assert_eq!(
            reconcile(&s, &o, &Context::fixture()).action,
            run(JobType::DomainRemove)
        );
        let o = DomainObserved {
            latest_job: Some(job(JobType::DomainRemove, JobStatus::Succeeded, None)),
            ..o
        };
        assert_eq!(
            reconcile(&s, &o, &Context::fixture()).action,
            Action::Finalize
        );
        // never installed, nothing ran: nothing to remove (even while DNS never pointed)
        let o = DomainObserved {
            dns_points_to_node: Some(false),
            ..observed()
        };
        assert_eq!(
            reconcile(&s, &o, &Context::fixture()).action,
            Action::Finalize
        );
    }
}
