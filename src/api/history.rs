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
use crate::runs::answers::Clock;
use crate::state::AppState;
use crate::storage::{flow_runs, task_runs};

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

/// One run as a history counts it.
struct Point {
    at: DateTime<Utc>,
    state_type: String,
    state_name: String,
    run_time: f64,
    lateness: f64,
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

/// Microseconds in `d`, without overflow for any span of the calendar.
fn micros(d: Duration) -> i128 {
    i128::from(d.num_seconds()) * 1_000_000 + i128::from(d.subsec_nanos() / 1_000)
}

/// The intervals of `b` with the points counted into them. A point goes to its interval by
/// division (one pass over the points, whatever the number of intervals).
fn buckets(b: &HistoryBody, points: Vec<Point>) -> ApiResult<Vec<Interval>> {
    if b.history_interval_seconds < 1.0 {
        return Err(ApiError::unprocessable(
            "History interval must not be less than 1 second.",
        ));
    }
    let step = Duration::microseconds((b.history_interval_seconds * 1e6) as i64);
    // In seconds: a span of the whole calendar does not fit in microseconds.
    let span = (b.history_end - b.history_start).num_milliseconds() as f64 / 1e3;
    let count = (span / b.history_interval_seconds).ceil() as i64;
    if count > MAX_INTERVALS {
        return Err(ApiError::unprocessable(format!(
            "History interval would produce more than {MAX_INTERVALS} intervals."
        )));
    }
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
    let mut groups: Vec<BTreeMap<(String, String), StateCount>> =
        bounds.iter().map(|_| BTreeMap::new()).collect();
    let step_us = micros(step).max(1);
    for p in points {
        if p.at < b.history_start {
            continue;
        }
        let k = micros(p.at - b.history_start) / step_us;
        let Some(g) = usize::try_from(k).ok().and_then(|k| groups.get_mut(k)) else {
            continue;
        };
        let key = (p.state_type, p.state_name);
        let g = g.entry(key.clone()).or_insert_with(|| StateCount {
            state_type: key.0,
            state_name: key.1,
            count_runs: 0,
            sum_estimated_run_time: 0.0,
            sum_estimated_lateness: 0.0,
        });
        g.count_runs += 1;
        g.sum_estimated_run_time += p.run_time;
        g.sum_estimated_lateness += p.lateness;
    }
    Ok(bounds
        .into_iter()
        .zip(groups)
        .map(|((start, next), groups)| Interval {
            interval_start: crate::time::format(&start),
            interval_end: crate::time::format(&next),
            states: groups.into_values().collect(),
        })
        .collect())
}

/// Which runs a history counts.
#[derive(Clone, Copy)]
enum Runs {
    Flow,
    Task,
}

impl Point {
    /// The point of a run (flow or task run), when it has an expected start.
    fn of(r: Clock, now: DateTime<Utc>) -> Option<Point> {
        let at = (*r.expected_start_time)?.and_utc();
        let (run_time, lateness) = r.estimates(now);
        Some(Point {
            at,
            state_type: r.state_type.clone().unwrap_or_default(),
            state_name: r.state_name.clone().unwrap_or_default(),
            run_time,
            lateness,
        })
    }
}

async fn history(
    state: &AppState,
    ws: &WorkspaceId,
    b: &HistoryBody,
    runs: Runs,
) -> ApiResult<Vec<Interval>> {
    let (start, end) = (b.history_start.naive_utc(), b.history_end.naive_utc());
    let mut c = state.stores.orion.read().await?;
    let now = crate::time::now();
    let rows = match runs {
        Runs::Flow => flow_runs::list_history_rows(&mut c, ws, &b.related, start, end).await?,
        Runs::Task => task_runs::list_history_rows(&mut c, ws, &b.related, start, end).await?,
    };
    let points = rows
        .iter()
        .filter_map(|r| Point::of(r.into(), now))
        .collect();
    buckets(b, points)
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
