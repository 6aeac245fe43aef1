//! The attempt gate: after a failed attempt, may the next one start now, later, or only after the
//! operator resets the resource?
//!
//! Rules (spec §4.1, §4.2, R9): a non-retryable error stalls at once; a retryable one is retried
//! after the backoff while attempts remain; once `max_attempts` attempts have failed the resource
//! stalls. A pending reset clears a stall and skips the backoff.

use crate::condition::reason;
use crate::error_code::JobErrorCode;
use crate::plan::Context;

/// Why no further attempt happens without the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// The last attempt failed with an error that is never retried.
    NonRetryable { code: JobErrorCode },
    /// Every allowed attempt failed.
    AttemptsExhausted {
        failed: u32,
        max: u32,
        last: Option<JobErrorCode>,
    },
}

impl Stall {
    /// The `Stalled=True` reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NonRetryable { .. } => reason::NON_RETRYABLE_ERROR,
            Self::AttemptsExhausted { .. } => reason::ATTEMPTS_EXHAUSTED,
        }
    }

    pub fn message(self) -> String {
        match self {
            Self::NonRetryable { code } => {
                format!(
                    "the last attempt failed with {code}, which is not retried; reset to try again"
                )
            }
            Self::AttemptsExhausted {
                failed,
                max,
                last: Some(code),
            } => format!(
                "{failed} of {max} attempts failed, the last with {code}; reset to try again"
            ),
            Self::AttemptsExhausted {
                failed,
                max,
                last: None,
            } => {
                format!("{failed} of {max} attempts failed; reset to try again")
            }
        }
    }
}

/// The gate's answer for work that is needed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Start the next attempt now.
    Proceed,
    /// The last attempt failed with `code`; wait for the backoff before the next one.
    RetryLater { code: JobErrorCode },
    /// Do nothing until the operator resets the resource.
    Stalled(Stall),
}

/// `failure` is the error of the latest attempt *of the needed work for the current generation*
/// (`None` when that attempt did not fail or there was none). `may_stall` is false for work that
/// must never give up (observation such as a node probe): such work keeps retrying with backoff.
pub fn judge(
    failure: Option<JobErrorCode>,
    ctx: &Context,
    reset_pending: bool,
    may_stall: bool,
) -> Verdict {
    if reset_pending {
        return Verdict::Proceed;
    }
    if may_stall {
        if let Some(code) = failure.filter(|c| !c.is_retryable()) {
            return Verdict::Stalled(Stall::NonRetryable { code });
        }
        let max = ctx.max_attempts.max(1);
        if ctx.failed_attempts >= max {
            return Verdict::Stalled(Stall::AttemptsExhausted {
                failed: ctx.failed_attempts,
                max,
                last: failure,
            });
        }
    }
    match failure {
        Some(code) if !ctx.retry_due => Verdict::RetryLater { code },
        _ => Verdict::Proceed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobErrorCode::*;

    /// name, failure, failed_attempts, retry_due, reset_pending, may_stall, verdict
    type Row = (
        &'static str,
        Option<JobErrorCode>,
        u32,
        bool,
        bool,
        bool,
        Verdict,
    );

    #[test]
    fn gate_table() {
        let stall_exhausted = |failed, last| {
            Verdict::Stalled(Stall::AttemptsExhausted {
                failed,
                max: 3,
                last,
            })
        };
        #[rustfmt::skip]
        let cases: &[Row] = &[
            // name, failure, failed_attempts, retry_due, reset_pending, may_stall, verdict
            ("first attempt", None, 0, false, false, true, Verdict::Proceed),
            ("retryable, backoff running", Some(AnsibleHostFailed), 1, false, false, true, Verdict::RetryLater { code: AnsibleHostFailed }),
            ("retryable, backoff passed", Some(AnsibleHostFailed), 2, true, false, true, Verdict::Proceed),
            ("retryable, attempts exhausted", Some(AnsibleHostFailed), 3, true, false, true, stall_exhausted(3, Some(AnsibleHostFailed))),
            ("non-retryable stalls on first failure", Some(AnsibleSyntaxError), 1, true, false, true, Verdict::Stalled(Stall::NonRetryable { code: AnsibleSyntaxError })),
            ("exhausted without a known failure", None, 4, false, false, true, stall_exhausted(4, None)),
            ("reset clears a stall", Some(AnsibleSyntaxError), 3, false, true, true, Verdict::Proceed),
            ("reset skips the backoff", Some(AnsibleHostFailed), 1, false, true, true, Verdict::Proceed),
            ("observation never stalls", Some(AnsibleHostUnreachable), 9, false, false, false, Verdict::RetryLater { code: AnsibleHostUnreachable }),
            ("observation retries when due", Some(AnsibleSyntaxError), 9, true, false, false, Verdict::Proceed),
        ];
        for (name, failure, failed, due, reset, may_stall, expected) in cases {
            let ctx = Context {
                failed_attempts: *failed,
                retry_due: *due,
                ..Context::fixture()
            };
            assert_eq!(
                judge(*failure, &ctx, *reset, *may_stall),
                *expected,
                "{name}"
            );
        }
    }

    #[test]
    fn zero_max_attempts_means_one() {
        let ctx = Context {
            max_attempts: 0,
            failed_attempts: 0,
            ..Context::fixture()
        };
        assert_eq!(judge(None, &ctx, false, true), Verdict::Proceed);
        let ctx = Context {
            max_attempts: 0,
            failed_attempts: 1,
            ..Context::fixture()
        };
        assert!(matches!(
            judge(None, &ctx, false, true),
            Verdict::Stalled(_)
        ));
    }

    #[test]
    fn stall_messages_name_the_code() {
        assert!(Stall::NonRetryable { code: JobTimeout }
            .message()
            .contains("JOB_TIMEOUT"));
        let s = Stall::AttemptsExhausted {
            failed: 3,
            max: 3,
            last: Some(AnsibleTimeout),
        };
        assert_eq!(s.reason(), "AttemptsExhausted");
        assert!(s.message().contains("3 of 3") && s.message().contains("ANSIBLE_TIMEOUT"));
    }
}
