//! `/work_queues`: the queue routes that address queues by id (and by name in the default
//! agent pool), as older clients and the UI use them.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::work_pools::{
    apply_queue_update, insert_queue, one_queue_out, queues_out, QueueCreate, QueueOut, QueueUpdate,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathId, PathName};
use crate::extract::Workspace;
use crate::query::pools::WorkQueueFilter;
use crate::runs::answers::FlowRunOut;
use crate::runs::convert::flow_states_by_id;
use crate::state::AppState;
use crate::storage::work_pools::{self as wp, PoolRow, QueueRow};

/// Where queues created without a pool live (Prefect's name).
const DEFAULT_AGENT_POOL: &str = "default-agent-pool";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/work_queues/", web::post().to(create))
        .route("/work_queues", web::post().to(create))
        .route("/work_queues/filter", web::post().to(filter))
        .route("/work_queues/name/{name}", web::get().to(read_by_name))
        .route("/work_queues/{id}", web::get().to(read))
        .route("/work_queues/{id}", web::patch().to(update))
        .route("/work_queues/{id}", web::delete().to(delete))
        .route("/work_queues/{id}/get_runs", web::post().to(get_runs))
        .route("/work_queues/{id}/status", web::get().to(status));
}

/// The queue with this id; `missing` is the route's own 404 (each says it differently).
async fn find(
    state: &AppState,
    ws: &Workspace,
    id: &str,
    missing: impl FnOnce() -> ApiError,
) -> ApiResult<QueueRow> {
    let mut c = state.stores.orion.read().await?;
    wp::find_queue_by_id(&mut c, ws.id(), id)
        .await?
        .ok_or_else(missing)
}

fn not_found() -> ApiError {
    ApiError::not_found("work queue not found")
}

/// Active slots on these routes count CANCELLING runs too, as the reference's do.
const SLOTS: &[&str] = &wp::LEGACY_QUEUE_ACTIVE;

async fn pool_name(state: &AppState, ws: &Workspace, q: &QueueRow) -> ApiResult<Option<String>> {
    let mut c = state.stores.orion.read().await?;
    Ok(wp::find_pool_by_id(&mut c, ws.id(), &q.work_pool_id)
        .await?
        .map(|p| p.name))
}

/// The default agent pool, created (with its default queue) on first use.
async fn default_agent_pool(state: &AppState, ws: &Workspace) -> ApiResult<PoolRow> {
    let db = &state.stores.orion;
    if let Some(p) = wp::find_pool(&mut db.read().await?, ws.id(), DEFAULT_AGENT_POOL).await? {
        return Ok(p);
    }
    match super::work_pools::insert_pool(
        state,
        ws.id(),
        DEFAULT_AGENT_POOL,
        "prefect-agent",
        Default::default(),
    )
    .await
    {
        Ok(p) => Ok(p),
        // Created concurrently: read the winner's.
        Err(e) => wp::find_pool(&mut db.read().await?, ws.id(), DEFAULT_AGENT_POOL)
            .await?
            .ok_or(e),
    }
}

/// Prefect's `ensure_work_queue_exists`: the default agent pool's queue of this name, created
/// with priority 1 (the others move down) when missing; "default" is the pool's default queue.
pub async fn ensure_legacy_queue(
    state: &AppState,
    ws: &Workspace,
    name: &str,
) -> ApiResult<QueueRow> {
    let pool = default_agent_pool(state, ws).await?;
    let mut body = QueueCreate::named(name.to_string());
    body.priority = Some(1);
    super::work_pools::find_or_create_queue(state, ws, &pool, body).await
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<QueueCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    b.validate()?;
    let pool = default_agent_pool(&state, &ws).await?;
    let q = insert_queue(&state, &ws, &pool, b).await?;
    // A new queue has no runs: a limit reports 0 active slots.
    Ok(HttpResponse::Created().json(QueueOut::new(&q, Some(&pool.name), None)))
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let q = find(&state, &ws, &id, not_found).await?;
    let pool = pool_name(&state, &ws, &q).await?;
    Ok(HttpResponse::Ok().json(one_queue_out(&state, &q, pool.as_deref(), SLOTS).await?))
}

async fn read_by_name(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let pool = wp::find_pool(&mut c, ws.id(), DEFAULT_AGENT_POOL)
        .await?
        .ok_or_else(not_found)?;
    let q = wp::find_queue(&mut c, ws.id(), &pool.id, &name)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(one_queue_out(&state, &q, Some(&pool.name), SLOTS).await?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListBody {
    work_queues: Option<WorkQueueFilter>,
    #[serde(flatten)]
    paging: Paging,
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<ListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let mut c = state.stores.orion.read().await?;
    let rows = wp::list_queues(
        &mut c,
        ws.id(),
        None,
        &b.work_queues.unwrap_or_default(),
        b.paging.page(&state)?,
    )
    .await?;
    let mut pool_ids: Vec<String> = rows.iter().map(|q| q.work_pool_id.clone()).collect();
    pool_ids.sort_unstable();
    pool_ids.dedup();
    let names = wp::pool_names(&mut c, ws.id(), &pool_ids).await?;
    drop(c);
    Ok(HttpResponse::Ok().json(queues_out(&state, &rows, &names, SLOTS).await?))
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<QueueUpdate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    b.validate()?;
    let q = find(&state, &ws, &id, || {
        ApiError::not_found(format!("Work Queue {} not found", id.0))
    })
    .await?;
    apply_queue_update(&state, q, b).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let q = find(&state, &ws, &id, not_found).await?;
    let ws = ws.id().clone();
    state
        .stores
        .orion
        .write(async move |c| wp::delete_queue(c, &ws, &q.id).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GetRunsBody {
    #[serde(with = "crate::time::opt")]
    scheduled_before: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
}

async fn get_runs(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: JsonOrDefault<GetRunsBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = crate::extract::params::limit(&state, b.limit)?;
    let q = find(&state, &ws, &id, || {
        ApiError::ObjectNotFound(format!("Work queue with id {} not found.", id.0))
    })
    .await?;
    let pool = wp::find_pool_by_id(
        &mut state.stores.orion.read().await?,
        ws.id(),
        &q.work_pool_id,
    )
    .await?
    .ok_or_else(|| ApiError::ObjectNotFound(format!("Work queue with id {} not found.", id.0)))?;
    let now = crate::time::now();
    // The run rows and their states come from the poll's one transaction.
    let (before, polled) = (b.scheduled_before.map(|t| t.naive_utc()), now.naive_utc());
    let found = state
        .stores
        .orion
        .write(async move |c| {
            let names = std::slice::from_ref(&q.name);
            let target = wp::PollPool::Row(&pool);
            wp::poll(c, target, names, before, None, lim, polled, true).await
        })
        .await?;
    let (runs, states) = match found {
        wp::Poll::Runs { runs, states, .. } => (runs, states),
        wp::Poll::NoPool | wp::Poll::NoQueue { .. } => Default::default(),
    };
    let run_states = flow_states_by_id(runs.iter().map(|r| &r.run), &states);
    let out: Vec<FlowRunOut> = runs
        .iter()
        .zip(&run_states)
        .map(|(r, s)| FlowRunOut::new(&r.run, s.as_ref(), now))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn status(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let q = find(&state, &ws, &id, || {
        ApiError::ObjectNotFound(format!("Work queue with id {} not found", id.0))
    })
    .await?;
    let late = crate::storage::flow_runs::count(
        &mut state.stores.orion.read().await?,
        ws.id(),
        &crate::query::Related {
            flow_runs: Some(crate::query::FlowRunFilter {
                state: Some(crate::query::StateFilter {
                    name: Some(crate::query::StringsFilter {
                        any_: Some(vec!["Late".into()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                work_queue_name: Some(crate::query::StringsFilter {
                    any_: Some(vec![q.name.clone()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await?;
    let healthy = q.status == "READY" && late == 0;
    Ok(HttpResponse::Ok().json(json!({
        "healthy": healthy,
        "late_runs_count": late,
        "last_polled": crate::wire::opt_ts(&q.last_polled),
        "health_check_policy": {"maximum_late_runs": 0, "maximum_seconds_since_last_polled": 60},
    })))
}
