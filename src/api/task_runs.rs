//! `/task_runs`: REST creation (subflow parent task runs, deferred tasks), reads, filters,
//! counts, paginate, history, rename, delete and set_state; `/task_run_states`; and
//! `/task_workers/filter`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::common::to_text;
use super::flow_runs::{set_state_answer, SetStateBody};
use super::run_lists;
use crate::error::{ApiError, ApiResult, INTEGRITY_CONFLICT};
use crate::extract::json::Json;
use crate::extract::params::PathId;
use crate::extract::Workspace;
use crate::ids::kind::TaskRun;
use crate::ids::{FlowRunId, TaskRunId};
use crate::orchestration::{StateCreate, StateType, TaskRunPolicy};
use crate::query::TaskRunSort;
use crate::runs;
use crate::runs::answers::TaskRunOut;
use crate::runs::convert::{state_json, task_state};
use crate::state::AppState;
use crate::storage::rows::TaskRunRow;
use crate::storage::transitions::Created;
use crate::storage::{flow_runs, task_runs};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/task_runs/", web::post().to(create))
        .route("/task_runs", web::post().to(create))
        .route(
            "/task_runs/filter",
            web::post().to(run_lists::filter::<TaskRunSort>),
        )
        .route(
            "/task_runs/count",
            web::post().to(run_lists::count::<TaskRunSort>),
        )
        .route(
            "/task_runs/paginate",
            web::post().to(run_lists::paginate::<TaskRunSort>),
        )
        .route(
            "/task_runs/history",
            web::post().to(super::history::task_run_history),
        )
        .route("/task_runs/{id}", web::get().to(read))
        .route("/task_runs/{id}", web::patch().to(update))
        .route("/task_runs/{id}", web::delete().to(delete))
        .route("/task_runs/{id}/set_state", web::post().to(set_state))
        .route("/task_run_states/", web::get().to(read_states))
        .route("/task_run_states", web::get().to(read_states))
        .route("/task_run_states/{id}", web::get().to(read_state))
        .route("/task_workers/filter", web::post().to(task_workers));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskRunCreate {
    #[serde(default)]
    id: Option<Uuid>,
    #[serde(default)]
    state: Option<StateCreate>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    flow_run_id: Option<Uuid>,
    task_key: String,
    dynamic_key: String,
    #[serde(default)]
    cache_key: Option<String>,
    #[serde(default, with = "crate::time::opt")]
    cache_expiration: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    task_version: Option<String>,
    #[serde(default)]
    empirical_policy: Option<TaskRunPolicy>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    task_inputs: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskRunUpdate {
    #[serde(default)]
    name: Option<String>,
}

fn one_json<'a>(run: &'a TaskRunRow, s: Option<&'a crate::orchestration::State>) -> TaskRunOut<'a> {
    TaskRunOut::new(run, s, crate::time::now())
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<TaskRunCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let mut labels: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(fr) = b.flow_run_id {
        let mut c = state.stores.orion.read().await?;
        let Some((run, _)) = flow_runs::find(&mut c, ws.id(), &fr.into()).await? else {
            return Err(ApiError::conflict(INTEGRITY_CONFLICT));
        };
        labels.insert(
            "prefect.flow.id".into(),
            Value::String(run.flow_id.to_string()),
        );
        labels.insert(
            "prefect.flow-run.id".into(),
            Value::String(run.id.to_string()),
        );
    }
    labels.extend(b.labels.unwrap_or_default());
    let now = crate::time::now().naive_utc();
    let name = b.name.unwrap_or_else(|| {
        format!(
            "{}-{}",
            b.task_key,
            b.dynamic_key.chars().take(3).collect::<String>()
        )
    });
    let row = TaskRunRow {
        id: b.id.map_or_else(TaskRunId::random, TaskRunId::from),
        workspace_id: ws.id().clone(),
        created: now,
        updated: now,
        name,
        flow_run_id: b.flow_run_id.map(FlowRunId::from),
        task_key: b.task_key,
        dynamic_key: b.dynamic_key,
        cache_key: b.cache_key,
        cache_expiration: b.cache_expiration.map(|t| t.naive_utc()),
        task_version: b.task_version,
        empirical_policy: to_text(&b.empirical_policy.unwrap_or_default()),
        tags: to_text(&b.tags.unwrap_or_default()),
        labels: to_text(&labels),
        task_inputs: to_text(&b.task_inputs.unwrap_or_default()),
        state_id: None,
        state_type: None,
        state_name: None,
        state_timestamp: None,
        run_count: 0,
        flow_run_run_count: 0,
        expected_start_time: None,
        next_scheduled_start_time: None,
        start_time: None,
        end_time: None,
        total_run_time: 0.0,
    };
    let initial = b
        .state
        .unwrap_or_else(|| StateCreate::of(StateType::Pending));
    match runs::create_task_run(&state, row, initial).await? {
        Created::New(applied) => {
            Ok(HttpResponse::Created().json(one_json(&applied.run, applied.state.as_ref())))
        }
        Created::Existing(existing) => {
            let mut c = state.stores.orion.read().await?;
            let (run, s) = task_runs::find(&mut c, ws.id(), &existing)
                .await?
                .ok_or_else(|| ApiError::not_found("Task not found"))?;
            Ok(HttpResponse::Ok().json(one_json(&run, s.as_ref().and_then(task_state).as_ref())))
        }
    }
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let id: TaskRunId = id.typed();
    let mut c = state.stores.orion.read().await?;
    let (run, s) = task_runs::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Task not found"))?;
    Ok(HttpResponse::Ok().json(one_json(&run, s.as_ref().and_then(task_state).as_ref())))
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<TaskRunUpdate>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.0, id.typed::<TaskRun>());
    let found = match body.into_inner().name {
        Some(name) => {
            state
                .stores
                .orion
                .write(async move |c| task_runs::update_name(c, &ws, &id, &name).await)
                .await?
        }
        None => {
            let mut c = state.stores.orion.read().await?;
            task_runs::find(&mut c, &ws, &id).await?.is_some()
        }
    };
    if !found {
        return Err(ApiError::not_found("Task not found"));
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.0, id.typed::<TaskRun>());
    let deleted = state
        .stores
        .orion
        .write(async move |c| task_runs::delete(c, &ws, &id).await)
        .await?;
    if !deleted {
        return Err(ApiError::not_found("Task not found"));
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn set_state(
    req: HttpRequest,
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<SetStateBody>,
) -> ApiResult<HttpResponse> {
    let request = body.into_inner().into_request(&req);
    let applied = runs::set_task_run_state(&state, ws.id(), &id.typed(), request).await?;
    set_state_answer(applied, "Task not found")
}

#[derive(Deserialize)]
struct StatesQuery {
    task_run_id: Option<String>,
}

async fn read_states(
    state: web::Data<AppState>,
    ws: Workspace,
    q: web::Query<StatesQuery>,
) -> ApiResult<HttpResponse> {
    let Some(run_id) = q.into_inner().task_run_id else {
        return Err(ApiError::invalid(
            vec!["query".into(), "task_run_id".into()],
            "Field required",
            "missing",
        ));
    };
    let run_id = Uuid::parse_str(&run_id).map_err(|_| {
        ApiError::invalid(
            vec!["query".into(), "task_run_id".into()],
            "Input should be a valid UUID",
            "uuid_parsing",
        )
    })?;
    let mut c = state.stores.orion.read().await?;
    let rows = task_runs::list_states(&mut c, ws.id(), &run_id.into()).await?;
    Ok(HttpResponse::Ok().json(
        rows.iter()
            .filter_map(task_state)
            .map(|s| state_json(&s))
            .collect::<Vec<_>>(),
    ))
}

async fn read_state(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let id = id.0;
    let mut c = state.stores.orion.read().await?;
    let row = task_runs::find_state(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Task run state not found"))?;
    let s = task_state(&row).ok_or_else(|| ApiError::not_found("Task run state not found"))?;
    Ok(HttpResponse::Ok().json(state_json(&s)))
}

/// Background task workers connect over `/task_runs/subscriptions/scheduled`, which this
/// server does not offer yet, so no task worker can be active.
async fn task_workers() -> HttpResponse {
    HttpResponse::Ok().json(Value::Array(Vec::new()))
}
