//! The wait before the next attempt of failed work (spec R9, decision "Attempts and backoff").
//!
//! Pure arithmetic: the caller draws the random jitter fraction and passes it in, so the same
//! inputs always give the same wait and the schedule can be tested exactly.
//!
//! Nominal schedule: after `n` failed attempts the wait is `base · 2^(n-1)`, capped at `max`
//! (1, 2, 4, 8 min … 15 min with the defaults). Jitter only *shortens* a wait, by at most half
//! ("equal jitter"): the wait lies in `(nominal/2, nominal]`. So the configured cap stays a true
//! upper bound, a wait never grows with bad luck, and retries of many resources that failed
//! together (a node outage) spread out instead of hitting the node at the same instant.

/// Default first wait: 1 minute.
pub const DEFAULT_BASE_MS: u64 = 60_000;
/// Default cap: 15 minutes.
pub const DEFAULT_MAX_MS: u64 = 900_000;
/// Default attempts in total, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Largest share of the nominal wait that jitter may remove.
pub const JITTER_SHARE: f64 = 0.5;

/// The wait without jitter: 0 before the first attempt, then `base · 2^(failed_attempts-1)`
/// capped at `max_ms`. Saturates instead of overflowing.
pub fn nominal_delay(base_ms: u64, max_ms: u64, failed_attempts: u32) -> u64 {
    if failed_attempts == 0 {
        return 0;
    }
    let factor = 1u64.checked_shl(failed_attempts - 1).unwrap_or(u64::MAX);
    base_ms.saturating_mul(factor).min(max_ms)
}

/// The wait in milliseconds before the next attempt, after `failed_attempts` consecutive failures.
/// `jitter_fraction` is a uniform random draw in `[0, 1)`; values outside are clamped (NaN → 0).
pub fn retry_delay(base_ms: u64, max_ms: u64, failed_attempts: u32, jitter_fraction: f64) -> u64 {
    let nominal = nominal_delay(base_ms, max_ms, failed_attempts);
    let fraction = if jitter_fraction.is_nan() {
        0.0
    } else {
        jitter_fraction.clamp(0.0, 1.0)
    };
    // `as` saturates for floats; the product is at most nominal/2, so the subtraction cannot go
    // below half the nominal wait.
    let cut = (nominal as f64 * JITTER_SHARE * fraction) as u64;
    nominal.saturating_sub(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nominal_schedule_doubles_then_caps() {
        let waits: Vec<u64> = (0..8)
            .map(|n| nominal_delay(DEFAULT_BASE_MS, DEFAULT_MAX_MS, n))
            .collect();
        assert_eq!(
            waits,
            [0, 60_000, 120_000, 240_000, 480_000, 900_000, 900_000, 900_000]
        );
    }

    #[test]
    fn jitter_table() {
        let cases = [
            // (failed, fraction, expected)
            (1, 0.0, 60_000),
            (1, 0.5, 45_000),
            (1, 0.999_999, 30_001),
            (2, 0.25, 105_000),
            (10, 0.0, 900_000),
            (10, 0.5, 675_000),
            (0, 0.7, 0),
            (1, -1.0, 60_000),
            (1, f64::NAN, 60_000),
            (1, 7.0, 30_000),
        ];
        for (failed, fraction, expected) in cases {
            assert_eq!(
                retry_delay(DEFAULT_BASE_MS, DEFAULT_MAX_MS, failed, fraction),
                expected,
                "failed {failed}, fraction {fraction}"
            );
        }
    }

    #[test]
    fn huge_attempt_counts_saturate_at_the_cap() {
        assert_eq!(nominal_delay(u64::MAX, u64::MAX, u32::MAX), u64::MAX);
        assert_eq!(nominal_delay(1_000, 5_000, 200), 5_000);
        assert!(retry_delay(u64::MAX, u64::MAX, 100, 0.99) >= u64::MAX / 2);
    }

    proptest! {
        #[test]
        fn wait_is_within_half_of_nominal_and_never_above_the_cap(
            base in 1u64..10_000_000, max in 1u64..1_000_000_000, n in 1u32..80, f in 0.0f64..1.0,
        ) {
            let nominal = nominal_delay(base, max, n);
            let wait = retry_delay(base, max, n, f);
            prop_assert!(wait <= nominal);
            prop_assert!(wait <= max);
            prop_assert!(wait * 2 >= nominal);
        }

        #[test]
        fn wait_never_shrinks_as_failures_grow(
            base in 1u64..10_000_000, max in 1u64..1_000_000_000, n in 1u32..80, f in 0.0f64..1.0,
        ) {
            prop_assert!(retry_delay(base, max, n + 1, f) >= retry_delay(base, max, n, f));
        }
    }
}
