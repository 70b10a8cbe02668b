use super::*;
use serde_json::json;

fn trigger(v: serde_json::Value) -> EventTrigger {
    match serde_json::from_value::<Trigger>(v).expect("trigger") {
        Trigger::Event(t) => t,
        _ => panic!("an event trigger"),
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_000_000 + secs, 0).expect("time")
}

fn event(name: &str, secs: i64) -> ReceivedEvent {
    serde_json::from_value(json!({
        "occurred": at(secs), "received": at(secs), "event": name, "id": Uuid::now_v7(),
        "resource": {"prefect.resource.id": "prefect.flow-run.1"},
    }))
    .expect("event")
}

#[test]
fn an_immediate_trigger_fires_on_every_expected_event() {
    let t = trigger(json!({"type": "event", "posture": "Reactive", "expect": ["a"]}));
    let (mut slot, mut fired) = (None, Vec::new());
    react(&t, &[], &mut slot, &event("a", 0), at(0), &mut fired);
    react(&t, &[], &mut slot, &event("b", 1), at(1), &mut fired);
    react(&t, &[], &mut slot, &event("a", 2), at(2), &mut fired);
    assert_eq!(fired.len(), 2);
    assert_eq!(slot, None);
    assert_eq!(
        fired[1].triggering_event.as_ref().map(|e| e.event.occurred),
        Some(at(2))
    );
}

#[test]
fn a_reactive_threshold_fires_once_per_window() {
    let t = trigger(
        json!({"type": "event", "posture": "Reactive", "expect": ["a"], "threshold": 3, "within": 60}),
    );
    let (mut slot, mut fired) = (None, Vec::new());
    for s in [0, 10, 20] {
        react(&t, &[], &mut slot, &event("a", s), at(s), &mut fired);
    }
    assert_eq!(fired.len(), 1, "the third event fires");
    // The next window starts where the old one ended: the rest of the old one is ignored.
    let next = slot.clone().expect("next window");
    assert_eq!((next.start, next.end, next.count), (at(60), at(120), 0));
    react(&t, &[], &mut slot, &event("a", 30), at(30), &mut fired);
    assert_eq!(slot.as_ref().map(|b| b.count), Some(0));
    for s in [61, 70] {
        react(&t, &[], &mut slot, &event("a", s), at(s), &mut fired);
    }
    assert_eq!(fired.len(), 1);
    react(&t, &[], &mut slot, &event("a", 80), at(80), &mut fired);
    assert_eq!(fired.len(), 2);
}

#[test]
fn an_event_past_the_window_counts_in_the_next_one() {
    let t = trigger(
        json!({"type": "event", "posture": "Reactive", "expect": ["a"], "threshold": 2, "within": 10}),
    );
    let (mut slot, mut fired) = (None, Vec::new());
    react(&t, &[], &mut slot, &event("a", 0), at(0), &mut fired);
    react(&t, &[], &mut slot, &event("a", 100), at(100), &mut fired);
    assert!(fired.is_empty());
    let b = slot.expect("bucket");
    assert_eq!((b.start, b.end, b.count), (at(100), at(110), 1));
}

#[test]
fn a_proactive_trigger_fires_when_too_few_events_came() {
    let t =
        trigger(json!({"type": "event", "posture": "Proactive", "expect": ["beat"], "within": 30}));
    let mut buckets = BTreeMap::new();
    let mut fired = Vec::new();
    proactive(&t, &mut buckets, at(0), &mut fired);
    assert!(fired.is_empty());
    // A beat inside the window: no firing when it closes; the window after it opens.
    let mut slot = buckets.remove(&Vec::<String>::new()).expect("key");
    react(&t, &[], &mut slot, &event("beat", 5), at(5), &mut fired);
    buckets.insert(Vec::new(), slot);
    proactive(&t, &mut buckets, at(31), &mut fired);
    assert!(fired.is_empty());
    assert_eq!(buckets[&Vec::<String>::new()], None, "met: dropped");
    proactive(&t, &mut buckets, at(40), &mut fired);
    assert!(fired.is_empty());
    // No beat in the window opened at 40: it fires once, and the one after opens.
    proactive(&t, &mut buckets, at(65), &mut fired);
    assert!(fired.is_empty());
    proactive(&t, &mut buckets, at(71), &mut fired);
    assert_eq!(fired.len(), 1);
    let next = buckets[&Vec::<String>::new()].clone().expect("next");
    assert_eq!((next.start, next.end), (at(71), at(101)));
}

#[test]
fn after_then_expect_per_resource() {
    let t = trigger(json!({
        "type": "event", "posture": "Proactive", "within": 60,
        "after": ["prefect.flow-run.Running"], "expect": ["prefect.flow-run.Completed"],
        "for_each": ["prefect.resource.id"]
    }));
    let key = vec!["prefect.flow-run.1".to_string()];
    let mut fired = Vec::new();
    // Completed in time: the bucket reaches the threshold and is dropped.
    let mut slot = None;
    react(
        &t,
        &key,
        &mut slot,
        &event("prefect.flow-run.Running", 0),
        at(0),
        &mut fired,
    );
    react(
        &t,
        &key,
        &mut slot,
        &event("prefect.flow-run.Completed", 30),
        at(30),
        &mut fired,
    );
    let mut buckets = BTreeMap::from([(key.clone(), slot)]);
    proactive(&t, &mut buckets, at(61), &mut fired);
    assert!(fired.is_empty());
    assert_eq!(buckets[&key], None);
    // Never completed: fires with the Running event and its labels, and no window reopens.
    let mut slot = None;
    let running = event("prefect.flow-run.Running", 100);
    react(&t, &key, &mut slot, &running, at(100), &mut fired);
    let mut buckets = BTreeMap::from([(key.clone(), slot)]);
    proactive(&t, &mut buckets, at(150), &mut fired);
    assert!(fired.is_empty());
    proactive(&t, &mut buckets, at(161), &mut fired);
    assert_eq!(fired.len(), 1);
    assert_eq!(
        fired[0].triggering_event.as_ref().map(|e| e.event.id),
        Some(running.event.id)
    );
    assert_eq!(
        fired[0].triggering_labels["prefect.resource.id"],
        "prefect.flow-run.1"
    );
    assert_eq!(buckets[&key], None);
}

#[test]
fn the_same_event_opening_and_counting_restarts_the_window() {
    let t = trigger(json!({
        "type": "event", "posture": "Proactive", "within": 30,
        "after": ["beat"], "expect": ["beat"]
    }));
    let mut fired = Vec::new();
    let mut slot = None;
    react(&t, &[], &mut slot, &event("beat", 0), at(0), &mut fired);
    assert_eq!(slot.as_ref().map(|b| b.count), Some(0));
    react(&t, &[], &mut slot, &event("beat", 20), at(20), &mut fired);
    let b = slot.clone().expect("window");
    assert_eq!((b.start, b.end, b.count), (at(20), at(50), 0));
    let mut buckets = BTreeMap::from([(Vec::new(), slot)]);
    proactive(&t, &mut buckets, at(45), &mut fired);
    assert!(fired.is_empty());
    proactive(&t, &mut buckets, at(51), &mut fired);
    assert_eq!(fired.len(), 1);
}

#[test]
fn composites() {
    let both: Trigger = serde_json::from_value(json!({
        "type": "compound", "require": "all", "within": 60,
        "triggers": [{"type": "event", "posture": "Reactive", "expect": ["a"]}, {"type": "event", "posture": "Reactive", "expect": ["b"]}]
    }))
    .expect("compound");
    let ids: Vec<Uuid> = both.event_triggers().iter().map(|t| t.id).collect();
    assert_eq!(both.parent_of(ids[1]).map(Trigger::id), Some(both.id()));
    let one = Firing::new(ids[0], at(0), BTreeMap::new(), None);
    let two = Firing::new(ids[1], at(1), BTreeMap::new(), None);
    assert!(!composite_ready(&both, std::slice::from_ref(&one)));
    assert!(composite_ready(&both, &[one.clone(), two.clone()]));
    let seq: Trigger = serde_json::from_value(json!({
        "type": "sequence", "within": null,
        "triggers": [{"type": "event", "posture": "Reactive", "expect": ["a"]}, {"type": "event", "posture": "Reactive", "expect": ["b"]}]
    }))
    .expect("sequence");
    let ids: Vec<Uuid> = seq.event_triggers().iter().map(|t| t.id).collect();
    let first = Firing::new(ids[0], at(0), BTreeMap::new(), None);
    let second = Firing::new(ids[1], at(5), BTreeMap::new(), None);
    assert!(composite_ready(&seq, &[second.clone(), first.clone()]));
    let early = Firing::new(ids[1], at(-5), BTreeMap::new(), None);
    assert!(!composite_ready(&seq, &[first, early]));
    assert_eq!(expected_firings(&seq), 2);
}

#[test]
fn a_window_no_date_can_hold_saturates_instead_of_panicking() {
    let t = trigger(
        json!({"type": "event", "posture": "Reactive", "expect": ["a"], "threshold": 2, "within": 1e300}),
    );
    let (mut slot, mut fired) = (None, Vec::new());
    react(&t, &[], &mut slot, &event("a", 0), at(0), &mut fired);
    assert_eq!(slot.map(|b| b.end), Some(DateTime::<Utc>::MAX_UTC));
    assert_eq!(shift(at(0), seconds(-1e300)), DateTime::<Utc>::MIN_UTC);
}
