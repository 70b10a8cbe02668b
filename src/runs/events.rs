//! The events the server emits for state changes: `prefect.flow-run.<state name>` with the
//! resource, related resources and payload the reference server sends (API.md §5.3).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::events::Event;
use crate::orchestration::State;
use crate::storage::outbox::NewOutboxRow;
use crate::storage::rows::{FlowRow, FlowRunRow, TaskRunRow};

/// States closer together than this are linked with `follows`.
const FOLLOWS_WINDOW_SECONDS: i64 = 300;

fn resource(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn state_summary(s: &State) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(s.state_type.as_str()));
    m.insert("name".into(), json!(s.name));
    if let Some(msg) = &s.message {
        m.insert("message".into(), json!(msg));
    }
    Value::Object(m)
}

/// `prefect.flow-run.<name>` for a validated flow-run transition.
pub fn flow_run_state_event(
    run: &FlowRunRow,
    flow: Option<&FlowRow>,
    parent_task: Option<&TaskRunRow>,
    initial: Option<&State>,
    validated: &State,
) -> Event {
    let mut related = Vec::new();
    if let Some(f) = flow {
        related.push(resource(&[
            ("prefect.resource.id", format!("prefect.flow.{}", f.id)),
            ("prefect.resource.role", "flow".into()),
            ("prefect.resource.name", f.name.clone()),
        ]));
    }
    if let Some(t) = parent_task {
        related.push(resource(&[
            ("prefect.resource.id", format!("prefect.task-run.{}", t.id)),
            ("prefect.resource.role", "task-run".into()),
            ("prefect.resource.name", t.name.clone()),
        ]));
    }
    let tags: Vec<String> = serde_json::from_str(&run.tags).unwrap_or_default();
    for tag in tags {
        related.push(resource(&[
            ("prefect.resource.id", format!("prefect.tag.{tag}")),
            ("prefect.resource.role", "tag".into()),
        ]));
    }
    if let Some(cb) = run
        .created_by
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    {
        if let (Some(id), Some(kind)) = (
            cb.get("id").and_then(Value::as_str),
            cb.get("type").and_then(Value::as_str),
        ) {
            let kind = kind.to_ascii_lowercase();
            let mut r = resource(&[
                ("prefect.resource.id", format!("prefect.{kind}.{id}")),
                ("prefect.resource.role", "creator".into()),
            ]);
            if let Some(name) = cb.get("display_value").and_then(Value::as_str) {
                r.insert("prefect.resource.name".into(), name.to_string());
            }
            related.push(r);
        }
    }
    let mut payload = Map::new();
    payload.insert("intended".into(), json!({"from": initial.map(|s| s.state_type.as_str()), "to": validated.state_type.as_str()}));
    payload.insert(
        "initial_state".into(),
        initial.map(state_summary).unwrap_or(Value::Null),
    );
    payload.insert("validated_state".into(), state_summary(validated));
    let follows = initial
        .filter(|i| {
            (validated.timestamp - i.timestamp).num_seconds().abs() < FOLLOWS_WINDOW_SECONDS
        })
        .map(|i| i.id);
    Event {
        occurred: validated.timestamp,
        event: format!("prefect.flow-run.{}", validated.name),
        resource: resource(&[
            (
                "prefect.resource.id",
                format!("prefect.flow-run.{}", run.id),
            ),
            ("prefect.resource.name", run.name.clone()),
            ("prefect.run-count", run.run_count.to_string()),
            (
                "prefect.state-message",
                validated.message.clone().unwrap_or_default(),
            ),
            ("prefect.state-name", validated.name.clone()),
            (
                "prefect.state-timestamp",
                validated
                    .timestamp
                    .to_rfc3339_opts(SecondsFormat::Micros, false),
            ),
            (
                "prefect.state-type",
                validated.state_type.as_str().to_string(),
            ),
        ]),
        related,
        payload,
        id: validated.id,
        follows,
    }
}

/// An outbox row carrying `event`, received now.
pub fn outbox_row(ws: &str, event: Event, now: DateTime<Utc>) -> NewOutboxRow {
    let received = event.receive(now);
    NewOutboxRow {
        workspace_id: ws.to_string(),
        created: now.naive_utc(),
        event_id: received.event.id.to_string(),
        event: serde_json::to_string(&received).unwrap_or_default(),
    }
}
