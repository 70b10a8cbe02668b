//! `EventFilter` (API.md §3.3): the shape `/events/out` subscribers send, and matching events
//! against it. Empty lists mean "no constraint", as in Prefect.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::Event;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    pub occurred: Option<Occurred>,
    pub event: Option<NameFilter>,
    pub resource: Option<ResourceFilter>,
    pub related: Option<RelatedFilter>,
    pub any_resource: Option<ResourceFilter>,
    pub id: Option<IdFilter>,
    pub order: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Occurred {
    #[serde(with = "crate::time::opt")]
    pub since: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::opt")]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NameFilter {
    pub prefix: Option<Vec<String>>,
    pub exclude_prefix: Option<Vec<String>>,
    pub name: Option<Vec<String>>,
    pub exclude_name: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResourceFilter {
    pub id: Option<Vec<String>>,
    pub id_prefix: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RelatedFilter {
    pub id: Option<Vec<String>>,
    pub role: Option<Vec<String>>,
    pub resources_in_roles: Option<Vec<(String, String)>>,
    pub labels: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IdFilter {
    pub id: Option<Vec<Uuid>>,
}

fn nonempty<T>(v: &Option<Vec<T>>) -> Option<&Vec<T>> {
    v.as_ref().filter(|v| !v.is_empty())
}

/// A label filter value is one string or a list; a leading `!` negates.
fn labels_match(wanted: &BTreeMap<String, Value>, r: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| {
        let values: Vec<&str> = match v {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return true,
        };
        let have = r.get(k).map(String::as_str);
        let (neg, pos): (Vec<&str>, Vec<&str>) =
            values.into_iter().partition(|v| v.starts_with('!'));
        let pos_ok = pos.is_empty()
            || pos
                .iter()
                .any(|p| glob(p, have.unwrap_or("")) && have.is_some());
        let neg_ok = neg.iter().all(|n| have != Some(&n[1..]));
        pos_ok && neg_ok
    })
}

/// `*` at the end of a pattern matches any suffix.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn resource_match(f: &ResourceFilter, r: &BTreeMap<String, String>) -> bool {
    let id = r
        .get("prefect.resource.id")
        .map(String::as_str)
        .unwrap_or("");
    if let Some(ids) = nonempty(&f.id) {
        if !ids.iter().any(|i| i == id) {
            return false;
        }
    }
    if let Some(prefixes) = nonempty(&f.id_prefix) {
        if !prefixes.iter().any(|p| id.starts_with(p.as_str())) {
            return false;
        }
    }
    f.labels.as_ref().is_none_or(|l| labels_match(l, r))
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        if let Some(o) = &self.occurred {
            if o.since.is_some_and(|s| e.occurred < s) || o.until.is_some_and(|u| e.occurred > u) {
                return false;
            }
        }
        if let Some(n) = &self.event {
            if nonempty(&n.name).is_some_and(|names| !names.contains(&e.event)) {
                return false;
            }
            if nonempty(&n.prefix)
                .is_some_and(|ps| !ps.iter().any(|p| e.event.starts_with(p.as_str())))
            {
                return false;
            }
            if nonempty(&n.exclude_name).is_some_and(|names| names.contains(&e.event)) {
                return false;
            }
            if nonempty(&n.exclude_prefix)
                .is_some_and(|ps| ps.iter().any(|p| e.event.starts_with(p.as_str())))
            {
                return false;
            }
        }
        if let Some(r) = &self.resource {
            if !resource_match(r, &e.resource) {
                return false;
            }
        }
        if let Some(r) = &self.any_resource {
            if !(resource_match(r, &e.resource)
                || e.related.iter().any(|rel| resource_match(r, rel)))
            {
                return false;
            }
        }
        if let Some(r) = &self.related {
            let ok = e.related.iter().any(|rel| {
                let id = rel
                    .get("prefect.resource.id")
                    .map(String::as_str)
                    .unwrap_or("");
                let role = rel
                    .get("prefect.resource.role")
                    .map(String::as_str)
                    .unwrap_or("");
                nonempty(&r.id).is_none_or(|ids| ids.iter().any(|i| i == id))
                    && nonempty(&r.role).is_none_or(|roles| roles.iter().any(|x| x == role))
                    && nonempty(&r.resources_in_roles)
                        .is_none_or(|pairs| pairs.iter().any(|(i, ro)| i == id && ro == role))
                    && r.labels.as_ref().is_none_or(|l| labels_match(l, rel))
            });
            let constrained = nonempty(&r.id).is_some()
                || nonempty(&r.role).is_some()
                || nonempty(&r.resources_in_roles).is_some()
                || r.labels.is_some();
            if constrained && !ok {
                return false;
            }
        }
        if let Some(ids) = self.id.as_ref().and_then(|i| nonempty(&i.id)) {
            if !ids.contains(&e.id) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_worker_cancelling_filter() {
        let f: EventFilter = serde_json::from_value(json!({
            "occurred": {"since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
            "event": {"prefix": null, "exclude_prefix": null, "name": ["prefect.flow-run.Cancelling"], "exclude_name": null},
            "resource": null, "related": null,
            "any_resource": {"id": ["prefect.work-pool.p1"], "id_prefix": null, "labels": null},
            "id": {"id": []}, "text": null, "order": "DESC"
        }))
        .expect("filter");
        let e: Event = serde_json::from_value(json!({
            "occurred": "2026-06-01T00:00:00Z", "event": "prefect.flow-run.Cancelling", "id": Uuid::new_v4(),
            "resource": {"prefect.resource.id": "prefect.flow-run.r1"},
            "related": [{"prefect.resource.id": "prefect.work-pool.p1", "prefect.resource.role": "work-pool"}]
        }))
        .expect("event");
        assert!(f.matches(&e));
        let mut other = e.clone();
        other.related.clear();
        assert!(!f.matches(&other));
        let mut running = e;
        running.event = "prefect.flow-run.Running".into();
        assert!(!f.matches(&running));
    }
}
