//! The `/ui/*` routes Prefect's web UIs call (`prefect/server/api/ui/` in the reference): counts
//! and next runs per flow, the runs scatter plot, task-run counts per flow run (here), task-run
//! counts, dashboard buckets and a task run with its flow run's name (`task_runs.rs`), and
//! parameter validation (`schemas.rs`). Maps keyed by id answer every id asked for, in the
//! order asked.

mod schemas;
mod task_runs;

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::json::Json;
use crate::extract::Workspace;
use crate::ids::Id;
use crate::query::{FlowRunSort, Page, Related};
use crate::runs::answers::Clock;
use crate::state::AppState;
use crate::storage::{deployments, flow_runs};
use crate::wire::{opt_ts, Ts};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/ui/flows/count-deployments",
        web::post().to(count_deployments),
    )
    .route("/ui/flows/next-runs", web::post().to(next_runs))
    .route("/ui/flow_runs/history", web::post().to(flow_run_history))
    .route(
        "/ui/flow_runs/count-task-runs",
        web::post().to(count_task_runs),
    )
    .route("/ui/schemas/validate", web::post().to(schemas::validate));
    task_runs::configure(cfg);
}

/// The most ids one call takes (the reference's `max_length=200`).
const MAX_IDS: usize = 200;

/// `{"<field>": [uuid, ...]}`, at most [`MAX_IDS`] ids.
fn ids_of<K>(body: &Map<String, Value>, field: &str) -> ApiResult<Vec<Id<K>>> {
    let loc = || vec![Value::from("body"), Value::from(field)];
    let Some(raw) = body.get(field) else {
        return Err(ApiError::invalid(loc(), "Field required", "missing"));
    };
    let ids: Vec<Uuid> = serde_json::from_value(raw.clone()).map_err(|_| {
        ApiError::invalid(loc(), "Input should be a valid list of UUIDs", "list_type")
    })?;
    if ids.len() > MAX_IDS {
        return Err(ApiError::invalid(
            loc(),
            format!(
                "List should have at most {MAX_IDS} items after validation, not {}",
                ids.len()
            ),
            "too_long",
        ));
    }
    Ok(ids.into_iter().map(Id::from).collect())
}

/// A JSON object with one entry per id, in the order given, from `found` or `missing`.
fn by_id<K, V: Serialize>(
    ids: &[Id<K>],
    mut found: HashMap<String, V>,
    missing: impl Fn() -> V,
) -> Map<String, Value> {
    ids.iter()
        .map(|id| {
            let v = found.remove(id.as_str()).unwrap_or_else(&missing);
            (
                id.to_string(),
                serde_json::to_value(v).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// `{id: count}` for every id of `ids`, from the counts of those that have any.
fn counts<K>(ids: &[Id<K>], found: Vec<(Option<Id<K>>, i64)>) -> Map<String, Value> {
    let found: HashMap<String, i64> = found
        .into_iter()
        .filter_map(|(id, n)| id.map(|id| (id.into(), n)))
        .collect();
    by_id(ids, found, || 0)
}

/// `POST /ui/flows/count-deployments`: `{flow id: number of deployments}`.
async fn count_deployments(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    let flows = ids_of(&body.0, "flow_ids")?;
    let mut c = state.stores.orion.read().await?;
    let found = deployments::count_by_flow(&mut c, ws.id(), &flows).await?;
    let found = found.into_iter().map(|(f, n)| (Some(f), n)).collect();
    Ok(HttpResponse::Ok().json(counts(&flows, found)))
}

/// A flow's next run, as `/ui/flows/next-runs` answers it.
#[derive(Serialize)]
struct NextRunOut {
    id: String,
    flow_id: String,
    name: String,
    state_name: Option<String>,
    state_type: Option<String>,
    next_scheduled_start_time: Option<String>,
}

/// `POST /ui/flows/next-runs`: `{flow id: its earliest scheduled run, or null}`.
async fn next_runs(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    let flows = ids_of(&body.0, "flow_ids")?;
    let mut c = state.stores.orion.read().await?;
    let found: HashMap<String, Option<NextRunOut>> =
        flow_runs::next_scheduled_of_flows(&mut c, ws.id(), &flows)
            .await?
            .into_iter()
            .map(|r| {
                let out = NextRunOut {
                    id: r.id.to_string(),
                    flow_id: r.flow_id.to_string(),
                    name: r.name,
                    state_name: r.state_name,
                    state_type: r.state_type,
                    next_scheduled_start_time: r
                        .next_scheduled_start_time
                        .as_ref()
                        .map(crate::time::format_naive),
                };
                (r.flow_id.into(), Some(out))
            })
            .collect();
    Ok(HttpResponse::Ok().json(by_id(&flows, found, || None)))
}

/// The body of `/ui/flow_runs/history`: the run filters, a sort, and paging up to 1,000 runs.
#[derive(Deserialize, Default)]
#[serde(default)]
struct HistoryBody {
    #[serde(flatten)]
    related: Related,
    sort: Option<FlowRunSort>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// A point of the runs scatter plot.
#[derive(Serialize)]
struct RunPointOut<'a> {
    id: &'a str,
    state_type: Option<&'a str>,
    /// The start time, or before the run starts the expected one.
    timestamp: Option<Ts<'a>>,
    duration: f64,
    lateness: f64,
}

/// `POST /ui/flow_runs/history`: the runs' points (default: the latest 1,000 by expected start).
async fn flow_run_history(
    state: web::Data<AppState>,
    ws: Workspace,
    body: crate::extract::json::JsonOrDefault<HistoryBody>,
) -> ApiResult<HttpResponse> {
    let b = body.0;
    let limit = b.limit.unwrap_or(1000);
    if limit > 1000 {
        return Err(ApiError::invalid(
            vec!["body".into(), "limit".into()],
            "Input should be less than or equal to 1000",
            "less_than_equal",
        ));
    }
    let offset = b.offset.unwrap_or(0);
    if offset < 0 || limit < 0 {
        let field = if offset < 0 { "offset" } else { "limit" };
        return Err(ApiError::invalid(
            vec!["body".into(), field.into()],
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        ));
    }
    let sort = b.sort.unwrap_or(FlowRunSort::ExpectedStartTimeDesc);
    let mut c = state.stores.orion.read().await?;
    let rows =
        flow_runs::list_points(&mut c, ws.id(), &b.related, sort, Page { limit, offset }).await?;
    let now = crate::time::now();
    let points: Vec<RunPointOut> = rows
        .iter()
        .map(|r| {
            let (duration, lateness) = Clock::from(r).estimates(now);
            RunPointOut {
                id: &r.id,
                state_type: r.state_type.as_deref(),
                timestamp: opt_ts(&r.start_time).or(opt_ts(&r.expected_start_time)),
                duration,
                lateness,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(points))
}

/// `POST /ui/flow_runs/count-task-runs`: `{flow run id: its task runs, subflows not counted}`.
async fn count_task_runs(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    let runs = ids_of(&body.0, "flow_run_ids")?;
    let mut c = state.stores.orion.read().await?;
    let found = flow_runs::count_task_runs_of(&mut c, ws.id(), &runs).await?;
    Ok(HttpResponse::Ok().json(counts(&runs, found)))
}
