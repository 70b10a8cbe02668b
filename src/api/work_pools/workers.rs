//! Workers of a pool: heartbeat, filter, delete.

use super::*;

#[derive(Deserialize)]
pub(super) struct HeartbeatBody {
    name: String,
    #[serde(default)]
    heartbeat_interval_seconds: Option<i32>,
}

pub(super) async fn heartbeat(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    body: Json<HeartbeatBody>,
) -> ApiResult<HttpResponse> {
    let p = pool(&state, &ws, &pool_name).await?;
    let b = body.into_inner();
    let (wsid, pool_id, paused) = (ws.id().clone(), p.id.clone(), p.is_paused);
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
pub(super) struct WorkerListBody {
    workers: Option<WorkerFilter>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn filter_workers(
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
    Ok(HttpResponse::Ok().json(rows.iter().map(WorkerOut::from).collect::<Vec<_>>()))
}

pub(super) async fn delete_worker(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let p = pool(&state, &ws, &pool_name).await?;
    let (ws, name) = (ws.id().clone(), name.0.clone());
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
