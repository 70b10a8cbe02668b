//! Unit tests of the state types: serde names, terminal sets, state construction.

use crate::orchestration::states::*;
use chrono::TimeZone;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 3, 11, 17)
        .single()
        .unwrap()
        + chrono::TimeDelta::microseconds(275_413)
}

#[test]
fn state_type_serde_names_and_terminal_set() {
    assert_eq!(
        serde_json::to_value(StateType::Cancelling).unwrap(),
        "CANCELLING"
    );
    let t: StateType = serde_json::from_value(json!("PAUSED")).unwrap();
    assert_eq!(t, StateType::Paused);
    assert!(serde_json::from_value::<StateType>(json!("paused")).is_err());
    let terminal: Vec<_> = StateType::ALL
        .into_iter()
        .filter(|t| t.is_terminal())
        .collect();
    assert_eq!(
        terminal,
        [
            StateType::Completed,
            StateType::Failed,
            StateType::Cancelled,
            StateType::Crashed
        ]
    );
    for t in StateType::ALL {
        assert_eq!(t.as_str().parse::<StateType>().unwrap(), t);
        assert_eq!(t.default_name().to_uppercase(), t.as_str());
    }
}

#[test]
fn state_details_serialises_every_field_with_prefect_defaults() {
    let v = serde_json::to_value(StateDetails::default()).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 18);
    assert_eq!(v["deferred"], false);
    assert_eq!(v["untrackable_result"], false);
    assert_eq!(v["pause_reschedule"], false);
    assert!(v["flow_run_id"].is_null());
    assert!(v["deployment_concurrency_lease_id"].is_null());
}

#[test]
fn state_details_lenient_reading() {
    let d: StateDetails = serde_json::from_value(json!({
        "scheduled_time": "2026-11-26 03:11:58.894106+00:00",
        "untrackable_result": null,
        "pause_reschedule": true,
        "some_future_field": 1
    }))
    .unwrap();
    assert!(d.scheduled_time.is_some());
    assert!(!d.untrackable_result);
    assert!(d.pause_reschedule);
    assert_eq!(d.deferred, Some(false));
    assert!(serde_json::from_value::<StateDetails>(json!({"flow_run_id": "nope"})).is_err());
}

#[test]
fn state_serialises_like_prefect() {
    let id = Uuid::nil();
    let s = State::new(StateType::Running, id, now());
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["type"], "RUNNING");
    assert_eq!(v["name"], "Running");
    assert_eq!(v["timestamp"], "2026-11-26T03:11:17.275413Z");
    assert!(v["message"].is_null() && v["data"].is_null());
    let back: State = serde_json::from_value(v).unwrap();
    assert_eq!(back, s);
    let keys: Vec<_> = serde_json::to_value(&s)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys.len(), 7);
}

#[test]
fn state_reading_defaults_name_and_details() {
    let s: State = serde_json::from_value(json!({
        "id": Uuid::nil(), "type": "CANCELLED", "timestamp": "2026-11-26T03:11:17Z",
        "state_details": null
    }))
    .unwrap();
    assert_eq!(s.name, "Cancelled");
    assert_eq!(s.state_details, StateDetails::default());
}

#[test]
fn state_create_denies_unknown_keys_but_accepts_id_and_timestamp() {
    let ok: StateCreate = serde_json::from_value(json!({
        "type": "PENDING", "name": null, "message": null, "data": null,
        "state_details": {"flow_run_id": null, "transition_id": Uuid::nil()},
        "timestamp": "2020-01-01T00:00:00Z", "id": Uuid::nil()
    }))
    .unwrap();
    assert_eq!(ok.state_type, StateType::Pending);
    let err = serde_json::from_value::<StateCreate>(json!({"type": "PENDING", "bogus": 1}));
    assert!(err.is_err());
    assert!(serde_json::from_value::<StateCreate>(json!({"name": "x"})).is_err());
}

#[test]
fn from_create_defaults_name_scheduled_time_and_ignores_timestamp() {
    let mut c = StateCreate::of(StateType::Scheduled);
    c.timestamp = Some(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap());
    let s = State::from_create(c, Uuid::nil(), now());
    assert_eq!(s.name, "Scheduled");
    assert_eq!(s.timestamp, now());
    assert_eq!(s.state_details.scheduled_time, Some(now()));
    let mut c = StateCreate::of(StateType::Pending);
    c.name = Some("Submitting".into());
    let s = State::from_create(c, Uuid::nil(), now());
    assert_eq!(s.name, "Submitting");
    assert_eq!(s.state_details.scheduled_time, None);
}

#[test]
fn subflow_parent_task_state_sets_child_flow_run_id() {
    let written = State::new(StateType::Running, Uuid::nil(), now());
    let child = Uuid::from_u128(7);
    let s = subflow_parent_task_state(&written, child, Uuid::from_u128(8), now());
    assert_eq!(s.state_details.child_flow_run_id, Some(child));
    assert_eq!(s.id, Uuid::from_u128(8));
    assert_eq!(s.state_type, StateType::Running);
}
