//! `/flow_runs/history` and `/task_runs/history`: runs bucketed by expected start time into
//! fixed intervals, counted per state, with summed run time and lateness.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::json::Json;
use crate::extract::Workspace;
use crate::ids::WorkspaceId;
use crate::query::Related;
use crate::state::AppState;
use crate::storage::history::{HistoryGroup, Window};
use crate::storage::{flow_runs, task_runs};
use crate::wire::round_secs;

/// Most intervals one request may ask for.
const MAX_INTERVALS: i64 = 500;

#[derive(Deserialize)]
pub struct HistoryBody {
    #[serde(with = "crate::time::req")]
    history_start: DateTime<Utc>,
    #[serde(with = "crate::time::req")]
    history_end: DateTime<Utc>,
    history_interval_seconds: f64,
    #[serde(flatten)]
    related: Related,
}

/// The runs of one state in one interval.
#[derive(Serialize)]
struct StateCount {
    state_type: String,
    state_name: String,
    count_runs: i64,
    sum_estimated_run_time: f64,
    sum_estimated_lateness: f64,
}

/// `HistoryResponse`: one interval.
#[derive(Serialize)]
struct Interval {
    interval_start: String,
    interval_end: String,
    states: Vec<StateCount>,
}

/// The intervals of `b`, each with its groups' counts. Groups come from the database already
/// placed in their interval (`storage::history`).
fn intervals(b: &HistoryBody, step: Duration, groups: Vec<HistoryGroup>) -> Vec<Interval> {
    let mut bounds = Vec::new();
    let mut start = b.history_start;
    while start < b.history_end {
        // An interval too long for the calendar ends with it (no overflow).
        let next = start
            .checked_add_signed(step)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        bounds.push((start, next));
        start = next;
    }
    // Per interval, the states' counts by (type, name): the answer lists them in that order.
    let mut counts: Vec<BTreeMap<(String, String), StateCount>> =
        bounds.iter().map(|_| BTreeMap::new()).collect();
    for g in groups {
        let Some(slot) = usize::try_from(g.interval)
            .ok()
            .and_then(|k| counts.get_mut(k))
        else {
            continue;
        };
        let key = (
            g.state_type.unwrap_or_default(),
            g.state_name.unwrap_or_default(),
        );
        // (type, name) pairs that differ only by a missing state merge, as one key.
        let c = slot.entry(key.clone()).or_insert_with(|| StateCount {
            state_type: key.0,
            state_name: key.1,
            count_runs: 0,
            sum_estimated_run_time: 0.0,
            sum_estimated_lateness: 0.0,
        });
        c.count_runs += g.count;
        c.sum_estimated_run_time = round_secs(c.sum_estimated_run_time + g.run_time);
        c.sum_estimated_lateness = round_secs(c.sum_estimated_lateness + g.lateness);
    }
    bounds
        .into_iter()
        .zip(counts)
        .map(|((start, next), counts)| Interval {
            interval_start: crate::time::format(&start),
            interval_end: crate::time::format(&next),
            states: counts.into_values().collect(),
        })
        .collect()
}

/// The interval length of `b`, after checking it and the number of intervals it makes.
fn step_of(b: &HistoryBody) -> ApiResult<Duration> {
    if b.history_interval_seconds < 1.0 {
        return Err(ApiError::unprocessable(
            "History interval must not be less than 1 second.",
        ));
    }
    // In seconds: a span of the whole calendar does not fit in microseconds.
    let span = (b.history_end - b.history_start).num_milliseconds() as f64 / 1e3;
    let count = (span / b.history_interval_seconds).ceil() as i64;
    if count > MAX_INTERVALS {
        return Err(ApiError::unprocessable(format!(
            "History interval would produce more than {MAX_INTERVALS} intervals."
        )));
    }
    Ok(Duration::microseconds(
        (b.history_interval_seconds * 1e6) as i64,
    ))
}

/// Which runs a history counts.
#[derive(Clone, Copy)]
enum Runs {
    Flow,
    Task,
}

async fn history(
    state: &AppState,
    ws: &WorkspaceId,
    b: &HistoryBody,
    runs: Runs,
) -> ApiResult<Vec<Interval>> {
    let step = step_of(b)?;
    let window = Window {
        start: b.history_start.naive_utc(),
        end: b.history_end.naive_utc(),
        step_us: step.num_microseconds().unwrap_or(i64::MAX),
        now: crate::time::now_naive(),
    };
    let mut c = state.stores.orion.read().await?;
    let groups = match runs {
        Runs::Flow => flow_runs::history_groups(&mut c, ws, &b.related, &window).await?,
        Runs::Task => task_runs::history_groups(&mut c, ws, &b.related, &window).await?,
    };
    Ok(intervals(b, step, groups))
}

pub async fn flow_run_history(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<HistoryBody>,
) -> ApiResult<HttpResponse> {
    let answer = history(&state, ws.id(), &body.into_inner(), Runs::Flow).await?;
    Ok(HttpResponse::Ok().json(answer))
}

pub async fn task_run_history(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<HistoryBody>,
) -> ApiResult<HttpResponse> {
    let answer = history(&state, ws.id(), &body.into_inner(), Runs::Task).await?;
    Ok(HttpResponse::Ok().json(answer))
}
