//! What an action's templates see (Prefect's `_template_context`): the automation, the
//! triggering event (its resources answering `.id`, `.name` and `.role` too), the firing's
//! labels, and — loaded only when the action's templates name them — the `flow_run`, `flow`,
//! `deployment`, `task_run`, `work_pool` and `work_queue` the event involves (the first resource
//! of each kind, as this API answers it) and the workspace's `variables`.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::events::automations::firing::TriggeredAction;
use crate::ids::{FlowId, FlowRunId, Id, TaskRunId, WorkspaceId};
use crate::query::Page;
use crate::state::AppState;
use crate::storage::{flow_runs, flows, task_runs, variables, work_pools as wp};

/// Most variables a template sees.
const VARIABLES: i64 = 1_000;

/// The identifiers the action's text names (a template's variables are among them).
fn names(ta: &TriggeredAction) -> BTreeSet<String> {
    let text = serde_json::to_string(&ta.action).unwrap_or_default();
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The id of the first resource of `kind` the triggering event involves.
pub(super) fn first_of(ta: &TriggeredAction, kind: &str) -> Option<String> {
    let e = &ta.triggering_event.as_ref()?.event;
    std::iter::once(&e.resource)
        .chain(e.related.iter())
        .filter_map(|r| r.get("prefect.resource.id"))
        .find_map(|id| {
            let (k, rest) = id.rsplit_once('.')?;
            (k == kind && uuid::Uuid::parse_str(rest).is_ok()).then(|| rest.to_string())
        })
}

fn resource_attributes(r: &mut Value) {
    let Value::Object(m) = r else {
        return;
    };
    for (attr, label) in [
        ("id", "prefect.resource.id"),
        ("name", "prefect.resource.name"),
        ("role", "prefect.resource.role"),
    ] {
        if let Some(v) = m.get(label).cloned() {
            m.entry(attr).or_insert(v);
        }
    }
}

/// One object of the context, as the API answers it; `None` when the event involves none or it
/// is gone.
async fn object(state: &AppState, ws: &WorkspaceId, kind: &str, id: &str) -> Option<Value> {
    let now = crate::time::now();
    let mut c = state.stores.orion.read().await.ok()?;
    match kind {
        "flow_run" => {
            let (run, s) = flow_runs::find(&mut c, ws, &FlowRunId::new(id))
                .await
                .ok()??;
            let st = s.as_ref().and_then(crate::runs::convert::flow_state);
            serde_json::to_value(crate::runs::answers::FlowRunOut::new(
                &run,
                st.as_ref(),
                now,
            ))
            .ok()
        }
        "task_run" => {
            let (run, s) = task_runs::find(&mut c, ws, &TaskRunId::new(id))
                .await
                .ok()??;
            let st = s.as_ref().and_then(crate::runs::convert::task_state);
            serde_json::to_value(crate::runs::answers::TaskRunOut::new(
                &run,
                st.as_ref(),
                now,
            ))
            .ok()
        }
        "flow" => {
            let row = flows::find(&mut c, ws, &FlowId::new(id)).await.ok()??;
            serde_json::to_value(super::super::flows::FlowOut::from(&row)).ok()
        }
        "deployment" => {
            drop(c);
            super::super::deployments::body_of(state, ws, &Id::new(id))
                .await
                .ok()?
        }
        "work_pool" => {
            let row = wp::find_pool_by_id(&mut c, ws, id).await.ok()??;
            serde_json::to_value(super::super::work_pools::PoolOut::new(&row, None)).ok()
        }
        "work_queue" => {
            let q = wp::find_queue_by_id(&mut c, ws, id).await.ok()??;
            let pool = wp::find_pool_by_id(&mut c, ws, &q.work_pool_id)
                .await
                .ok()?;
            drop(c);
            let name = pool.as_ref().map(|p| p.name.as_str());
            let out = super::super::work_pools::one_queue_out(state, &q, name, &wp::ACTIVE)
                .await
                .ok()?;
            serde_json::to_value(out).ok()
        }
        _ => None,
    }
}

async fn workspace_variables(state: &AppState, ws: &WorkspaceId) -> Value {
    let Ok(mut c) = state.stores.orion.read().await else {
        return Value::Null;
    };
    let page = Page {
        limit: VARIABLES,
        offset: 0,
    };
    let rows = variables::list(&mut c, ws, &Default::default(), Default::default(), page)
        .await
        .unwrap_or_default();
    Value::Object(
        rows.into_iter()
            .map(|r| {
                (
                    r.name,
                    serde_json::from_str(&r.value).unwrap_or(Value::Null),
                )
            })
            .collect::<Map<String, Value>>(),
    )
}

pub(super) async fn template_context(
    state: &AppState,
    ws: &WorkspaceId,
    ta: &TriggeredAction,
) -> Value {
    let mut event = serde_json::to_value(&ta.triggering_event).unwrap_or(Value::Null);
    if let Some(r) = event.get_mut("resource") {
        resource_attributes(r);
    }
    if let Some(Value::Array(related)) = event.get_mut("related") {
        related.iter_mut().for_each(resource_attributes);
    }
    let mut ctx = json!({
        "automation": {"id": ta.automation_id, "name": ta.automation_name},
        "event": event,
        "labels": ta.triggering_labels,
        "firing": {"id": ta.firing_id, "triggered": ta.triggered, "triggering_labels": ta.triggering_labels},
    });
    let named = names(ta);
    for kind in [
        "flow_run",
        "task_run",
        "flow",
        "deployment",
        "work_pool",
        "work_queue",
    ] {
        if !named.contains(kind) {
            continue;
        }
        // A bucket's resource counts first for a flow run (proactive triggers have no event).
        let id = (kind == "flow_run")
            .then(|| ta.triggering_labels.get("prefect.resource.id"))
            .flatten()
            .and_then(|r| r.strip_prefix("prefect.flow-run."))
            .map(str::to_string)
            .or_else(|| first_of(ta, &format!("prefect.{}", kind.replace('_', "-"))));
        if let Some(id) = id {
            if let Some(v) = object(state, ws, kind, &id).await {
                ctx[kind] = v;
            }
        }
    }
    if named.contains("variables") {
        ctx["variables"] = workspace_variables(state, ws).await;
    }
    ctx
}
