//! Which events an event trigger is about (Prefect's `EventTrigger.covers`, `expects`,
//! `starts_after`, `bucketing_key`, `meets_threshold`): the pure half of trigger evaluation,
//! which the evaluator applies to each event before it touches any stored state.

use std::collections::BTreeMap;

use super::model::{EventTrigger, Posture, Trigger};
use crate::event_model::Event;
use crate::query::events::{glob, labels_match, Labels};

/// An event name against a trigger's name pattern (`*` matches any run of characters).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    glob(pattern, name)
}

/// A label spec against candidate resources: an empty spec includes everything, otherwise
/// one candidate must match every label.
fn includes<'a>(
    spec: &Labels,
    mut candidates: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> bool {
    spec.is_empty() || candidates.any(|r| labels_match(spec, r))
}

impl EventTrigger {
    /// Whether this trigger looks at `e` at all: its name is expected or starts the window
    /// (any name when nothing is expected), its resource matches `match`, and every
    /// `match_related` spec finds a related resource.
    pub fn covers(&self, e: &Event) -> bool {
        let named = self.expect.is_empty()
            || self
                .expect
                .iter()
                .chain(self.after.iter())
                .any(|p| name_matches(p, &e.event));
        named
            && includes(&self.match_, std::iter::once(&e.resource))
            && self
                .match_related
                .iter()
                .all(|spec| includes(spec, e.related.iter()))
    }

    /// Whether `name` counts towards the threshold (every name when nothing is expected).
    pub fn expects(&self, name: &str) -> bool {
        self.expect.is_empty() || self.expect.iter().any(|p| name_matches(p, name))
    }

    /// Whether `name` opens the trigger's window (only when `after` names something).
    pub fn starts_after(&self, name: &str) -> bool {
        self.after.iter().any(|p| name_matches(p, name))
    }

    /// The values of the `for_each` labels (sorted by label) for `e`: which bucket it counts in.
    /// `related:<role>:<label>` reads the first related resource in that role.
    pub fn bucketing_key(&self, e: &Event) -> Vec<String> {
        let mut labels: Vec<&String> = self.for_each.iter().collect();
        labels.sort();
        labels
            .into_iter()
            .map(|l| find_label(e, l).unwrap_or_default())
            .collect()
    }

    /// Whether `count` events fire the trigger: at least the threshold when reactive, fewer
    /// when proactive.
    pub fn meets_threshold(&self, count: i64) -> bool {
        match self.posture {
            Posture::Reactive => count >= self.threshold,
            Posture::Proactive => count < self.threshold,
        }
    }

    /// A reactive trigger with no window fires on each event that meets the threshold.
    pub fn immediate(&self) -> bool {
        self.posture == Posture::Reactive && self.within == 0.0
    }
}

/// Prefect's `find_resource_label`.
pub fn find_label(e: &Event, label: &str) -> Option<String> {
    let (directive, related_label) = match label.rsplit_once(':') {
        Some((d, l)) => (d, l),
        None => ("", label),
    };
    let (kind, role) = directive.split_once(':').unwrap_or((directive, ""));
    if kind == "related" {
        return e
            .related
            .iter()
            .find(|r| r.get("prefect.resource.role").map(String::as_str) == Some(role))
            .and_then(|r| r.get(related_label).cloned());
    }
    e.resource.get(label).cloned()
}

impl Trigger {
    /// Every event trigger in this trigger (itself, or those nested in a composite one).
    pub fn event_triggers(&self) -> Vec<&EventTrigger> {
        match self {
            Trigger::Event(t) => vec![t],
            Trigger::Compound(c) => c
                .triggers
                .iter()
                .flat_map(Trigger::event_triggers)
                .collect(),
            Trigger::Sequence(s) => s
                .triggers
                .iter()
                .flat_map(Trigger::event_triggers)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trigger(v: serde_json::Value) -> EventTrigger {
        match serde_json::from_value::<Trigger>(v).expect("trigger") {
            Trigger::Event(t) => t,
            _ => panic!("an event trigger"),
        }
    }

    fn event(name: &str) -> Event {
        serde_json::from_value(json!({
            "occurred": "2026-12-04T10:00:00Z", "event": name, "id": uuid::Uuid::new_v4(),
            "resource": {"prefect.resource.id": "prefect.flow-run.1", "prefect.resource.name": "night"},
            "related": [
                {"prefect.resource.id": "prefect.flow.9", "prefect.resource.role": "flow", "prefect.resource.name": "etl"},
                {"prefect.resource.id": "prefect.deployment.3", "prefect.resource.role": "deployment"}
            ]
        }))
        .expect("event")
    }

    #[test]
    fn covers_by_name_resource_and_related_resources() {
        let t = trigger(json!({
            "type": "event", "posture": "Reactive",
            "expect": ["prefect.flow-run.Fail*"],
            "match": {"prefect.resource.id": "prefect.flow-run.*"},
            "match_related": [{"prefect.resource.role": "flow", "prefect.resource.name": ["etl", "other"]}]
        }));
        assert!(t.covers(&event("prefect.flow-run.Failed")));
        assert!(!t.covers(&event("prefect.flow-run.Completed")));
        let mut unrelated = event("prefect.flow-run.Failed");
        unrelated.related.remove(0);
        assert!(!t.covers(&unrelated));
        let mut other = event("prefect.flow-run.Failed");
        other
            .resource
            .insert("prefect.resource.id".into(), "prefect.task-run.1".into());
        assert!(!t.covers(&other));
        let anything = trigger(json!({"type": "event", "posture": "Reactive"}));
        assert!(anything.covers(&event("whatever")));
        assert!(anything.expects("whatever"));
    }

    #[test]
    fn after_opens_the_window_and_for_each_buckets() {
        let t = trigger(json!({
            "type": "event", "posture": "Proactive", "within": 60,
            "after": ["prefect.flow-run.Running"], "expect": ["prefect.flow-run.Completed"],
            "for_each": ["prefect.resource.id", "related:flow:prefect.resource.name"]
        }));
        assert!(t.covers(&event("prefect.flow-run.Running")));
        assert!(t.starts_after("prefect.flow-run.Running"));
        assert!(!t.expects("prefect.flow-run.Running"));
        assert_eq!(
            t.bucketing_key(&event("x")),
            vec!["prefect.flow-run.1".to_string(), "etl".to_string()]
        );
        assert!(t.meets_threshold(0) && !t.meets_threshold(1));
        assert!(!t.immediate());
    }
}
