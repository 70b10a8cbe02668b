//! Deployment schedules (interval with anchor date, cron with `day_or`, RRule), each with a
//! timezone: parsing and validation of the JSON the client sends, and the next run times in a
//! window, correct across daylight-saving changes. Pure: no I/O, no clock.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::recurrence;
use chrono_tz::Tz;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Interval {
        seconds: f64,
        anchor: DateTime<Utc>,
        timezone: String,
    },
    Cron {
        cron: String,
        /// As sent: a cron schedule without one reads back `null` (as the reference's), and
        /// runs in UTC.
        timezone: Option<String>,
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

/// Prefect's `normalize_rrule_string`: a rule without `DTSTART` gets one, written as a floating
/// local time. A single SECONDLY or MINUTELY rule without `COUNT` starts at the latest whole
/// period after 2020-01-01 00:00 that is not after `now` on the schedule's wall clock (so the
/// occurrences are the same, without walking every one since 2020); anything else gets
/// 2020-01-01 00:00, the anchor such a rule always had.
fn with_dtstart(rrule: &str, timezone: &str, now: DateTime<Utc>) -> String {
    if rrule.to_ascii_uppercase().contains("DTSTART") {
        return rrule.to_string();
    }
    let legacy = chrono::NaiveDate::from_ymd_opt(2020, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    let lines: Vec<&str> = rrule.lines().filter(|l| !l.trim().is_empty()).collect();
    let single = match lines.as_slice() {
        [one] => {
            let up = one.trim().to_ascii_uppercase();
            (!["EXRULE", "RDATE", "EXDATE"]
                .iter()
                .any(|k| up.starts_with(k)))
            .then(|| up.trim_start_matches("RRULE:").to_string())
        }
        _ => None,
    };
    let part = |rule: &str, key: &str| {
        rule.split(';')
            .find_map(|kv| kv.split_once('=').filter(|(k, _)| k.trim() == key))
            .map(|(_, v)| v.trim().to_string())
    };
    let period = single.as_ref().and_then(|rule| {
        let unit = match part(rule, "FREQ").as_deref() {
            Some("SECONDLY") => 1,
            Some("MINUTELY") => 60,
            _ => return None,
        };
        if part(rule, "COUNT").is_some() {
            return None;
        }
        let interval = match part(rule, "INTERVAL") {
            Some(i) => i.parse::<i64>().ok().filter(|i| *i > 0)?,
            None => 1,
        };
        Some(unit * interval)
    });
    let start = match (period, tz(timezone)) {
        (Some(period), Ok(zone)) => {
            let wall = now.with_timezone(&zone).naive_local();
            let elapsed = (wall - legacy).num_seconds();
            if elapsed <= 0 {
                legacy
            } else {
                legacy + chrono::Duration::seconds(elapsed / period * period)
            }
        }
        _ => legacy,
    };
    format!("DTSTART:{}\n{rrule}", start.format("%Y%m%dT%H%M%S"))
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
                timezone,
                day_or,
            });
        }
        if let Some(r) = obj.get("rrule") {
            let rrule = r.as_str().ok_or("rrule must be a string")?.to_string();
            let timezone = timezone.unwrap_or_else(|| "UTC".into());
            recurrence::validate(&rrule, &timezone)?;
            let rrule = with_dtstart(&rrule, &timezone, now);
            return Ok(Schedule::RRule { rrule, timezone });
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
                let zone = tz(timezone.as_deref().unwrap_or("UTC"));
                let (Ok(c), Ok(zone)) = (parse_cron(cron, *day_or), zone) else {
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
            Schedule::RRule { rrule, timezone } => {
                let Ok(set) = recurrence::rule_set(rrule, timezone) else {
                    return Vec::new();
                };
                recurrence::dates(set, start, end, n)
            }
        }
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

#[cfg(test)]
mod dtstart_tests {
    use super::with_dtstart;
    use chrono::{TimeZone, Utc};

    #[test]
    fn rules_without_dtstart_get_prefects_anchor() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 4, 11, 37, 42)
            .single()
            .expect("now");
        assert_eq!(
            with_dtstart("FREQ=DAILY;BYHOUR=6", "UTC", now),
            "DTSTART:20200101T000000\nFREQ=DAILY;BYHOUR=6"
        );
        // High frequency without COUNT: the latest whole period not after now, on the
        // schedule's wall clock (Paris is UTC+1 in December).
        assert_eq!(
            with_dtstart("FREQ=MINUTELY;INTERVAL=5", "Europe/Paris", now),
            "DTSTART:20261204T123500\nFREQ=MINUTELY;INTERVAL=5"
        );
        assert_eq!(
            with_dtstart("RRULE:FREQ=SECONDLY", "UTC", now),
            "DTSTART:20261204T113742\nRRULE:FREQ=SECONDLY"
        );
        assert_eq!(
            with_dtstart("FREQ=MINUTELY;COUNT=3", "UTC", now),
            "DTSTART:20200101T000000\nFREQ=MINUTELY;COUNT=3"
        );
        let anchored = "DTSTART:20250101T090000\nFREQ=MINUTELY";
        assert_eq!(with_dtstart(anchored, "UTC", now), anchored);
    }
}
