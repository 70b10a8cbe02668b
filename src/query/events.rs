//! `EventFilter` (API.md §3.3, Prefect's `prefect/server/events/filters.py`): what `/events/out`
//! subscribers, `POST /events/filter` and `/events/count-by/{countable}` send. Empty lists mean
//! "no constraint", as in Prefect. Serialisable, so a page token can carry the query it pages.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct EventFilter {
    pub occurred: Option<Occurred>,
    pub event: Option<NameFilter>,
    pub resource: Option<ResourceFilter>,
    pub related: Option<OneOrMany<RelatedFilter>>,
    pub any_resource: Option<OneOrMany<ResourceFilter>>,
    pub id: Option<IdFilter>,
    pub text: Option<TextFilter>,
    pub order: Option<Order>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Order {
    #[serde(rename = "ASC")]
    Asc,
    #[default]
    #[serde(rename = "DESC")]
    Desc,
}

/// A filter Prefect accepts as one object or a list of them (all must hold).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t).iter(),
            OneOrMany::Many(v) => v.iter(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Occurred {
    #[serde(with = "crate::time::opt")]
    pub since: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::opt")]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct NameFilter {
    pub prefix: Option<Vec<String>>,
    pub exclude_prefix: Option<Vec<String>>,
    pub name: Option<Vec<String>>,
    pub exclude_name: Option<Vec<String>>,
}

impl NameFilter {
    /// Whether an event of this name passes the filter.
    pub fn allows(&self, name: &str) -> bool {
        nonempty(&self.name).is_none_or(|names| names.iter().any(|n| n == name))
            && nonempty(&self.prefix)
                .is_none_or(|ps| ps.iter().any(|p| name.starts_with(p.as_str())))
            && !nonempty(&self.exclude_name).is_some_and(|names| names.iter().any(|n| n == name))
            && !nonempty(&self.exclude_prefix)
                .is_some_and(|ps| ps.iter().any(|p| name.starts_with(p.as_str())))
    }
}

/// Label name → one glob or a list of them (`*`, `?`; a leading `!` negates one).
pub type Labels = BTreeMap<String, LabelValues>;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum LabelValues {
    One(String),
    Many(Vec<String>),
}

impl LabelValues {
    pub fn values(&self) -> Vec<&str> {
        match self {
            LabelValues::One(s) => vec![s.as_str()],
            LabelValues::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ResourceFilter {
    pub id: Option<Vec<String>>,
    pub id_prefix: Option<Vec<String>>,
    pub labels: Option<Labels>,
    /// Only the first event of each resource in the query's order.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub distinct: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RelatedFilter {
    pub id: Option<Vec<String>>,
    pub role: Option<Vec<String>>,
    pub resources_in_roles: Option<Vec<(String, String)>>,
    pub labels: Option<Labels>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct IdFilter {
    pub id: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct TextFilter {
    pub query: String,
}

/// The terms of a text query: words or `"quoted phrases"`; `-term` excludes, `+term` is
/// required, any other term is one of which at least one must appear.
#[derive(Debug, Default, PartialEq)]
pub struct TextTerms {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub required: Vec<String>,
}

impl TextFilter {
    pub fn terms(&self) -> TextTerms {
        let mut t = TextTerms::default();
        let mut chars = self.query.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let Some(&first) = chars.peek() else { break };
            let sign = if first == '-' || first == '+' {
                chars.next();
                Some(first)
            } else {
                None
            };
            let mut term = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    term.push(c);
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    term.push(c);
                    chars.next();
                }
            }
            if term.is_empty() {
                continue;
            }
            match sign {
                Some('-') => t.exclude.push(term),
                Some(_) => t.required.push(term),
                None => t.include.push(term),
            }
        }
        t
    }
}

/// The longest text query Prefect accepts.
pub const MAX_TEXT_QUERY: usize = 200;

pub(crate) fn nonempty<T>(v: &Option<Vec<T>>) -> Option<&Vec<T>> {
    v.as_ref().filter(|v| !v.is_empty())
}

impl EventFilter {
    /// The window the query covers: `occurred.since` defaults to the start of the day 180 days
    /// ago, `until` to `now` (Prefect's defaults).
    pub fn window(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let o = self.occurred.clone().unwrap_or_default();
        let since = o.since.unwrap_or_else(|| {
            let day = now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default();
            day.and_utc() - Duration::days(180)
        });
        (since, o.until.unwrap_or(now))
    }

    /// This filter with its window made explicit, so a later page reads the same window.
    pub fn pinned(mut self, now: DateTime<Utc>) -> EventFilter {
        let (since, until) = self.window(now);
        self.occurred = Some(Occurred {
            since: Some(since),
            until: Some(until),
        });
        self
    }

    pub fn order(&self) -> Order {
        self.order.unwrap_or_default()
    }

    /// Whether only each resource's first event is wanted.
    pub fn distinct(&self) -> bool {
        self.resource.as_ref().is_some_and(|r| r.distinct)
    }

    /// What a request's filter gets wrong that its types can't say, as a message.
    pub fn problem(&self) -> Option<String> {
        if let Some(t) = &self.text {
            if t.query.chars().count() > MAX_TEXT_QUERY {
                return Some(format!(
                    "String should have at most {MAX_TEXT_QUERY} characters"
                ));
            }
        }
        None
    }
}

/// Prefect's label match (`fnmatch`): `*` any run, `?` one character; `!` first negates.
/// A missing label matches nothing, negated or not.
pub fn label_matches(pattern: &str, value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    match pattern.strip_prefix('!') {
        Some(p) => !glob(p, value),
        None => glob(pattern, value),
    }
}

/// `*` and `?` wildcards, everything else literal.
pub fn glob(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = vi;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Every label of `wanted` has a value in `resource` matching one of its patterns.
pub fn labels_match(wanted: &Labels, resource: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| {
        let have = resource.get(k).map(String::as_str);
        v.values().iter().any(|p| label_matches(p, have))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_and_negation_like_fnmatch() {
        assert!(glob("prefect.flow-run.*", "prefect.flow-run.abc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(label_matches("!x", Some("y")));
        assert!(!label_matches("!x", Some("x")));
        assert!(!label_matches("!x", None));
    }

    #[test]
    fn text_terms() {
        let f = TextFilter {
            query: r#"error -debug "connection timeout" +db"#.into(),
        };
        let t = f.terms();
        assert_eq!(t.include, vec!["error", "connection timeout"]);
        assert_eq!(t.exclude, vec!["debug"]);
        assert_eq!(t.required, vec!["db"]);
    }

    #[test]
    fn related_and_any_resource_take_one_or_a_list_and_round_trip() {
        let f: EventFilter = serde_json::from_value(json!({
            "related": {"role": ["flow"]},
            "any_resource": [{"id": ["a"]}, {"id_prefix": ["b"]}],
            "resource": {"labels": {"x": "1", "y": ["2", "!3"]}, "distinct": true},
            "order": "ASC"
        }))
        .expect("filter");
        assert_eq!(f.any_resource.as_ref().map(|a| a.iter().count()), Some(2));
        assert!(f.distinct());
        assert_eq!(f.order(), Order::Asc);
        let again: EventFilter =
            serde_json::from_value(serde_json::to_value(&f).expect("json")).expect("filter");
        assert_eq!(again, f);
    }

    #[test]
    fn the_default_window_is_180_days_from_the_start_of_today() {
        let now = crate::time::parse("2026-12-04T15:30:00Z").expect("time");
        let (since, until) = EventFilter::default().window(now);
        assert_eq!(crate::time::format(&since), "2026-06-07T00:00:00.000000Z");
        assert_eq!(until, now);
    }
}
