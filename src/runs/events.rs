//! The events the server emits for state changes: `prefect.flow-run.<state name>` with the
//! resource, related resources and payload the reference server sends (API.md §5.3).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::event_model::Event;
use crate::ids::WorkspaceId;
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
    if let Some(d) = &run.deployment_id {
        related.push(resource(&[
            ("prefect.resource.id", format!("prefect.deployment.{d}")),
            ("prefect.resource.role", "deployment".into()),
        ]));
    }
    if let Some(q) = &run.work_queue_id {
        let mut r = resource(&[
            ("prefect.resource.id", format!("prefect.work-queue.{q}")),
            ("prefect.resource.role", "work-queue".into()),
        ]);
        if let Some(name) = &run.work_queue_name {
            r.insert("prefect.resource.name".into(), name.clone());
        }
        related.push(r);
    }
    if let Some(p) = &run.work_pool_id {
        let mut r = resource(&[
            ("prefect.resource.id", format!("prefect.work-pool.{p}")),
            ("prefect.resource.role", "work-pool".into()),
        ]);
        if let Some(name) = &run.work_pool_name {
            r.insert("prefect.resource.name".into(), name.clone());
        }
        related.push(r);
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
pub fn outbox_row(ws: &WorkspaceId, event: Event, now: DateTime<Utc>) -> NewOutboxRow {
    let received = event.receive(now);
    NewOutboxRow {
        workspace_id: ws.clone(),
        created: now.naive_utc(),
        event_id: received.event.id.to_string(),
        event: serde_json::to_string(&received).unwrap_or_default(),
        // The server's own events are never the client's task-run reports.
        pending: crate::storage::outbox::TO_EVERY,
    }
}

/// A work-pool status event (`prefect.work-pool.ready`, `.not-ready`, `.paused`).
pub fn work_pool_event(
    pool: &crate::storage::work_pools::PoolRow,
    name: &str,
    now: DateTime<Utc>,
) -> Event {
    Event {
        occurred: now,
        event: name.to_string(),
        resource: resource(&[
            (
                "prefect.resource.id",
                format!("prefect.work-pool.{}", pool.id),
            ),
            ("prefect.resource.name", pool.name.clone()),
            ("prefect.work-pool.type", pool.pool_type.clone()),
        ]),
        related: Vec::new(),
        payload: Map::new(),
        id: uuid::Uuid::new_v4(),
        follows: None,
    }
}

/// Writes `events` to the outbox and wakes the relay; failures are logged (events about
/// status changes must not fail the request that caused them).
pub async fn emit(state: &crate::state::AppState, ws: &WorkspaceId, events: Vec<Event>) {
    let now = crate::time::now();
    let rows: Vec<NewOutboxRow> = events.into_iter().map(|e| outbox_row(ws, e, now)).collect();
    let written = state
        .stores
        .orion
        .write(async move |c| crate::storage::outbox::insert(c, &rows).await)
        .await;
    match written {
        Ok(()) => state.outbox_wake.notify_one(),
        Err(e) => tracing::warn!(error = %e, "could not record events"),
    }
}

pub async fn emit_work_pool(
    state: &crate::state::AppState,
    ws: &WorkspaceId,
    pool: &crate::storage::work_pools::PoolRow,
    name: &str,
) {
    emit(
        state,
        ws,
        vec![work_pool_event(pool, name, crate::time::now())],
    )
    .await;
}

/// `prefect.deployment.created` / `.updated` / `.ready` / `.not-ready`.
pub fn deployment_event(
    d: &crate::storage::deployments::DeploymentRow,
    flow: &FlowRow,
    name: &str,
    now: DateTime<Utc>,
) -> Event {
    Event {
        occurred: now,
        event: name.to_string(),
        resource: resource(&[
            (
                "prefect.resource.id",
                format!("prefect.deployment.{}", d.id),
            ),
            ("prefect.resource.name", d.name.clone()),
        ]),
        related: vec![resource(&[
            ("prefect.resource.id", format!("prefect.flow.{}", flow.id)),
            ("prefect.resource.role", "flow".into()),
            ("prefect.resource.name", flow.name.clone()),
        ])],
        payload: Map::new(),
        id: uuid::Uuid::new_v4(),
        follows: None,
    }
}
