//! Job types, job statuses and what the runtime reports about a resource's latest job.
//!
//! A job is one attempt-tracked run of one playbook (`resources-and-states.md` §3.7, §4.2). The
//! reconcilers decide *which* job a resource needs; the runtime builds its extra-vars from the
//! database, runs it and reports back through [`JobObservation`].

use serde::{Deserialize, Serialize};

use crate::error_code::JobErrorCode;
use crate::str_enum::str_enum;

str_enum! {
    /// The registry of job types: the spec's 17 (`node-runtime.md` §8.4) plus the two a
    /// reconciliation controller needs for teardown and observation.
    pub enum JobType : "job type" {
        NodeProvision => "node_provision",
        SiteCreate => "site_create",
        SiteImport => "site_import",
        /// An import whose source is a WordPress site read over SSH (an adoption).
        SiteAdopt => "site_adopt",
        EnvCreate => "env_create",
        EnvDeploy => "env_deploy",
        EnvUpdate => "env_update",
        EnvRestore => "env_restore",
        EnvPromote => "env_promote",
        EnvCacheToggle => "env_cache_toggle",
        CachePurge => "cache_purge",
        BackupCreate => "backup_create",
        DomainAdd => "domain_add",
        DomainRemove => "domain_remove",
        DriftCheck => "drift_check",
        HealthCheck => "health_check",
        BackupCleanup => "backup_cleanup",
        ReleaseRollback => "release_rollback",
        /// Tears an environment down on its node (server block, pool, user, database, files,
        /// certificates); tolerant of a create that never ran.
        EnvDelete => "env_delete",
        /// Read-only: is the node reachable over SSH, and what is on it.
        NodeProbe => "node_probe",
    }
}

impl JobType {
    /// The playbook file in `ansible/playbooks/`: the type with `_` → `-`, plus `.yml`.
    pub const fn playbook(self) -> &'static str {
        match self {
            Self::NodeProvision => "node-provision.yml",
            Self::SiteCreate => "site-create.yml",
            Self::SiteImport => "site-import.yml",
            Self::SiteAdopt => "site-adopt.yml",
            Self::EnvCreate => "env-create.yml",
            Self::EnvDeploy => "env-deploy.yml",
            Self::EnvUpdate => "env-update.yml",
            Self::EnvRestore => "env-restore.yml",
            Self::EnvPromote => "env-promote.yml",
            Self::EnvCacheToggle => "env-cache-toggle.yml",
            Self::CachePurge => "cache-purge.yml",
            Self::BackupCreate => "backup-create.yml",
            Self::DomainAdd => "domain-add.yml",
            Self::DomainRemove => "domain-remove.yml",
            Self::DriftCheck => "drift-check.yml",
            Self::HealthCheck => "health-check.yml",
            Self::BackupCleanup => "backup-cleanup.yml",
            Self::ReleaseRollback => "release-rollback.yml",
            Self::EnvDelete => "env-delete.yml",
            Self::NodeProbe => "node-probe.yml",
        }
    }
}

str_enum! {
    /// A job's status (spec §2 `job_status`, §4.2).
    pub enum JobStatus : "job status" {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    /// Queued or running: an attempt is in flight and nothing else may start for the resource.
    pub fn is_in_progress(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }

    /// Succeeded, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        !self.is_in_progress()
    }
}

/// What the runtime tells a reconciler about the latest job for a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobObservation {
    pub job_type: JobType,
    pub status: JobStatus,
    /// The spec generation the job was started for.
    pub generation: i64,
    /// Set when `status` is `failed`. A failed job without a code is read as
    /// `ANSIBLE_UNKNOWN_EXIT`: unknown failures are not retried blindly.
    pub error_code: Option<JobErrorCode>,
    /// RFC 3339; the runtime uses it to decide whether a retry is due.
    pub finished_at: Option<String>,
}

impl JobObservation {
    pub fn is_in_progress(&self) -> bool {
        self.status.is_in_progress()
    }

    /// The error of a failed job (`ANSIBLE_UNKNOWN_EXIT` when none was recorded); `None` otherwise.
    pub fn failure(&self) -> Option<JobErrorCode> {
        (self.status == JobStatus::Failed)
            .then(|| self.error_code.unwrap_or(JobErrorCode::AnsibleUnknownExit))
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl JobObservation {
    /// A finished, successful job of `job_type` for generation 1.
    pub fn fixture(job_type: JobType) -> Self {
        Self {
            job_type,
            status: JobStatus::Succeeded,
            generation: 1,
            error_code: None,
            finished_at: Some("2026-02-18T11:59:00Z".into()),
        }
    }

    pub fn for_generation(mut self, generation: i64) -> Self {
        self.generation = generation;
        self
    }

    pub fn failed(mut self, code: JobErrorCode) -> Self {
        self.status = JobStatus::Failed;
        self.error_code = Some(code);
        self
    }

    /// Puts the job back in flight (`queued` or `running`) or sets another terminal status.
    pub fn with_status(mut self, status: JobStatus) -> Self {
        self.status = status;
        if status.is_in_progress() {
            self.finished_at = None;
        }
        if status != JobStatus::Failed {
            self.error_code = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_has_the_spec_types_plus_teardown_and_probe() {
        assert_eq!(JobType::ALL.len(), 20);
        let spellings: Vec<&str> = JobType::ALL.iter().map(|t| t.as_str()).collect();
        for spec_type in [
            "node_provision",
            "site_create",
            "site_import",
            "site_adopt",
            "env_create",
            "env_deploy",
            "env_update",
            "env_restore",
            "env_promote",
            "env_cache_toggle",
            "cache_purge",
            "backup_create",
            "domain_add",
            "domain_remove",
            "drift_check",
            "health_check",
            "backup_cleanup",
            "release_rollback",
            "env_delete",
            "node_probe",
        ] {
            assert!(spellings.contains(&spec_type), "{spec_type}");
        }
    }

    #[test]
    fn playbook_is_the_type_with_dashes() {
        for &t in JobType::ALL {
            assert_eq!(
                t.playbook(),
                format!("{}.yml", t.as_str().replace('_', "-"))
            );
        }
        assert_eq!(JobType::SiteCreate.playbook(), "site-create.yml");
        assert_eq!(JobType::EnvDelete.playbook(), "env-delete.yml");
    }

    #[test]
    fn status_spellings_and_progress() {
        let s: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(s, ["queued", "running", "succeeded", "failed", "cancelled"]);
        let in_progress: Vec<JobStatus> = JobStatus::ALL
            .iter()
            .copied()
            .filter(|s| s.is_in_progress())
            .collect();
        assert_eq!(in_progress, [JobStatus::Queued, JobStatus::Running]);
    }

    #[test]
    fn failure_defaults_to_unknown_exit() {
        let mut job = JobObservation::fixture(JobType::EnvCreate).with_status(JobStatus::Failed);
        assert_eq!(job.failure(), Some(JobErrorCode::AnsibleUnknownExit));
        job.error_code = Some(JobErrorCode::AnsibleHostFailed);
        assert_eq!(job.failure(), Some(JobErrorCode::AnsibleHostFailed));
        assert_eq!(JobObservation::fixture(JobType::EnvCreate).failure(), None);
    }

    #[test]
    fn observation_round_trips_as_json() {
        let job = JobObservation::fixture(JobType::SiteCreate).failed(JobErrorCode::AnsibleTimeout);
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["job_type"], "site_create");
        assert_eq!(json["status"], "failed");
        assert_eq!(json["error_code"], "ANSIBLE_TIMEOUT");
        assert_eq!(serde_json::from_value::<JobObservation>(json).unwrap(), job);
    }
}
