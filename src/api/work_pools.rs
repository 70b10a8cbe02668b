//! `/work_pools`: pools (with their default queue), their queues and workers, heartbeats and the
//! worker poll `get_scheduled_flow_runs`. The worker channel websocket is not offered (404), so
//! 3.9.1 workers use these REST calls (API.md §4.6).

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::{opt_ts, to_text, ts, Paging, PathName, PathPool};
use super::json::{Json, JsonOrDefault};
use super::workspace::Workspace;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::runs::convert::{flow_run_json, flow_state};
use crate::storage::filters::Page;
use crate::storage::work_pools::{
    self as wp, PoolRow, QueueRow, WorkPoolFilter, WorkQueueFilter, WorkerFilter, WorkerRow,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/work_pools/", web::post().to(create_pool))
        .route("/work_pools", web::post().to(create_pool))
        .route("/work_pools/filter", web::post().to(filter_pools))
        .route("/work_pools/count", web::post().to(count_pools))
        .route("/work_pools/{name}", web::get().to(read_pool))
        .route("/work_pools/{name}", web::patch().to(update_pool))
        .route("/work_pools/{name}", web::delete().to(delete_pool))
        .route(
            "/work_pools/{work_pool_name}/get_scheduled_flow_runs",
            web::post().to(scheduled_runs),
        )
        .route(
            "/work_pools/{work_pool_name}/queues",
            web::post().to(create_queue),
        )
        .route(
            "/work_pools/{work_pool_name}/queues/",
            web::post().to(create_queue),
        )
        .route(
            "/work_pools/{work_pool_name}/queues/filter",
            web::post().to(filter_queues),
        )
        .route(
            "/work_pools/{work_pool_name}/queues/{name}",
            web::get().to(read_queue),
        )
        .route(
            "/work_pools/{work_pool_name}/queues/{name}",
            web::patch().to(update_queue),
        )
        .route(
            "/work_pools/{work_pool_name}/queues/{name}",
            web::delete().to(delete_queue),
        )
        .route(
            "/work_pools/{work_pool_name}/workers/heartbeat",
            web::post().to(heartbeat),
        )
        .route(
            "/work_pools/{work_pool_name}/workers/filter",
            web::post().to(filter_workers),
        )
        .route(
            "/work_pools/{work_pool_name}/workers/{name}",
            web::delete().to(delete_worker),
        );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolCreate {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "type")]
    pool_type: Option<String>,
    #[serde(default)]
    base_job_template: Option<Map<String, Value>>,
    #[serde(default)]
    is_paused: bool,
    #[serde(default)]
    concurrency_limit: Option<i32>,
    #[serde(default)]
    storage_configuration: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolUpdate {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    is_paused: Option<bool>,
    #[serde(default)]
    base_job_template: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "super::common::double_option")]
    concurrency_limit: Option<Option<i32>>,
    #[serde(default)]
    storage_configuration: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_paused: bool,
    #[serde(default)]
    pub concurrency_limit: Option<i32>,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub filter: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_paused: Option<bool>,
    #[serde(default, deserialize_with = "super::common::double_option")]
    pub concurrency_limit: Option<Option<i32>>,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default, with = "crate::time::opt")]
    pub last_polled: Option<chrono::DateTime<Utc>>,
    #[serde(default)]
    pub filter: Option<Value>,
}

pub fn pool_json(p: &PoolRow) -> Value {
    json!({
        "id": p.id, "created": ts(&p.created), "updated": ts(&p.updated), "name": p.name,
        "description": p.description, "type": p.pool_type,
        "base_job_template": serde_json::from_str::<Value>(&p.base_job_template).unwrap_or(json!({})),
        "is_paused": p.is_paused, "concurrency_limit": p.concurrency_limit,
        "status": if p.is_paused { "PAUSED" } else { p.status.as_str() },
        "default_queue_id": p.default_queue_id,
        "storage_configuration": storage_configuration(&p.storage_configuration),
        "active_slots": null,
    })
}

/// Prefect's `WorkPoolStorageConfiguration`, every field present.
fn storage_configuration(text: &str) -> Value {
    let mut v = json!({"bundle_upload_step": null, "bundle_execution_step": null, "default_result_storage_block_id": null});
    if let (Value::Object(base), Ok(Value::Object(stored))) =
        (&mut v, serde_json::from_str::<Value>(text))
    {
        base.extend(stored);
    }
    v
}

pub fn queue_json(q: &QueueRow, pool_name: Option<&str>) -> Value {
    json!({
        "id": q.id, "created": ts(&q.created), "updated": ts(&q.updated), "name": q.name,
        "description": q.description, "is_paused": q.is_paused, "concurrency_limit": q.concurrency_limit,
        "priority": q.priority, "work_pool_id": q.work_pool_id,
        "filter": q.filter.as_deref().and_then(|f| serde_json::from_str::<Value>(f).ok()),
        "last_polled": opt_ts(&q.last_polled), "work_pool_name": pool_name,
        "status": if q.is_paused { "PAUSED" } else { q.status.as_str() },
    })
}

fn worker_json(w: &WorkerRow) -> Value {
    json!({
        "id": w.id, "created": ts(&w.created), "updated": ts(&w.updated), "name": w.name,
        "work_pool_id": w.work_pool_id, "last_heartbeat_time": ts(&w.last_heartbeat_time),
        "heartbeat_interval_seconds": w.heartbeat_interval_seconds, "status": w.status,
    })
}

pub fn pool_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Work pool \"{name}\" not found."))
}

pub async fn pool(state: &AppState, ws: &Workspace, name: &str) -> ApiResult<PoolRow> {
    wp::find_pool(&state.stores.orion, ws.id(), name)
        .await?
        .ok_or_else(|| pool_not_found(name))
}

pub fn new_queue(
    ws: &str,
    pool_id: &str,
    name: &str,
    priority: i32,
    now: chrono::NaiveDateTime,
) -> QueueRow {
    QueueRow {
        id: Uuid::new_v4().to_string(),
        workspace_id: ws.to_string(),
        created: now,
        updated: now,
        name: name.to_string(),
        description: if name == "default" {
            "The work pool's default queue.".into()
        } else {
            String::new()
        },
        is_paused: false,
        concurrency_limit: None,
        priority,
        work_pool_id: pool_id.to_string(),
        filter: None,
        last_polled: None,
        status: "NOT_READY".into(),
    }
}

/// Creates a pool with its default queue; `Err(409)` when the name is taken.
pub async fn insert_pool(
    state: &AppState,
    ws: &str,
    name: &str,
    pool_type: &str,
    base: Map<String, Value>,
) -> ApiResult<PoolRow> {
    let now = crate::time::now().naive_utc();
    let id = Uuid::new_v4().to_string();
    let queue = new_queue(ws, &id, "default", 1, now);
    let row = PoolRow {
        id,
        workspace_id: ws.to_string(),
        created: now,
        updated: now,
        name: name.to_string(),
        description: None,
        pool_type: pool_type.to_string(),
        base_job_template: to_text(&base),
        is_paused: false,
        concurrency_limit: None,
        status: "NOT_READY".into(),
        default_queue_id: Some(queue.id.clone()),
        storage_configuration: "{}".into(),
    };
    match wp::insert_pool(&state.stores.orion, &row, &queue).await {
        Ok(()) => Ok(row),
        Err(crate::storage::StorageError::Conflict(_)) => Err(ApiError::conflict(
            "A work pool with this name already exists.",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn create_pool(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<PoolCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if b.name.trim().is_empty() {
        return Err(ApiError::invalid(
            vec!["body".into(), "name".into()],
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    if b.name.to_lowercase().starts_with("prefect") {
        return Err(ApiError::Detail(
            actix_web::http::StatusCode::FORBIDDEN,
            "Work pools starting with 'Prefect' are reserved for internal use.".into(),
        ));
    }
    if b.concurrency_limit.is_some_and(|l| l < 0) {
        return Err(ApiError::invalid(
            vec!["body".into(), "concurrency_limit".into()],
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        ));
    }
    let mut row = insert_pool(
        &state,
        ws.id(),
        &b.name,
        b.pool_type.as_deref().unwrap_or("prefect-agent"),
        b.base_job_template.unwrap_or_default(),
    )
    .await?;
    if b.description.is_some()
        || b.is_paused
        || b.concurrency_limit.is_some()
        || b.storage_configuration.is_some()
    {
        row.description = b.description;
        row.is_paused = b.is_paused;
        row.concurrency_limit = b.concurrency_limit;
        row.storage_configuration = to_text(&b.storage_configuration.unwrap_or_default());
        wp::save_pool(&state.stores.orion, &row).await?;
    }
    Ok(HttpResponse::Created().json(pool_json(&row)))
}

async fn read_pool(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(pool_json(&pool(&state, &ws, &name).await?)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PoolListBody {
    work_pools: Option<WorkPoolFilter>,
    #[serde(flatten)]
    paging: Paging,
}

async fn filter_pools(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<PoolListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let rows = wp::list_pools(
        &state.stores.orion,
        ws.id(),
        &b.work_pools.unwrap_or_default(),
        b.paging.page(&state)?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(pool_json).collect::<Vec<_>>()))
}

async fn count_pools(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<PoolListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let rows = wp::list_pools(
        &state.stores.orion,
        ws.id(),
        &b.work_pools.unwrap_or_default(),
        Page {
            limit: i64::MAX / 2,
            offset: 0,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(rows.len()))
}

async fn update_pool(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
    body: Json<PoolUpdate>,
) -> ApiResult<HttpResponse> {
    let mut row = pool(&state, &ws, &name).await?;
    let b = body.into_inner();
    let was_paused = row.is_paused;
    if let Some(v) = b.description {
        row.description = Some(v);
    }
    if let Some(v) = b.is_paused {
        row.is_paused = v;
    }
    if let Some(v) = b.base_job_template {
        row.base_job_template = to_text(&v);
    }
    if let Some(v) = b.concurrency_limit {
        row.concurrency_limit = v;
    }
    if let Some(v) = b.storage_configuration {
        row.storage_configuration = to_text(&v);
    }
    row.updated = crate::time::now().naive_utc();
    wp::save_pool(&state.stores.orion, &row).await?;
    if was_paused != row.is_paused {
        let name = if row.is_paused {
            "prefect.work-pool.paused"
        } else {
            "prefect.work-pool.not-ready"
        };
        crate::runs::events::emit_work_pool(&state, ws.id(), &row, name).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_pool(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let row = pool(&state, &ws, &name).await?;
    wp::delete_pool(&state.stores.orion, ws.id(), &row.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScheduledBody {
    work_queue_names: Option<Vec<String>>,
    #[serde(with = "crate::time::opt")]
    scheduled_before: Option<chrono::DateTime<Utc>>,
    #[serde(with = "crate::time::opt")]
    scheduled_after: Option<chrono::DateTime<Utc>>,
    limit: Option<i64>,
}

/// The core FlowRun of a worker response: FlowRunResponse without the pool fields.
pub fn core_flow_run_json(run: &crate::storage::rows::FlowRunRow) -> Value {
    let mut v = flow_run_json(run, None, crate::time::now());
    if let Value::Object(m) = &mut v {
        m.remove("work_pool_id");
        m.remove("work_pool_name");
    }
    v
}

async fn scheduled_runs(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathPool,
    body: JsonOrDefault<ScheduledBody>,
) -> ApiResult<HttpResponse> {
    let row = pool(&state, &ws, &name).await?;
    let b = body.into_inner();
    let now = crate::time::now();
    let before = b.scheduled_before.unwrap_or(now).naive_utc();
    let lim = b.limit.unwrap_or(1000).clamp(0, 10_000);
    let names = b.work_queue_names.clone().unwrap_or_default();
    for n in &names {
        if wp::find_queue(&state.stores.orion, ws.id(), &row.id, n)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found(format!(
                "Work pool queue '{}/{n}' not found.",
                row.name
            )));
        }
    }
    let runs = wp::scheduled_runs(
        &state.stores.orion,
        &row,
        &b.work_queue_names.unwrap_or_default(),
        before,
        b.scheduled_after.map(|t| t.naive_utc()),
        lim,
        now.naive_utc(),
    )
    .await?;
    let states = crate::storage::flow_runs::find_states_of(
        &state.stores.orion,
        &runs.iter().map(|r| r.run.clone()).collect::<Vec<_>>(),
    )
    .await?;
    let out: Vec<Value> = runs
        .iter()
        .map(|r| {
            let mut fr = core_flow_run_json(&r.run);
            if let Some(s) = r
                .run
                .state_id
                .as_ref()
                .and_then(|id| states.get(id))
                .and_then(flow_state)
            {
                fr["state"] = crate::runs::convert::state_json(&s);
            }
            json!({"work_pool_id": row.id, "work_queue_id": r.work_queue_id, "flow_run": fr})
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn create_queue(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathPool,
    body: Json<QueueCreate>,
) -> ApiResult<HttpResponse> {
    let row = pool(&state, &ws, &name).await?;
    let q = insert_queue(&state, &ws, &row, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(queue_json(&q, Some(&row.name))))
}

/// Adds a queue to a pool: priority defaults to after the last queue; 409 on a duplicate name.
pub async fn insert_queue(
    state: &AppState,
    ws: &Workspace,
    pool: &PoolRow,
    b: QueueCreate,
) -> ApiResult<QueueRow> {
    if b.name.trim().is_empty() || b.name.contains('/') || b.name.contains('%') {
        return Err(ApiError::invalid(
            vec!["body".into(), "name".into()],
            "Work queue names must not be empty or contain '/' or '%'.",
            "value_error",
        ));
    }
    let existing = wp::list_queues(
        &state.stores.orion,
        ws.id(),
        Some(&pool.id),
        &WorkQueueFilter::default(),
        Page {
            limit: 10_000,
            offset: 0,
        },
    )
    .await?;
    let taken: std::collections::BTreeSet<i32> = existing.iter().map(|q| q.priority).collect();
    let priority = b
        .priority
        .unwrap_or_else(|| (1..).find(|p| !taken.contains(p)).unwrap_or(1));
    if priority < 1 {
        return Err(ApiError::invalid(
            vec!["body".into(), "priority".into()],
            "Input should be greater than or equal to 1",
            "greater_than_equal",
        ));
    }
    let mut q = new_queue(
        ws.id(),
        &pool.id,
        &b.name,
        priority,
        crate::time::now().naive_utc(),
    );
    q.description = b.description.unwrap_or_default();
    q.is_paused = b.is_paused;
    q.concurrency_limit = b.concurrency_limit;
    q.filter = b.filter.filter(|f| !f.is_null()).map(|f| f.to_string());
    if taken.contains(&priority) {
        // An explicit priority that is taken pushes the queues at and after it down by one.
        wp::shift_priorities(&state.stores.orion, &pool.id, priority).await?;
    }
    match wp::insert_queue(&state.stores.orion, &q).await {
        Ok(()) => Ok(q),
        Err(crate::storage::StorageError::Conflict(_)) => Err(ApiError::conflict(
            "A work queue with this name already exists.",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn queue_in_pool(
    state: &AppState,
    ws: &Workspace,
    pool_name: &str,
    name: &str,
) -> ApiResult<(PoolRow, QueueRow)> {
    let missing =
        || ApiError::not_found(format!("Work pool queue '{pool_name}/{name}' not found."));
    let p = wp::find_pool(&state.stores.orion, ws.id(), pool_name)
        .await?
        .ok_or_else(missing)?;
    let q = wp::find_queue(&state.stores.orion, ws.id(), &p.id, name)
        .await?
        .ok_or_else(missing)?;
    Ok((p, q))
}

async fn read_queue(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let (p, q) = queue_in_pool(&state, &ws, &pool_name, &name).await?;
    Ok(HttpResponse::Ok().json(queue_json(&q, Some(&p.name))))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct QueueListBody {
    work_queues: Option<WorkQueueFilter>,
    #[serde(flatten)]
    paging: Paging,
}

async fn filter_queues(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    body: JsonOrDefault<QueueListBody>,
) -> ApiResult<HttpResponse> {
    let p = pool(&state, &ws, &pool_name).await?;
    let b = body.into_inner();
    let rows = wp::list_queues(
        &state.stores.orion,
        ws.id(),
        Some(&p.id),
        &b.work_queues.unwrap_or_default(),
        b.paging.page(&state)?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(
        rows.iter()
            .map(|q| queue_json(q, Some(&p.name)))
            .collect::<Vec<_>>(),
    ))
}

/// Applies an update to a queue row and saves it.
pub async fn apply_queue_update(
    state: &AppState,
    mut q: QueueRow,
    b: QueueUpdate,
) -> ApiResult<()> {
    if let Some(v) = b.name {
        q.name = v;
    }
    if let Some(v) = b.description {
        q.description = v;
    }
    if let Some(v) = b.is_paused {
        q.is_paused = v;
    }
    if let Some(v) = b.concurrency_limit {
        q.concurrency_limit = v;
    }
    if let Some(v) = b.priority {
        q.priority = v;
    }
    if let Some(v) = b.last_polled {
        q.last_polled = Some(v.naive_utc());
    }
    if let Some(v) = b.filter {
        q.filter = (!v.is_null()).then(|| v.to_string());
    }
    q.updated = crate::time::now().naive_utc();
    wp::save_queue(&state.stores.orion, &q).await?;
    Ok(())
}

async fn update_queue(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    name: PathName,
    body: Json<QueueUpdate>,
) -> ApiResult<HttpResponse> {
    let (_, q) = queue_in_pool(&state, &ws, &pool_name, &name).await?;
    apply_queue_update(&state, q, body.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_queue(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let (p, q) = queue_in_pool(&state, &ws, &pool_name, &name).await?;
    if p.default_queue_id.as_deref() == Some(q.id.as_str()) {
        return Err(ApiError::bad_request(
            "Can't delete a pool's default queue.",
        ));
    }
    wp::delete_queue(&state.stores.orion, ws.id(), &q.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct HeartbeatBody {
    name: String,
    #[serde(default)]
    heartbeat_interval_seconds: Option<i32>,
}

async fn heartbeat(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    body: Json<HeartbeatBody>,
) -> ApiResult<HttpResponse> {
    let p = pool(&state, &ws, &pool_name).await?;
    let b = body.into_inner();
    let db = &state.stores.orion;
    wp::heartbeat(
        db,
        ws.id(),
        &p.id,
        &b.name,
        b.heartbeat_interval_seconds,
        crate::time::now().naive_utc(),
    )
    .await?;
    if !p.is_paused && wp::mark_pool_ready(db, &p.id).await? {
        crate::runs::events::emit_work_pool(&state, ws.id(), &p, "prefect.work-pool.ready").await;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WorkerListBody {
    workers: Option<WorkerFilter>,
    #[serde(flatten)]
    paging: Paging,
}

async fn filter_workers(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    body: JsonOrDefault<WorkerListBody>,
) -> ApiResult<HttpResponse> {
    let p = pool(&state, &ws, &pool_name).await?;
    let b = body.into_inner();
    let rows = wp::list_workers(
        &state.stores.orion,
        ws.id(),
        &p.id,
        &b.workers.unwrap_or_default(),
        b.paging.page(&state)?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(worker_json).collect::<Vec<_>>()))
}

async fn delete_worker(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let p = pool(&state, &ws, &pool_name).await?;
    if !wp::delete_worker(&state.stores.orion, ws.id(), &p.id, &name).await? {
        return Err(ApiError::not_found("Worker not found."));
    }
    Ok(HttpResponse::NoContent().finish())
}
