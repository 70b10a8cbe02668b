//! Filters in SQL: the parsed request filters of [`crate::query`] turned into [`sql::Where`]
//! conditions (a condition value for either backend) by the plain functions of [`build`]
//! (runs, flows, deployments, logs) and [`pools`] (work pools, queues, workers).

pub mod build;
pub mod dialect;
pub mod events;
pub mod pools;
pub mod sql;

use chrono::{DateTime, NaiveDateTime, Utc};
use uuid::Uuid;

pub(crate) fn ids(v: &[Uuid]) -> Vec<String> {
    v.iter().map(|u| u.to_string()).collect()
}

pub(crate) fn naive(t: &DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

/// `%"tag"%` with LIKE's own wildcards escaped: matches one element of a compact JSON array.
pub fn tag_pattern(tag: &str) -> String {
    let json = serde_json::to_string(tag).unwrap_or_default();
    format!("%{}%", escape_like(&json))
}

/// `s` with LIKE's wildcards and its escape character escaped, for `LIKE … ESCAPE '\'`.
pub fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_patterns_match_whole_elements_only() {
        assert_eq!(tag_pattern("db"), "%\"db\"%");
        assert_eq!(tag_pattern("50%_off"), "%\"50\\%\\_off\"%");
    }
}
