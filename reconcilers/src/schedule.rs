//! Backup schedules: when the next scheduled backup is due, and which scheduled backups retention
//! expires. Times are Unix seconds (UTC); the runtime converts.
//!
//! * A cadence is a simple interval (minutes) or a 5-field cron expression in UTC
//!   (`minute hour day-of-month month day-of-week`; `*`, numbers, ranges `a-b`, lists `a,b`, steps
//!   `*/n` and `a-b/n`; day of week 0–7 with 0 and 7 Sunday; when both day fields are restricted a
//!   day matches either, as in Vixie cron).
//! * [`tick`]: a schedule whose `next_run_at` has passed runs **once**, however many slots were
//!   missed while Pressluft was down, and its next run is the first slot after now.
//! * [`expired`]: retention over a schedule's completed backups, newest first. A backup is kept
//!   when any rule keeps it: it is among the newest `keep_last`, or younger than `keep_days`. The
//!   newest completed backup is always kept. No rule set: nothing expires here (the backup's own
//!   `retention_until` still applies).

use std::fmt;

/// Unix seconds.
pub type Ts = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed 5-field cron expression (bit sets per field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

fn field(text: &str, min: u32, max: u32, name: &str) -> Result<u64, CronError> {
    let bad = || {
        CronError(format!(
            "invalid {name} field {text:?} (allowed {min}-{max})"
        ))
    };
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>().ok().filter(|s| *s >= 1).ok_or_else(bad)?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)
        } else {
            let v: u32 = range.parse().map_err(|_| bad())?;
            // `5/15` means from 5 to the end in steps of 15
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(bad());
        }
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError(format!(
                "a cron expression has 5 fields (minute hour day month weekday), got {}",
                parts.len()
            )));
        }
        let mut weekdays = field(parts[4], 0, 7, "day-of-week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes: field(parts[0], 0, 59, "minute")?,
            hours: field(parts[1], 0, 23, "hour")?,
            days: field(parts[2], 1, 31, "day-of-month")?,
            months: field(parts[3], 1, 12, "month")?,
            weekdays,
            days_restricted: parts[2] != "*",
            weekdays_restricted: parts[4] != "*",
        })
    }

    fn day_matches(&self, day: i64) -> bool {
        let (_, m, d) = civil_from_days(day);
        if self.months & (1 << m) == 0 {
            return false;
        }
        let dom = self.days & (1 << d) != 0;
        let dow = self.weekdays & (1 << weekday(day)) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first matching minute strictly after `t`; `None` when nothing matches within 5 years
    /// (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, t: Ts) -> Option<Ts> {
        let mut m = t.div_euclid(60) + 1; // minutes since the epoch
        let limit = m + 5 * 366 * 1440;
        while m < limit {
            let day = m.div_euclid(1440);
            if !self.day_matches(day) {
                m = (day + 1) * 1440;
                continue;
            }
            let hour = m.rem_euclid(1440) / 60;
            if self.hours & (1 << hour) == 0 {
                m = day * 1440 + (hour + 1) * 60;
                continue;
            }
            let minute = m.rem_euclid(60);
            if self.minutes & (1 << minute) == 0 {
                m += 1;
                continue;
            }
            return Some(m * 60);
        }
        None
    }
}

/// When a schedule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cadence {
    /// Every this many minutes (≥ 1) after the last run.
    Interval {
        minutes: i64,
    },
    Cron(Cron),
}

impl Cadence {
    pub fn next_after(&self, t: Ts) -> Option<Ts> {
        match self {
            Cadence::Interval { minutes } => Some(t + minutes.max(&1) * 60),
            Cadence::Cron(c) => c.next_after(t),
        }
    }
}

/// The scheduler's answer for one schedule at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Take one backup now.
    pub run_now: bool,
    /// What `next_run_at` becomes.
    pub next_run_at: Option<Ts>,
}

/// Due → one run now, and the next slot after now (missed slots are not caught up one by one).
/// No `next_run_at` yet → none now, the first slot after now.
pub fn tick(cadence: &Cadence, enabled: bool, next_run_at: Option<Ts>, now: Ts) -> Tick {
    match next_run_at {
        _ if !enabled => Tick {
            run_now: false,
            next_run_at,
        },
        Some(next) if next <= now => Tick {
            run_now: true,
            next_run_at: cadence.next_after(now),
        },
        Some(next) => Tick {
            run_now: false,
            next_run_at: Some(next),
        },
        None => Tick {
            run_now: false,
            next_run_at: cadence.next_after(now),
        },
    }
}

/// The ids of the backups retention expires. `completed`: (id, completed_at), newest first.
pub fn expired(
    completed: &[(String, Ts)],
    keep_last: Option<u32>,
    keep_days: Option<u32>,
    now: Ts,
) -> Vec<&str> {
    if keep_last.is_none() && keep_days.is_none() {
        return Vec::new();
    }
    completed
        .iter()
        .enumerate()
        .filter(|(i, (_, at))| {
            let by_count = keep_last.is_some_and(|n| (*i as u64) < n as u64);
            let by_age = keep_days.is_some_and(|d| now - at < d as i64 * 86_400);
            !(*i == 0 || by_count || by_age)
        })
        .map(|(_, (id, _))| id.as_str())
        .collect()
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31) (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// 0 = Sunday.
fn weekday(day: i64) -> u32 {
    (day + 4).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2026-02-18T12:00:00Z (a Wednesday).
    const T: Ts = 1_771_416_000;

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(T / 86_400), (2026, 2, 18));
        assert_eq!(weekday(T / 86_400), 3);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn cron_table() {
        let cases = [
            // expr, after, next
            ("* * * * *", T, T + 60),
            ("*/15 * * * *", T + 60, T + 15 * 60),
            ("0 3 * * *", T, T + 15 * 3600),
            ("30 2 1 * *", T, 1_772_332_200), // 2026-03-01T02:30Z
            ("0 0 * * 0", T, T + 4 * 86_400 - 12 * 3600), // next Sunday
            ("0 0 * * 7", T, T + 4 * 86_400 - 12 * 3600),
            ("0 12 18 2 *", T, 1_802_952_000), // a year later
            ("0 0 1 * 1", T, T + 5 * 86_400 - 12 * 3600), // day 1 OR Monday: Monday the 23rd
            ("0 0 1 1 1", T, 1_798_761_600),   // January only: 2027-01-01
            ("5-10/5 1,2 * * *", T, T + 13 * 3600 + 5 * 60),
        ];
        for (expr, after, next) in cases {
            assert_eq!(
                Cron::parse(expr).unwrap().next_after(after),
                Some(next),
                "{expr}"
            );
        }
        assert_eq!(Cron::parse("0 0 30 2 *").unwrap().next_after(T), None);
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "a * * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missed_schedule_runs_once() {
        let hourly = Cadence::Interval { minutes: 60 };
        // down for 10 hours: one run now, the next one an hour from now
        let t = tick(&hourly, true, Some(T - 10 * 3600), T);
        assert_eq!(
            t,
            Tick {
                run_now: true,
                next_run_at: Some(T + 3600)
            }
        );
        // after that run, nothing until the next slot
        assert!(!tick(&hourly, true, t.next_run_at, T + 60).run_now);
        let cron = Cadence::Cron(Cron::parse("0 * * * *").unwrap());
        let t = tick(&cron, true, Some(T - 7 * 3600), T + 90);
        assert_eq!(
            t,
            Tick {
                run_now: true,
                next_run_at: Some(T + 3600)
            }
        );
        assert_eq!(
            tick(&cron, true, None, T),
            Tick {
                run_now: false,
                next_run_at: Some(T + 3600)
            }
        );
        assert!(!tick(&cron, false, Some(T - 1), T).run_now);
    }

    #[test]
    fn retention_table() {
        let day = 86_400;
        let backups: Vec<(String, Ts)> = (0..5).map(|i| (format!("b{i}"), T - i * day)).collect();
        assert_eq!(expired(&backups, Some(3), None, T), ["b3", "b4"]);
        assert_eq!(expired(&backups, None, Some(2), T), ["b2", "b3", "b4"]);
        assert_eq!(expired(&backups, Some(1), Some(3), T), ["b3", "b4"]);
        assert!(expired(&backups, None, None, T).is_empty());
        assert!(expired(&backups, Some(10), None, T).is_empty());
        // the newest is kept even when every backup is old
        let old: Vec<(String, Ts)> = vec![("x".into(), T - 100 * day), ("y".into(), T - 101 * day)];
        assert_eq!(expired(&old, None, Some(1), T), ["y"]);
    }

    proptest! {
        #[test]
        fn next_is_the_first_match(min in 0u32..60, hour in prop::option::of(0u32..24), step in 1u32..30,
                                   t in 0i64..4_000_000_000) {
            let expr = format!("{}/{step} {} * * *", min, hour.map_or("*".to_string(), |h| h.to_string()));
            let c = Cron::parse(&expr).unwrap();
            let next = c.next_after(t).unwrap();
            prop_assert!(next > t && next % 60 == 0);
            let m = (next / 60) % 60;
            prop_assert!(m >= min as i64 && (m - min as i64) % step as i64 == 0);
            if let Some(h) = hour { prop_assert_eq!((next / 3600) % 24, h as i64); }
            // nothing matches in between
            let mut probe = (t / 60 + 1) * 60;
            while probe < next {
                let pm = (probe / 60) % 60;
                let ph = (probe / 3600) % 24;
                let matches = pm >= min as i64 && (pm - min as i64) % step as i64 == 0
                    && hour.is_none_or(|h| ph == h as i64);
                prop_assert!(!matches, "{} matches before {}", probe, next);
                probe += 60;
            }
        }

        #[test]
        fn keep_last_leaves_exactly_that_many(n in 1u32..10, count in 0usize..20) {
            let backups: Vec<(String, Ts)> = (0..count).map(|i| (format!("b{i}"), T - i as i64 * 60)).collect();
            let gone = expired(&backups, Some(n), None, T);
            prop_assert_eq!(count - gone.len(), count.min(n as usize));
            if count > 0 { prop_assert!(!gone.contains(&"b0")); }
        }

        #[test]
        fn tick_runs_at_most_once(next in 0i64..1_000_000, now in 0i64..2_000_000, minutes in 1i64..600) {
            let c = Cadence::Interval { minutes };
            let t = tick(&c, true, Some(next), now);
            prop_assert_eq!(t.run_now, next <= now);
            if t.run_now { prop_assert!(t.next_run_at.unwrap() > now); }
            let again = tick(&c, true, t.next_run_at, now);
            prop_assert!(!again.run_now);
        }
    }
}
