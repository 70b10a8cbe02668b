//! `/flow_runs/{id}/graph` (v1) and `/graph-v2`: the task runs of a flow run, their upstream
//! dependencies (from `task_inputs`) and subflow runs.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::common::opt_ts;
use crate::error::{ApiError, ApiResult};
use crate::extract::params::PathId;
use crate::extract::Workspace;
use crate::runs::convert::{flow_state, task_run_json};
use crate::state::AppState;
use crate::storage::filters::{FlowRunFilter, FlowRunSort, NullableIdFilter, Page, Related};
use crate::storage::rows::TaskRunRow;
use crate::storage::{flow_runs, task_runs};

/// The task-run ids a task run's `task_inputs` point at.
fn upstream_ids(t: &TaskRunRow) -> BTreeSet<String> {
    let inputs: Value = serde_json::from_str(&t.task_inputs).unwrap_or(Value::Null);
    let mut ids = BTreeSet::new();
    if let Value::Object(m) = inputs {
        for refs in m.values() {
            for r in refs.as_array().into_iter().flatten() {
                if r.get("input_type").and_then(Value::as_str) == Some("task_run") {
                    if let Some(id) = r.get("id").and_then(Value::as_str) {
                        ids.insert(id.to_string());
                    }
                }
            }
        }
    }
    ids
}

pub async fn graph_v1(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let id = id.0;
    let mut c = state.stores.orion.read().await?;
    flow_runs::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow run not found"))?;
    let related = Related {
        task_runs: Some(crate::storage::filters::TaskRunFilter {
            flow_run_id: Some(NullableIdFilter {
                any_: uuid::Uuid::parse_str(&id).ok().map(|u| vec![u]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tasks = task_runs::list(
        &mut c,
        ws.id(),
        &related,
        crate::storage::filters::TaskRunSort::ExpectedStartTimeAsc,
        Page {
            limit: 10_000,
            offset: 0,
        },
    )
    .await?;
    let now = crate::time::now();
    let nodes: Vec<Value> = tasks
        .iter()
        .map(|(t, s)| {
            let j = task_run_json(t, s.as_ref().and_then(crate::runs::convert::task_state).as_ref(), now);
            let untrackable = j["state"]["state_details"]["untrackable_result"].as_bool().unwrap_or(false);
            json!({
                "id": t.id,
                "name": t.name,
                "upstream_dependencies": upstream_ids(t).into_iter().map(|u| json!({"input_type": "task_run", "id": u})).collect::<Vec<_>>(),
                "state": j["state"],
                "expected_start_time": j["expected_start_time"],
                "start_time": j["start_time"],
                "end_time": j["end_time"],
                "total_run_time": j["total_run_time"],
                "estimated_run_time": j["estimated_run_time"],
                "untrackable_result": untrackable,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(nodes))
}

pub async fn graph_v2(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let id = id.0;
    let mut c = state.stores.orion.read().await?;
    let (run, _) = flow_runs::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow run not found"))?;
    let tasks = task_runs::list_of_flow_run(&mut c, ws.id(), &id).await?;
    // Subflow runs stand in for their parent task runs.
    let parent_ids: Vec<uuid::Uuid> = tasks
        .iter()
        .filter_map(|t| uuid::Uuid::parse_str(&t.id).ok())
        .collect();
    let subflows = if parent_ids.is_empty() {
        Vec::new()
    } else {
        let related = Related {
            flow_runs: Some(FlowRunFilter {
                parent_task_run_id: Some(NullableIdFilter {
                    any_: Some(parent_ids),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        flow_runs::list(
            &mut c,
            ws.id(),
            &related,
            FlowRunSort::IdDesc,
            Page {
                limit: 10_000,
                offset: 0,
            },
        )
        .await?
    };
    let by_parent: BTreeMap<String, &crate::storage::rows::FlowRunRow> = subflows
        .iter()
        .filter_map(|(r, _)| r.parent_task_run_id.clone().map(|p| (p, r)))
        .collect();
    let node_id = |t: &TaskRunRow| {
        by_parent
            .get(&t.id)
            .map(|r| r.id.clone())
            .unwrap_or_else(|| t.id.clone())
    };
    let id_of: BTreeMap<String, String> =
        tasks.iter().map(|t| (t.id.clone(), node_id(t))).collect();
    let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut parents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &tasks {
        let me = node_id(t);
        for up in upstream_ids(t) {
            if let Some(up_node) = id_of.get(&up) {
                parents.entry(me.clone()).or_default().push(up_node.clone());
                children
                    .entry(up_node.clone())
                    .or_default()
                    .push(me.clone());
            }
        }
    }
    let refs = |v: Option<&Vec<String>>| {
        v.map(|ids| ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut roots = Vec::new();
    let nodes: Vec<Value> = tasks
        .iter()
        .map(|t| {
            let me = node_id(t);
            if !parents.contains_key(&me) {
                roots.push(me.clone());
            }
            let node = match by_parent.get(&t.id) {
                Some(sub) => json!({
                    "kind": "flow-run", "id": sub.id, "label": sub.name, "state_type": sub.state_type,
                    "start_time": opt_ts(&sub.start_time), "end_time": opt_ts(&sub.end_time),
                    "parents": refs(parents.get(&me)), "children": refs(children.get(&me)), "encapsulating": [], "artifacts": [],
                }),
                None => json!({
                    "kind": "task-run", "id": t.id, "label": t.name, "state_type": t.state_type,
                    "start_time": opt_ts(&t.start_time), "end_time": opt_ts(&t.end_time),
                    "parents": refs(parents.get(&me)), "children": refs(children.get(&me)), "encapsulating": [], "artifacts": [],
                }),
            };
            json!([me, node])
        })
        .collect();
    let states: Vec<Value> = flow_runs::list_states(&mut c, ws.id(), &id)
        .await?
        .iter()
        .filter_map(flow_state)
        .map(|s| json!({"id": s.id, "timestamp": crate::time::format(&s.timestamp), "type": s.state_type.as_str(), "name": s.name}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "start_time": opt_ts(&run.start_time),
        "end_time": opt_ts(&run.end_time),
        "root_node_ids": roots,
        "nodes": nodes,
        "artifacts": [],
        "states": states,
    })))
}
