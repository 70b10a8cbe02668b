//! How stored values go out in answers: timestamps in the reference server's format, JSON text
//! columns copied into the answer as they are (no `Value` tree is built), and seconds rounded
//! as the reference prints them. Every response struct (`api/`, `runs::convert`) is made of
//! these and plain borrowed fields.

use chrono::NaiveDateTime;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// A stored timestamp, written as the API writes times.
#[derive(Debug, Clone, Copy)]
pub struct Ts<'a>(pub &'a NaiveDateTime);

impl Serialize for Ts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time::format_naive(self.0))
    }
}

/// [`Ts`] of an optional timestamp (`null` when absent).
pub fn opt_ts(t: &Option<NaiveDateTime>) -> Option<Ts<'_>> {
    t.as_ref().map(Ts)
}

/// A JSON column (stored as JSON text) copied into the answer as it is; `default` (JSON text)
/// when the text is not JSON or is `null`.
#[derive(Debug, Clone, Copy)]
pub struct JsonText<'a> {
    text: &'a str,
    default: &'static str,
}

impl Serialize for JsonText<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(self.text) {
            Ok(raw) if raw.get() != "null" => raw.serialize(s),
            _ => match serde_json::from_str::<&RawValue>(self.default) {
                Ok(raw) => raw.serialize(s),
                Err(_) => s.serialize_unit(),
            },
        }
    }
}

/// The JSON column `text`, or `default` (JSON text such as `"{}"` or `"[]"`).
pub fn json_text<'a>(text: &'a str, default: &'static str) -> JsonText<'a> {
    JsonText { text, default }
}

/// A nullable JSON column: `null` when absent or not JSON.
pub fn opt_json_text(text: &Option<String>) -> JsonText<'_> {
    json_text(text.as_deref().unwrap_or("null"), "null")
}

/// Seconds as the reference server prints them (microsecond precision).
pub fn round_secs(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_columns_go_out_as_stored_or_as_their_default() {
        let out = |t: JsonText| serde_json::to_string(&t).expect("serialises");
        assert_eq!(out(json_text(r#"{"a": [1, 2]}"#, "{}")), r#"{"a": [1, 2]}"#);
        assert_eq!(out(json_text("null", "[]")), "[]");
        assert_eq!(out(json_text("not json", "{}")), "{}");
        assert_eq!(out(opt_json_text(&None)), "null");
        assert_eq!(out(opt_json_text(&Some("3".into()))), "3");
    }

    #[test]
    fn seconds_are_rounded_to_microseconds() {
        assert_eq!(round_secs(1.234_567_89), 1.234_568);
        assert_eq!(round_secs(0.0), 0.0);
    }
}
