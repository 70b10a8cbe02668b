//! Deployment schedules (interval with anchor date, cron with `day_or`, RRule), each with a
//! timezone: parsing and validation of the JSON the client sends, and the next run times in a
//! window, correct across daylight-saving changes. Pure: no I/O, no clock.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

/// Prefect's default anchor for RRules without DTSTART.
const DEFAULT_ANCHOR: &str = "2020-01-01T00:00:00";

/// Prefect's limit on an RRule string (about a year of RDATEs).
const MAX_RRULE_LENGTH: usize = 6500;

/// The most instants one schedule may expand in one call: bounds the work a single rule can cost
/// a scheduler pass (a rule with a COUNT that can't start near the window, or one whose window is
/// densely packed, stops here instead of burning CPU).
const MAX_EXPANDED: usize = 200_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Interval {
        seconds: f64,
        anchor: DateTime<Utc>,
        timezone: String,
    },
    Cron {
        cron: String,
        timezone: String,
        day_or: bool,
    },
    RRule {
        rrule: String,
        timezone: String,
    },
}

fn tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("Invalid timezone: {name:?}"))
}

impl Schedule {
    /// Parses `{"interval": s, "anchor_date", "timezone"}`, `{"cron", "timezone", "day_or"}` or
    /// `{"rrule", "timezone"}`; the error is the reason to answer 422 with.
    pub fn parse(v: &Value, now: DateTime<Utc>) -> Result<Schedule, String> {
        let obj = v.as_object().ok_or("schedule must be an object")?;
        let timezone = match obj.get("timezone") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("timezone must be a string".into()),
        };
        if let Some(tzname) = &timezone {
            tz(tzname)?;
        }
        if let Some(iv) = obj.get("interval") {
            let seconds = match iv {
                Value::Number(n) => n.as_f64().ok_or("interval must be a number of seconds")?,
                Value::String(s) => {
                    parse_iso_duration(s).ok_or("interval must be a number of seconds")?
                }
                _ => return Err("interval must be a number of seconds".into()),
            };
            if seconds <= 0.0 || !seconds.is_finite() {
                return Err("The interval must be positive".into());
            }
            let anchor = match obj.get("anchor_date") {
                None | Some(Value::Null) => now,
                Some(Value::String(s)) => {
                    crate::time::parse(s).ok_or("anchor_date must be a datetime")?
                }
                Some(_) => return Err("anchor_date must be a datetime".into()),
            };
            return Ok(Schedule::Interval {
                seconds,
                anchor,
                timezone: timezone.unwrap_or_else(|| "UTC".into()),
            });
        }
        if let Some(c) = obj.get("cron") {
            let cron = c.as_str().ok_or("cron must be a string")?.to_string();
            let day_or = obj.get("day_or").and_then(Value::as_bool).unwrap_or(true);
            parse_cron(&cron, day_or)?;
            return Ok(Schedule::Cron {
                cron,
                timezone: timezone.unwrap_or_else(|| "UTC".into()),
                day_or,
            });
        }
        if let Some(r) = obj.get("rrule") {
            let rrule = r.as_str().ok_or("rrule must be a string")?.to_string();
            if rrule.len() > MAX_RRULE_LENGTH {
                return Err(format!(
                    "Invalid RRule string: longer than {MAX_RRULE_LENGTH} characters"
                ));
            }
            let s = Schedule::RRule {
                rrule,
                timezone: timezone.unwrap_or_else(|| "UTC".into()),
            };
            let set = s.rrule_set()?;
            if set.get_rrule().iter().any(|r| r.get_interval() == 0) {
                return Err("Invalid RRule string: INTERVAL must be at least 1".into());
            }
            // The iterator gives up after a bounded number of empty periods, so this ends.
            if (&set.limit()).into_iter().next().is_none() {
                return Err("Invalid RRule string: the rule produces no dates".into());
            }
            return Ok(s);
        }
        Err("schedule must have an interval, a cron or an rrule".into())
    }

    /// The schedule's class name in Prefect (shown when a schedule has no slug).
    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::Interval { .. } => "IntervalSchedule",
            Schedule::Cron { .. } => "CronSchedule",
            Schedule::RRule { .. } => "RRuleSchedule",
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Schedule::Interval {
                seconds,
                anchor,
                timezone,
            } => {
                json!({"interval": seconds, "anchor_date": crate::time::format(anchor), "timezone": timezone})
            }
            Schedule::Cron {
                cron,
                timezone,
                day_or,
            } => json!({"cron": cron, "timezone": timezone, "day_or": day_or}),
            Schedule::RRule { rrule, timezone } => json!({"rrule": rrule, "timezone": timezone}),
        }
    }

    fn rrule_set(&self) -> Result<rrule::RRuleSet, String> {
        let Schedule::RRule { rrule, timezone } = self else {
            return Err("not an rrule".into());
        };
        let text = if rrule.to_uppercase().contains("DTSTART") {
            rrule.clone()
        } else {
            let start = NaiveDateTime::parse_from_str(DEFAULT_ANCHOR, "%Y-%m-%dT%H:%M:%S")
                .map_err(|e| e.to_string())?;
            let body = if rrule.to_uppercase().starts_with("RRULE:") {
                rrule.clone()
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

    /// Up to `n` run times in [start, end), in order.
    pub fn dates(&self, start: DateTime<Utc>, end: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        if n == 0 || start >= end {
            return Vec::new();
        }
        match self {
            Schedule::Interval {
                seconds,
                anchor,
                timezone,
            } => interval_dates(*seconds, *anchor, timezone, start, end, n),
            Schedule::Cron {
                cron,
                timezone,
                day_or,
            } => {
                let (Ok(c), Ok(zone)) = (parse_cron(cron, *day_or), tz(timezone)) else {
                    return Vec::new();
                };
                // Cron times are whole seconds: start from the next whole second.
                let whole = start.timestamp() + i64::from(start.timestamp_subsec_nanos() > 0);
                let from = DateTime::<Utc>::from_timestamp(whole, 0)
                    .unwrap_or(start)
                    .with_timezone(&zone);
                c.iter_from(from, croner::Direction::Forward)
                    .take_while(|d| d.with_timezone(&Utc) < end)
                    .take(n)
                    .map(|d| d.with_timezone(&Utc))
                    .collect()
            }
            Schedule::RRule { .. } => {
                let Ok(set) = self.rrule_set() else {
                    return Vec::new();
                };
                rrule_dates(&start_near(set, start), start, end, n)
            }
        }
    }
}

/// Up to `n` instants of `set` in [start, end), expanding at most [`MAX_EXPANDED`] instants.
fn rrule_dates(
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

fn parse_cron(expr: &str, day_or: bool) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .dom_and_dow(!day_or)
        .build()
        .parse(expr)
        .map_err(|e| format!("Invalid cron string: {e}"))
}

/// `PT1H`-style durations (pydantic accepts them for timedelta fields).
fn parse_iso_duration(s: &str) -> Option<f64> {
    let s = s.strip_prefix('P')?;
    let (days, time) = match s.split_once('T') {
        Some((d, t)) => (d, t),
        None => (s, ""),
    };
    let mut total = 0.0;
    if !days.is_empty() {
        total += days.strip_suffix('D')?.parse::<f64>().ok()? * 86_400.0;
    }
    let mut num = String::new();
    for ch in time.chars() {
        match ch {
            'H' => total += num.parse::<f64>().ok()? * 3600.0,
            'M' => total += num.parse::<f64>().ok()? * 60.0,
            'S' => total += num.parse::<f64>().ok()?,
            _ => {
                num.push(ch);
                continue;
            }
        }
        num.clear();
    }
    Some(total)
}

/// Interval runs: whole-day intervals keep the anchor's wall-clock time in the schedule's
/// timezone (so a daily 09:00 stays 09:00 across DST); others step in absolute time. Steps past
/// the end of chrono's calendar end the list (an interval of millennia has one run at most).
fn interval_dates(
    seconds: f64,
    anchor: DateTime<Utc>,
    timezone: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    // Saturates for intervals beyond i64 microseconds (about 292,000 years).
    let step_us = (seconds * 1e6).round() as i64;
    if step_us <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let whole_days = step_us % 86_400_000_000 == 0;
    if let (true, Ok(zone)) = (whole_days, tz(timezone)) {
        let days = step_us / 86_400_000_000;
        let local_anchor = anchor.with_timezone(&zone).naive_local();
        let elapsed_days = (start - anchor).num_days().max(0);
        let mut k = (elapsed_days / days - 1).max(0);
        while out.len() < n {
            let Some(naive) = k
                .checked_mul(days)
                .and_then(Duration::try_days)
                .and_then(|d| local_anchor.checked_add_signed(d))
            else {
                break;
            };
            let Some(t) = zone
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
            else {
                k += 1;
                continue;
            };
            if t >= end {
                break;
            }
            if t >= start {
                out.push(t);
            }
            k += 1;
        }
        return out;
    }
    // The first step at or after `start`, in i128 so that any two chrono dates fit.
    let span = start - anchor;
    let since = i128::from(span.num_seconds()) * 1_000_000 + i128::from(span.subsec_nanos() / 1000);
    let step = i128::from(step_us);
    let mut k = if since <= 0 {
        0
    } else {
        (since + step - 1) / step
    };
    while out.len() < n {
        let Some(t) = i64::try_from(k * step)
            .ok()
            .and_then(|us| anchor.checked_add_signed(Duration::microseconds(us)))
        else {
            break;
        };
        if t >= end {
            break;
        }
        if t >= start {
            out.push(t);
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        crate::time::parse(s).expect("time")
    }

    #[test]
    fn interval_steps_from_the_anchor() {
        let s = Schedule::parse(
            &json!({"interval": 3600, "anchor_date": "2026-01-01T00:30:00Z"}),
            crate::time::now(),
        )
        .expect("valid");
        let d = s.dates(at("2026-03-01T10:00:00Z"), at("2026-03-01T14:00:00Z"), 10);
        assert_eq!(
            d,
            vec![
                at("2026-03-01T10:30:00Z"),
                at("2026-03-01T11:30:00Z"),
                at("2026-03-01T12:30:00Z"),
                at("2026-03-01T13:30:00Z")
            ]
        );
    }

    #[test]
    fn daily_interval_keeps_wall_clock_across_dst() {
        let s = Schedule::parse(&json!({"interval": 86400, "anchor_date": "2026-03-01T09:00:00-05:00", "timezone": "America/New_York"}), crate::time::now())
            .expect("valid");
        let d = s.dates(at("2026-03-07T00:00:00Z"), at("2026-03-10T00:00:00Z"), 10);
        // DST starts 2026-03-08 in New York: 09:00 EST is 14:00Z, 09:00 EDT is 13:00Z.
        assert_eq!(
            d,
            vec![
                at("2026-03-07T14:00:00Z"),
                at("2026-03-08T13:00:00Z"),
                at("2026-03-09T13:00:00Z")
            ]
        );
    }

    #[test]
    fn cron_in_a_timezone_across_dst_and_day_or() {
        let s = Schedule::parse(
            &json!({"cron": "0 9 * * *", "timezone": "Europe/Berlin"}),
            crate::time::now(),
        )
        .expect("valid");
        let d = s.dates(at("2026-03-28T00:00:00Z"), at("2026-03-31T00:00:00Z"), 10);
        assert_eq!(
            d,
            vec![
                at("2026-03-28T08:00:00Z"),
                at("2026-03-29T07:00:00Z"),
                at("2026-03-30T07:00:00Z")
            ]
        );
        // 1st of the month OR Mondays (day_or true) vs AND (false).
        let or = Schedule::parse(&json!({"cron": "0 0 1 * 1"}), crate::time::now()).expect("valid");
        let and = Schedule::parse(
            &json!({"cron": "0 0 1 * 1", "day_or": false}),
            crate::time::now(),
        )
        .expect("valid");
        let (a, b) = (at("2026-06-01T00:00:00Z"), at("2026-07-01T00:00:00Z"));
        assert_eq!(
            or.dates(a, b, 50).len(),
            5,
            "June 1st plus Mondays 8, 15, 22, 29"
        );
        assert_eq!(
            and.dates(a, b, 50),
            vec![at("2026-06-01T00:00:00Z")],
            "June 1st 2026 is a Monday"
        );
    }

    #[test]
    fn rrule_with_timezone() {
        let s = Schedule::parse(&json!({"rrule": "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=8;BYMINUTE=0;BYSECOND=0", "timezone": "UTC"}), crate::time::now())
            .expect("valid");
        let d = s.dates(at("2026-06-01T00:00:00Z"), at("2026-06-08T00:00:00Z"), 10);
        assert_eq!(
            d,
            vec![at("2026-06-01T08:00:00Z"), at("2026-06-03T08:00:00Z")]
        );
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
            let set = s.rrule_set().expect("set");
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

    #[test]
    fn huge_intervals_and_far_anchors_end_the_list_instead_of_overflowing() {
        let (a, b) = (at("2026-06-01T00:00:00Z"), at("2026-09-09T00:00:00Z"));
        // Beyond i64 microseconds, and whole days beyond chrono's calendar.
        for interval in [1e13, 8_640_000_000_000.0, 1e300] {
            let s = Schedule::parse(
                &json!({"interval": interval, "anchor_date": "2026-06-02T00:00:00Z"}),
                crate::time::now(),
            )
            .expect("valid");
            assert_eq!(s.dates(a, b, 10), vec![at("2026-06-02T00:00:00Z")]);
        }
        let old = Schedule::parse(
            &json!({"interval": 3600, "anchor_date": "0001-01-01T00:00:00+00:00"}),
            crate::time::now(),
        )
        .expect("valid");
        // Years Python cannot represent are refused rather than computed with.
        assert!(Schedule::parse(
            &json!({"interval": 3600, "anchor_date": "-200000-01-01T00:00:00+00:00"}),
            crate::time::now(),
        )
        .is_err());
        assert_eq!(old.dates(a, b, 2).len(), 2);
        let late = DateTime::<Utc>::MAX_UTC;
        assert!(old.dates(late - Duration::hours(2), late, 5).len() <= 2);
    }

    #[test]
    fn invalid_schedules_are_rejected_with_a_reason() {
        let now = crate::time::now();
        assert!(Schedule::parse(&json!({"cron": "not a cron"}), now)
            .expect_err("bad")
            .contains("Invalid cron"));
        assert!(Schedule::parse(&json!({"interval": -5}), now).is_err());
        assert!(
            Schedule::parse(&json!({"interval": 60, "timezone": "Mars/Olympus"}), now)
                .expect_err("bad")
                .contains("timezone")
        );
        assert!(Schedule::parse(&json!({"rrule": "FREQ=NEVER"}), now).is_err());
        assert!(Schedule::parse(&json!({}), now).is_err());
    }
}
