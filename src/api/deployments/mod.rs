//! `/deployments`: create/upsert by flow + name, read by id and by name, filter, count,
//! paginate, update, delete, pause/resume, schedules, `create_flow_run` (idempotency keys,
//! parameter schema enforcement), and the runner poll `get_scheduled_flow_runs`.

mod crud;
mod pause;
mod runs;
mod schedules;

pub(crate) use pause::set_paused;
pub(crate) use runs::{new_run, DeploymentFlowRunCreate};

use actix_web::web;
use std::collections::HashMap;

use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::Workspace;
use crate::ids::DeploymentId;
use crate::state::AppState;
use crate::storage::deployments::{self as deps, DeploymentRow, ScheduleRow};
use crate::storage::work_pools as wp;
use crate::wire::{json_text, opt_json_text, opt_ts, JsonText, Ts};
use schedules::ScheduleOut;

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

/// Deployments read for an answer, with what their bodies need besides their rows: their
/// schedules and their queues' pool names, loaded in one query each.
pub(super) struct Loaded {
    rows: Vec<DeploymentRow>,
    schedules: HashMap<DeploymentId, Vec<ScheduleRow>>,
    pools: HashMap<String, (String, String)>,
}

impl Loaded {
    pub(super) async fn load(state: &AppState, rows: Vec<DeploymentRow>) -> ApiResult<Loaded> {
        let mut c = state.stores.orion.read().await?;
        let ids: Vec<DeploymentId> = rows.iter().map(|d| d.id.clone()).collect();
        let mut schedules: HashMap<DeploymentId, Vec<ScheduleRow>> = HashMap::new();
        for s in deps::list_schedules(&mut c, &ids).await? {
            schedules
                .entry(s.deployment_id.clone())
                .or_default()
                .push(s);
        }
        let mut queue_ids: Vec<String> = rows
            .iter()
            .filter_map(|d| d.work_queue_id.clone())
            .collect();
        queue_ids.sort_unstable();
        queue_ids.dedup();
        let pools = wp::pools_of_queues(&mut c, &queue_ids).await?;
        Ok(Loaded {
            rows,
            schedules,
            pools,
        })
    }

    /// The bodies, in the rows' order.
    pub(super) fn bodies(&self) -> Vec<DeploymentOut<'_>> {
        self.rows.iter().map(|d| self.body(d)).collect()
    }

    /// The body of the first (for one deployment, the only) row.
    pub(super) fn first(&self) -> Option<DeploymentOut<'_>> {
        self.rows.first().map(|d| self.body(d))
    }

    fn body<'a>(&'a self, d: &'a DeploymentRow) -> DeploymentOut<'a> {
        let pool_name = d
            .work_queue_id
            .as_ref()
            .and_then(|q| self.pools.get(q))
            .map(|(_, name)| name.as_str());
        let schedules = self
            .schedules
            .get(&d.id)
            .map(|s| s.iter().map(ScheduleOut::from).collect())
            .unwrap_or_default();
        DeploymentOut {
            id: &d.id,
            created: Ts(&d.created),
            updated: Ts(&d.updated),
            name: &d.name,
            version: d.version.as_deref(),
            description: d.description.as_deref(),
            flow_id: &d.flow_id,
            paused: d.paused,
            schedules,
            concurrency_limit: d.concurrency_limit,
            global_concurrency_limit: None,
            concurrency_options: opt_json_text(&d.concurrency_options),
            job_variables: json_text(&d.job_variables, "{}"),
            parameters: json_text(&d.parameters, "{}"),
            tags: json_text(&d.tags, "[]"),
            labels: json_text(&d.labels, "{}"),
            work_queue_name: d.work_queue_name.as_deref(),
            work_queue_id: d.work_queue_id.as_deref(),
            last_polled: opt_ts(&d.last_polled),
            parameter_openapi_schema: opt_json_text(&d.parameter_openapi_schema),
            path: d.path.as_deref(),
            pull_steps: opt_json_text(&d.pull_steps),
            entrypoint: d.entrypoint.as_deref(),
            storage_document_id: d.storage_document_id.as_deref(),
            infrastructure_document_id: d.infrastructure_document_id.as_deref(),
            created_by: opt_json_text(&d.created_by),
            updated_by: opt_json_text(&d.updated_by),
            work_pool_name: pool_name,
            status: &d.status,
            enforce_parameter_schema: d.enforce_parameter_schema,
        }
    }
}

/// `DeploymentResponse`.
#[derive(Serialize)]
pub(super) struct DeploymentOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    version: Option<&'a str>,
    description: Option<&'a str>,
    flow_id: &'a str,
    paused: bool,
    schedules: Vec<ScheduleOut<'a>>,
    concurrency_limit: Option<i32>,
    /// Always `null`: the limit is reported as `concurrency_limit`.
    global_concurrency_limit: Option<()>,
    concurrency_options: JsonText<'a>,
    job_variables: JsonText<'a>,
    parameters: JsonText<'a>,
    tags: JsonText<'a>,
    labels: JsonText<'a>,
    work_queue_name: Option<&'a str>,
    work_queue_id: Option<&'a str>,
    last_polled: Option<Ts<'a>>,
    parameter_openapi_schema: JsonText<'a>,
    path: Option<&'a str>,
    pull_steps: JsonText<'a>,
    entrypoint: Option<&'a str>,
    storage_document_id: Option<&'a str>,
    infrastructure_document_id: Option<&'a str>,
    created_by: JsonText<'a>,
    updated_by: JsonText<'a>,
    work_pool_name: Option<&'a str>,
    status: &'a str,
    enforce_parameter_schema: bool,
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
    id: &DeploymentId,
) -> ApiResult<Option<DeploymentRow>> {
    let mut c = state.stores.orion.read().await?;
    Ok(deps::find(&mut c, ws.id(), id).await?)
}

/// One deployment as `GET /deployments/{id}` answers it; `None` when there is none.
pub(crate) async fn body_of(
    state: &AppState,
    ws: &crate::ids::WorkspaceId,
    id: &DeploymentId,
) -> ApiResult<Option<serde_json::Value>> {
    let Some(d) = lookup(state, &Workspace(ws.clone()), id).await? else {
        return Ok(None);
    };
    let loaded = Loaded::load(state, vec![d]).await?;
    Ok(serde_json::to_value(loaded.first()).ok())
}

pub(crate) async fn find(
    state: &AppState,
    ws: &Workspace,
    id: &DeploymentId,
) -> ApiResult<DeploymentRow> {
    lookup(state, ws, id).await?.ok_or_else(not_found)
}

pub(super) async fn find_dot(
    state: &AppState,
    ws: &Workspace,
    id: &DeploymentId,
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
