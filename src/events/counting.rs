//! `/events/count-by/{countable}`: the time buckets of a count (Prefect's
//! `prefect/server/events/counting.py`). Every bucket is a whole number of intervals from a fixed
//! pivot, so the same instant always falls in the same bucket; a count by time lists every
//! bucket of the window, empty ones included.

use chrono::{DateTime, Datelike, Duration, DurationRound, TimeDelta, Utc};
use serde::Deserialize;

/// Every bucket starts a whole number of intervals after this Monday (Prefect's pivot).
pub fn pivot() -> DateTime<Utc> {
    DateTime::from_timestamp(1_711_929_600, 0).unwrap_or_default()
}

/// The most buckets one count may have.
pub const MAX_BUCKETS: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Countable {
    Day,
    Time,
    Event,
    Resource,
}

impl Countable {
    pub fn parse(s: &str) -> Option<Countable> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    Week,
    #[default]
    Day,
    Hour,
    Minute,
    Second,
}

impl TimeUnit {
    fn seconds(self) -> f64 {
        match self {
            TimeUnit::Week => 604_800.0,
            TimeUnit::Day => 86_400.0,
            TimeUnit::Hour => 3_600.0,
            TimeUnit::Minute => 60.0,
            TimeUnit::Second => 1.0,
        }
    }

    /// `interval` units, in whole microseconds (at least one).
    pub fn step_us(self, interval: f64) -> i64 {
        ((self.seconds() * interval * 1_000_000.0).round() as i64).max(1)
    }

    /// The last microsecond of the period of this unit `now` is in.
    fn end_of_period(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let start = match self {
            TimeUnit::Week => {
                let monday = now.date_naive()
                    - Duration::days(i64::from(now.weekday().num_days_from_monday()));
                monday.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
            }
            TimeUnit::Day => now.duration_trunc(TimeDelta::days(1)).unwrap_or(now),
            TimeUnit::Hour => now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now),
            TimeUnit::Minute => now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now),
            TimeUnit::Second => now.duration_trunc(TimeDelta::seconds(1)).unwrap_or(now),
        };
        start + TimeDelta::microseconds(self.step_us(1.0) - 1)
    }
}

/// Why these buckets can't be counted (Prefect's messages), if they can't.
pub fn check(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    unit: TimeUnit,
    interval: f64,
) -> Result<(), String> {
    if !interval.is_finite() || interval < 0.01 {
        return Err("The minimum interval is 0.01".into());
    }
    let step = unit.step_us(interval);
    let span = (until - since).num_microseconds().unwrap_or(i64::MAX);
    let buckets = span.div_euclid(step) + i64::from(span.rem_euclid(step) != 0);
    if buckets > MAX_BUCKETS {
        return Err(format!(
            "The given interval would create {buckets} buckets, which is too many. Please \
             increase the interval or reduce the time range to produce {MAX_BUCKETS} buckets or \
             fewer."
        ));
    }
    Ok(())
}

/// A bucket's first and last microsecond.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// The buckets from the one `since` is in to the one `until` (or, for a window reaching past
/// now, the end of the current period) is in: the first one's index from the pivot, and each
/// one's first and last microsecond.
pub fn spans(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    unit: TimeUnit,
    interval: f64,
    now: DateTime<Utc>,
) -> (i64, Vec<Span>) {
    let step = unit.step_us(interval);
    let end = if until > now {
        unit.end_of_period(now)
    } else {
        until
    };
    let from_pivot = (since - pivot()).num_microseconds().unwrap_or(0);
    let first = from_pivot.div_euclid(step);
    let mut out = Vec::new();
    // Checked: an interval of centuries would step past the last representable time.
    let mut start = pivot().checked_add_signed(TimeDelta::microseconds(first.saturating_mul(step)));
    while let Some(s) = start.filter(|s| *s < end && (out.len() as i64) <= MAX_BUCKETS) {
        let next = s.checked_add_signed(TimeDelta::microseconds(step));
        out.push((
            s,
            next.map_or(DateTime::<Utc>::MAX_UTC, |n| n - TimeDelta::microseconds(1)),
        ));
        start = next;
    }
    (first, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::time::parse(s).expect("time")
    }

    #[test]
    fn day_buckets_cover_the_window_and_stop_at_the_end_of_today() {
        let now = t("2026-12-04T15:00:00Z");
        let (first, s) = spans(
            t("2026-12-01T10:00:00Z"),
            t("2026-12-05T00:00:00Z"),
            TimeUnit::Day,
            1.0,
            now,
        );
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].0, t("2026-12-01T00:00:00Z"));
        assert_eq!(s[3].1, t("2026-12-04T23:59:59.999999Z"));
        assert_eq!(first, (t("2026-12-01T00:00:00Z") - pivot()).num_days());
    }

    #[test]
    fn too_many_buckets_or_too_small_an_interval_is_refused() {
        let (a, b) = (t("2026-01-01T00:00:00Z"), t("2026-12-01T00:00:00Z"));
        assert!(check(a, b, TimeUnit::Day, 1.0).is_ok());
        assert!(check(a, b, TimeUnit::Hour, 1.0)
            .expect_err("too many")
            .contains("buckets"));
        assert_eq!(
            check(a, b, TimeUnit::Day, 0.001).expect_err("small"),
            "The minimum interval is 0.01"
        );
        assert_eq!(Countable::parse("resource"), Some(Countable::Resource));
        assert_eq!(Countable::parse("nope"), None);
        // An interval of millennia is one bucket, not an overflow.
        let (_, s) = spans(a, b, TimeUnit::Week, 1e300, t("2026-12-04T00:00:00Z"));
        assert_eq!(s.len(), 1);
    }
}
