//! Conversions between stored rows and the orchestration model, and the JSON the API answers
//! with (FlowRunResponse, TaskRun, State), matching the reference server's shapes.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::ids::WorkspaceId;
use crate::orchestration::{
    EnclosingFlowRun, FlowRunPolicy, RunSnapshot, RunUpdate, State, StateDetails, StateType,
    TaskRunPolicy,
};
use crate::storage::rows::{FlowRunRow, FlowRunStateRow, TaskRunRow, TaskRunStateRow};
use crate::wire::{json_text, opt_ts, round_secs, JsonText, Ts};

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn opt_utc(t: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    t.map(utc)
}

fn uuid(s: &Option<String>) -> Option<Uuid> {
    s.as_deref().and_then(|s| Uuid::parse_str(s).ok())
}

/// A stored state as the orchestration model (None only for a corrupt row).
fn state_from_parts(
    id: &str,
    state_type: &str,
    name: &str,
    timestamp: NaiveDateTime,
    message: &Option<String>,
    data: &Option<String>,
    details: &str,
) -> Option<State> {
    Some(State {
        id: Uuid::parse_str(id).ok()?,
        state_type: state_type.parse::<StateType>().ok()?,
        name: name.to_string(),
        timestamp: utc(timestamp),
        message: message.clone(),
        data: data.as_deref().and_then(|d| serde_json::from_str(d).ok()),
        state_details: serde_json::from_str::<StateDetails>(details).unwrap_or_default(),
    })
}

pub fn flow_state(r: &FlowRunStateRow) -> Option<State> {
    state_from_parts(
        &r.id,
        &r.state_type,
        &r.name,
        r.timestamp,
        &r.message,
        &r.data,
        &r.state_details,
    )
}

/// The current states of `runs`, in their order, from their state rows by id (what the
/// polls read in one query); response bodies borrow them.
pub fn flow_states_by_id<'a>(
    runs: impl Iterator<Item = &'a FlowRunRow>,
    states: &std::collections::HashMap<String, FlowRunStateRow>,
) -> Vec<Option<State>> {
    runs.map(|r| {
        r.state_id
            .as_ref()
            .and_then(|id| states.get(id))
            .and_then(flow_state)
    })
    .collect()
}

pub fn task_state(r: &TaskRunStateRow) -> Option<State> {
    state_from_parts(
        &r.id,
        &r.state_type,
        &r.name,
        r.timestamp,
        &r.message,
        &r.data,
        &r.state_details,
    )
}

fn details_text(s: &State) -> String {
    serde_json::to_string(&s.state_details).unwrap_or_else(|_| "{}".into())
}

fn data_text(s: &State) -> Option<String> {
    s.data
        .as_ref()
        .filter(|d| !d.is_null())
        .map(|d| d.to_string())
}

pub fn flow_state_row(
    ws: &WorkspaceId,
    run_id: &str,
    s: &State,
    now: NaiveDateTime,
) -> FlowRunStateRow {
    FlowRunStateRow {
        id: s.id.to_string(),
        workspace_id: ws.clone(),
        created: now,
        flow_run_id: run_id.to_string(),
        state_type: s.state_type.as_str().to_string(),
        name: s.name.clone(),
        timestamp: s.timestamp.naive_utc(),
        message: s.message.clone(),
        data: data_text(s),
        state_details: details_text(s),
    }
}

pub fn task_state_row(
    ws: &WorkspaceId,
    run_id: &str,
    s: &State,
    now: NaiveDateTime,
) -> TaskRunStateRow {
    TaskRunStateRow {
        id: s.id.to_string(),
        workspace_id: ws.clone(),
        created: now,
        task_run_id: run_id.to_string(),
        state_type: s.state_type.as_str().to_string(),
        name: s.name.clone(),
        timestamp: s.timestamp.naive_utc(),
        message: s.message.clone(),
        data: data_text(s),
        state_details: details_text(s),
    }
}

pub fn flow_policy(run: &FlowRunRow) -> FlowRunPolicy {
    serde_json::from_str(&run.empirical_policy).unwrap_or_default()
}

pub fn task_policy(run: &TaskRunRow) -> TaskRunPolicy {
    serde_json::from_str(&run.empirical_policy).unwrap_or_default()
}

/// What the rules need of a flow run.
pub fn flow_snapshot(
    run: &FlowRunRow,
    taken: &[NaiveDateTime],
    concurrency: Option<&(i32, i64, String)>,
) -> RunSnapshot {
    RunSnapshot {
        id: Uuid::parse_str(&run.id).unwrap_or_default(),
        run_count: run.run_count,
        start_time: opt_utc(run.start_time),
        end_time: opt_utc(run.end_time),
        total_run_time: run.total_run_time,
        expected_start_time: opt_utc(run.expected_start_time),
        next_scheduled_start_time: opt_utc(run.next_scheduled_start_time),
        deployment_id: uuid(&run.deployment_id),
        infrastructure_pid: run.infrastructure_pid.clone(),
        parent_task_run_id: uuid(&run.parent_task_run_id),
        flow_policy: flow_policy(run),
        taken_state_timestamps: taken.iter().map(|t| utc(*t)).collect(),
        deployment_concurrency: concurrency.map(|(limit, active, strategy)| {
            crate::orchestration::DeploymentConcurrency {
                limit: i64::from(*limit),
                active: *active,
                collision_strategy: strategy.clone(),
            }
        }),
        ..Default::default()
    }
}

/// What the rules need of a task run (and of its flow run).
pub fn task_snapshot(
    run: &TaskRunRow,
    flow_run: Option<(&FlowRunRow, Option<State>)>,
) -> RunSnapshot {
    RunSnapshot {
        id: Uuid::parse_str(&run.id).unwrap_or_default(),
        flow_run_id: uuid(&run.flow_run_id),
        run_count: run.run_count,
        start_time: opt_utc(run.start_time),
        end_time: opt_utc(run.end_time),
        total_run_time: run.total_run_time,
        expected_start_time: opt_utc(run.expected_start_time),
        next_scheduled_start_time: opt_utc(run.next_scheduled_start_time),
        task_policy: task_policy(run),
        flow_run_run_count: run.flow_run_run_count,
        flow_run: flow_run.map(|(fr, state)| EnclosingFlowRun {
            id: Uuid::parse_str(&fr.id).unwrap_or_default(),
            run_count: fr.run_count,
            state,
        }),
        ..Default::default()
    }
}

/// Applies the global transforms' column values to a flow run.
pub fn apply_flow_update(run: &mut FlowRunRow, u: &RunUpdate, now: NaiveDateTime) {
    if let Some(id) = u.state_id {
        run.state_id = Some(id.to_string());
        run.state_type = u.state_type.map(|t| t.as_str().to_string());
        run.state_name = u.state_name.clone();
        run.state_timestamp = u.state_timestamp.map(|t| t.naive_utc());
        run.run_count = u.run_count;
        run.start_time = u.start_time.map(|t| t.naive_utc());
        run.end_time = u.end_time.map(|t| t.naive_utc());
        run.total_run_time = u.total_run_time;
        run.expected_start_time = u.expected_start_time.map(|t| t.naive_utc());
        run.next_scheduled_start_time = u.next_scheduled_start_time.map(|t| t.naive_utc());
    }
    if let Some(p) = &u.empirical_policy {
        run.empirical_policy = serde_json::to_string(p).unwrap_or_else(|_| "{}".into());
    }
    run.updated = now;
}

pub fn apply_task_update(run: &mut TaskRunRow, u: &RunUpdate, now: NaiveDateTime) {
    if let Some(id) = u.state_id {
        run.state_id = Some(id.to_string());
        run.state_type = u.state_type.map(|t| t.as_str().to_string());
        run.state_name = u.state_name.clone();
        run.state_timestamp = u.state_timestamp.map(|t| t.naive_utc());
        run.run_count = u.run_count;
        run.flow_run_run_count = u.flow_run_run_count;
        run.start_time = u.start_time.map(|t| t.naive_utc());
        run.end_time = u.end_time.map(|t| t.naive_utc());
        run.total_run_time = u.total_run_time;
        run.expected_start_time = u.expected_start_time.map(|t| t.naive_utc());
        run.next_scheduled_start_time = u.next_scheduled_start_time.map(|t| t.naive_utc());
    }
    run.updated = now;
}

pub fn state_json(s: &State) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
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

impl<'a> From<&'a FlowRunRow> for Clock<'a> {
    fn from(r: &'a FlowRunRow) -> Self {
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

impl<'a> From<&'a TaskRunRow> for Clock<'a> {
    fn from(r: &'a TaskRunRow) -> Self {
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
/// a third of their time allocating and freeing `Value` trees). [`flow_run_json`] is the same
/// as a `Value`.
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

/// `FlowRunResponse` as a `Value`.
pub fn flow_run_json(r: &FlowRunRow, state: Option<&State>, now: DateTime<Utc>) -> Value {
    serde_json::to_value(FlowRunOut::new(r, state, now)).unwrap_or(Value::Null)
}

/// `TaskRun`, serialised straight from the row. [`task_run_json`] is the same as a `Value`.
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

/// `TaskRun` as a `Value`.
pub fn task_run_json(r: &TaskRunRow, state: Option<&State>, now: DateTime<Utc>) -> Value {
    serde_json::to_value(TaskRunOut::new(r, state, now)).unwrap_or(Value::Null)
}
