//! Job error codes and whether they are worth another attempt (`node-runtime.md` §8.5).

use crate::str_enum::str_enum;

str_enum! {
    /// The structured `jobs.error_code` of a failed attempt.
    pub enum JobErrorCode : "job error code" {
        /// A non-Ansible handler exceeded its total timeout. Not retried.
        JobTimeout => "JOB_TIMEOUT",
        /// The Ansible subprocess was killed at the job timeout. Retried; takes precedence over
        /// `JOB_TIMEOUT`.
        AnsibleTimeout => "ANSIBLE_TIMEOUT",
        /// Exit 1.
        AnsiblePlayError => "ANSIBLE_PLAY_ERROR",
        /// Exit 2.
        AnsibleHostFailed => "ANSIBLE_HOST_FAILED",
        /// Exit 4. Real Ansible also exits 4 on parse errors; CI's syntax check keeps those out,
        /// so 4 is treated as unreachable and retried (decision "Ansible exit code 4").
        AnsibleHostUnreachable => "ANSIBLE_HOST_UNREACHABLE",
        /// Exit 5: invalid options or syntax. Retrying cannot help.
        AnsibleSyntaxError => "ANSIBLE_SYNTAX_ERROR",
        /// Exit 250.
        AnsibleUnexpectedError => "ANSIBLE_UNEXPECTED_ERROR",
        /// Any other non-zero exit.
        AnsibleUnknownExit => "ANSIBLE_UNKNOWN_EXIT",
        /// The playbook exited 0 but the health checks that follow a converge failed (or the
        /// environment it reports on is unhealthy). Retried: a fresh converge often repairs it.
        HealthCheckFailed => "HEALTH_CHECK_FAILED",
        /// The domain's DNS answer does not include the node's address: no ACME request is made.
        /// Rechecked; the operator fixes the DNS record.
        DnsNotPointing => "DNS_NOT_POINTING",
        /// The ACME server could not validate the HTTP-01 challenge (or refused the order).
        AcmeChallengeFailed => "ACME_CHALLENGE_FAILED",
        /// The ACME server's rate limit: retried only after a long backoff.
        AcmeRateLimited => "ACME_RATE_LIMITED",
        /// The ACME directory could not be reached.
        AcmeUnavailable => "ACME_UNAVAILABLE",
        /// An uploaded certificate/key pair is unusable (key does not match, name not covered,
        /// expired, encrypted key). Retrying cannot help: the operator uploads another.
        CertificateInvalid => "CERTIFICATE_INVALID",
        /// The database dump or the file archive could not be produced on the node.
        BackupDumpFailed => "BACKUP_DUMP_FAILED",
        /// The storage target refused or lost an upload (partial artifacts are removed).
        BackupStorageFailed => "BACKUP_STORAGE_FAILED",
        /// An artifact read back from the target did not match its checksum.
        BackupVerifyFailed => "BACKUP_VERIFY_FAILED",
        /// A restore's backup failed verification before anything was touched. Not retried.
        RestoreChecksumMismatch => "RESTORE_CHECKSUM_MISMATCH",
        /// The restore's backup cannot be read from its target.
        RestoreStorageUnreadable => "RESTORE_STORAGE_UNREADABLE",
        /// The restored environment failed its health check and was rolled back to the
        /// pre-restore backup. Not retried.
        RestoreRolledBack => "RESTORE_ROLLED_BACK",
        /// The restore failed on the node (and the rollback could not complete).
        RestoreFailed => "RESTORE_FAILED",
        /// Production was unhealthy after a promotion and was switched back (tables and release;
        /// the pre-promotion backup restored when that was not enough). Not retried.
        PromotionRolledBack => "PROMOTION_ROLLED_BACK",
        /// The promotion could not be prepared on the node (nothing on production switched).
        PromotionFailed => "PROMOTION_FAILED",
        /// A release's source (git repository and ref, archive URL) could not be fetched.
        /// Retried: networks and servers come back.
        ReleaseSourceUnavailable => "RELEASE_SOURCE_UNAVAILABLE",
        /// A release archive does not match its pinned `#sha256=`. Not retried; the release is
        /// marked unhealthy.
        ReleaseChecksumMismatch => "RELEASE_CHECKSUM_MISMATCH",
        /// A release's content is neither a WordPress root nor a `wp-content` overlay (or an
        /// archive is unsafe: absolute paths, `..`, links out). Not retried; marked unhealthy.
        ReleaseInvalid => "RELEASE_INVALID",
        /// The release failed its health check before or after the switch; `current` serves the
        /// previous release again. Not retried; marked unhealthy.
        ReleaseUnhealthy => "RELEASE_UNHEALTHY",
        /// An import's archive is not a (complete) tar/gzip archive, holds no files/ or
        /// wp-content/, or its dump cannot be imported. Not retried; nothing was changed.
        ImportInvalidArchive => "IMPORT_INVALID_ARCHIVE",
        /// An import's archive has absolute paths, `..`, links pointing outside, devices or fifos.
        /// Not retried; nothing was extracted.
        ImportUnsafeArchive => "IMPORT_UNSAFE_ARCHIVE",
        /// An import's archive holds no database dump (or no WordPress tables in it). Not retried.
        ImportMissingDump => "IMPORT_MISSING_DUMP",
        /// An import's dump uses another table prefix than the declared one. Not retried.
        ImportPrefixMismatch => "IMPORT_PREFIX_MISMATCH",
        /// An import's archive is larger than the configured limit. Not retried.
        ImportTooLarge => "IMPORT_TOO_LARGE",
        /// An import's archive does not match its pinned SHA-256. Not retried.
        ImportChecksumMismatch => "IMPORT_CHECKSUM_MISMATCH",
        /// An import's archive could not be downloaded. Retried: networks and servers come back.
        ImportSourceUnavailable => "IMPORT_SOURCE_UNAVAILABLE",
        /// The imported site failed its health check and the environment was rolled back to the
        /// pre-import backup. Not retried.
        ImportUnhealthy => "IMPORT_UNHEALTHY",
        /// The import failed on the node (preparing it, or the rollback could not complete).
        ImportFailed => "IMPORT_FAILED",
        /// Adoption: the source could not be reached over SSH (connection, or the adoption key is
        /// not authorized for the source user). Retried: hosts come back, keys get authorized.
        AdoptSourceUnreachable => "ADOPT_SOURCE_UNREACHABLE",
        /// Adoption: the source presented another SSH host key than the one pinned when the
        /// adoption was declared. Not retried.
        AdoptHostKeyMismatch => "ADOPT_HOST_KEY_MISMATCH",
        /// Adoption: no WordPress at the source path (wp-config.php, wp-includes/version.php).
        /// Not retried.
        AdoptNotWordpress => "ADOPT_NOT_WORDPRESS",
        /// Adoption: the database credentials of the source's wp-config.php do not work there.
        /// Not retried.
        AdoptDatabaseUnreachable => "ADOPT_DATABASE_UNREACHABLE",
        /// Adoption: the source is a multisite network, which is not supported. Not retried.
        AdoptMultisiteUnsupported => "ADOPT_MULTISITE_UNSUPPORTED",
    }
}

impl JobErrorCode {
    /// Maps an `ansible-playbook` exit status; `None` for 0 (success). Timeouts are not exit codes:
    /// the runner names them directly.
    pub fn from_exit_code(code: i32) -> Option<Self> {
        match code {
            0 => None,
            1 => Some(Self::AnsiblePlayError),
            2 => Some(Self::AnsibleHostFailed),
            4 => Some(Self::AnsibleHostUnreachable),
            5 => Some(Self::AnsibleSyntaxError),
            250 => Some(Self::AnsibleUnexpectedError),
            _ => Some(Self::AnsibleUnknownExit),
        }
    }

    /// Whether a failure with this code may be followed by another attempt (while attempts remain).
    pub fn is_retryable(self) -> bool {
        match self {
            Self::AnsibleTimeout
            | Self::AnsiblePlayError
            | Self::AnsibleHostFailed
            | Self::AnsibleHostUnreachable
            | Self::HealthCheckFailed
            | Self::DnsNotPointing
            | Self::AcmeChallengeFailed
            | Self::AcmeRateLimited
            | Self::AcmeUnavailable
            | Self::BackupDumpFailed
            | Self::BackupStorageFailed
            | Self::BackupVerifyFailed
            | Self::RestoreStorageUnreadable
            | Self::RestoreFailed
            | Self::PromotionFailed
            | Self::ReleaseSourceUnavailable
            | Self::ImportSourceUnavailable
            | Self::ImportFailed
            | Self::AdoptSourceUnreachable => true,
            Self::CertificateInvalid
            | Self::RestoreChecksumMismatch
            | Self::RestoreRolledBack
            | Self::PromotionRolledBack
            | Self::ReleaseChecksumMismatch
            | Self::ReleaseInvalid
            | Self::ReleaseUnhealthy
            | Self::ImportInvalidArchive
            | Self::ImportUnsafeArchive
            | Self::ImportMissingDump
            | Self::ImportPrefixMismatch
            | Self::ImportTooLarge
            | Self::ImportChecksumMismatch
            | Self::ImportUnhealthy
            | Self::AdoptHostKeyMismatch
            | Self::AdoptNotWordpress
            | Self::AdoptDatabaseUnreachable
            | Self::AdoptMultisiteUnsupported
            | Self::JobTimeout
            | Self::AnsibleSyntaxError
            | Self::AnsibleUnexpectedError
            | Self::AnsibleUnknownExit => false,
        }
    }

    /// The code as a CamelCase condition reason, e.g. `AnsibleHostUnreachable`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::JobTimeout => "JobTimeout",
            Self::AnsibleTimeout => "AnsibleTimeout",
            Self::AnsiblePlayError => "AnsiblePlayError",
            Self::AnsibleHostFailed => "AnsibleHostFailed",
            Self::AnsibleHostUnreachable => "AnsibleHostUnreachable",
            Self::AnsibleSyntaxError => "AnsibleSyntaxError",
            Self::AnsibleUnexpectedError => "AnsibleUnexpectedError",
            Self::AnsibleUnknownExit => "AnsibleUnknownExit",
            Self::HealthCheckFailed => "HealthCheckFailed",
            Self::DnsNotPointing => "DnsNotPointing",
            Self::AcmeChallengeFailed => "AcmeChallengeFailed",
            Self::AcmeRateLimited => "AcmeRateLimited",
            Self::AcmeUnavailable => "AcmeUnavailable",
            Self::CertificateInvalid => "CertificateInvalid",
            Self::BackupDumpFailed => "BackupDumpFailed",
            Self::BackupStorageFailed => "BackupStorageFailed",
            Self::BackupVerifyFailed => "BackupVerifyFailed",
            Self::RestoreChecksumMismatch => "RestoreChecksumMismatch",
            Self::RestoreStorageUnreadable => "RestoreStorageUnreadable",
            Self::RestoreRolledBack => "RestoreRolledBack",
            Self::RestoreFailed => "RestoreFailed",
            Self::PromotionRolledBack => "PromotionRolledBack",
            Self::PromotionFailed => "PromotionFailed",
            Self::ReleaseSourceUnavailable => "ReleaseSourceUnavailable",
            Self::ReleaseChecksumMismatch => "ReleaseChecksumMismatch",
            Self::ReleaseInvalid => "ReleaseInvalid",
            Self::ReleaseUnhealthy => "ReleaseUnhealthy",
            Self::ImportInvalidArchive => "ImportInvalidArchive",
            Self::ImportUnsafeArchive => "ImportUnsafeArchive",
            Self::ImportMissingDump => "ImportMissingDump",
            Self::ImportPrefixMismatch => "ImportPrefixMismatch",
            Self::ImportTooLarge => "ImportTooLarge",
            Self::ImportChecksumMismatch => "ImportChecksumMismatch",
            Self::ImportSourceUnavailable => "ImportSourceUnavailable",
            Self::ImportUnhealthy => "ImportUnhealthy",
            Self::ImportFailed => "ImportFailed",
            Self::AdoptSourceUnreachable => "AdoptSourceUnreachable",
            Self::AdoptHostKeyMismatch => "AdoptHostKeyMismatch",
            Self::AdoptNotWordpress => "AdoptNotWordpress",
            Self::AdoptDatabaseUnreachable => "AdoptDatabaseUnreachable",
            Self::AdoptMultisiteUnsupported => "AdoptMultisiteUnsupported",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JobErrorCode::{self, *};

    #[test]
    fn exit_codes_map_as_the_spec_table_says() {
        let table: [(i32, Option<JobErrorCode>, bool); 9] = [
            (0, None, false),
            (1, Some(AnsiblePlayError), true),
            (2, Some(AnsibleHostFailed), true),
            (4, Some(AnsibleHostUnreachable), true),
            (5, Some(AnsibleSyntaxError), false),
            (250, Some(AnsibleUnexpectedError), false),
            (3, Some(AnsibleUnknownExit), false),
            (-9, Some(AnsibleUnknownExit), false),
            (99, Some(AnsibleUnknownExit), false),
        ];
        for (exit, code, retryable) in table {
            assert_eq!(JobErrorCode::from_exit_code(exit), code, "exit {exit}");
            if let Some(code) = code {
                assert_eq!(code.is_retryable(), retryable, "exit {exit}");
            }
        }
    }

    #[test]
    fn codes_not_from_exit_statuses() {
        assert!(AnsibleTimeout.is_retryable());
        assert!(!JobTimeout.is_retryable());
        assert!(HealthCheckFailed.is_retryable());
    }

    #[test]
    fn spellings_and_reasons() {
        for &code in JobErrorCode::ALL {
            let upper: String = code
                .as_str()
                .split('_')
                .map(|w| {
                    let lower = w.to_lowercase();
                    let mut chars = lower.chars();
                    chars
                        .next()
                        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                        .unwrap_or_default()
                })
                .collect();
            assert_eq!(code.reason(), upper, "reason is the CamelCase of {code}");
        }
        assert_eq!(
            serde_json::to_string(&AnsibleTimeout).unwrap(),
            "\"ANSIBLE_TIMEOUT\""
        );
    }
}
