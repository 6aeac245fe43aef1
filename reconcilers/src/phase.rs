//! Derived lifecycle phases (spec §2 `site_status` / `environment_status` / `node_status`, §4.1).
//!
//! A phase is never set by a handler: reconcilers compute it from desired vs observed state on every
//! pass. Detail lives in the conditions; the phase is the one-word summary.

use crate::str_enum::str_enum;

str_enum! {
    /// Phase of a site or an environment (same value set).
    pub enum Phase : "phase" {
        /// New and never Ready yet, created without a source.
        Provisioning => "provisioning",
        /// Nothing pending or running for the phase-changing operations.
        Active => "active",
        /// New and never Ready yet, created from a source environment.
        Cloning => "cloning",
        /// A deploy or update is pending or running.
        Deploying => "deploying",
        /// A restore or import is pending or running.
        Restoring => "restoring",
        /// Deletion requested; teardown pending or running.
        Deleting => "deleting",
        /// Stalled: no further attempt without the operator.
        Failed => "failed",
    }
}

str_enum! {
    /// Phase of a node (spec §2 `node_status`). There is no `failed`: a node whose provisioning
    /// stalls keeps its phase and carries `Stalled=True`.
    pub enum NodePhase : "node phase" {
        Active => "active",
        Provisioning => "provisioning",
        Unreachable => "unreachable",
        /// Deletion requested: the node takes no new work and goes once it hosts nothing.
        Decommissioned => "decommissioned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_match_the_spec() {
        let phases: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            phases,
            [
                "provisioning",
                "active",
                "cloning",
                "deploying",
                "restoring",
                "deleting",
                "failed"
            ]
        );
        let nodes: Vec<&str> = NodePhase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            nodes,
            ["active", "provisioning", "unreachable", "decommissioned"]
        );
        assert_eq!(
            serde_json::to_string(&Phase::Deleting).unwrap(),
            "\"deleting\""
        );
        assert_eq!("cloning".parse::<Phase>().unwrap(), Phase::Cloning);
        assert!("Active".parse::<Phase>().is_err());
    }
}
