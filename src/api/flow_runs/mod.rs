//! `/flow_runs`: create (idempotent by flow + key), read, filter, count, paginate, history,
//! lateness, graph, update, labels, delete, bulk delete (here), set_state and bulk set_state,
//! and `/flow_run_states` (`states.rs`).

mod states;

pub use states::{client_version, result_json, set_state_answer, SetStateBody};

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::to_text;
use super::run_lists;
use crate::error::{ApiError, ApiResult, INTEGRITY_CONFLICT};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::limit;
use crate::extract::params::PathId;
use crate::extract::Workspace;
use crate::ids::kind::FlowRun;
use crate::ids::{DeploymentId, FlowId, FlowRunId, TaskRunId, WorkspaceId};
use crate::orchestration::{FlowRunPolicy, StateCreate, StateType};
use crate::query::{FlowRunFilter, FlowRunSort, Related};
use crate::runs;
use crate::runs::answers::FlowRunOut;
use crate::runs::convert::flow_state;
use crate::state::AppState;
use crate::storage::rows::FlowRunRow;
use crate::storage::transitions::Created;
use crate::storage::{flow_runs, flows};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/flow_runs/", web::post().to(create))
        .route("/flow_runs", web::post().to(create))
        .route(
            "/flow_runs/filter",
            web::post().to(run_lists::filter::<FlowRunSort>),
        )
        .route(
            "/flow_runs/count",
            web::post().to(run_lists::count::<FlowRunSort>),
        )
        .route(
            "/flow_runs/paginate",
            web::post().to(run_lists::paginate::<FlowRunSort>),
        )
        .route(
            "/flow_runs/history",
            web::post().to(super::history::flow_run_history),
        )
        .route("/flow_runs/lateness", web::post().to(lateness))
        .route("/flow_runs/bulk_delete", web::post().to(bulk_delete))
        .route(
            "/flow_runs/bulk_set_state",
            web::post().to(states::bulk_set_state),
        )
        .route("/flow_runs/{id}", web::get().to(read))
        .route("/flow_runs/{id}", web::patch().to(update))
        .route("/flow_runs/{id}", web::delete().to(delete))
        .route("/flow_runs/{id}/labels", web::patch().to(update_labels))
        .route(
            "/flow_runs/{id}/set_state",
            web::post().to(states::set_state),
        )
        .route(
            "/flow_runs/{id}/graph",
            web::get().to(super::graph::graph_v1),
        )
        .route(
            "/flow_runs/{id}/graph-v2",
            web::get().to(super::graph::graph_v2),
        )
        .route("/flow_run_states/", web::get().to(states::read_states))
        .route("/flow_run_states", web::get().to(states::read_states))
        .route("/flow_run_states/{id}", web::get().to(states::read_state));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowRunCreate {
    #[serde(default)]
    state: Option<StateCreate>,
    #[serde(default)]
    name: Option<String>,
    flow_id: Uuid,
    #[serde(default)]
    flow_version: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    parent_task_run_id: Option<Uuid>,
    #[serde(default)]
    infrastructure_document_id: Option<Uuid>,
    #[serde(default)]
    empirical_policy: Option<FlowRunPolicy>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    work_pool_name: Option<String>,
    #[serde(default)]
    work_queue_name: Option<String>,
    #[serde(default)]
    job_variables: Option<Map<String, Value>>,
    #[serde(default)]
    deployment_id: Option<Uuid>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowRunUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    flow_version: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    empirical_policy: Option<FlowRunPolicy>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    infrastructure_pid: Option<String>,
    #[serde(default)]
    job_variables: Option<Map<String, Value>>,
}

/// `/flow_runs/filter|count|paginate|lateness` bodies.
pub type FlowRunListBody = super::run_lists::RunListBody<FlowRunSort>;

fn now_json<'a>(
    run: &'a FlowRunRow,
    state: Option<&'a crate::orchestration::State>,
) -> FlowRunOut<'a> {
    FlowRunOut::new(run, state, crate::time::now())
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<FlowRunCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let flow_id = FlowId::from(b.flow_id);
    let mut c = state.stores.orion.read().await?;
    let Some(flow) = flows::find(&mut c, ws.id(), &flow_id).await? else {
        return Err(ApiError::conflict(INTEGRITY_CONFLICT));
    };
    drop(c);
    let now = crate::time::now().naive_utc();
    let mut labels: BTreeMap<String, Value> =
        serde_json::from_str(&flow.labels).unwrap_or_default();
    labels.extend(b.labels.unwrap_or_default());
    labels.insert("prefect.flow.id".into(), Value::String(flow_id.to_string()));
    let row = FlowRunRow {
        id: FlowRunId::random(),
        workspace_id: ws.id().clone(),
        created: now,
        updated: now,
        name: b
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(runs::names::generate),
        flow_id,
        state_id: None,
        state_type: None,
        state_name: None,
        state_timestamp: None,
        deployment_id: b.deployment_id.map(DeploymentId::from),
        deployment_version: None,
        work_queue_id: None,
        work_queue_name: b.work_queue_name,
        work_pool_id: None,
        work_pool_name: b.work_pool_name,
        flow_version: b.flow_version,
        parameters: to_text(&b.parameters.unwrap_or_default()),
        idempotency_key: b.idempotency_key,
        context: to_text(&b.context.unwrap_or_default()),
        empirical_policy: to_text(&b.empirical_policy.unwrap_or_default()),
        tags: to_text(&b.tags.unwrap_or_default()),
        labels: to_text(&labels),
        parent_task_run_id: b.parent_task_run_id.map(TaskRunId::from),
        run_count: 0,
        expected_start_time: None,
        next_scheduled_start_time: None,
        start_time: None,
        end_time: None,
        total_run_time: 0.0,
        auto_scheduled: false,
        infrastructure_document_id: b.infrastructure_document_id.map(|d| d.to_string()),
        infrastructure_pid: None,
        created_by: None,
        job_variables: to_text(&b.job_variables.unwrap_or_default()),
    };
    let initial = b
        .state
        .unwrap_or_else(|| StateCreate::of(StateType::Pending));
    match runs::create_flow_run(&state, row, Some(&flow), initial).await? {
        Created::New(applied) => {
            Ok(HttpResponse::Created().json(now_json(&applied.run, applied.state.as_ref())))
        }
        Created::Existing(existing) => {
            let mut c = state.stores.orion.read().await?;
            let (run, s) = flow_runs::find(&mut c, ws.id(), &existing)
                .await?
                .ok_or_else(|| ApiError::not_found("Flow run not found"))?;
            Ok(HttpResponse::Ok().json(now_json(&run, s.as_ref().and_then(flow_state).as_ref())))
        }
    }
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let id: FlowRunId = id.typed();
    let mut c = state.stores.orion.read().await?;
    let (run, s) = flow_runs::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow run not found"))?;
    Ok(HttpResponse::Ok().json(now_json(&run, s.as_ref().and_then(flow_state).as_ref())))
}

/// Average lateness in seconds of the matching runs (null when none).
async fn lateness(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<FlowRunListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let now = crate::time::now().naive_utc();
    let mut c = state.stores.orion.read().await?;
    let avg = flow_runs::average_lateness(&mut c, ws.id(), &b.related, now).await?;
    // Microsecond precision, like the other durations of the API.
    Ok(HttpResponse::Ok().json(avg.map(|v| (v * 1e6).round() / 1e6)))
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<FlowRunUpdate>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.0, id.typed::<FlowRun>());
    let (mut run, _) = find_run(&state, &ws, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow run not found"))?;
    let b = body.into_inner();
    if let Some(v) = b.name {
        run.name = v;
    }
    if let Some(v) = b.flow_version {
        run.flow_version = Some(v);
    }
    if let Some(v) = b.parameters {
        run.parameters = to_text(&v);
    }
    if let Some(v) = b.empirical_policy {
        run.empirical_policy = to_text(&v);
    }
    if let Some(v) = b.tags {
        run.tags = to_text(&v);
    }
    if let Some(v) = b.infrastructure_pid {
        run.infrastructure_pid = Some(v);
    }
    if let Some(v) = b.job_variables {
        run.job_variables = to_text(&v);
    }
    if !save(&state, ws, run).await? {
        return Err(ApiError::not_found("Flow run not found"));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The run with its state, read on a connection given back before the caller writes.
async fn find_run(
    state: &AppState,
    ws: &WorkspaceId,
    id: &FlowRunId,
) -> ApiResult<Option<flow_runs::RunWithState>> {
    let mut c = state.stores.orion.read().await?;
    Ok(flow_runs::find(&mut c, ws, id).await?)
}

/// Saves the run's editable columns; false when it is gone.
async fn save(state: &AppState, ws: WorkspaceId, run: FlowRunRow) -> ApiResult<bool> {
    Ok(state
        .stores
        .orion
        .write(async move |c| flow_runs::update(c, &ws, &run).await)
        .await?)
}

async fn update_labels(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.0, id.typed::<FlowRun>());
    let not_found = || ApiError::ObjectNotFound(format!("Flow run with id {id} not found"));
    let (mut run, _) = find_run(&state, &ws, &id).await?.ok_or_else(not_found)?;
    let mut labels: Map<String, Value> = serde_json::from_str(&run.labels).unwrap_or_default();
    labels.extend(body.into_inner());
    run.labels = to_text(&labels);
    if !save(&state, ws, run).await? {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.0, id.typed::<FlowRun>());
    let deleted = state
        .stores
        .orion
        .write(async move |c| flow_runs::delete(c, &ws, &id).await)
        .await?;
    if !deleted {
        return Err(ApiError::not_found("Flow run not found"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BulkDeleteBody {
    flow_runs: Option<FlowRunFilter>,
    limit: Option<i64>,
}

async fn bulk_delete(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<BulkDeleteBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = limit(&state, b.limit)?;
    let related = Related {
        flow_runs: b.flow_runs,
        ..Default::default()
    };
    let ws = ws.0;
    let ids = state
        .stores
        .orion
        .transaction(async move |c| flow_runs::bulk_delete(c, &ws, &related, lim).await)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "deleted": ids })))
}
