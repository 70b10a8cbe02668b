//! Time, the one module for it: the clock (`now`, truncated to the microseconds both databases
//! keep), timestamps as Prefect puts them on the wire — parsing (RFC 3339 with `T` or a space,
//! `Z` or an offset, naive = UTC, bare dates, unix seconds) and formatting
//! (`2026-11-26T03:11:17.275413Z`, always microseconds and `Z`) — arithmetic helpers, and serde
//! adapters: `opt`/`req` (strict strings, Prefect's validation message) for API bodies and
//! `lenient` (strings or unix seconds) for the orchestration types.
//! Must not touch: I/O. Nothing else calls `Utc::now()`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serializer};
use std::fmt;

/// Parses the datetime forms Prefect clients and servers emit; `None` when unrecognised or
/// outside years 1 to 9999. Prefect (Python's datetime) knows no other years, and later ones
/// would be stored by SQLite as "+10000-…" text, which sorts before every ordinary date.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    parse_any(text).filter(in_python_range)
}

fn in_python_range(d: &DateTime<Utc>) -> bool {
    (1..=9999).contains(&chrono::Datelike::year(d))
}

fn parse_any(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    // "2026-11-26 03:11:58.894106+00:00": a space where RFC 3339 has `T`.
    let with_t: String = t
        .char_indices()
        .map(|(i, c)| if i == 10 && c == ' ' { 'T' } else { c })
        .collect();
    if let Ok(d) = DateTime::parse_from_rfc3339(&with_t) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M%z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(&with_t, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&with_t, fmt) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(&with_t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// Formats as RFC 3339 with exactly six fractional digits and `Z`.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Drops sub-microsecond precision (Prefect and both databases keep microseconds).
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Seconds between two instants (`later - earlier`), microsecond precision.
pub fn seconds_between(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    let delta = later - earlier;
    match delta.num_microseconds() {
        Some(us) => us as f64 / 1e6,
        None => delta.num_milliseconds() as f64 / 1e3,
    }
}

/// `t + seconds`, rounded to the microsecond; saturates instead of overflowing.
pub fn add_seconds(t: DateTime<Utc>, seconds: f64) -> DateTime<Utc> {
    if !seconds.is_finite() {
        return t;
    }
    let micros = (seconds * 1e6).round();
    let micros = micros.clamp(i64::MIN as f64, i64::MAX as f64) as i64;
    t.checked_add_signed(TimeDelta::microseconds(micros))
        .unwrap_or(if micros > 0 {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        })
}

fn from_unix_seconds(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    DateTime::from_timestamp_micros((secs * 1e6).round() as i64).filter(in_python_range)
}

struct DateTimeVisitor;

impl<'de> Visitor<'de> for DateTimeVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an ISO 8601 / RFC 3339 datetime string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse(v).ok_or_else(|| E::custom(format_args!("invalid datetime: {v:?}")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        from_unix_seconds(v as f64).ok_or_else(|| E::custom("datetime out of range"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        from_unix_seconds(v as f64).ok_or_else(|| E::custom("datetime out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        from_unix_seconds(v).ok_or_else(|| E::custom("datetime out of range"))
    }
}

/// The lenient adapters of the orchestration types: an RFC 3339 / ISO 8601 string or unix
/// seconds (numbers), as Prefect's pydantic models accept in states and policies.
pub mod lenient {
    use super::{format, DateTimeVisitor};
    use chrono::{DateTime, Utc};
    use serde::{Deserializer, Serializer};

    /// Serde adapter for `DateTime<Utc>`: `#[serde(with = "crate::time::lenient")]`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// Serde adapter for `DateTime<Utc>` (see [`serialize`]).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_any(DateTimeVisitor)
    }

    /// Serde adapter for `Option<DateTime<Utc>>`; `null` and a missing field (with
    /// `#[serde(default)]`) both give `None`.
    pub mod option {
        use super::super::DateTimeVisitor;
        use chrono::{DateTime, Utc};
        use serde::de::{self, Visitor};
        use serde::{Deserializer, Serializer};
        use std::fmt;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::format(t)),
                None => s.serialize_none(),
            }
        }

        struct OptionVisitor;

        impl<'de> Visitor<'de> for OptionVisitor {
            type Value = Option<DateTime<Utc>>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("null or an ISO 8601 / RFC 3339 datetime string")
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(DateTimeVisitor).map(Some)
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            d.deserialize_option(OptionVisitor)
        }
    }
}

pub fn format_naive(t: &NaiveDateTime) -> String {
    format(&t.and_utc())
}

/// The current time truncated to microseconds (what both databases store).
pub fn now() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

/// [`now`] as the naive UTC the databases store.
pub fn now_naive() -> NaiveDateTime {
    now().naive_utc()
}

/// Serde helpers for `Option<DateTime<Utc>>` fields in Prefect's formats.
pub mod opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_str(&format(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(s) => parse(&s).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!("Input should be a valid datetime, got `{s}`"))
            }),
        }
    }
}

/// Serde helpers for required `DateTime<Utc>` fields.
pub mod req {
    use super::*;

    pub fn serialize<S: Serializer>(v: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("Input should be a valid datetime, got `{s}`"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Holder {
        #[serde(with = "super::lenient")]
        at: DateTime<Utc>,
        #[serde(default, with = "super::lenient::option")]
        maybe: Option<DateTime<Utc>>,
    }

    fn expected() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 3, 11, 58)
            .single()
            .unwrap()
            + TimeDelta::microseconds(894_106)
    }

    #[test]
    fn parses_z_offset_space_and_naive_forms() {
        for text in [
            "2026-11-26T03:11:58.894106Z",
            "2026-11-26T03:11:58.894106+00:00",
            "2026-11-26 03:11:58.894106+00:00",
            "2026-11-26T05:11:58.894106+02:00",
            "2026-11-26T03:11:58.894106",
            "2026-11-26 03:11:58.894106",
            "2026-11-26T03:11:58.894106+0000",
        ] {
            assert_eq!(parse(text), Some(expected()), "{text}");
        }
        assert_eq!(
            parse("2026-11-26"),
            Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).single()
        );
        assert_eq!(parse("not a date"), None);
    }

    #[test]
    fn formats_with_micros_and_z() {
        assert_eq!(format(&expected()), "2026-11-26T03:11:58.894106Z");
        let whole = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
        assert_eq!(format(&whole), "2026-01-01T00:00:00.000000Z");
    }

    #[test]
    fn serde_round_trip_and_null() {
        let h: Holder =
            serde_json::from_str(r#"{"at":"2026-11-26 03:11:58.894106+00:00","maybe":null}"#)
                .unwrap();
        assert_eq!(h.at, expected());
        assert_eq!(h.maybe, None);
        let h: Holder = serde_json::from_str(r#"{"at":"2026-11-26T03:11:58.894106Z"}"#).unwrap();
        assert_eq!(h.maybe, None);
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["at"], "2026-11-26T03:11:58.894106Z");
        assert!(json["maybe"].is_null());
        assert!(serde_json::from_str::<Holder>(r#"{"at":"yesterday"}"#).is_err());
    }

    #[test]
    fn arithmetic_helpers() {
        let t = expected();
        assert_eq!(seconds_between(add_seconds(t, 1.5), t), 1.5);
        assert_eq!(truncate_micros(t + TimeDelta::nanoseconds(999)), t);
        assert_eq!(add_seconds(t, f64::NAN), t);
    }

    #[test]
    fn parses_the_shapes_the_client_sends() {
        let a = parse("2026-11-26T03:11:17.275413Z").expect("z");
        let b = parse("2026-11-26 03:11:17.275413+00:00").expect("space");
        let c = parse("2026-11-26T05:11:17.275413+02:00").expect("offset");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(format(&a), "2026-11-26T03:11:17.275413Z");
        assert!(parse("yesterday").is_none());
        assert!(parse("2026-11-26T03:11:17").is_some());
    }
}
