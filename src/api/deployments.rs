//! `/deployments`: create/upsert by flow + name, read by id and by name, filter, count,
//! paginate, update, delete, pause/resume, schedules, `create_flow_run` (idempotency keys,
//! parameter schema enforcement), and the runner poll `get_scheduled_flow_runs`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::{json_col, opt_json_col, opt_ts, page_of, paginated, to_text, ts};
use crate::error::{ApiError, ApiResult, INTEGRITY_CONFLICT};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{
    limit, Paging, PathDeploymentName, PathFlowName, PathId, PathScheduleId,
};
use crate::extract::Workspace;
use crate::orchestration::{FlowRunPolicy, StateCreate, StateDetails, StateType};
use crate::runs::convert::{flow_run_json, flow_state};
use crate::scheduling::Schedule;
use crate::state::AppState;
use crate::storage::deployments::{
    self as deps, DeploymentFilter, DeploymentRow, DeploymentSort, ScheduleRow,
};
use crate::storage::filters::{Page, Related};
use crate::storage::rows::FlowRunRow;
use crate::storage::transitions::Created;
use crate::storage::{flow_runs, flows, work_pools as wp};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/deployments/", web::post().to(create))
        .route("/deployments", web::post().to(create))
        .route("/deployments/filter", web::post().to(filter))
        .route("/deployments/count", web::post().to(count))
        .route("/deployments/paginate", web::post().to(paginate))
        .route(
            "/deployments/get_scheduled_flow_runs",
            web::post().to(scheduled_runs),
        )
        .route("/deployments/bulk_delete", web::post().to(bulk_delete))
        .route(
            "/deployments/name/{flow_name}/{deployment_name}",
            web::get().to(read_by_name),
        )
        .route("/deployments/{id}", web::get().to(read))
        .route("/deployments/{id}", web::patch().to(update))
        .route("/deployments/{id}", web::delete().to(delete))
        .route("/deployments/{id}/pause_deployment", web::post().to(pause))
        .route(
            "/deployments/{id}/resume_deployment",
            web::post().to(resume),
        )
        .route(
            "/deployments/{id}/create_flow_run",
            web::post().to(create_flow_run),
        )
        .route(
            "/deployments/{id}/create_flow_run/bulk",
            web::post().to(create_flow_runs_bulk),
        )
        .route(
            "/deployments/{id}/work_queue_check",
            web::get().to(work_queue_check),
        )
        .route("/deployments/{id}/schedule", web::post().to(schedule_now))
        .route("/deployments/{id}/schedules", web::get().to(read_schedules))
        .route(
            "/deployments/{id}/schedules",
            web::post().to(create_schedules),
        )
        .route(
            "/deployments/{id}/schedules/{schedule_id}",
            web::patch().to(update_schedule),
        )
        .route(
            "/deployments/{id}/schedules/{schedule_id}",
            web::delete().to(delete_schedule),
        );
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ScheduleCreate {
    #[serde(default = "yes")]
    active: bool,
    schedule: Value,
    #[serde(default)]
    max_scheduled_runs: Option<i32>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    slug: Option<String>,
    /// Accepted for compatibility; schedules are replaced wholesale on upsert.
    #[serde(default, rename = "replaces")]
    _replaces: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleUpdate {
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    schedule: Option<Value>,
    #[serde(default)]
    max_scheduled_runs: Option<Option<i32>>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    replaces: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentCreate {
    name: String,
    flow_id: Uuid,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    schedules: Vec<ScheduleCreate>,
    #[serde(default)]
    concurrency_limit: Option<i32>,
    #[serde(default)]
    concurrency_options: Option<Value>,
    #[serde(default)]
    global_concurrency_limit_id: Option<Uuid>,
    #[serde(default)]
    enforce_parameter_schema: Option<bool>,
    #[serde(default)]
    parameter_openapi_schema: Option<Value>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pull_steps: Option<Value>,
    #[serde(default)]
    work_queue_name: Option<String>,
    #[serde(default)]
    work_pool_name: Option<String>,
    #[serde(default)]
    storage_document_id: Option<Uuid>,
    #[serde(default)]
    infrastructure_document_id: Option<Uuid>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    entrypoint: Option<String>,
    #[serde(default)]
    job_variables: Option<Map<String, Value>>,
    #[serde(default)]
    version_info: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentUpdate {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    paused: Option<bool>,
    #[serde(default)]
    schedules: Option<Vec<ScheduleCreate>>,
    #[serde(default)]
    concurrency_limit: Option<Option<i32>>,
    #[serde(default)]
    concurrency_options: Option<Value>,
    #[serde(default)]
    global_concurrency_limit_id: Option<Uuid>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    parameter_openapi_schema: Option<Value>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    work_queue_name: Option<String>,
    #[serde(default)]
    work_pool_name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    job_variables: Option<Map<String, Value>>,
    #[serde(default)]
    pull_steps: Option<Value>,
    #[serde(default)]
    entrypoint: Option<String>,
    #[serde(default)]
    storage_document_id: Option<Uuid>,
    #[serde(default)]
    infrastructure_document_id: Option<Uuid>,
    #[serde(default)]
    enforce_parameter_schema: Option<bool>,
    #[serde(default)]
    version_info: Option<Value>,
}

/// A bad schedule at index `i` of a list found at `prefix` (`["body", "schedules"]` in a
/// deployment body, `["body"]` when the body is the list).
fn invalid_schedule(prefix: &[&str], i: usize, msg: String) -> ApiError {
    let mut loc: Vec<Value> = prefix.iter().map(|p| Value::from(*p)).collect();
    loc.push(i.into());
    loc.push("schedule".into());
    ApiError::invalid(loc, msg, "value_error")
}

fn schedule_rows(
    ws: &str,
    deployment_id: &str,
    list: &[ScheduleCreate],
) -> ApiResult<Vec<ScheduleRow>> {
    schedule_rows_at(ws, deployment_id, list, &["body", "schedules"])
}

fn schedule_rows_at(
    ws: &str,
    deployment_id: &str,
    list: &[ScheduleCreate],
    loc: &[&str],
) -> ApiResult<Vec<ScheduleRow>> {
    let now = crate::time::now();
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let mut at: Vec<Value> = loc.iter().map(|p| Value::from(*p)).collect();
            at.extend([i.into(), "max_scheduled_runs".into()]);
            super::work_pools::positive_at(at, s.max_scheduled_runs)?;
            let parsed =
                Schedule::parse(&s.schedule, now).map_err(|e| invalid_schedule(loc, i, e))?;
            Ok(ScheduleRow {
                id: Uuid::new_v4().to_string(),
                workspace_id: ws.to_string(),
                created: now.naive_utc(),
                updated: now.naive_utc(),
                deployment_id: deployment_id.to_string(),
                schedule: parsed.to_json().to_string(),
                active: s.active,
                max_scheduled_runs: s.max_scheduled_runs,
                parameters: to_text(&s.parameters.clone().unwrap_or_default()),
                slug: s.slug.clone(),
            })
        })
        .collect()
}

fn schedule_json(s: &ScheduleRow) -> Value {
    json!({
        "id": s.id, "created": ts(&s.created), "updated": ts(&s.updated), "deployment_id": s.deployment_id,
        "schedule": json_col(&s.schedule, Value::Null),
        "active": s.active, "max_scheduled_runs": s.max_scheduled_runs,
        "parameters": json_col(&s.parameters, json!({})), "slug": s.slug,
    })
}

async fn deployment_json(state: &AppState, d: &DeploymentRow) -> ApiResult<Value> {
    let mut out = deployments_json(state, std::slice::from_ref(d)).await?;
    Ok(out.pop().unwrap_or(Value::Null))
}

/// Bodies of these deployments: their schedules and their queues' pool names are loaded in one
/// query each.
async fn deployments_json(state: &AppState, rows: &[DeploymentRow]) -> ApiResult<Vec<Value>> {
    let db = &state.stores.orion;
    let ids: Vec<String> = rows.iter().map(|d| d.id.clone()).collect();
    let mut schedules: std::collections::HashMap<&str, Vec<Value>> = Default::default();
    let schedule_rows = deps::schedules(db, &ids).await?;
    for s in &schedule_rows {
        schedules
            .entry(s.deployment_id.as_str())
            .or_default()
            .push(schedule_json(s));
    }
    let mut queue_ids: Vec<String> = rows
        .iter()
        .filter_map(|d| d.work_queue_id.clone())
        .collect();
    queue_ids.sort_unstable();
    queue_ids.dedup();
    let pools = wp::pools_of_queues(db, &queue_ids).await?;
    Ok(rows
        .iter()
        .map(|d| {
            let pool_name = d
                .work_queue_id
                .as_ref()
                .and_then(|q| pools.get(q))
                .map(|(_, name)| name);
            body_of(
                d,
                schedules.remove(d.id.as_str()).unwrap_or_default(),
                pool_name,
            )
        })
        .collect())
}

fn body_of(d: &DeploymentRow, schedules: Vec<Value>, pool_name: Option<&String>) -> Value {
    json!({
        "id": d.id, "created": ts(&d.created), "updated": ts(&d.updated), "name": d.name, "version": d.version,
        "description": d.description, "flow_id": d.flow_id, "paused": d.paused,
        "schedules": schedules,
        "concurrency_limit": d.concurrency_limit,
        "global_concurrency_limit": null,
        "concurrency_options": opt_json_col(&d.concurrency_options),
        "job_variables": json_col(&d.job_variables, json!({})),
        "parameters": json_col(&d.parameters, json!({})),
        "tags": json_col(&d.tags, json!([])),
        "labels": json_col(&d.labels, json!({})),
        "work_queue_name": d.work_queue_name, "work_queue_id": d.work_queue_id,
        "last_polled": opt_ts(&d.last_polled),
        "parameter_openapi_schema": opt_json_col(&d.parameter_openapi_schema),
        "path": d.path, "pull_steps": opt_json_col(&d.pull_steps), "entrypoint": d.entrypoint,
        "storage_document_id": d.storage_document_id, "infrastructure_document_id": d.infrastructure_document_id,
        "created_by": opt_json_col(&d.created_by), "updated_by": opt_json_col(&d.updated_by),
        "work_pool_name": pool_name, "status": d.status,
        "enforce_parameter_schema": d.enforce_parameter_schema,
    })
}

/// Resolves the pool and queue names to the queue id (creating a missing queue in an existing
/// pool, as Prefect does; the pool's default queue when only the pool is named).
async fn resolve_queue(
    state: &AppState,
    ws: &Workspace,
    pool: Option<&str>,
    queue: Option<&str>,
) -> ApiResult<(Option<String>, Option<String>)> {
    let Some(pool_name) = pool else {
        // Only a queue name: the queue (created if missing) of the default agent pool.
        return match queue {
            Some(name) => {
                let q = super::work_queues::ensure_legacy_queue(state, ws, name).await?;
                Ok((Some(q.name), Some(q.id)))
            }
            None => Ok((None, None)),
        };
    };
    let p = super::work_pools::pool(state, ws, pool_name).await?;
    let db = &state.stores.orion;
    let q = match queue {
        Some(name) => {
            let body = super::work_pools::QueueCreate::named(name.to_string());
            super::work_pools::find_or_create_queue(state, ws, &p, body).await?
        }
        None => match &p.default_queue_id {
            Some(id) => wp::find_queue_by_id(db, ws.id(), id)
                .await?
                .ok_or_else(|| ApiError::not_found("Work queue not found"))?,
            None => return Ok((None, None)),
        },
    };
    Ok((Some(q.name), Some(q.id)))
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<DeploymentCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let db = &state.stores.orion;
    concurrency_limit_positive(b.concurrency_limit)?;
    if b.name.trim().is_empty() || b.name.contains('/') || b.name.contains('%') {
        return Err(ApiError::invalid(
            vec!["body".into(), "name".into()],
            "Deployment names must not be empty or contain '/' or '%'.",
            "value_error",
        ));
    }
    let flow_id = b.flow_id.to_string();
    let flow = flows::find(&mut db.read().await?, ws.id(), &flow_id)
        .await?
        .ok_or_else(|| ApiError::conflict(INTEGRITY_CONFLICT))?;
    // Schedules are checked before the queue is resolved: resolving may create the pool and
    // queue, which a rejected request must not leave behind.
    let id = Uuid::new_v4().to_string();
    let schedules = schedule_rows(ws.id(), &id, &b.schedules)?;
    let (queue_name, queue_id) = resolve_queue(
        &state,
        &ws,
        b.work_pool_name.as_deref(),
        b.work_queue_name.as_deref(),
    )
    .await?;
    let now = crate::time::now().naive_utc();
    let mut labels = b.labels.unwrap_or_default();
    labels.insert("prefect.flow.id".into(), Value::String(flow.id.clone()));
    let row = DeploymentRow {
        id,
        workspace_id: ws.id().to_string(),
        created: now,
        updated: now,
        name: b.name,
        version: b.version,
        description: b.description,
        flow_id,
        paused: b.paused,
        concurrency_limit: b.concurrency_limit,
        concurrency_options: b
            .concurrency_options
            .filter(|v| !v.is_null())
            .map(|v| v.to_string()),
        global_concurrency_limit_id: b.global_concurrency_limit_id.map(|u| u.to_string()),
        job_variables: to_text(&b.job_variables.unwrap_or_default()),
        parameters: to_text(&b.parameters.unwrap_or_default()),
        tags: to_text(&b.tags.unwrap_or_default()),
        labels: to_text(&labels),
        work_queue_name: queue_name,
        work_queue_id: queue_id,
        last_polled: None,
        parameter_openapi_schema: Some(
            b.parameter_openapi_schema
                .filter(|v| !v.is_null())
                .unwrap_or_else(|| json!({}))
                .to_string(),
        ),
        path: b.path,
        pull_steps: Some(
            b.pull_steps
                .filter(|v| !v.is_null())
                .unwrap_or_else(|| json!([]))
                .to_string(),
        ),
        entrypoint: b.entrypoint,
        storage_document_id: b.storage_document_id.map(|u| u.to_string()),
        infrastructure_document_id: b.infrastructure_document_id.map(|u| u.to_string()),
        created_by: None,
        updated_by: None,
        status: "NOT_READY".into(),
        enforce_parameter_schema: b.enforce_parameter_schema.unwrap_or(true),
        version_info: b
            .version_info
            .filter(|v| !v.is_null())
            .map(|v| v.to_string()),
    };
    let (saved, created) = deps::upsert(db, &row, &schedules, now).await?;
    let event = if created {
        "prefect.deployment.created"
    } else {
        "prefect.deployment.updated"
    };
    crate::runs::events::emit(
        &state,
        ws.id(),
        vec![crate::runs::events::deployment_event(
            &saved,
            &flow,
            event,
            crate::time::now(),
        )],
    )
    .await;
    let body = deployment_json(&state, &saved).await?;
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// Prefect's `PositiveInteger` deployment `concurrency_limit`.
fn concurrency_limit_positive(v: Option<i32>) -> ApiResult<()> {
    super::work_pools::positive_at(vec!["body".into(), "concurrency_limit".into()], v)
}

/// The reference's 404 on most deployment routes (no full stop).
fn not_found() -> ApiError {
    ApiError::not_found("Deployment not found")
}

/// The reference's 404 on PATCH and the schedule routes (with a full stop).
fn not_found_dot() -> ApiError {
    ApiError::not_found("Deployment not found.")
}

async fn find(state: &AppState, ws: &Workspace, id: &str) -> ApiResult<DeploymentRow> {
    deps::find(&state.stores.orion, ws.id(), id)
        .await?
        .ok_or_else(not_found)
}

async fn find_dot(state: &AppState, ws: &Workspace, id: &str) -> ApiResult<DeploymentRow> {
    deps::find(&state.stores.orion, ws.id(), id)
        .await?
        .ok_or_else(not_found_dot)
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let d = find(&state, &ws, &id).await?;
    Ok(HttpResponse::Ok().json(deployment_json(&state, &d).await?))
}

async fn read_by_name(
    state: web::Data<AppState>,
    ws: Workspace,
    flow: PathFlowName,
    name: PathDeploymentName,
) -> ApiResult<HttpResponse> {
    let d = deps::find_by_name(&state.stores.orion, ws.id(), &flow, &name)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(deployment_json(&state, &d).await?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeploymentListBody {
    #[serde(flatten)]
    related: Related,
    sort: Option<String>,
    #[serde(flatten)]
    paging: Paging,
    page: Option<i64>,
}

const SORTS: [&str; 4] = ["CREATED_DESC", "UPDATED_DESC", "NAME_ASC", "NAME_DESC"];

/// The body's sort (NAME_ASC by default); anything else is Prefect's enum error.
fn sort_of(b: &DeploymentListBody) -> ApiResult<DeploymentSort> {
    match b.sort.as_deref() {
        None => Ok(DeploymentSort::NameAsc),
        Some("CREATED_DESC") => Ok(DeploymentSort::CreatedDesc),
        Some("UPDATED_DESC") => Ok(DeploymentSort::UpdatedDesc),
        Some("NAME_ASC") => Ok(DeploymentSort::NameAsc),
        Some("NAME_DESC") => Ok(DeploymentSort::NameDesc),
        Some(_) => Err(ApiError::invalid(
            vec!["body".into(), "sort".into()],
            format!("Input should be {}", SORTS.join(", ")),
            "enum",
        )),
    }
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<DeploymentListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let page = b.paging.page(&state)?;
    let sort = sort_of(&b)?;
    let rows = deps::list(&state.stores.orion, ws.id(), &b.related, sort, page).await?;
    Ok(HttpResponse::Ok().json(deployments_json(&state, &rows).await?))
}

async fn count(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<DeploymentListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let n = deps::count(&state.stores.orion, ws.id(), &b.related).await?;
    Ok(HttpResponse::Ok().json(n))
}

async fn paginate(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<DeploymentListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = limit(&state, b.paging.limit)?;
    let sort = sort_of(&b)?;
    let (page_no, page) = page_of(b.page, lim)?;
    let db = &state.stores.orion;
    let n = deps::count(db, ws.id(), &b.related).await?;
    let rows = deps::list(db, ws.id(), &b.related, sort, page).await?;
    let results = deployments_json(&state, &rows).await?;
    Ok(HttpResponse::Ok().json(paginated(results, n, lim, page_no)))
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<DeploymentUpdate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    concurrency_limit_positive(b.concurrency_limit.flatten())?;
    let mut d = find_dot(&state, &ws, &id).await?;
    let db = &state.stores.orion;
    let now = crate::time::now().naive_utc();
    // Checked before the queue is resolved (which may create a pool and queue).
    let schedules = match &b.schedules {
        Some(list) => Some(schedule_rows(ws.id(), &d.id, list)?),
        None => None,
    };
    if b.work_pool_name.is_some() || b.work_queue_name.is_some() {
        let (qn, qid) = resolve_queue(
            &state,
            &ws,
            b.work_pool_name.as_deref(),
            b.work_queue_name.as_deref(),
        )
        .await?;
        d.work_queue_name = qn;
        if qid.is_some() {
            d.work_queue_id = qid;
        }
    }
    macro_rules! set {
        ($field:ident, $v:expr) => {
            if let Some(v) = $v {
                d.$field = v;
            }
        };
    }
    set!(version, b.version.map(Some));
    set!(description, b.description.map(Some));
    set!(paused, b.paused);
    set!(concurrency_limit, b.concurrency_limit);
    set!(
        concurrency_options,
        b.concurrency_options
            .map(|v| (!v.is_null()).then(|| v.to_string()))
    );
    set!(
        global_concurrency_limit_id,
        b.global_concurrency_limit_id.map(|u| Some(u.to_string()))
    );
    set!(parameters, b.parameters.map(|v| to_text(&v)));
    set!(
        parameter_openapi_schema,
        b.parameter_openapi_schema
            .map(|v| (!v.is_null()).then(|| v.to_string()))
    );
    set!(tags, b.tags.map(|v| to_text(&v)));
    set!(path, b.path.map(Some));
    set!(job_variables, b.job_variables.map(|v| to_text(&v)));
    set!(
        pull_steps,
        b.pull_steps.map(|v| (!v.is_null()).then(|| v.to_string()))
    );
    set!(entrypoint, b.entrypoint.map(Some));
    set!(
        storage_document_id,
        b.storage_document_id.map(|u| Some(u.to_string()))
    );
    set!(
        infrastructure_document_id,
        b.infrastructure_document_id.map(|u| Some(u.to_string()))
    );
    set!(enforce_parameter_schema, b.enforce_parameter_schema);
    set!(
        version_info,
        b.version_info
            .map(|v| (!v.is_null()).then(|| v.to_string()))
    );
    d.updated = now;
    deps::update(db, &d, schedules.as_deref(), now).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    if !deps::delete(&state.stores.orion, ws.id(), &id).await? {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BulkDeleteBody {
    deployments: Option<DeploymentFilter>,
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
        deployments: b.deployments,
        ..Default::default()
    };
    let rows = deps::list(
        &state.stores.orion,
        ws.id(),
        &related,
        DeploymentSort::NameAsc,
        Page {
            limit: lim,
            offset: 0,
        },
    )
    .await?;
    let mut deleted = Vec::new();
    for d in rows {
        if deps::delete(&state.stores.orion, ws.id(), &d.id).await? {
            deleted.push(d.id);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "deleted": deleted })))
}

async fn set_paused(
    state: &AppState,
    ws: &Workspace,
    id: &str,
    paused: bool,
) -> ApiResult<HttpResponse> {
    let db = &state.stores.orion;
    let now = crate::time::now().naive_utc();
    if !deps::set_paused(db, ws.id(), id, paused, now).await? {
        // The reference's pause/resume routes say it without the full stop of the other routes.
        return Err(ApiError::not_found("Deployment not found"));
    }
    if paused {
        deps::delete_future_auto_runs(db, id, now).await?;
    }
    Ok(HttpResponse::Ok().json(Value::Null))
}

async fn pause(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    set_paused(&state, &ws, &id, true).await
}

async fn resume(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    set_paused(&state, &ws, &id, false).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct DeploymentFlowRunCreate {
    state: Option<StateCreate>,
    name: Option<String>,
    parameters: Option<Map<String, Value>>,
    enforce_parameter_schema: Option<bool>,
    context: Option<Map<String, Value>>,
    infrastructure_document_id: Option<Uuid>,
    empirical_policy: Option<FlowRunPolicy>,
    tags: Option<Vec<String>>,
    idempotency_key: Option<String>,
    labels: Option<BTreeMap<String, Value>>,
    parent_task_run_id: Option<Uuid>,
    work_queue_name: Option<String>,
    job_variables: Option<Map<String, Value>>,
}

/// `created_by` from the automation headers (API.md §1.3), if present.
fn created_by(req: &HttpRequest) -> Option<String> {
    let id = req.headers().get("prefect-automation-id")?.to_str().ok()?;
    let name = req
        .headers()
        .get("prefect-automation-name")
        .and_then(|v| v.to_str().ok())
        .map(|b64| decode_b64(b64).unwrap_or_default());
    Some(json!({"id": id, "type": "AUTOMATION", "display_value": name}).to_string())
}

fn decode_b64(s: &str) -> Option<String> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.trim_end_matches('=').bytes() {
        let v = T.iter().position(|&x| x == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Builds and creates one run of deployment `d`; `Ok(Err(existing))` on an idempotency hit.
async fn new_run(
    state: &AppState,
    ws: &Workspace,
    d: &DeploymentRow,
    b: DeploymentFlowRunCreate,
    creator: Option<String>,
) -> ApiResult<(FlowRunRow, Option<crate::orchestration::State>, bool)> {
    let db = &state.stores.orion;
    let mut params: Map<String, Value> = serde_json::from_str(&d.parameters).unwrap_or_default();
    params.extend(b.parameters.unwrap_or_default());
    if b.enforce_parameter_schema
        .unwrap_or(d.enforce_parameter_schema)
    {
        if let Some(schema) = d
            .parameter_openapi_schema
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            crate::runs::params::validate(&schema, &params)
                .map_err(|e| ApiError::conflict(format!("Error creating flow run: {e}")))?;
        }
    }
    let mut tags: Vec<String> = serde_json::from_str(&d.tags).unwrap_or_default();
    for t in b.tags.unwrap_or_default() {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    // The deployment's queue and pool; a run naming a queue goes to that queue of the
    // deployment's pool (created when missing), which needs the deployment to have a pool.
    let dep_queue = match &d.work_queue_id {
        Some(q) => wp::find_queue_by_id(db, ws.id(), q).await?,
        None => None,
    };
    let dep_pool = match &dep_queue {
        Some(q) => wp::find_pool_by_id(db, ws.id(), &q.work_pool_id).await?,
        None => None,
    };
    let (queue_name, queue_id, pool) = match b.work_queue_name.filter(|n| !n.is_empty()) {
        Some(name) => {
            let Some(p) = dep_pool else {
                return Err(ApiError::bad_request(format!(
                    "Cannot create flow run in work queue {name} because deployment {} is not associated with a work pool. Please remove work_pool_name and try again.",
                    d.id
                )));
            };
            let body = super::work_pools::QueueCreate::named(name);
            let q = super::work_pools::find_or_create_queue(state, ws, &p, body).await?;
            (Some(q.name), Some(q.id), Some(p))
        }
        None => (d.work_queue_name.clone(), d.work_queue_id.clone(), dep_pool),
    };
    let mut labels: BTreeMap<String, Value> = serde_json::from_str(&d.labels).unwrap_or_default();
    labels.extend(b.labels.unwrap_or_default());
    labels.insert("prefect.flow.id".into(), Value::String(d.flow_id.clone()));
    labels.insert("prefect.deployment.id".into(), Value::String(d.id.clone()));
    let now = crate::time::now();
    let row = FlowRunRow {
        id: Uuid::new_v4().to_string(),
        workspace_id: ws.id().to_string(),
        created: now.naive_utc(),
        updated: now.naive_utc(),
        name: b
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(crate::runs::names::generate),
        flow_id: d.flow_id.clone(),
        state_id: None,
        state_type: None,
        state_name: None,
        state_timestamp: None,
        deployment_id: Some(d.id.clone()),
        deployment_version: d.version.clone(),
        work_queue_id: queue_id,
        work_queue_name: queue_name,
        work_pool_id: pool.as_ref().map(|p| p.id.clone()),
        work_pool_name: pool.as_ref().map(|p| p.name.clone()),
        flow_version: None,
        parameters: to_text(&params),
        idempotency_key: b.idempotency_key,
        context: to_text(&b.context.unwrap_or_default()),
        empirical_policy: to_text(&b.empirical_policy.unwrap_or_default()),
        tags: to_text(&tags),
        labels: to_text(&labels),
        parent_task_run_id: b.parent_task_run_id.map(|u| u.to_string()),
        run_count: 0,
        expected_start_time: None,
        next_scheduled_start_time: None,
        start_time: None,
        end_time: None,
        total_run_time: 0.0,
        auto_scheduled: false,
        infrastructure_document_id: b
            .infrastructure_document_id
            .map(|u| u.to_string())
            .or_else(|| d.infrastructure_document_id.clone()),
        infrastructure_pid: None,
        created_by: creator,
        job_variables: to_text(&b.job_variables.unwrap_or_default()),
    };
    let initial = b.state.unwrap_or_else(|| StateCreate {
        state_details: Some(StateDetails::default()),
        ..StateCreate::of(StateType::Scheduled)
    });
    match crate::runs::create_flow_run(state, row, None, initial).await? {
        Created::New(a) => Ok((a.run, a.state, true)),
        Created::Existing(existing) => {
            let (run, s) = flow_runs::find(&mut db.read().await?, ws.id(), &existing)
                .await?
                .ok_or_else(|| ApiError::not_found("Flow run not found"))?;
            Ok((run, s.as_ref().and_then(flow_state), false))
        }
    }
}

async fn create_flow_run(
    req: HttpRequest,
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: JsonOrDefault<DeploymentFlowRunCreate>,
) -> ApiResult<HttpResponse> {
    let d = find(&state, &ws, &id).await?;
    let (run, s, created) = new_run(&state, &ws, &d, body.into_inner(), created_by(&req)).await?;
    let body = flow_run_json(&run, s.as_ref(), crate::time::now());
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

async fn create_flow_runs_bulk(
    req: HttpRequest,
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<Vec<DeploymentFlowRunCreate>>,
) -> ApiResult<HttpResponse> {
    let d = find(&state, &ws, &id).await?;
    let mut results = Vec::new();
    for b in body.into_inner() {
        match new_run(&state, &ws, &d, b, created_by(&req)).await {
            Ok((run, _, _)) => {
                results.push(json!({"flow_run_id": run.id, "status": "CREATED", "error": null}))
            }
            Err(ApiError::Detail(_, msg)) => {
                let reason = msg
                    .strip_prefix("Error creating flow run: ")
                    .unwrap_or(&msg)
                    .to_string();
                results.push(json!({"flow_run_id": null, "status": "FAILED", "error": format!("Parameter validation failed: {reason}")}))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

async fn work_queue_check(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let d = find(&state, &ws, &id).await?;
    let mut out = Vec::new();
    if let Some(q) = &d.work_queue_id {
        if let Some(q) = wp::find_queue_by_id(&state.stores.orion, ws.id(), q).await? {
            out.push(super::work_pools::queue_json(&q, None, None));
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScheduleNowBody {
    #[serde(with = "crate::time::opt")]
    start_time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(with = "crate::time::opt")]
    end_time: Option<chrono::DateTime<chrono::Utc>>,
    min_time: Option<f64>,
    min_runs: Option<usize>,
    max_runs: Option<usize>,
}

/// A `min_time` in seconds as a duration; beyond Python's timedelta range (999,999,999 days)
/// it is pydantic's 422, as the reference answers.
fn min_time(seconds: f64) -> ApiResult<chrono::Duration> {
    const LIMIT_SECONDS: f64 = 1_000_000_000.0 * 86_400.0;
    if !seconds.is_finite() || seconds.abs() >= LIMIT_SECONDS {
        return Err(ApiError::invalid(
            vec!["body".into(), "min_time".into()],
            "Input should be a valid timedelta, durations may not exceed 999,999,999 days",
            "time_delta_parsing",
        ));
    }
    Ok(chrono::Duration::milliseconds((seconds * 1000.0) as i64))
}

/// Most runs one `POST /deployments/{id}/schedule` may ask for: the dates, keys and rows of a
/// call are built in memory, so an unbounded count is a way to exhaust the server.
const MAX_RUNS_PER_CALL: usize = 100_000;

fn run_count(field: &str, n: Option<usize>, default: usize) -> ApiResult<usize> {
    match n {
        Some(n) if n > MAX_RUNS_PER_CALL => Err(ApiError::invalid(
            vec!["body".into(), field.into()],
            format!("Input should be less than or equal to {MAX_RUNS_PER_CALL}"),
            "less_than_equal",
        )),
        n => Ok(n.unwrap_or(default)),
    }
}

async fn schedule_now(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: JsonOrDefault<ScheduleNowBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let now = crate::time::now();
    let start = b.start_time.unwrap_or(now);
    let end = b.end_time.unwrap_or_else(|| {
        start
            .checked_add_signed(chrono::Duration::days(100))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    });
    let window = crate::scheduling::plan::Window {
        start,
        end,
        min_runs: run_count("min_runs", b.min_runs, 3)?,
        max_runs: run_count("max_runs", b.max_runs, 100)?,
        min_time: min_time(b.min_time.unwrap_or(3600.0))?,
    };
    // Like the reference: the body is checked first, and an unknown deployment schedules
    // nothing (200, null) rather than answering 404.
    let Some(d) = deps::find(&state.stores.orion, ws.id(), &id).await? else {
        return Ok(HttpResponse::Ok().json(Value::Null));
    };
    crate::scheduling::plan::schedule_deployment(&state, &d, &window)
        .await
        .map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok().json(Value::Null))
}

async fn read_schedules(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let d = find_dot(&state, &ws, &id).await?;
    let rows = deps::schedules(&state.stores.orion, std::slice::from_ref(&d.id)).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(schedule_json).collect::<Vec<_>>()))
}

async fn create_schedules(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<Vec<ScheduleCreate>>,
) -> ApiResult<HttpResponse> {
    // The body is validated before the deployment is looked up, as the reference does.
    let rows = schedule_rows_at(ws.id(), &id, &body.into_inner(), &["body"])?;
    let d = find_dot(&state, &ws, &id).await?;
    match deps::insert_schedules(&state.stores.orion, &rows).await {
        Err(crate::storage::StorageError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "Schedule slugs must be unique within a deployment.",
            ))
        }
        other => other?,
    }
    deps::delete_future_auto_runs(&state.stores.orion, &d.id, crate::time::now().naive_utc())
        .await?;
    Ok(HttpResponse::Created().json(rows.iter().map(schedule_json).collect::<Vec<_>>()))
}

async fn update_schedule(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    sid: PathScheduleId,
    body: Json<ScheduleUpdate>,
) -> ApiResult<HttpResponse> {
    // The body is validated before anything is looked up, as the reference does.
    let b = body.into_inner();
    super::work_pools::positive_at(
        vec!["body".into(), "max_scheduled_runs".into()],
        b.max_scheduled_runs.flatten(),
    )?;
    let parsed = match &b.schedule {
        Some(v) => Some(Schedule::parse(v, crate::time::now()).map_err(|e| {
            ApiError::invalid(vec!["body".into(), "schedule".into()], e, "value_error")
        })?),
        None => None,
    };
    let d = find_dot(&state, &ws, &id).await?;
    let db = &state.stores.orion;
    let mut s = deps::schedules(db, std::slice::from_ref(&d.id))
        .await?
        .into_iter()
        .find(|s| s.id == sid.0)
        .ok_or_else(|| ApiError::not_found("Schedule not found."))?;
    let _ = b.replaces;
    if let Some(v) = b.active {
        s.active = v;
    }
    if let Some(parsed) = parsed {
        s.schedule = parsed.to_json().to_string();
    }
    if let Some(v) = b.max_scheduled_runs {
        s.max_scheduled_runs = v;
    }
    if let Some(v) = b.parameters {
        s.parameters = to_text(&v);
    }
    if let Some(v) = b.slug {
        s.slug = Some(v);
    }
    s.updated = crate::time::now().naive_utc();
    deps::save_schedule(db, &s).await?;
    deps::delete_future_auto_runs(db, &d.id, crate::time::now().naive_utc()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_schedule(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    sid: PathScheduleId,
) -> ApiResult<HttpResponse> {
    let d = find_dot(&state, &ws, &id).await?;
    if !deps::delete_schedule(&state.stores.orion, &d.id, &sid).await? {
        return Err(ApiError::not_found("Schedule not found."));
    }
    deps::delete_future_auto_runs(&state.stores.orion, &d.id, crate::time::now().naive_utc())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct ScheduledRunsBody {
    deployment_ids: Vec<Uuid>,
    #[serde(default, with = "crate::time::opt")]
    scheduled_before: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    limit: Option<i64>,
}

async fn scheduled_runs(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<ScheduledRunsBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = limit(&state, b.limit)?;
    let now = crate::time::now();
    let ids: Vec<String> = b.deployment_ids.iter().map(|u| u.to_string()).collect();
    let before = b.scheduled_before.unwrap_or(now).naive_utc();
    let runs = deps::scheduled_runs(
        &state.stores.orion,
        ws.id(),
        &ids,
        before,
        lim,
        now.naive_utc(),
    )
    .await?;
    let states = flow_runs::find_states_of(&mut state.stores.orion.read().await?, &runs).await?;
    let out: Vec<Value> = runs
        .iter()
        .map(|r| {
            flow_run_json(
                r,
                r.state_id
                    .as_ref()
                    .and_then(|s| states.get(s))
                    .and_then(flow_state)
                    .as_ref(),
                now,
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}
