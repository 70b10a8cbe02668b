//! Time on the wire: Prefect emits RFC 3339 with microseconds and `Z`; the client sends ISO 8601
//! with an offset, sometimes with a space instead of `T`. Stored as naive UTC.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Parses RFC 3339 / ISO 8601, with `T` or a space, with an offset or `Z` (naive means UTC),
/// years 1 to 9999: the orchestration types' parser, so every timestamp is read one way.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    crate::orchestration::datetime::parse(text)
}

/// `2026-11-26T03:11:17.275413Z`.
pub fn format(t: &DateTime<Utc>) -> String {
    crate::orchestration::datetime::format(t)
}

pub fn format_naive(t: &NaiveDateTime) -> String {
    format(&t.and_utc())
}

/// The current time truncated to microseconds (what both databases store).
pub fn now() -> DateTime<Utc> {
    let n = Utc::now();
    let micros = n.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(n)
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
