//! Matching events against an [`EventFilter`] in memory (the `/events/out` stream and trigger
//! evaluation); the same filter is turned into SQL by `storage::filters::events`.

use std::collections::BTreeMap;

pub use crate::query::events::*;

use super::Event;

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

fn related_match(r: &RelatedFilter, e: &Event) -> bool {
    let constrained = nonempty(&r.id).is_some()
        || nonempty(&r.role).is_some()
        || nonempty(&r.resources_in_roles).is_some()
        || r.labels.as_ref().is_some_and(|l| !l.is_empty());
    !constrained
        || e.related.iter().any(|rel| {
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
        })
}

/// The text a text query searches: the event's name, its resources' label values and its
/// payload, lowercased.
fn searchable(e: &Event) -> String {
    let mut text = e.event.clone();
    for r in std::iter::once(&e.resource).chain(e.related.iter()) {
        for v in r.values() {
            text.push(' ');
            text.push_str(v);
        }
    }
    text.push(' ');
    text.push_str(&serde_json::to_string(&e.payload).unwrap_or_default());
    text.to_lowercase()
}

fn text_match(f: &TextFilter, e: &Event) -> bool {
    let t = f.terms();
    if t.include.is_empty() && t.exclude.is_empty() && t.required.is_empty() {
        return true;
    }
    let text = searchable(e);
    let has = |term: &String| text.contains(&term.to_lowercase());
    (t.include.is_empty() || t.include.iter().any(has))
        && !t.exclude.iter().any(has)
        && t.required.iter().all(has)
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        if let Some(o) = &self.occurred {
            if o.since.is_some_and(|s| e.occurred < s) || o.until.is_some_and(|u| e.occurred > u) {
                return false;
            }
        }
        if self.event.as_ref().is_some_and(|n| !n.allows(&e.event)) {
            return false;
        }
        if let Some(r) = &self.resource {
            if !resource_match(r, &e.resource) {
                return false;
            }
        }
        if let Some(any) = &self.any_resource {
            for r in any.iter() {
                if !(resource_match(r, &e.resource)
                    || e.related.iter().any(|rel| resource_match(r, rel)))
                {
                    return false;
                }
            }
        }
        if let Some(related) = &self.related {
            if !related.iter().all(|r| related_match(r, e)) {
                return false;
            }
        }
        if let Some(ids) = self.id.as_ref().and_then(|i| nonempty(&i.id)) {
            if !ids.contains(&e.id) {
                return false;
            }
        }
        if let Some(t) = &self.text {
            if !text_match(t, e) {
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
            "occurred": "2026-06-01T00:00:00Z", "event": "prefect.flow-run.Cancelling", "id": uuid::Uuid::new_v4(),
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
