//! `/flow_runs/{id}/graph` (v1) and `/graph-v2`: the task runs of a flow run, their upstream
//! dependencies (from `task_inputs`) and subflow runs.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::params::PathId;
use crate::extract::Workspace;
use crate::ids::{FlowId, FlowRunId, TaskRunId};
use crate::orchestration::State;
use crate::query::{FlowRunFilter, FlowRunSort, NullableIdFilter, Page, Related};
use crate::runs::answers::Clock;
use crate::runs::convert::{flow_state, task_state};
use crate::state::AppState;
use crate::storage::artifacts::{self, GraphArtifact};
use crate::storage::rows::TaskRunRow;
use crate::storage::{flow_runs, flows, task_runs};
use crate::wire::{opt_json_text, opt_ts, round_secs, JsonText, Ts};

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
    let id: FlowRunId = id.typed();
    let mut c = state.stores.orion.read().await?;
    flow_runs::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow run not found"))?;
    let related = Related {
        task_runs: Some(crate::query::TaskRunFilter {
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
        crate::query::TaskRunSort::ExpectedStartTimeAsc,
        Page {
            limit: 10_000,
            offset: 0,
        },
    )
    .await?;
    let now = crate::time::now();
    let states: Vec<Option<State>> = tasks
        .iter()
        .map(|(_, s)| s.as_ref().and_then(task_state))
        .collect();
    let nodes: Vec<NodeV1> = tasks
        .iter()
        .zip(&states)
        .map(|((t, _), s)| {
            let (estimated_run_time, _) = Clock::from(t).estimates(now);
            NodeV1 {
                id: &t.id,
                name: &t.name,
                upstream_dependencies: upstream_ids(t)
                    .into_iter()
                    .map(|id| Upstream {
                        input_type: "task_run",
                        id,
                    })
                    .collect(),
                state: s.as_ref(),
                expected_start_time: opt_ts(&t.expected_start_time),
                start_time: opt_ts(&t.start_time),
                end_time: opt_ts(&t.end_time),
                total_run_time: round_secs(t.total_run_time),
                estimated_run_time,
                untrackable_result: s
                    .as_ref()
                    .is_some_and(|s| s.state_details.untrackable_result),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(nodes))
}

/// A task run's upstream reference in the v1 graph.
#[derive(Serialize)]
struct Upstream {
    input_type: &'static str,
    id: String,
}

/// A node of the v1 graph: a task run of the flow run.
#[derive(Serialize)]
struct NodeV1<'a> {
    id: &'a str,
    name: &'a str,
    upstream_dependencies: Vec<Upstream>,
    state: Option<&'a State>,
    expected_start_time: Option<Ts<'a>>,
    start_time: Option<Ts<'a>>,
    end_time: Option<Ts<'a>>,
    total_run_time: f64,
    estimated_run_time: f64,
    untrackable_result: bool,
}

/// A node id of the v2 graph.
#[derive(Serialize)]
struct NodeRef<'a> {
    id: &'a str,
}

/// The node ids of `ids` (none when absent).
fn refs(ids: Option<&Vec<String>>) -> Vec<NodeRef<'_>> {
    ids.map(|ids| ids.iter().map(|id| NodeRef { id }).collect())
        .unwrap_or_default()
}

/// A node of the v2 graph: a task run, or the subflow run standing in for its parent task run.
#[derive(Serialize)]
struct NodeV2<'a> {
    kind: &'static str,
    id: &'a str,
    label: &'a str,
    state_type: Option<&'a str>,
    start_time: Option<Ts<'a>>,
    end_time: Option<Ts<'a>>,
    parents: Vec<NodeRef<'a>>,
    children: Vec<NodeRef<'a>>,
    encapsulating: [(); 0],
    artifacts: Vec<ArtifactOut<'a>>,
}

/// An artifact of the v2 graph (`data` only for progress artifacts, as the reference).
#[derive(Serialize, Clone)]
struct ArtifactOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    key: Option<&'a str>,
    #[serde(rename = "type")]
    artifact_type: Option<&'a str>,
    is_latest: bool,
    data: JsonText<'a>,
}

impl<'a> From<&'a GraphArtifact> for ArtifactOut<'a> {
    fn from(a: &'a GraphArtifact) -> Self {
        let progress = a.artifact_type.as_deref() == Some("progress");
        ArtifactOut {
            id: &a.id,
            created: Ts(&a.created),
            key: a.key.as_deref(),
            artifact_type: a.artifact_type.as_deref(),
            is_latest: a.key.is_none() || a.latest_of.is_some(),
            data: match progress {
                true => opt_json_text(&a.data),
                false => opt_json_text(&None),
            },
        }
    }
}

/// Most artifacts a graph lists (the reference's `PREFECT_API_MAX_FLOW_RUN_GRAPH_ARTIFACTS`).
const MAX_GRAPH_ARTIFACTS: i64 = 10_000;

/// A state of the flow run in the v2 graph.
#[derive(Serialize)]
struct GraphState<'a> {
    id: uuid::Uuid,
    timestamp: String,
    #[serde(rename = "type")]
    state_type: &'static str,
    name: &'a str,
}

/// The v2 graph.
#[derive(Serialize)]
struct GraphV2<'a> {
    start_time: Option<Ts<'a>>,
    end_time: Option<Ts<'a>>,
    root_node_ids: Vec<String>,
    nodes: Vec<(String, NodeV2<'a>)>,
    artifacts: Vec<ArtifactOut<'a>>,
    states: Vec<GraphState<'a>>,
}

pub async fn graph_v2(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let id: FlowRunId = id.typed();
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
    let flow_ids: Vec<FlowId> = subflows.iter().map(|(r, _)| r.flow_id.clone()).collect();
    let flow_names: BTreeMap<FlowId, String> = flows::names_of(&mut c, ws.id(), &flow_ids)
        .await?
        .into_iter()
        .collect();
    // Subflow nodes are labelled "<flow name> / <run name>", as the reference labels them.
    let labels: BTreeMap<&str, String> = subflows
        .iter()
        .map(|(r, _)| {
            let flow = flow_names.get(&r.flow_id).map_or("", String::as_str);
            (r.id.as_str(), format!("{flow} / {}", r.name))
        })
        .collect();
    let graph_artifacts =
        artifacts::of_flow_run_for_graph(&mut c, ws.id(), &id, MAX_GRAPH_ARTIFACTS).await?;
    let mut artifacts_of: BTreeMap<Option<&str>, Vec<ArtifactOut>> = BTreeMap::new();
    for a in &graph_artifacts {
        artifacts_of
            .entry(a.task_run_id.as_deref())
            .or_default()
            .push(ArtifactOut::from(a));
    }
    let by_parent: BTreeMap<TaskRunId, &crate::storage::rows::FlowRunRow> = subflows
        .iter()
        .filter_map(|(r, _)| r.parent_task_run_id.clone().map(|p| (p, r)))
        .collect();
    let node_id = |t: &TaskRunRow| {
        by_parent
            .get(&t.id)
            .map(|r| r.id.to_string())
            .unwrap_or_else(|| t.id.to_string())
    };
    let id_of: BTreeMap<String, String> = tasks
        .iter()
        .map(|t| (t.id.to_string(), node_id(t)))
        .collect();
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
    let mut roots = Vec::new();
    let mut nodes = Vec::new();
    for t in &tasks {
        let me = node_id(t);
        if !parents.contains_key(&me) {
            roots.push(me.clone());
        }
        let (kind, id, label, state_type, start_time, end_time) = match by_parent.get(&t.id) {
            Some(sub) => (
                "flow-run",
                sub.id.as_str(),
                labels.get(sub.id.as_str()).unwrap_or(&sub.name),
                &sub.state_type,
                &sub.start_time,
                &sub.end_time,
            ),
            None => (
                "task-run",
                t.id.as_str(),
                &t.name,
                &t.state_type,
                &t.start_time,
                &t.end_time,
            ),
        };
        let node = NodeV2 {
            kind,
            id,
            label,
            state_type: state_type.as_deref(),
            start_time: opt_ts(start_time),
            end_time: opt_ts(end_time),
            parents: refs(parents.get(&me)),
            children: refs(children.get(&me)),
            encapsulating: [],
            artifacts: match kind {
                "task-run" => artifacts_of.get(&Some(id)).cloned().unwrap_or_default(),
                _ => Vec::new(),
            },
        };
        nodes.push((me, node));
    }
    let run_states: Vec<State> = flow_runs::list_states(&mut c, ws.id(), &id)
        .await?
        .iter()
        .filter_map(flow_state)
        .collect();
    let states = run_states
        .iter()
        .map(|s| GraphState {
            id: s.id,
            timestamp: crate::time::format(&s.timestamp),
            state_type: s.state_type.as_str(),
            name: &s.name,
        })
        .collect();
    Ok(HttpResponse::Ok().json(GraphV2 {
        start_time: opt_ts(&run.start_time),
        end_time: opt_ts(&run.end_time),
        root_node_ids: roots,
        nodes,
        artifacts: artifacts_of.remove(&None).unwrap_or_default(),
        states,
    }))
}
