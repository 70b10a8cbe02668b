//! The answers of flow and task runs (`FlowRunResponse`, `TaskRun`), serialised straight from
//! the stored rows, and the times they estimate (run time so far, lateness).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use super::convert::{flow_policy, flow_state, task_policy, task_state};
use crate::orchestration::{FlowRunPolicy, State, TaskRunPolicy};
use crate::storage::flow_runs::RunPoint;
use crate::storage::rows::{FlowRunRow, FlowRunStateRow, TaskRunRow, TaskRunStateRow};
use crate::wire::{json_text, opt_ts, round_secs, JsonText, Ts};

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Run time so far: the stored total plus the current RUNNING stretch.
fn estimated_run_time(
    total: f64,
    state_type: &Option<String>,
    state_ts: &Option<NaiveDateTime>,
    now: DateTime<Utc>,
) -> f64 {
    match (state_type.as_deref(), state_ts) {
        (Some("RUNNING"), Some(t)) => {
            total + (now - utc(*t)).num_microseconds().unwrap_or(0) as f64 / 1e6
        }
        _ => total,
    }
}

/// How late the run started (or is, if it has not started yet).
fn start_delta(
    start: &Option<NaiveDateTime>,
    expected: &Option<NaiveDateTime>,
    state_type: &Option<String>,
    now: DateTime<Utc>,
) -> f64 {
    let micros = match (start, expected) {
        (Some(s), Some(e)) => (*s - *e).num_microseconds().unwrap_or(0),
        (None, Some(e))
            if matches!(
                state_type.as_deref(),
                Some("SCHEDULED") | Some("PENDING") | None
            ) =>
        {
            (now - utc(*e)).num_microseconds().unwrap_or(0)
        }
        _ => 0,
    };
    (micros.max(0)) as f64 / 1e6
}

/// The columns of a flow or task run that its estimated times come from.
pub struct Clock<'a> {
    pub total_run_time: f64,
    pub state_type: &'a Option<String>,
    pub state_name: &'a Option<String>,
    pub state_timestamp: &'a Option<NaiveDateTime>,
    pub start_time: &'a Option<NaiveDateTime>,
    pub expected_start_time: &'a Option<NaiveDateTime>,
}

/// `Clock` from a flow or task run row.
macro_rules! clock_from {
    ($($row:ty),*) => {$(
        impl<'a> From<&'a $row> for Clock<'a> {
            fn from(r: &'a $row) -> Self {
                Clock {
                    total_run_time: r.total_run_time,
                    state_type: &r.state_type,
                    state_name: &r.state_name,
                    state_timestamp: &r.state_timestamp,
                    start_time: &r.start_time,
                    expected_start_time: &r.expected_start_time,
                }
            }
        }
    )*};
}
clock_from!(FlowRunRow, TaskRunRow, RunPoint);

impl Clock<'_> {
    /// (`estimated_run_time`, `estimated_start_time_delta`) at `now`, rounded as the reference
    /// prints them.
    pub fn estimates(&self, now: DateTime<Utc>) -> (f64, f64) {
        (
            round_secs(estimated_run_time(
                self.total_run_time,
                self.state_type,
                self.state_timestamp,
                now,
            )),
            round_secs(start_delta(
                self.start_time,
                self.expected_start_time,
                self.state_type,
                now,
            )),
        )
    }
}

/// `FlowRunResponse`, serialised straight from the row (list answers of hundreds of runs spent
/// a third of their time allocating and freeing `Value` trees).
#[derive(Serialize)]
pub struct FlowRunOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    flow_id: &'a str,
    state_id: Option<&'a str>,
    deployment_id: Option<&'a str>,
    deployment_version: Option<&'a str>,
    work_queue_id: Option<&'a str>,
    work_queue_name: Option<&'a str>,
    flow_version: Option<&'a str>,
    parameters: JsonText<'a>,
    idempotency_key: Option<&'a str>,
    context: JsonText<'a>,
    empirical_policy: FlowRunPolicy,
    tags: JsonText<'a>,
    labels: JsonText<'a>,
    parent_task_run_id: Option<&'a str>,
    state_type: Option<&'a str>,
    state_name: Option<&'a str>,
    run_count: i64,
    expected_start_time: Option<Ts<'a>>,
    next_scheduled_start_time: Option<Ts<'a>>,
    start_time: Option<Ts<'a>>,
    end_time: Option<Ts<'a>>,
    total_run_time: f64,
    estimated_run_time: f64,
    estimated_start_time_delta: f64,
    auto_scheduled: bool,
    infrastructure_document_id: Option<&'a str>,
    infrastructure_pid: Option<&'a str>,
    created_by: JsonText<'a>,
    /// `None` leaves the field out (a worker's poll answer names the pool one level up).
    #[serde(skip_serializing_if = "Option::is_none")]
    work_pool_id: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    work_pool_name: Option<Option<&'a str>>,
    state: Option<&'a State>,
    job_variables: JsonText<'a>,
}

impl<'a> FlowRunOut<'a> {
    pub fn new(r: &'a FlowRunRow, state: Option<&'a State>, now: DateTime<Utc>) -> Self {
        let (estimated_run_time, estimated_start_time_delta) = Clock::from(r).estimates(now);
        FlowRunOut {
            id: &r.id,
            created: Ts(&r.created),
            updated: Ts(&r.updated),
            name: &r.name,
            flow_id: &r.flow_id,
            state_id: r.state_id.as_deref(),
            deployment_id: r.deployment_id.as_deref(),
            deployment_version: r.deployment_version.as_deref(),
            work_queue_id: r.work_queue_id.as_deref(),
            work_queue_name: r.work_queue_name.as_deref(),
            flow_version: r.flow_version.as_deref(),
            parameters: json_text(&r.parameters, "{}"),
            idempotency_key: r.idempotency_key.as_deref(),
            context: json_text(&r.context, "{}"),
            empirical_policy: flow_policy(r),
            tags: json_text(&r.tags, "[]"),
            labels: json_text(&r.labels, "{}"),
            parent_task_run_id: r.parent_task_run_id.as_deref(),
            state_type: r.state_type.as_deref(),
            state_name: r.state_name.as_deref(),
            run_count: r.run_count,
            expected_start_time: opt_ts(&r.expected_start_time),
            next_scheduled_start_time: opt_ts(&r.next_scheduled_start_time),
            start_time: opt_ts(&r.start_time),
            end_time: opt_ts(&r.end_time),
            total_run_time: round_secs(r.total_run_time),
            estimated_run_time,
            estimated_start_time_delta,
            auto_scheduled: r.auto_scheduled,
            infrastructure_document_id: r.infrastructure_document_id.as_deref(),
            infrastructure_pid: r.infrastructure_pid.as_deref(),
            created_by: json_text(r.created_by.as_deref().unwrap_or("null"), "null"),
            work_pool_id: Some(r.work_pool_id.as_deref()),
            work_pool_name: Some(r.work_pool_name.as_deref()),
            state,
            job_variables: json_text(&r.job_variables, "{}"),
        }
    }

    /// Without `work_pool_id` and `work_pool_name`.
    pub fn without_pool(mut self) -> Self {
        self.work_pool_id = None;
        self.work_pool_name = None;
        self
    }
}

/// `TaskRun`, serialised straight from the row.
#[derive(Serialize)]
pub struct TaskRunOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    flow_run_id: Option<&'a str>,
    task_key: &'a str,
    dynamic_key: &'a str,
    cache_key: Option<&'a str>,
    cache_expiration: Option<Ts<'a>>,
    task_version: Option<&'a str>,
    empirical_policy: TaskRunPolicy,
    tags: JsonText<'a>,
    labels: JsonText<'a>,
    state_id: Option<&'a str>,
    task_inputs: JsonText<'a>,
    state_type: Option<&'a str>,
    state_name: Option<&'a str>,
    run_count: i64,
    flow_run_run_count: i64,
    expected_start_time: Option<Ts<'a>>,
    next_scheduled_start_time: Option<Ts<'a>>,
    start_time: Option<Ts<'a>>,
    end_time: Option<Ts<'a>>,
    total_run_time: f64,
    estimated_run_time: f64,
    estimated_start_time_delta: f64,
    state: Option<&'a State>,
}

impl<'a> TaskRunOut<'a> {
    pub fn new(r: &'a TaskRunRow, state: Option<&'a State>, now: DateTime<Utc>) -> Self {
        let (estimated_run_time, estimated_start_time_delta) = Clock::from(r).estimates(now);
        TaskRunOut {
            id: &r.id,
            created: Ts(&r.created),
            updated: Ts(&r.updated),
            name: &r.name,
            flow_run_id: r.flow_run_id.as_deref(),
            task_key: &r.task_key,
            dynamic_key: &r.dynamic_key,
            cache_key: r.cache_key.as_deref(),
            cache_expiration: opt_ts(&r.cache_expiration),
            task_version: r.task_version.as_deref(),
            empirical_policy: task_policy(r),
            tags: json_text(&r.tags, "[]"),
            labels: json_text(&r.labels, "{}"),
            state_id: r.state_id.as_deref(),
            task_inputs: json_text(&r.task_inputs, "{}"),
            state_type: r.state_type.as_deref(),
            state_name: r.state_name.as_deref(),
            run_count: r.run_count,
            flow_run_run_count: r.flow_run_run_count,
            expected_start_time: opt_ts(&r.expected_start_time),
            next_scheduled_start_time: opt_ts(&r.next_scheduled_start_time),
            start_time: opt_ts(&r.start_time),
            end_time: opt_ts(&r.end_time),
            total_run_time: round_secs(r.total_run_time),
            estimated_run_time,
            estimated_start_time_delta,
            state,
        }
    }
}

/// A stored flow or task run, and how its answer is built: list handlers of both kinds share
/// [`current_states`] and [`answers`].
pub trait RunRow: Sized {
    type StateRow;
    type Out<'a>: Serialize
    where
        Self: 'a;

    fn current_state(s: &Self::StateRow) -> Option<State>;
    fn answer<'a>(&'a self, state: Option<&'a State>, now: DateTime<Utc>) -> Self::Out<'a>;
}

impl RunRow for FlowRunRow {
    type StateRow = FlowRunStateRow;
    type Out<'a> = FlowRunOut<'a>;

    fn current_state(s: &FlowRunStateRow) -> Option<State> {
        flow_state(s)
    }

    fn answer<'a>(&'a self, state: Option<&'a State>, now: DateTime<Utc>) -> FlowRunOut<'a> {
        FlowRunOut::new(self, state, now)
    }
}

impl RunRow for TaskRunRow {
    type StateRow = TaskRunStateRow;
    type Out<'a> = TaskRunOut<'a>;

    fn current_state(s: &TaskRunStateRow) -> Option<State> {
        task_state(s)
    }

    fn answer<'a>(&'a self, state: Option<&'a State>, now: DateTime<Utc>) -> TaskRunOut<'a> {
        TaskRunOut::new(self, state, now)
    }
}

/// The current states of listed runs (rows with their state rows), which [`answers`] borrow.
pub fn current_states<R: RunRow>(rows: &[(R, Option<R::StateRow>)]) -> Vec<Option<State>> {
    rows.iter()
        .map(|(_, s)| s.as_ref().and_then(R::current_state))
        .collect()
}

/// The answers of listed runs, serialised straight from the rows (no `Value` per run).
pub fn answers<'a, R: RunRow>(
    rows: &'a [(R, Option<R::StateRow>)],
    states: &'a [Option<State>],
) -> Vec<R::Out<'a>> {
    let now = crate::time::now();
    rows.iter()
        .zip(states)
        .map(|((r, _), s)| r.answer(s.as_ref(), now))
        .collect()
}
