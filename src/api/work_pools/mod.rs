//! `/work_pools`: pools (with their default queue), their queues and workers, heartbeats and the
//! worker poll `get_scheduled_flow_runs`. The worker channel websocket is not offered (404), so
//! 3.9.1 workers use these REST calls (API.md §4.6).

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::to_text;
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathName, PathPool};
use crate::extract::Workspace;
use crate::query::pools::{WorkPoolFilter, WorkQueueFilter, WorkerFilter};
use crate::query::Page;
use crate::runs::answers::FlowRunOut;
use crate::runs::convert::flow_states_by_id;
use crate::state::AppState;
use crate::storage::work_pools::{self as wp, PoolRow, QueueRow, WorkerRow};
use crate::wire::{json_text, opt_json_text, opt_ts, JsonText, Ts};

mod pools;
mod queues;
mod workers;

use crate::ids::WorkspaceId;
pub use pools::*;
pub use queues::*;
use workers::*;

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

/// `WorkPool`; `active_slots` is reported (PENDING + RUNNING runs) when it has a limit.
#[derive(Serialize)]
pub struct PoolOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    description: Option<&'a str>,
    #[serde(rename = "type")]
    pool_type: &'a str,
    base_job_template: JsonText<'a>,
    is_paused: bool,
    concurrency_limit: Option<i32>,
    status: &'a str,
    default_queue_id: Option<&'a str>,
    storage_configuration: Value,
    active_slots: Option<i64>,
}

impl<'a> PoolOut<'a> {
    pub fn new(p: &'a PoolRow, active_slots: Option<i64>) -> Self {
        PoolOut {
            id: &p.id,
            created: Ts(&p.created),
            updated: Ts(&p.updated),
            name: &p.name,
            description: p.description.as_deref(),
            pool_type: &p.pool_type,
            base_job_template: json_text(&p.base_job_template, "{}"),
            is_paused: p.is_paused,
            concurrency_limit: p.concurrency_limit,
            status: if p.is_paused { "PAUSED" } else { &p.status },
            default_queue_id: p.default_queue_id.as_deref(),
            storage_configuration: storage_configuration(&p.storage_configuration),
            active_slots: p.concurrency_limit.map(|_| active_slots.unwrap_or(0)),
        }
    }
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

/// `WorkQueueResponse`; `active_slots` is reported when it has a limit.
#[derive(Serialize)]
pub struct QueueOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    description: &'a str,
    is_paused: bool,
    concurrency_limit: Option<i32>,
    priority: i32,
    work_pool_id: &'a str,
    filter: JsonText<'a>,
    last_polled: Option<Ts<'a>>,
    work_pool_name: Option<&'a str>,
    status: &'a str,
    active_slots: Option<i64>,
}

impl<'a> QueueOut<'a> {
    pub fn new(q: &'a QueueRow, pool_name: Option<&'a str>, active_slots: Option<i64>) -> Self {
        QueueOut {
            id: &q.id,
            created: Ts(&q.created),
            updated: Ts(&q.updated),
            name: &q.name,
            description: &q.description,
            is_paused: q.is_paused,
            concurrency_limit: q.concurrency_limit,
            priority: q.priority,
            work_pool_id: &q.work_pool_id,
            filter: opt_json_text(&q.filter),
            last_polled: opt_ts(&q.last_polled),
            work_pool_name: pool_name,
            status: if q.is_paused { "PAUSED" } else { &q.status },
            active_slots: q.concurrency_limit.map(|_| active_slots.unwrap_or(0)),
        }
    }
}

/// Bodies of these queues, with the active slots of those that have a limit (one query).
pub async fn queues_out<'a>(
    state: &AppState,
    rows: &'a [QueueRow],
    pool_names: &'a std::collections::HashMap<String, String>,
    slot_states: &[&str],
) -> ApiResult<Vec<QueueOut<'a>>> {
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
            QueueOut::new(
                q,
                pool_names.get(&q.work_pool_id).map(String::as_str),
                slots.get(&q.id).copied(),
            )
        })
        .collect())
}

/// The body of one queue, with its active slots when it has a limit.
pub async fn one_queue_out<'a>(
    state: &AppState,
    q: &'a QueueRow,
    pool_name: Option<&'a str>,
    slot_states: &[&str],
) -> ApiResult<QueueOut<'a>> {
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
    Ok(QueueOut::new(q, pool_name, slots))
}

/// The body of one pool, with its active slots when it has a limit.
async fn one_pool_out<'a>(state: &AppState, p: &'a PoolRow) -> ApiResult<PoolOut<'a>> {
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
    Ok(PoolOut::new(p, slots))
}

/// `WorkerResponse`.
#[derive(Serialize)]
struct WorkerOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    work_pool_id: &'a str,
    last_heartbeat_time: Ts<'a>,
    heartbeat_interval_seconds: Option<i32>,
    status: &'a str,
}

impl<'a> From<&'a WorkerRow> for WorkerOut<'a> {
    fn from(w: &'a WorkerRow) -> Self {
        WorkerOut {
            id: &w.id,
            created: Ts(&w.created),
            updated: Ts(&w.updated),
            name: &w.name,
            work_pool_id: &w.work_pool_id,
            last_heartbeat_time: Ts(&w.last_heartbeat_time),
            heartbeat_interval_seconds: w.heartbeat_interval_seconds,
            status: &w.status,
        }
    }
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
    ws: &WorkspaceId,
    pool_id: &str,
    name: &str,
    priority: i32,
    now: chrono::NaiveDateTime,
) -> QueueRow {
    QueueRow {
        id: Uuid::new_v4().to_string(),
        workspace_id: ws.clone(),
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
