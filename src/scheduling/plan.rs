//! Planning scheduled runs: which dates a deployment's schedules want in the window
//! (at least `min_runs` and `min_time` ahead, at most `max_runs` and `max_time`, like the
//! reference server, which stores a schedule's `max_scheduled_runs` without applying it) and
//! the rows for them. Runs carry the idempotency key `scheduled {deployment} {schedule} {date}`,
//! so two schedulers (or replicas) never create a run twice. Used by the scheduler service and
//! by the API (`POST /deployments/{id}/schedule`, a schedule's change).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::Schedule;
use crate::ids::{DeploymentId, FlowRunId, WorkspaceId};
use crate::orchestration::StateType;
use crate::state::AppState;
use crate::storage::deployments::{self as deps, DeploymentRow};
use crate::storage::rows::FlowRunRow;
use crate::storage::StorageResult;

/// Prefect's defaults (PREFECT_SERVER_SERVICES_SCHEDULER_*).
pub const MIN_RUNS: usize = 3;
pub const MAX_RUNS: usize = 100;
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
    let min_end = window
        .start
        .checked_add_signed(window.min_time)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut out = Vec::new();
    // Like the reference: no run *after* `end` (a run at `end` itself is one).
    let end = window
        .end
        .checked_add_signed(chrono::Duration::microseconds(1))
        .unwrap_or(window.end);
    for d in schedule.dates(window.start, end, max_runs) {
        out.push(d);
        // Like the reference: stop once both minimums are met (the run reaching min_end counts).
        if out.len() >= window.min_runs && d >= min_end {
            break;
        }
    }
    out
}

/// Creates the missing runs of one deployment; returns how many were created. Used by
/// `POST /deployments/{id}/schedule`, which (like the reference) schedules a paused deployment
/// too.
pub async fn schedule_deployment(
    state: &AppState,
    d: &DeploymentRow,
    window: &Window,
) -> StorageResult<usize> {
    schedule_deployments(state, std::slice::from_ref(d), window).await
}

/// One auto-scheduled run to create, before its key is checked.
struct Candidate<'a> {
    deployment: &'a DeploymentRow,
    schedule: usize,
    date: DateTime<Utc>,
    key: String,
}

/// Creates the missing runs of the active schedules of these deployments: [`plan_runs`], then
/// one batched insert. Returns how many runs were created.
pub async fn schedule_deployments(
    state: &AppState,
    deployments: &[DeploymentRow],
    window: &Window,
) -> StorageResult<usize> {
    let rows = plan_runs(state, deployments, window).await?;
    state
        .stores
        .orion
        .write_bulk(async move |c| {
            deps::insert_scheduled_runs(c, rows, deps::IfPaused::Insert).await
        })
        .await
}

/// The runs the active schedules of these deployments are missing, in a few queries: their
/// schedules, the keys already taken in the window and the pools of their queues.
pub async fn plan_runs(
    state: &AppState,
    deployments: &[DeploymentRow],
    window: &Window,
) -> StorageResult<Vec<FlowRunRow>> {
    if deployments.is_empty() {
        return Ok(Vec::new());
    }
    let mut c = state.stores.orion.read().await?;
    let ids: Vec<DeploymentId> = deployments.iter().map(|d| d.id.clone()).collect();
    let schedules: Vec<_> = deps::list_schedules(&mut c, &ids)
        .await?
        .into_iter()
        .filter(|s| s.active)
        .collect();
    let now = crate::time::now();
    let parsed: Vec<Option<Schedule>> = schedules
        .iter()
        .map(|s| {
            match serde_json::from_str::<Value>(&s.schedule)
                .map_err(|e| e.to_string())
                .and_then(|v| Schedule::parse(&v, now))
            {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(schedule_id = %s.id, error = %e, "skipping an unreadable schedule");
                    None
                }
            }
        })
        .collect();
    let by_id: HashMap<&str, &DeploymentRow> =
        deployments.iter().map(|d| (d.id.as_str(), d)).collect();

    // Every date each active schedule wants in the window, with its idempotency key.
    let mut candidates: Vec<Candidate> = Vec::new();
    for (i, (s, p)) in schedules.iter().zip(&parsed).enumerate() {
        let (Some(p), Some(d)) = (p, by_id.get(s.deployment_id.as_str())) else {
            continue;
        };
        for date in pick_dates(p, window, window.max_runs) {
            candidates.push(Candidate {
                deployment: d,
                schedule: i,
                key: format!("scheduled {} {} {}", d.id, s.id, python_str(&date)),
                date,
            });
        }
    }
    let (Some(from), Some(to)) = (
        candidates.iter().map(|c| c.date).min(),
        candidates.iter().map(|c| c.date).max(),
    ) else {
        return Ok(Vec::new());
    };

    // Skip the dates that already have a run, so steady-state passes write nothing; the insert
    // itself still skips keys taken meanwhile (another pass or another process).
    let mut taken: HashSet<String> = HashSet::new();
    let mut by_ws: HashMap<&WorkspaceId, Vec<DeploymentId>> = HashMap::new();
    for d in deployments {
        by_ws.entry(&d.workspace_id).or_default().push(d.id.clone());
    }
    for (ws, ids) in &by_ws {
        taken.extend(
            deps::scheduled_keys_in_window(&mut c, ws, ids, from.naive_utc(), to.naive_utc())
                .await?,
        );
    }
    candidates.retain(|c| !taken.contains(&c.key));
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // One order for every process, so two schedulers inserting the same keys wait on each other
    // in the same order instead of deadlocking.
    candidates.sort_unstable_by(|a, b| a.key.cmp(&b.key));

    let queue_ids: Vec<String> = {
        let set: HashSet<&String> = candidates
            .iter()
            .filter_map(|c| c.deployment.work_queue_id.as_ref())
            .collect();
        set.into_iter().cloned().collect()
    };
    let pools = crate::storage::work_pools::pools_of_queues(&mut c, &queue_ids).await?;

    // What every run of one (deployment, schedule) shares.
    struct Shared {
        parameters: String,
        tags: String,
        labels: String,
        created_by: String,
    }
    let mut shared: HashMap<usize, Shared> = HashMap::new();
    let naive_now = now.naive_utc();
    let mut rows = Vec::with_capacity(candidates.len());
    for c in candidates {
        let d = c.deployment;
        let s = &schedules[c.schedule];
        let sh = shared.entry(c.schedule).or_insert_with(|| {
            let mut params: Map<String, Value> =
                serde_json::from_str(&d.parameters).unwrap_or_default();
            params.extend(
                serde_json::from_str::<Map<String, Value>>(&s.parameters).unwrap_or_default(),
            );
            let mut labels: Map<String, Value> =
                serde_json::from_str(&d.labels).unwrap_or_default();
            labels.insert(
                "prefect.flow.id".into(),
                Value::String(d.flow_id.to_string()),
            );
            labels.insert(
                "prefect.deployment.id".into(),
                Value::String(d.id.to_string()),
            );
            // Like the reference: "auto-scheduled" first, then the deployment's tags.
            let mut tags = vec![Value::String("auto-scheduled".into())];
            tags.extend(serde_json::from_str::<Vec<Value>>(&d.tags).unwrap_or_default());
            let display = s.slug.clone().unwrap_or_else(|| {
                parsed[c.schedule]
                    .as_ref()
                    .map(|p| p.kind().to_string())
                    .unwrap_or_default()
            });
            Shared {
                parameters: Value::Object(params).to_string(),
                tags: Value::Array(tags).to_string(),
                labels: Value::Object(labels).to_string(),
                created_by: json!({"id": s.id, "type": "SCHEDULE", "display_value": display})
                    .to_string(),
            }
        });
        let pool = d.work_queue_id.as_ref().and_then(|q| pools.get(q));
        let run_id = FlowRunId::random();
        // SCHEDULED with no state row: the state takes the run's id and is rebuilt from the
        // run's columns until the first transition writes it (`flow_runs::unstored_state`).
        rows.push(FlowRunRow {
            id: run_id.clone(),
            workspace_id: d.workspace_id.clone(),
            created: naive_now,
            updated: naive_now,
            name: crate::runs::names::generate(),
            flow_id: d.flow_id.clone(),
            state_id: Some(run_id.to_string()),
            state_type: Some(StateType::Scheduled.as_str().into()),
            state_name: Some(StateType::Scheduled.default_name().into()),
            state_timestamp: Some(naive_now),
            deployment_id: Some(d.id.clone()),
            deployment_version: d.version.clone(),
            work_queue_id: d.work_queue_id.clone(),
            work_queue_name: d.work_queue_name.clone(),
            work_pool_id: pool.map(|p| p.0.clone()),
            work_pool_name: pool.map(|p| p.1.clone()),
            flow_version: None,
            parameters: sh.parameters.clone(),
            idempotency_key: Some(c.key),
            context: "{}".into(),
            empirical_policy: "{}".into(),
            tags: sh.tags.clone(),
            labels: sh.labels.clone(),
            parent_task_run_id: None,
            run_count: 0,
            expected_start_time: Some(c.date.naive_utc()),
            next_scheduled_start_time: Some(c.date.naive_utc()),
            start_time: None,
            end_time: None,
            total_run_time: 0.0,
            auto_scheduled: true,
            infrastructure_document_id: d.infrastructure_document_id.clone(),
            infrastructure_pid: None,
            created_by: Some(sh.created_by.clone()),
            job_variables: "{}".into(),
        });
    }
    Ok(rows)
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

    #[test]
    fn a_window_at_the_end_of_time_does_not_overflow() {
        let end = DateTime::<Utc>::MAX_UTC;
        let start = end - chrono::Duration::hours(5);
        let hourly = Schedule::parse(&json!({"interval": 3600}), start).expect("s");
        let w = Window {
            start,
            end,
            min_runs: MIN_RUNS,
            max_runs: MAX_RUNS,
            min_time: chrono::Duration::days(365_000),
        };
        assert_eq!(pick_dates(&hourly, &w, MAX_RUNS).len(), 5);
    }
}
