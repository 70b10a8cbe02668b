//! `/ui/task_runs/*`: counts by state, the dashboard's twenty buckets of finished task runs, and
//! a task run with its flow run's name.

use actix_web::{web, HttpResponse};
use chrono::{DurationRound, TimeDelta};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::PathId;
use crate::extract::Workspace;
use crate::ids::TaskRunId;
use crate::orchestration::StateType;
use crate::query::{Related, StateFilter, StringsFilter};
use crate::runs::answers::TaskRunOut;
use crate::runs::convert::task_state;
use crate::state::AppState;
use crate::storage::{flow_runs, task_runs};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ui/task_runs/count", web::post().to(count_by_state))
        .route(
            "/ui/task_runs/dashboard/counts",
            web::post().to(dashboard_counts),
        )
        .route("/ui/task_runs/{id}", web::get().to(read_with_flow_run_name));
}

/// The state types in the order of Prefect's `CountByState`.
const COUNT_ORDER: [StateType; 9] = [
    StateType::Completed,
    StateType::Pending,
    StateType::Running,
    StateType::Failed,
    StateType::Cancelled,
    StateType::Crashed,
    StateType::Paused,
    StateType::Cancelling,
    StateType::Scheduled,
];

/// `POST /ui/task_runs/count`: the matching task runs per state type, every type present.
async fn count_by_state(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<Related>,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let counts = task_runs::count_by_state(&mut c, ws.id(), &body.0).await?;
    let out: Map<String, Value> = COUNT_ORDER
        .iter()
        .map(|t| {
            let n: i64 = counts
                .iter()
                .filter(|(s, _)| s.as_deref() == Some(t.as_str()))
                .map(|(_, n)| n)
                .sum();
            (t.as_str().to_string(), Value::from(n))
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Finished task runs of one bucket of the dashboard.
#[derive(Serialize, Default, Clone, Copy)]
struct Bucket {
    completed: i64,
    failed: i64,
}

const BUCKETS: i64 = 20;

/// `POST /ui/task_runs/dashboard/counts`: finished task runs (FAILED and CRASHED count as
/// failed, the other terminal types as completed) in twenty equal buckets of start time, from
/// `task_runs.start_time.after_` (to the minute) to the end of the minute of `before_` or now.
async fn dashboard_counts(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<Related>,
) -> ApiResult<HttpResponse> {
    let mut related = body.0;
    let mut runs = related.task_runs.take().unwrap_or_default();
    let window = runs.start_time.as_ref().map(|t| (t.after_, t.before_));
    let Some((Some(after), before)) = window else {
        return Err(ApiError::unprocessable(
            "task_runs.start_time.after_ is required",
        ));
    };
    let minute = TimeDelta::minutes(1);
    let start = after.duration_trunc(minute).unwrap_or(after);
    let last = before.unwrap_or_else(crate::time::now);
    // The end of that minute (the last representable instant at the far end of time).
    let end = last
        .duration_trunc(minute)
        .unwrap_or(last)
        .checked_add_signed(minute - TimeDelta::microseconds(1))
        .unwrap_or(last);
    let window_us = (end - start).num_microseconds().unwrap_or(i64::MAX);
    // Python's `timedelta / 20`: to the nearest microsecond.
    let step_us = ((window_us as f64) / BUCKETS as f64).round_ties_even() as i64;
    runs.state = Some(StateFilter {
        state_type: Some(StringsFilter {
            any_: Some(
                StateType::ALL
                    .iter()
                    .filter(|t| t.is_terminal())
                    .map(|t| t.as_str().to_string())
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    });
    related.task_runs = Some(runs);
    let mut c = state.stores.orion.read().await?;
    let groups = task_runs::count_by_start_interval(
        &mut c,
        ws.id(),
        &related,
        &start.naive_utc(),
        step_us.max(1),
    )
    .await?;
    let mut buckets = [Bucket::default(); BUCKETS as usize];
    for (interval, state_type, n) in groups {
        let Some(b) = usize::try_from(interval)
            .ok()
            .and_then(|i| buckets.get_mut(i))
        else {
            continue;
        };
        match state_type.as_deref() {
            Some("FAILED") | Some("CRASHED") => b.failed += n,
            _ => b.completed += n,
        }
    }
    Ok(HttpResponse::Ok().json(buckets))
}

/// A task run with the name of its flow run (`UITaskRun`).
#[derive(Serialize)]
struct WithFlowRunName<'a> {
    #[serde(flatten)]
    run: TaskRunOut<'a>,
    flow_run_name: Option<String>,
}

/// `GET /ui/task_runs/{id}`.
async fn read_with_flow_run_name(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let id: TaskRunId = id.typed();
    let mut c = state.stores.orion.read().await?;
    let (run, s) = task_runs::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Task not found"))?;
    let flow_run_name = match &run.flow_run_id {
        Some(fr) => flow_runs::find_name(&mut c, ws.id(), fr).await?,
        None => None,
    };
    let current = s.as_ref().and_then(task_state);
    Ok(HttpResponse::Ok().json(WithFlowRunName {
        run: TaskRunOut::new(&run, current.as_ref(), crate::time::now()),
        flow_run_name,
    }))
}
