//! RRule schedules: the rule set (Prefect's 2020 anchor when the rule has no DTSTART), the
//! checks that refuse rules which can never run, and expansion in a window that starts near the
//! window instead of at the rule's start, bounded per call. Pure: no I/O, no clock.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};

/// Prefect's default anchor for RRules without DTSTART.
const DEFAULT_ANCHOR: &str = "2020-01-01T00:00:00";

/// Prefect's limit on an RRule string (about a year of RDATEs).
const MAX_RRULE_LENGTH: usize = 6500;

/// The most instants one schedule may expand in one call: bounds the work a single rule can cost
/// a scheduler pass (a rule with a COUNT that can't start near the window, or one whose window is
/// densely packed, stops here instead of burning CPU).
const MAX_EXPANDED: usize = 200_000;

/// The rule set of an RRule string in `timezone`.
pub(super) fn rule_set(rrule: &str, timezone: &str) -> Result<rrule::RRuleSet, String> {
    let text = if rrule.to_uppercase().contains("DTSTART") {
        rrule.to_string()
    } else {
        let start = NaiveDateTime::parse_from_str(DEFAULT_ANCHOR, "%Y-%m-%dT%H:%M:%S")
            .map_err(|e| e.to_string())?;
        let body = if rrule.to_uppercase().starts_with("RRULE:") {
            rrule.to_string()
        } else {
            format!("RRULE:{rrule}")
        };
        format!(
            "DTSTART;TZID={timezone}:{}\n{body}",
            start.format("%Y%m%dT%H%M%S")
        )
    };
    text.parse::<rrule::RRuleSet>()
        .map_err(|e| format!("Invalid RRule string: {e}"))
}

/// Refuses (with the reason for a 422) rules longer than Prefect's limit, that don't parse, with
/// INTERVAL=0, or that produce no date at all.
pub(super) fn validate(rrule: &str, timezone: &str) -> Result<(), String> {
    if rrule.len() > MAX_RRULE_LENGTH {
        return Err(format!(
            "Invalid RRule string: longer than {MAX_RRULE_LENGTH} characters"
        ));
    }
    let set = rule_set(rrule, timezone)?;
    if set.get_rrule().iter().any(|r| r.get_interval() == 0) {
        return Err("Invalid RRule string: INTERVAL must be at least 1".into());
    }
    // The iterator gives up after a bounded number of empty periods, so this ends.
    if (&set.limit()).into_iter().next().is_none() {
        return Err("Invalid RRule string: the rule produces no dates".into());
    }
    Ok(())
}

/// Up to `n` instants of `set` in [start, end), starting near `start` (see [`start_near`]).
pub(super) fn dates(
    set: rrule::RRuleSet,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    expand(&start_near(set, start), start, end, n)
}

/// Up to `n` instants of `set` in [start, end), expanding at most [`MAX_EXPANDED`] instants.
fn expand(
    set: &rrule::RRuleSet,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for (expanded, d) in set.into_iter().enumerate() {
        if expanded >= MAX_EXPANDED {
            tracing::warn!(
                rrule = %set.to_string().replace('\n', " "),
                "schedule expansion stopped after {MAX_EXPANDED} instants before reaching its window"
            );
            break;
        }
        let d = d.with_timezone(&Utc);
        if d >= end {
            break;
        }
        if d >= start {
            out.push(d);
            if out.len() >= n {
                break;
            }
        }
    }
    out
}

/// The same rule set with its DTSTART moved forward by whole periods to shortly before `start`,
/// so that a sub-daily rule anchored in 2020 isn't walked second by second to today. Only for a
/// single rule of fixed-length periods (secondly to weekly) without COUNT: the rule's
/// defaults were already filled from the original start, and the iteration steps through local
/// wall-clock time, so whole periods later it produces the same instants. Where the iterator
/// skips ahead over filtered hours or minutes (secondly rules with BYHOUR/BYMINUTE, minutely ones
/// with BYHOUR) its steps depend on the time of day, so those move by whole days as well. Anything
/// else is returned as it is (and bounded by [`MAX_EXPANDED`]).
fn start_near(set: rrule::RRuleSet, start: DateTime<Utc>) -> rrule::RRuleSet {
    use rrule::Frequency;
    let set = set.limit();
    let [rule] = set.get_rrule().as_slice() else {
        return set;
    };
    if rule.get_count().is_some() {
        return set;
    }
    let (unit, skips_by_time): (i64, bool) = match rule.get_freq() {
        Frequency::Secondly => (
            1,
            !rule.get_by_hour().is_empty() || !rule.get_by_minute().is_empty(),
        ),
        Frequency::Minutely => (60, !rule.get_by_hour().is_empty()),
        Frequency::Hourly => (3_600, false),
        Frequency::Daily => (86_400, false),
        Frequency::Weekly => (604_800, false),
        Frequency::Monthly | Frequency::Yearly => return set,
    };
    let mut period = unit * i64::from(rule.get_interval().max(1));
    if skips_by_time {
        period = period / gcd(period, 86_400) * 86_400;
    }
    let dt_start = *set.get_dt_start();
    let zone = dt_start.timezone();
    let from = dt_start.naive_local();
    // A margin of three hours keeps a DST change between the new start and the window harmless.
    let Some(target) = start
        .with_timezone(&zone)
        .naive_local()
        .checked_sub_signed(Duration::hours(3))
    else {
        return set;
    };
    let elapsed = (target - from).num_seconds();
    if elapsed <= period {
        return set;
    }
    let periods = elapsed / period;
    // A new start that falls in a DST gap or overlap moves one more period back.
    for back in 0..4 {
        let shifted = (periods - back)
            .checked_mul(period)
            .and_then(Duration::try_seconds)
            .and_then(|d| from.checked_add_signed(d));
        let Some(shifted) = shifted else {
            return set;
        };
        if let chrono::LocalResult::Single(new_start) = zone.from_local_datetime(&shifted) {
            return rrule::RRuleSet::new(new_start)
                .set_rrules(set.get_rrule().clone())
                .set_rdates(set.get_rdate().clone())
                .set_exdates(set.get_exdate().clone())
                .limit();
        }
    }
    set
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduling::Schedule;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        crate::time::parse(s).expect("time")
    }

    /// Moving DTSTART forward by whole periods doesn't change a single instant: the expansion
    /// from near the window equals the full walk from the original start, across DST changes.
    #[test]
    fn rrules_start_near_the_window_with_the_same_instants() {
        let (a, b) = (at("2026-03-07T00:00:00Z"), at("2026-03-10T12:00:00Z"));
        for (rule, zone) in [
            ("FREQ=MINUTELY;INTERVAL=7", "America/New_York"),
            ("FREQ=HOURLY;BYMINUTE=15,45", "Europe/Berlin"),
            ("FREQ=HOURLY;INTERVAL=5", "America/New_York"),
            ("FREQ=SECONDLY;INTERVAL=13;BYMINUTE=0", "UTC"),
            ("FREQ=DAILY;BYHOUR=2,3;BYMINUTE=30", "America/New_York"),
            (
                "DTSTART:20260105T101500Z\nRRULE:FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,FR",
                "UTC",
            ),
        ] {
            let rrule = format!("DTSTART;TZID={zone}:20260101T000017\nRRULE:{rule}");
            let rrule = if rule.starts_with("DTSTART") {
                rule.to_string()
            } else {
                rrule
            };
            let s = Schedule::parse(
                &json!({"rrule": rrule, "timezone": zone}),
                crate::time::now(),
            )
            .expect("valid");
            let set = rule_set(&rrule, zone).expect("set");
            let near = start_near(set.clone(), a);
            let moved = near.get_dt_start().with_timezone(&Utc);
            assert!(
                moved > a - Duration::days(22) && moved <= a,
                "{rule}: starts near the window, not at {moved}"
            );
            let full: Vec<_> = set
                .after(
                    rrule::Tz::UTC.from_utc_datetime(&(a - Duration::microseconds(1)).naive_utc()),
                )
                .before(rrule::Tz::UTC.from_utc_datetime(&b.naive_utc()))
                .all(u16::MAX)
                .dates
                .into_iter()
                .map(|d| d.with_timezone(&Utc))
                .filter(|d| *d >= a && *d < b)
                .take(2000)
                .collect();
            assert!(!full.is_empty(), "{rule}");
            assert_eq!(s.dates(a, b, 2000), full, "{rule}");
        }
    }

    /// A secondly rule anchored in 2020 (Prefect's default) starts at the window; a rule with a
    /// COUNT keeps its start, and the work it can cost is bounded either way.
    #[test]
    fn secondly_rules_are_cheap_and_counted_rules_bounded() {
        let now = at("2026-12-03T10:00:00.250Z");
        let s = Schedule::parse(&json!({"rrule": "FREQ=SECONDLY"}), now).expect("valid");
        let d = s.dates(now, now + Duration::days(100), 100);
        assert_eq!(d.len(), 100);
        assert_eq!(d[0], at("2026-12-03T10:00:01Z"));
        assert_eq!(d[99], at("2026-12-03T10:01:40Z"));
        let counted =
            Schedule::parse(&json!({"rrule": "FREQ=SECONDLY;COUNT=4000000"}), now).expect("valid");
        // Its four million seconds ended in February 2020: nothing now, found out in bounded work.
        assert!(counted.dates(now, now + Duration::days(1), 10).is_empty());
    }

    #[test]
    fn rrules_that_cannot_produce_a_run_are_rejected() {
        let now = crate::time::now();
        for (rule, why) in [
            ("FREQ=SECONDLY;INTERVAL=0", "INTERVAL"),
            ("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=31", "no dates"),
            ("FREQ=DAILY;COUNT=0", "no dates"),
        ] {
            let e = Schedule::parse(&json!({"rrule": rule}), now).expect_err(rule);
            assert!(e.contains(why), "{rule}: {e}");
        }
        let long = format!("FREQ=DAILY;BYHOUR={}", vec!["1"; 4000].join(","));
        assert!(Schedule::parse(&json!({"rrule": long}), now)
            .expect_err("too long")
            .contains("6500"));
    }
}
