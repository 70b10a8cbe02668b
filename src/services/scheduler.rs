//! The scheduler: creates future SCHEDULED runs for the active schedules of unpaused
//! deployments — at least `min_runs` and at least `min_time` ahead, at most `max_runs` (or the
//! schedule's `max_scheduled_runs`) and `max_time`. Runs carry the idempotency key
//! `scheduled {deployment} {schedule} {date}`, so two schedulers (or replicas) never create a
//! run twice. A full pass runs every `scheduler_interval_ms`; a quick pass every
//! `recent_scheduler_interval_ms` picks up deployments changed in the last seconds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{BoxFuture, Service, Tick};
use crate::app::AppState;
use crate::orchestration::{State, StateType};
use crate::runs::convert::flow_state_row;
use crate::schedules::Schedule;
use crate::storage::deployments::{self as deps, DeploymentRow};
use crate::storage::rows::FlowRunRow;
use crate::storage::work_pools as wp;

/// Prefect's defaults (PREFECT_SERVER_SERVICES_SCHEDULER_*).
pub const MIN_RUNS: usize = 3;
pub const MAX_RUNS: usize = 100;
const BATCH: i64 = 200;

/// The span of time to fill.
#[derive(Debug, Clone)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub min_runs: usize,
    pub max_runs: usize,
    pub min_time: chrono::Duration,
}

impl Window {
    pub fn from_now(now: DateTime<Utc>) -> Window {
        Window {
            start: now,
            end: now + chrono::Duration::days(100),
            min_runs: MIN_RUNS,
            max_runs: MAX_RUNS,
            min_time: chrono::Duration::hours(1),
        }
    }
}

/// `str(datetime)` as Python prints it, used in the idempotency key.
fn python_str(t: &DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%d %H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
    }
}

/// The dates to schedule for one schedule: in order, until both minimums are met.
pub fn pick_dates(schedule: &Schedule, window: &Window, max_runs: usize) -> Vec<DateTime<Utc>> {
    let min_end = window.start + window.min_time;
    let mut out = Vec::new();
    for d in schedule.dates(window.start, window.end, max_runs) {
        out.push(d);
        // Like the reference: stop once both minimums are met (the run reaching min_end counts).
        if out.len() >= window.min_runs && d >= min_end {
            break;
        }
    }
    out
}

/// Creates the missing runs of one deployment; returns how many were created.
pub async fn schedule_deployment(
    state: &AppState,
    d: &DeploymentRow,
    window: &Window,
) -> Result<usize, String> {
    let db = &state.stores.orion;
    let schedules = deps::schedules(db, std::slice::from_ref(&d.id))
        .await
        .map_err(|e| e.to_string())?;
    let pool = match &d.work_queue_id {
        Some(q) => match wp::find_queue_by_id(db, &d.workspace_id, q)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(q) => wp::find_pool_by_id(db, &d.workspace_id, &q.work_pool_id)
                .await
                .map_err(|e| e.to_string())?,
            None => None,
        },
        None => None,
    };
    let now = crate::time::now();
    let mut rows = Vec::new();
    for s in schedules.iter().filter(|s| s.active) {
        let Ok(schedule) = serde_json::from_str::<Value>(&s.schedule)
            .map_err(|e| e.to_string())
            .and_then(|v| Schedule::parse(&v, now))
        else {
            tracing::warn!(schedule_id = %s.id, "skipping an unreadable schedule");
            continue;
        };
        let max = s
            .max_scheduled_runs
            .map(|m| m.max(0) as usize)
            .unwrap_or(window.max_runs);
        let mut params: Map<String, Value> =
            serde_json::from_str(&d.parameters).unwrap_or_default();
        params
            .extend(serde_json::from_str::<Map<String, Value>>(&s.parameters).unwrap_or_default());
        let mut labels: Map<String, Value> = serde_json::from_str(&d.labels).unwrap_or_default();
        labels.insert("prefect.flow.id".into(), Value::String(d.flow_id.clone()));
        labels.insert("prefect.deployment.id".into(), Value::String(d.id.clone()));
        for date in pick_dates(&schedule, window, max) {
            let run_id = Uuid::new_v4().to_string();
            let mut st = State::new(StateType::Scheduled, Uuid::now_v7(), now);
            st.state_details.scheduled_time = Some(date);
            st.state_details.flow_run_id = Uuid::parse_str(&run_id).ok();
            let naive_now = now.naive_utc();
            let run = FlowRunRow {
                id: run_id.clone(),
                workspace_id: d.workspace_id.clone(),
                created: naive_now,
                updated: naive_now,
                name: crate::runs::names::generate(),
                flow_id: d.flow_id.clone(),
                state_id: Some(st.id.to_string()),
                state_type: Some("SCHEDULED".into()),
                state_name: Some("Scheduled".into()),
                state_timestamp: Some(st.timestamp.naive_utc()),
                deployment_id: Some(d.id.clone()),
                deployment_version: d.version.clone(),
                work_queue_id: d.work_queue_id.clone(),
                work_queue_name: d.work_queue_name.clone(),
                work_pool_id: pool.as_ref().map(|p| p.id.clone()),
                work_pool_name: pool.as_ref().map(|p| p.name.clone()),
                flow_version: None,
                parameters: Value::Object(params.clone()).to_string(),
                idempotency_key: Some(format!("scheduled {} {} {}", d.id, s.id, python_str(&date))),
                context: "{}".into(),
                empirical_policy: "{}".into(),
                tags: d.tags.clone(),
                labels: Value::Object(labels.clone()).to_string(),
                parent_task_run_id: None,
                run_count: 0,
                expected_start_time: Some(date.naive_utc()),
                next_scheduled_start_time: Some(date.naive_utc()),
                start_time: None,
                end_time: None,
                total_run_time: 0.0,
                auto_scheduled: true,
                infrastructure_document_id: d.infrastructure_document_id.clone(),
                infrastructure_pid: None,
                created_by: Some(json!({"id": s.id, "type": "SCHEDULE", "display_value": s.slug.clone().unwrap_or_else(|| schedule.kind().into())}).to_string()),
                job_variables: "{}".into(),
            };
            let state_row = flow_state_row(&d.workspace_id, &run_id, &st, naive_now);
            rows.push((run, state_row));
        }
    }
    // Skip the times that already have a run, so steady-state passes write nothing.
    let existing: HashSet<String> = existing_keys(state, d).await?;
    rows.retain(|(r, _)| {
        r.idempotency_key
            .as_ref()
            .is_none_or(|k| !existing.contains(k))
    });
    deps::insert_scheduled_runs(db, &rows)
        .await
        .map_err(|e| e.to_string())
}

async fn existing_keys(state: &AppState, d: &DeploymentRow) -> Result<HashSet<String>, String> {
    crate::storage::flow_runs::idempotency_keys_of_deployment(&state.stores.orion, &d.id)
        .await
        .map_err(|e| e.to_string())
}

pub struct Scheduler {
    pub state: Arc<AppState>,
    /// Only deployments updated in the last few seconds.
    pub recent: bool,
}

impl Service for Scheduler {
    fn name(&self) -> &'static str {
        if self.recent {
            "recent-deployments-scheduler"
        } else {
            "scheduler"
        }
    }

    fn interval(&self) -> Duration {
        let s = &self.state.settings.services;
        Duration::from_millis(if self.recent {
            s.recent_scheduler_interval_ms
        } else {
            s.scheduler_interval_ms
        })
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, String>> {
        Box::pin(async move {
            let db = &self.state.stores.orion;
            let now = crate::time::now();
            let window = Window::from_now(now);
            let since = (now - chrono::Duration::seconds(10)).naive_utc();
            let mut after = String::new();
            let mut created = 0;
            loop {
                let batch = deps::schedulable(db, &after, BATCH)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(last) = batch.last() else { break };
                after = last.id.clone();
                for d in batch.iter().filter(|d| !self.recent || d.updated >= since) {
                    created += schedule_deployment(&self.state, d, &window).await?;
                }
                if (batch.len() as i64) < BATCH {
                    break;
                }
            }
            if created > 0 {
                tracing::info!(created, "scheduled flow runs");
            }
            Ok(Tick::Idle)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_at_least_min_runs_and_min_time() {
        let now = crate::time::parse("2026-06-01T00:00:00Z").expect("t");
        let hourly = Schedule::parse(
            &json!({"interval": 600, "anchor_date": "2026-01-01T00:00:00Z"}),
            now,
        )
        .expect("s");
        let w = Window::from_now(now);
        // Every 10 minutes: runs up to and including the first at least an hour ahead.
        assert_eq!(pick_dates(&hourly, &w, MAX_RUNS).len(), 7);
        let daily = Schedule::parse(
            &json!({"interval": 86400, "anchor_date": "2026-01-01T00:00:00Z"}),
            now,
        )
        .expect("s");
        assert_eq!(
            pick_dates(&daily, &w, MAX_RUNS).len(),
            3,
            "min_runs wins for sparse schedules"
        );
        assert_eq!(
            pick_dates(&hourly, &w, 2).len(),
            2,
            "max_scheduled_runs caps it"
        );
        assert_eq!(python_str(&now), "2026-06-01 00:00:00+00:00");
    }
}
