//! Work pools: create (with the default queue), read, filter, count, update, delete, and the
//! worker poll `get_scheduled_flow_runs`.

use super::*;
use crate::ids::WorkspaceId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoolCreate {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// `Some(None)` is an explicit null, which the reference refuses (`type: str`).
    #[serde(
        default,
        rename = "type",
        deserialize_with = "crate::api::common::present"
    )]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoolUpdate {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    is_paused: Option<bool>,
    #[serde(default)]
    base_job_template: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "crate::api::common::present")]
    concurrency_limit: Option<Option<i32>>,
    #[serde(default)]
    storage_configuration: Option<Map<String, Value>>,
}

/// Creates a pool with its default queue; `Err(409)` when the name is taken.
pub async fn insert_pool(
    state: &AppState,
    ws: &WorkspaceId,
    name: &str,
    pool_type: &str,
    base: Map<String, Value>,
) -> ApiResult<PoolRow> {
    let (row, queue) = new_pool(ws, name, pool_type, base);
    write_new_pool(state, row, queue).await
}

/// A new pool's row (NOT_READY, nothing optional set) and its default queue, not yet written.
fn new_pool(
    ws: &WorkspaceId,
    name: &str,
    pool_type: &str,
    base: Map<String, Value>,
) -> (PoolRow, QueueRow) {
    let now = crate::time::now().naive_utc();
    let id = Uuid::new_v4().to_string();
    let queue = new_queue(ws, &id, "default", 1, now);
    let row = PoolRow {
        id,
        workspace_id: ws.clone(),
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
    (row, queue)
}

/// Writes a new pool and its default queue in one transaction; `Err(409)` when the name is taken.
async fn write_new_pool(state: &AppState, row: PoolRow, queue: QueueRow) -> ApiResult<PoolRow> {
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

pub(super) async fn create_pool(
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
    let (mut row, queue) = new_pool(
        ws.id(),
        &b.name,
        b.pool_type.flatten().as_deref().unwrap_or("prefect-agent"),
        b.base_job_template.unwrap_or_default(),
    );
    row.description = b.description;
    row.is_paused = b.is_paused;
    row.concurrency_limit = b.concurrency_limit;
    row.storage_configuration = to_text(&b.storage_configuration.unwrap_or_default());
    // The pool is written once, with what the request set, together with its default queue.
    let row = write_new_pool(&state, row, queue).await?;
    // A new pool has no runs: a limit reports 0 active slots.
    Ok(HttpResponse::Created().json(PoolOut::new(&row, None)))
}

pub(super) async fn read_pool(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let p = pool(&state, &ws, &name).await?;
    Ok(HttpResponse::Ok().json(one_pool_out(&state, &p).await?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PoolListBody {
    work_pools: Option<WorkPoolFilter>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn filter_pools(
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
            .map(|p| PoolOut::new(p, slots.get(&p.id).copied()))
            .collect::<Vec<_>>(),
    ))
}

pub(super) async fn count_pools(
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

pub(super) async fn update_pool(
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
    save_pool(&state, ws.id(), row, was_paused).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Saves a changed pool; a pause or resume emits the pool's status event.
pub(crate) async fn save_pool(
    state: &AppState,
    ws: &crate::ids::WorkspaceId,
    mut row: PoolRow,
    was_paused: bool,
) -> ApiResult<()> {
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
        crate::runs::events::emit_work_pool(state, ws, &row, name).await;
    }
    Ok(())
}

pub(super) async fn delete_pool(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let row = pool(&state, &ws, &name).await?;
    let ws = ws.id().clone();
    state
        .stores
        .orion
        .write(async move |c| wp::delete_pool(c, &ws, &row.id).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ScheduledBody {
    work_queue_names: Option<Vec<String>>,
    #[serde(with = "crate::time::opt")]
    scheduled_before: Option<chrono::DateTime<Utc>>,
    #[serde(with = "crate::time::opt")]
    scheduled_after: Option<chrono::DateTime<Utc>>,
    limit: Option<i64>,
}

pub(super) async fn scheduled_runs(
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
    let (wsid, pool_name) = (ws.id().clone(), name.0.clone());
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
    let run_states = flow_states_by_id(runs.iter().map(|r| &r.run), &states);
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
