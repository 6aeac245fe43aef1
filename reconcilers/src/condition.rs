//! Kubernetes-style status conditions.
//!
//! A resource's status carries a list of conditions keyed by type. Each says True / False / Unknown,
//! why (`reason`, one CamelCase word a program can match on) and what that means for a person
//! (`message`). `last_transition_at` records when `status` last *changed*, not when the condition was
//! last written: a dashboard can then say "unreachable for 2 hours" even though the reconciler
//! rewrites the condition on every pass. That is why [`Conditions::set`] keeps the old timestamp
//! whenever the status is unchanged.

use serde::{Deserialize, Serialize};

use crate::str_enum::str_enum;

str_enum! {
    /// The kinds of condition (spec §2, condition `type`).
    pub enum ConditionType : "condition type" {
        /// Summary: observed matches desired and the last health check passed.
        Ready => "Ready",
        /// Work is pending or running.
        Reconciling => "Reconciling",
        /// Serving, but the last change did not land.
        Degraded => "Degraded",
        /// No further attempt without the operator (phase `failed`).
        Stalled => "Stalled",
        /// Promotions: production's protected data equals the baseline.
        DriftClean => "DriftClean",
        /// Promotions: a fresh full backup of the target exists.
        BackupFresh => "BackupFresh",
        /// The local node: what Pressluft cannot set up by itself (root, sshd, Ansible) is there.
        Prerequisites => "Prerequisites",
    }
}

str_enum! {
    /// A condition's truth value.
    pub enum ConditionStatus : "condition status" {
        True => "True",
        False => "False",
        Unknown => "Unknown",
    }
}

/// One condition as stored in the resource's `conditions` JSON and sent over the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    /// One CamelCase word, stable for programs (see [`reason`]).
    pub reason: String,
    /// For people; may change wording freely.
    pub message: String,
    /// RFC 3339 time at which `status` last changed.
    pub last_transition_at: String,
    /// The spec generation this condition speaks of.
    pub observed_generation: i64,
}

/// A list of conditions with at most one entry per type, in first-set order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Conditions(Vec<Condition>);

impl Conditions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps a stored list. Should the stored list hold a type twice, the first entry wins, so the
    /// keyed-by-type invariant holds from here on.
    pub fn from_vec(list: Vec<Condition>) -> Self {
        let mut kept: Vec<Condition> = Vec::with_capacity(list.len());
        for c in list {
            if !kept.iter().any(|k| k.type_ == c.type_) {
                kept.push(c);
            }
        }
        Self(kept)
    }

    pub fn get(&self, type_: ConditionType) -> Option<&Condition> {
        self.0.iter().find(|c| c.type_ == type_)
    }

    /// True only when the condition is present with status True.
    pub fn is_true(&self, type_: ConditionType) -> bool {
        self.get(type_)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }

    /// Writes a condition. `last_transition_at` becomes `now` only when the type is new or its
    /// status differs from the stored one; reason, message and generation are always replaced.
    pub fn set(
        &mut self,
        type_: ConditionType,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
        observed_generation: i64,
        now: &str,
    ) {
        let reason = reason.into();
        let message = message.into();
        match self.0.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => {
                if existing.status != status {
                    existing.status = status;
                    existing.last_transition_at = now.to_owned();
                }
                existing.reason = reason;
                existing.message = message;
                existing.observed_generation = observed_generation;
            }
            None => self.0.push(Condition {
                type_,
                status,
                reason,
                message,
                last_transition_at: now.to_owned(),
                observed_generation,
            }),
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Condition> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[Condition] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Condition> {
        self.0
    }
}

impl From<Vec<Condition>> for Conditions {
    fn from(list: Vec<Condition>) -> Self {
        Self::from_vec(list)
    }
}

impl From<Conditions> for Vec<Condition> {
    fn from(c: Conditions) -> Self {
        c.0
    }
}

/// The `reason` words the reconcilers write, so the runtime, the API and the dashboard can match on
/// constants instead of string literals. Wait reasons ([`crate::plan::WaitReason`]) and job error
/// codes ([`crate::error_code::JobErrorCode::reason`]) are reasons too.
pub mod reason {
    /// Ready=True for an environment: converged and the last health check passed.
    pub const HEALTHY: &str = "Healthy";
    /// Data of an existing environment (its database, its uploads) is gone on the node.
    pub const DATA_MISSING: &str = "DataMissing";
    /// Ready=True for a node: the current generation is provisioned and the node answers.
    pub const PROVISIONED: &str = "Provisioned";
    /// Never Ready yet, created without a source.
    pub const PROVISIONING: &str = "Provisioning";
    /// Never Ready yet, created from a source environment.
    pub const CLONING: &str = "Cloning";
    /// A newer generation of the spec is not applied yet.
    pub const SPEC_CHANGED: &str = "SpecChanged";
    /// The local node's control-plane server block (domain, certificate, ACME settings) differs
    /// from the desired one, or its certificate is due for renewal.
    pub const PANEL_CHANGED: &str = "PanelChanged";
    /// Applied, but the probe no longer finds the environment on its node (drift).
    pub const MISSING_ON_NODE: &str = "MissingOnNode";
    /// An environment's domains, certificates or site URL changed.
    pub const ROUTES_CHANGED: &str = "RoutesChanged";
    /// A domain's DNS answer does not include its node's address.
    pub const DNS_NOT_POINTING: &str = "DnsNotPointing";
    /// A domain's certificate is being obtained or replaced.
    pub const ISSUING: &str = "Issuing";
    /// A domain's certificate is inside the renewal window.
    pub const RENEWING: &str = "Renewing";
    /// A domain is installed and its environment serves it.
    pub const SERVING: &str = "Serving";
    /// A domain waits for its environment to render (or stop rendering) it.
    pub const WAITING_FOR_ENVIRONMENT: &str = "WaitingForEnvironment";
    /// The last health check failed.
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    /// No health check result is known for the applied generation.
    pub const HEALTH_UNKNOWN: &str = "HealthUnknown";
    /// The last probe could not reach the node.
    pub const UNREACHABLE: &str = "Unreachable";
    /// No probe result is known since the node was provisioned.
    pub const REACHABILITY_UNKNOWN: &str = "ReachabilityUnknown";
    /// Deletion requested; teardown pending or running.
    pub const DELETING: &str = "Deleting";
    /// Node deletion requested.
    pub const DECOMMISSIONING: &str = "Decommissioning";
    /// Reconciling=False: nothing left to do.
    pub const CONVERGED: &str = "Converged";
    /// Reconciling=False: teardown is complete; the row may go.
    pub const TEARDOWN_COMPLETE: &str = "TeardownComplete";
    /// Reconciling=False because the resource is stalled.
    pub const STALLED: &str = "Stalled";
    /// Stalled=True: every allowed attempt failed.
    pub const ATTEMPTS_EXHAUSTED: &str = "AttemptsExhausted";
    /// Stalled=True: the last attempt failed with an error that is never retried.
    pub const NON_RETRYABLE_ERROR: &str = "NonRetryableError";
    /// Stalled=False because the operator asked for a reset.
    pub const RESET: &str = "Reset";
    /// Degraded=False / Stalled=False: nothing abnormal.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// Sites: the site has no environment yet.
    pub const NO_ENVIRONMENTS: &str = "NoEnvironments";
    /// Sites: every environment is Ready.
    pub const ENVIRONMENTS_READY: &str = "EnvironmentsReady";
    /// Sites: at least one environment is not Ready.
    pub const ENVIRONMENTS_NOT_READY: &str = "EnvironmentsNotReady";
    /// Sites: at least one environment is reconciling.
    pub const ENVIRONMENTS_RECONCILING: &str = "EnvironmentsReconciling";
    /// Sites: at least one environment is degraded.
    pub const ENVIRONMENTS_DEGRADED: &str = "EnvironmentsDegraded";
    /// Sites: at least one environment is stalled.
    pub const ENVIRONMENTS_STALLED: &str = "EnvironmentsStalled";
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-02-18T12:00:00Z";
    const T1: &str = "2026-02-18T12:05:00Z";

    #[test]
    fn serializes_with_the_spec_field_names() {
        let mut cs = Conditions::new();
        cs.set(
            ConditionType::Ready,
            ConditionStatus::True,
            "Healthy",
            "ok",
            3,
            T0,
        );
        let json = serde_json::to_value(&cs).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{
                "type": "Ready",
                "status": "True",
                "reason": "Healthy",
                "message": "ok",
                "last_transition_at": T0,
                "observed_generation": 3
            }])
        );
        let back: Conditions = serde_json::from_value(json).unwrap();
        assert_eq!(back, cs);
    }

    #[test]
    fn transition_time_changes_only_with_status() {
        let cases = [
            // (second status, expected last_transition_at)
            (ConditionStatus::True, T0),
            (ConditionStatus::False, T1),
            (ConditionStatus::Unknown, T1),
        ];
        for (second, expected) in cases {
            let mut cs = Conditions::new();
            cs.set(
                ConditionType::Ready,
                ConditionStatus::True,
                "Healthy",
                "a",
                1,
                T0,
            );
            cs.set(ConditionType::Ready, second, "Other", "b", 2, T1);
            let c = cs.get(ConditionType::Ready).unwrap();
            assert_eq!(c.last_transition_at, expected, "second status {second}");
            assert_eq!(
                (c.reason.as_str(), c.message.as_str(), c.observed_generation),
                ("Other", "b", 2)
            );
            assert_eq!(cs.as_slice().len(), 1);
        }
    }

    #[test]
    fn from_vec_keeps_one_entry_per_type() {
        let c = |status| Condition {
            type_: ConditionType::Stalled,
            status,
            reason: "R".into(),
            message: String::new(),
            last_transition_at: T0.into(),
            observed_generation: 1,
        };
        let cs = Conditions::from_vec(vec![c(ConditionStatus::True), c(ConditionStatus::False)]);
        assert_eq!(cs.as_slice().len(), 1);
        assert!(cs.is_true(ConditionType::Stalled));
        assert!(!cs.is_true(ConditionType::Ready));
    }
}
