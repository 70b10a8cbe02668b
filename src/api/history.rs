//! `/flow_runs/history` and `/task_runs/history`: runs bucketed by expected start time into
//! fixed intervals, counted per state, with summed run time and lateness.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::json::Json;
use crate::extract::Workspace;
use crate::runs::convert::{flow_run_json, task_run_json};
use crate::state::AppState;
use crate::storage::filters::Related;
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

/// (type, name, estimated run time, lateness) of one run.
type Point = (DateTime<Utc>, String, String, f64, f64);

fn buckets(b: &HistoryBody, points: Vec<Point>) -> ApiResult<Value> {
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
    let mut out = Vec::new();
    let mut start = b.history_start;
    while start < b.history_end {
        // An interval too long for the calendar ends with it (no overflow).
        let next = start
            .checked_add_signed(step)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut groups: BTreeMap<(String, String), (i64, f64, f64)> = BTreeMap::new();
        for (t, ty, name, run_time, late) in &points {
            if *t >= start && *t < next {
                let g = groups.entry((ty.clone(), name.clone())).or_default();
                g.0 += 1;
                g.1 += run_time;
                g.2 += late;
            }
        }
        let states: Vec<Value> = groups
            .into_iter()
            .map(|((ty, name), (n, rt, late))| {
                json!({"state_type": ty, "state_name": name, "count_runs": n, "sum_estimated_run_time": rt, "sum_estimated_lateness": late})
            })
            .collect();
        out.push(json!({
            "interval_start": crate::time::format(&start),
            "interval_end": crate::time::format(&next),
            "states": states,
        }));
        start = next;
    }
    Ok(Value::Array(out))
}

fn point(v: &Value, t: DateTime<Utc>) -> Point {
    (
        t,
        v["state_type"].as_str().unwrap_or_default().to_string(),
        v["state_name"].as_str().unwrap_or_default().to_string(),
        v["estimated_run_time"].as_f64().unwrap_or(0.0),
        v["estimated_start_time_delta"].as_f64().unwrap_or(0.0),
    )
}

/// Which runs a history counts.
#[derive(Clone, Copy)]
enum Runs {
    Flow,
    Task,
}

async fn history(state: &AppState, ws: &str, b: &HistoryBody, runs: Runs) -> ApiResult<Value> {
    let (start, end) = (b.history_start.naive_utc(), b.history_end.naive_utc());
    let mut c = state.stores.orion.read().await?;
    let now = crate::time::now();
    let points = match runs {
        Runs::Flow => flow_runs::list_history_rows(&mut c, ws, &b.related, start, end)
            .await?
            .iter()
            .filter_map(|r| {
                let t = r.expected_start_time?;
                Some(point(&flow_run_json(r, None, now), t.and_utc()))
            })
            .collect(),
        Runs::Task => task_runs::list_history_rows(&mut c, ws, &b.related, start, end)
            .await?
            .iter()
            .filter_map(|r| {
                let t = r.expected_start_time?;
                Some(point(&task_run_json(r, None, now), t.and_utc()))
            })
            .collect(),
    };
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
