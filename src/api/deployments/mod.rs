//! `/deployments`: create/upsert by flow + name, read by id and by name, filter, count,
//! paginate, update, delete, pause/resume, schedules, `create_flow_run` (idempotency keys,
//! parameter schema enforcement), and the runner poll `get_scheduled_flow_runs`.

mod crud;
mod pause;
mod runs;
mod schedules;

use actix_web::web;
use serde_json::{json, Value};

use super::common::{json_col, opt_json_col, opt_ts, ts};
use crate::error::{ApiError, ApiResult};
use crate::extract::Workspace;
use crate::state::AppState;
use crate::storage::deployments::{self as deps, DeploymentRow};
use crate::storage::work_pools as wp;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/deployments/", web::post().to(crud::create))
        .route("/deployments", web::post().to(crud::create))
        .route("/deployments/filter", web::post().to(crud::filter))
        .route("/deployments/count", web::post().to(crud::count))
        .route("/deployments/paginate", web::post().to(crud::paginate))
        .route(
            "/deployments/get_scheduled_flow_runs",
            web::post().to(runs::scheduled_runs),
        )
        .route(
            "/deployments/bulk_delete",
            web::post().to(crud::bulk_delete),
        )
        .route(
            "/deployments/name/{flow_name}/{deployment_name}",
            web::get().to(crud::read_by_name),
        )
        .route("/deployments/{id}", web::get().to(crud::read))
        .route("/deployments/{id}", web::patch().to(crud::update))
        .route("/deployments/{id}", web::delete().to(crud::delete))
        .route(
            "/deployments/{id}/pause_deployment",
            web::post().to(pause::pause),
        )
        .route(
            "/deployments/{id}/resume_deployment",
            web::post().to(pause::resume),
        )
        .route(
            "/deployments/{id}/create_flow_run",
            web::post().to(runs::create_flow_run),
        )
        .route(
            "/deployments/{id}/create_flow_run/bulk",
            web::post().to(runs::create_flow_runs_bulk),
        )
        .route(
            "/deployments/{id}/work_queue_check",
            web::get().to(runs::work_queue_check),
        )
        .route(
            "/deployments/{id}/schedule",
            web::post().to(schedules::schedule_now),
        )
        .route(
            "/deployments/{id}/schedules",
            web::get().to(schedules::read_schedules),
        )
        .route(
            "/deployments/{id}/schedules",
            web::post().to(schedules::create_schedules),
        )
        .route(
            "/deployments/{id}/schedules/{schedule_id}",
            web::patch().to(schedules::update_schedule),
        )
        .route(
            "/deployments/{id}/schedules/{schedule_id}",
            web::delete().to(schedules::delete_schedule),
        );
}

pub(super) async fn deployment_json(state: &AppState, d: &DeploymentRow) -> ApiResult<Value> {
    let mut out = deployments_json(state, std::slice::from_ref(d)).await?;
    Ok(out.pop().unwrap_or(Value::Null))
}

/// Bodies of these deployments: their schedules and their queues' pool names are loaded in one
/// query each.
pub(super) async fn deployments_json(
    state: &AppState,
    rows: &[DeploymentRow],
) -> ApiResult<Vec<Value>> {
    let mut c = state.stores.orion.read().await?;
    let ids: Vec<String> = rows.iter().map(|d| d.id.clone()).collect();
    let mut schedules: std::collections::HashMap<&str, Vec<Value>> = Default::default();
    let schedule_rows = deps::list_schedules(&mut c, &ids).await?;
    for s in &schedule_rows {
        schedules
            .entry(s.deployment_id.as_str())
            .or_default()
            .push(schedules::schedule_json(s));
    }
    let mut queue_ids: Vec<String> = rows
        .iter()
        .filter_map(|d| d.work_queue_id.clone())
        .collect();
    queue_ids.sort_unstable();
    queue_ids.dedup();
    let pools = wp::pools_of_queues(&mut c, &queue_ids).await?;
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

/// Prefect's `PositiveInteger` deployment `concurrency_limit`.
pub(super) fn concurrency_limit_positive(v: Option<i32>) -> ApiResult<()> {
    super::work_pools::positive_at(vec!["body".into(), "concurrency_limit".into()], v)
}

/// The reference's 404 on most deployment routes (no full stop).
pub(super) fn not_found() -> ApiError {
    ApiError::not_found("Deployment not found")
}

/// The reference's 404 on PATCH and the schedule routes (with a full stop).
pub(super) fn not_found_dot() -> ApiError {
    ApiError::not_found("Deployment not found.")
}

/// Deployment `id` of the workspace, if there is one.
pub(super) async fn lookup(
    state: &AppState,
    ws: &Workspace,
    id: &str,
) -> ApiResult<Option<DeploymentRow>> {
    let mut c = state.stores.orion.read().await?;
    Ok(deps::find(&mut c, ws.id(), id).await?)
}

pub(super) async fn find(state: &AppState, ws: &Workspace, id: &str) -> ApiResult<DeploymentRow> {
    lookup(state, ws, id).await?.ok_or_else(not_found)
}

pub(super) async fn find_dot(
    state: &AppState,
    ws: &Workspace,
    id: &str,
) -> ApiResult<DeploymentRow> {
    lookup(state, ws, id).await?.ok_or_else(not_found_dot)
}

/// Resolves the pool and queue names to the queue id (creating a missing queue in an existing
/// pool, as Prefect does; the pool's default queue when only the pool is named).
pub(super) async fn resolve_queue(
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
    let q = match queue {
        Some(name) => {
            let body = super::work_pools::QueueCreate::named(name.to_string());
            super::work_pools::find_or_create_queue(state, ws, &p, body).await?
        }
        None => match &p.default_queue_id {
            Some(id) => wp::find_queue_by_id(&mut state.stores.orion.read().await?, ws.id(), id)
                .await?
                .ok_or_else(|| ApiError::not_found("Work queue not found"))?,
            None => return Ok((None, None)),
        },
    };
    Ok((Some(q.name), Some(q.id)))
}
