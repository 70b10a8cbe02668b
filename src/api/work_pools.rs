//! `/work_pools`: pools (with their default queue), their queues and workers, heartbeats and the
//! worker poll `get_scheduled_flow_runs`. The worker channel websocket is not offered (404), so
//! 3.9.1 workers use these REST calls (API.md §4.6).

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::{opt_ts, to_text, ts};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathName, PathPool};
use crate::extract::Workspace;
use crate::runs::convert::{flow_state, FlowRunOut};
use crate::state::AppState;
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
    /// `Some(None)` is an explicit null, which the reference refuses (`type: str`).
    #[serde(default, rename = "type", deserialize_with = "super::common::present")]
    pool_type: Option<Option<String>>,
    #[serde(default)]
    base_job_template: Option<Map<String, Value>>,
    #[serde(default)]
    is_paused: bool,
    #[serde(default)]
    concurrency_limit: Option<i32>,
    #[serde(default)]
    storage_configuration: Option<Map<String, Value>>,
}

fn body_loc(field: &str) -> Vec<Value> {
    vec!["body".into(), field.into()]
}

/// Prefect's `NonNegativeInteger` check on a body field.
fn non_negative(field: &str, v: Option<i32>) -> ApiResult<()> {
    if v.is_some_and(|l| l < 0) {
        return Err(ApiError::invalid(
            body_loc(field),
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        ));
    }
    Ok(())
}

/// Prefect's `PositiveInteger` check on a body field.
fn positive(field: &str, v: Option<i32>) -> ApiResult<()> {
    positive_at(body_loc(field), v)
}

/// Prefect's `PositiveInteger` check on the value at `loc`.
pub(super) fn positive_at(loc: Vec<Value>, v: Option<i32>) -> ApiResult<()> {
    if v.is_some_and(|l| l < 1) {
        return Err(ApiError::invalid(
            loc,
            "Input should be greater than 0",
            "greater_than",
        ));
    }
    Ok(())
}

/// Characters Prefect's `Name` pattern (`^[^/%&><]+$`) bans.
const BANNED: [char; 5] = ['/', '%', '&', '>', '<'];

/// Prefect's `Name`: not empty and none of `/ % & > <`.
pub fn check_name(v: &str) -> ApiResult<()> {
    if v.is_empty() || v.contains(BANNED) {
        return Err(ApiError::invalid(
            body_loc("name"),
            "String should match pattern '^[^/%&><]+$'",
            "string_pattern_mismatch",
        ));
    }
    Ok(())
}

/// Prefect's `NonEmptyishName`: not only blanks and quotes, then [`check_name`].
fn check_nonemptyish_name(v: &str) -> ApiResult<()> {
    if v.trim_matches(|c| c == '\'' || c == ' ' || c == '"')
        .is_empty()
    {
        return Err(ApiError::invalid(
            body_loc("name"),
            "Value error, name cannot be an empty string",
            "value_error",
        ));
    }
    check_name(v)
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
    #[serde(default, deserialize_with = "super::common::present")]
    concurrency_limit: Option<Option<i32>>,
    #[serde(default)]
    storage_configuration: Option<Map<String, Value>>,
}

impl QueueCreate {
    /// A `WorkQueueCreate` with only a name (the queue a deployment or run names).
    pub fn named(name: String) -> QueueCreate {
        QueueCreate {
            name,
            description: None,
            is_paused: false,
            concurrency_limit: None,
            priority: None,
            filter: None,
        }
    }

    /// The field constraints of Prefect's `WorkQueueCreate`.
    pub fn validate(&self) -> ApiResult<()> {
        check_name(&self.name)?;
        non_negative("concurrency_limit", self.concurrency_limit)?;
        positive("priority", self.priority)
    }
}

impl QueueUpdate {
    /// The field constraints of Prefect's `WorkQueueUpdate`.
    pub fn validate(&self) -> ApiResult<()> {
        non_negative("concurrency_limit", self.concurrency_limit.flatten())?;
        positive("priority", self.priority)
    }
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
    #[serde(default, deserialize_with = "super::common::present")]
    pub concurrency_limit: Option<Option<i32>>,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default, with = "crate::time::opt")]
    pub last_polled: Option<chrono::DateTime<Utc>>,
    #[serde(default)]
    pub filter: Option<Value>,
}

/// A pool's body; `active_slots` is reported (PENDING + RUNNING runs) when it has a limit.
pub fn pool_json(p: &PoolRow, active_slots: Option<i64>) -> Value {
    json!({
        "id": p.id, "created": ts(&p.created), "updated": ts(&p.updated), "name": p.name,
        "description": p.description, "type": p.pool_type,
        "base_job_template": serde_json::from_str::<Value>(&p.base_job_template).unwrap_or(json!({})),
        "is_paused": p.is_paused, "concurrency_limit": p.concurrency_limit,
        "status": if p.is_paused { "PAUSED" } else { p.status.as_str() },
        "default_queue_id": p.default_queue_id,
        "storage_configuration": storage_configuration(&p.storage_configuration),
        "active_slots": p.concurrency_limit.map(|_| active_slots.unwrap_or(0)),
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

/// A queue's body; `active_slots` is reported when it has a limit.
pub fn queue_json(q: &QueueRow, pool_name: Option<&str>, active_slots: Option<i64>) -> Value {
    json!({
        "id": q.id, "created": ts(&q.created), "updated": ts(&q.updated), "name": q.name,
        "description": q.description, "is_paused": q.is_paused, "concurrency_limit": q.concurrency_limit,
        "priority": q.priority, "work_pool_id": q.work_pool_id,
        "filter": q.filter.as_deref().and_then(|f| serde_json::from_str::<Value>(f).ok()),
        "last_polled": opt_ts(&q.last_polled), "work_pool_name": pool_name,
        "status": if q.is_paused { "PAUSED" } else { q.status.as_str() },
        "active_slots": q.concurrency_limit.map(|_| active_slots.unwrap_or(0)),
    })
}

/// Bodies of these queues, with the active slots of those that have a limit (one query).
pub async fn queues_json(
    state: &AppState,
    rows: &[QueueRow],
    pool_names: &std::collections::HashMap<String, String>,
    slot_states: &[&str],
) -> ApiResult<Vec<Value>> {
    let limited: Vec<String> = rows
        .iter()
        .filter(|q| q.concurrency_limit.is_some())
        .map(|q| q.id.clone())
        .collect();
    let slots =
        wp::active_slots_by_queue(&mut state.stores.orion.read().await?, &limited, slot_states)
            .await?;
    Ok(rows
        .iter()
        .map(|q| {
            queue_json(
                q,
                pool_names.get(&q.work_pool_id).map(String::as_str),
                slots.get(&q.id).copied(),
            )
        })
        .collect())
}

/// The body of one queue, with its active slots when it has a limit.
pub async fn one_queue_json(
    state: &AppState,
    q: &QueueRow,
    pool_name: Option<&str>,
    slot_states: &[&str],
) -> ApiResult<Value> {
    let slots = match q.concurrency_limit {
        Some(_) => wp::active_slots_by_queue(
            &mut state.stores.orion.read().await?,
            std::slice::from_ref(&q.id),
            slot_states,
        )
        .await?
        .get(&q.id)
        .copied(),
        None => None,
    };
    Ok(queue_json(q, pool_name, slots))
}

/// The body of one pool, with its active slots when it has a limit.
async fn one_pool_json(state: &AppState, p: &PoolRow) -> ApiResult<Value> {
    let slots = match p.concurrency_limit {
        Some(_) => wp::active_slots_by_pool(
            &mut state.stores.orion.read().await?,
            std::slice::from_ref(&p.id),
        )
        .await?
        .get(&p.id)
        .copied(),
        None => None,
    };
    Ok(pool_json(p, slots))
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
    let mut c = state.stores.orion.read().await?;
    wp::find_pool(&mut c, ws.id(), name)
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
    let written = row.clone();
    let inserted = state
        .stores
        .orion
        .write(async move |c| wp::insert_pool(c, &written, &queue).await)
        .await;
    match inserted {
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
    check_nonemptyish_name(&b.name)?;
    if matches!(b.pool_type, Some(None)) {
        return Err(ApiError::invalid(
            body_loc("type"),
            "Input should be a valid string",
            "string_type",
        ));
    }
    non_negative("concurrency_limit", b.concurrency_limit)?;
    if b.name.to_lowercase().starts_with("prefect") {
        return Err(ApiError::Detail(
            actix_web::http::StatusCode::FORBIDDEN,
            "Work pools starting with 'Prefect' are reserved for internal use.".into(),
        ));
    }
    let mut row = insert_pool(
        &state,
        ws.id(),
        &b.name,
        b.pool_type.flatten().as_deref().unwrap_or("prefect-agent"),
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
        let written = row.clone();
        state
            .stores
            .orion
            .write(async move |c| wp::update_pool(c, &written).await)
            .await?;
    }
    // A new pool has no runs: a limit reports 0 active slots.
    Ok(HttpResponse::Created().json(pool_json(&row, None)))
}

async fn read_pool(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let p = pool(&state, &ws, &name).await?;
    Ok(HttpResponse::Ok().json(one_pool_json(&state, &p).await?))
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
    let mut c = state.stores.orion.read().await?;
    let rows = wp::list_pools(
        &mut c,
        ws.id(),
        &b.work_pools.unwrap_or_default(),
        b.paging.page(&state)?,
    )
    .await?;
    let limited: Vec<String> = rows
        .iter()
        .filter(|p| p.concurrency_limit.is_some())
        .map(|p| p.id.clone())
        .collect();
    let slots = wp::active_slots_by_pool(&mut c, &limited).await?;
    Ok(HttpResponse::Ok().json(
        rows.iter()
            .map(|p| pool_json(p, slots.get(&p.id).copied()))
            .collect::<Vec<_>>(),
    ))
}

async fn count_pools(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<PoolListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let n = wp::count_pools(
        &mut state.stores.orion.read().await?,
        ws.id(),
        &b.work_pools.unwrap_or_default(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(n))
}

async fn update_pool(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
    body: Json<PoolUpdate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    non_negative("concurrency_limit", b.concurrency_limit.flatten())?;
    let mut row = pool(&state, &ws, &name).await?;
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
    let written = row.clone();
    state
        .stores
        .orion
        .write(async move |c| wp::update_pool(c, &written).await)
        .await?;
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
    let ws = ws.id().to_string();
    state
        .stores
        .orion
        .write(async move |c| wp::delete_pool(c, &ws, &row.id).await)
        .await?;
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

async fn scheduled_runs(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathPool,
    body: JsonOrDefault<ScheduledBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = crate::extract::params::limit(&state, b.limit)?;
    let now = crate::time::now();
    let names = b.work_queue_names.unwrap_or_default();
    // One transaction: the pool, its queues, the "polled" updates, the due runs of all its
    // queues (one statement), their rows and their states.
    let (wsid, pool_name) = (ws.id().to_string(), name.0.clone());
    let (before, after) = (
        b.scheduled_before.map(|t| t.naive_utc()),
        b.scheduled_after.map(|t| t.naive_utc()),
    );
    let polled = now.naive_utc();
    let found = state
        .stores
        .orion
        .write(async move |c| {
            let target = wp::PollPool::Name {
                ws: &wsid,
                name: &pool_name,
            };
            wp::poll(c, target, &names, before, after, lim, polled, true).await
        })
        .await?;
    let (pool, runs, states) = match found {
        wp::Poll::NoPool => return Err(pool_not_found(&name)),
        wp::Poll::NoQueue { pool, queue } => {
            return Err(ApiError::not_found(format!(
                "Work pool queue '{pool}/{queue}' not found."
            )))
        }
        wp::Poll::Runs { pool, runs, states } => (pool, runs, states),
    };
    /// `WorkerFlowRunResponse`.
    #[derive(serde::Serialize)]
    struct Scheduled<'a> {
        work_pool_id: &'a str,
        work_queue_id: &'a str,
        flow_run: FlowRunOut<'a>,
    }
    let run_states: Vec<Option<crate::orchestration::State>> = runs
        .iter()
        .map(|r| {
            r.run
                .state_id
                .as_ref()
                .and_then(|id| states.get(id))
                .and_then(flow_state)
        })
        .collect();
    let out: Vec<Scheduled> = runs
        .iter()
        .zip(&run_states)
        .map(|(r, s)| Scheduled {
            work_pool_id: &pool.id,
            work_queue_id: &r.work_queue_id,
            flow_run: FlowRunOut::new(&r.run, s.as_ref(), now).without_pool(),
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
    let b = body.into_inner();
    b.validate()?;
    let row = pool(&state, &ws, &name).await?;
    let q = match insert_queue(&state, &ws, &row, b).await {
        // The reference's message (its placeholder is not filled in).
        Err(ApiError::Detail(s, _)) if s == actix_web::http::StatusCode::CONFLICT => {
            return Err(ApiError::conflict(
                "A work queue with this name already exists in work pool {work_pool_name!r}.",
            ))
        }
        other => other?,
    };
    // A new queue has no runs: a limit reports 0 active slots.
    Ok(HttpResponse::Created().json(queue_json(&q, Some(&row.name), None)))
}

/// The queue `b.name` of `pool`, created from `b` when missing. A concurrent request that
/// created it first wins: its queue is answered, not a 409.
pub async fn find_or_create_queue(
    state: &AppState,
    ws: &Workspace,
    pool: &PoolRow,
    b: QueueCreate,
) -> ApiResult<QueueRow> {
    let db = &state.stores.orion;
    if let Some(q) = wp::find_queue(&mut db.read().await?, ws.id(), &pool.id, &b.name).await? {
        return Ok(q);
    }
    let name = b.name.clone();
    match insert_queue(state, ws, pool, b).await {
        Ok(q) => Ok(q),
        Err(e) => wp::find_queue(&mut db.read().await?, ws.id(), &pool.id, &name)
            .await?
            .ok_or(e),
    }
}

/// Adds a queue to a pool: priority defaults to after the last queue; 409 on a duplicate name.
pub async fn insert_queue(
    state: &AppState,
    ws: &Workspace,
    pool: &PoolRow,
    b: QueueCreate,
) -> ApiResult<QueueRow> {
    b.validate()?;
    let priority = match b.priority {
        Some(p) => p,
        None => {
            // The first free priority (Prefect: the first gap in the sorted priorities, else
            // the highest plus one).
            let existing = wp::list_queues(
                &mut state.stores.orion.read().await?,
                ws.id(),
                Some(&pool.id),
                &WorkQueueFilter::default(),
                Page {
                    limit: i64::MAX / 2,
                    offset: 0,
                },
            )
            .await?;
            let mut taken: Vec<i32> = existing.iter().map(|q| q.priority).collect();
            taken.sort_unstable();
            taken
                .iter()
                .enumerate()
                .find(|(i, p)| *i as i32 + 1 != **p)
                .map(|(i, _)| i as i32 + 1)
                .unwrap_or_else(|| taken.last().copied().unwrap_or(0).saturating_add(1))
        }
    };
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
    // An explicit priority that is taken pushes the other queues down (priorities stay unique).
    let (written, explicit) = (q.clone(), b.priority.is_some());
    let inserted = state
        .stores
        .orion
        .write(async move |c| wp::insert_queue(c, &written, explicit).await)
        .await;
    match inserted {
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
    let mut c = state.stores.orion.read().await?;
    let p = wp::find_pool(&mut c, ws.id(), pool_name)
        .await?
        .ok_or_else(missing)?;
    let q = wp::find_queue(&mut c, ws.id(), &p.id, name)
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
    Ok(HttpResponse::Ok().json(one_queue_json(&state, &q, Some(&p.name), &wp::ACTIVE).await?))
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
        &mut state.stores.orion.read().await?,
        ws.id(),
        Some(&p.id),
        &b.work_queues.unwrap_or_default(),
        b.paging.page(&state)?,
    )
    .await?;
    let names = std::collections::HashMap::from([(p.id.clone(), p.name.clone())]);
    Ok(HttpResponse::Ok().json(queues_json(&state, &rows, &names, &wp::ACTIVE).await?))
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
    let new_priority = b.priority.filter(|p| *p != q.priority);
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
    state
        .stores
        .orion
        .write(async move |c| wp::update_queue(c, &q, new_priority).await)
        .await?;
    Ok(())
}

async fn update_queue(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    name: PathName,
    body: Json<QueueUpdate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    b.validate()?;
    let (_, q) = queue_in_pool(&state, &ws, &pool_name, &name).await?;
    apply_queue_update(&state, q, b).await?;
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
    let ws = ws.id().to_string();
    state
        .stores
        .orion
        .write(async move |c| wp::delete_queue(c, &ws, &q.id).await)
        .await?;
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
    let (wsid, pool_id, paused) = (ws.id().to_string(), p.id.clone(), p.is_paused);
    let now = crate::time::now().naive_utc();
    // The heartbeat, then the pool READY (unless paused); true when the pool became READY.
    let ready = state
        .stores
        .orion
        .write(async move |c| {
            let interval = b.heartbeat_interval_seconds;
            wp::heartbeat(c, &wsid, &pool_id, &b.name, interval, now).await?;
            Ok(!paused && wp::mark_pool_ready(c, &pool_id).await?)
        })
        .await?;
    if ready {
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
        &mut state.stores.orion.read().await?,
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
    let (ws, name) = (ws.id().to_string(), name.0.clone());
    let deleted = state
        .stores
        .orion
        .write(async move |c| wp::delete_worker(c, &ws, &p.id, &name).await)
        .await?;
    if !deleted {
        return Err(ApiError::not_found("Worker not found."));
    }
    Ok(HttpResponse::NoContent().finish())
}
