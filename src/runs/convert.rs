//! Conversions between stored rows and the orchestration model, and the JSON the API answers
//! with (FlowRunResponse, TaskRun, State), matching the reference server's shapes.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::orchestration::{
    EnclosingFlowRun, FlowRunPolicy, RunSnapshot, RunUpdate, State, StateDetails, StateType,
    TaskRunPolicy,
};
use crate::storage::rows::{FlowRunRow, FlowRunStateRow, TaskRunRow, TaskRunStateRow};
use crate::time::{opt_ts, ts};

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn opt_utc(t: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    t.map(utc)
}

fn uuid(s: &Option<String>) -> Option<Uuid> {
    s.as_deref().and_then(|s| Uuid::parse_str(s).ok())
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
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

pub fn flow_state_row(ws: &str, run_id: &str, s: &State, now: NaiveDateTime) -> FlowRunStateRow {
    FlowRunStateRow {
        id: s.id.to_string(),
        workspace_id: ws.to_string(),
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

pub fn task_state_row(ws: &str, run_id: &str, s: &State, now: NaiveDateTime) -> TaskRunStateRow {
    TaskRunStateRow {
        id: s.id.to_string(),
        workspace_id: ws.to_string(),
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

fn opt_state_json(s: Option<&State>) -> Value {
    s.map(state_json).unwrap_or(Value::Null)
}

/// Seconds as the reference server prints them (microsecond precision).
fn secs(v: f64) -> Value {
    json!(round_secs(v))
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

fn json_or(text: &str, default: Value) -> Value {
    match parse_json(text) {
        Value::Null => default,
        v => v,
    }
}

/// A stored timestamp, written as the API writes times.
struct Ts<'a>(&'a NaiveDateTime);

impl Serialize for Ts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time::format_naive(self.0))
    }
}

fn opt_t(t: &Option<NaiveDateTime>) -> Option<Ts<'_>> {
    t.as_ref().map(Ts)
}

/// A JSON column (stored as JSON text) copied into the answer as it is, without building a
/// tree of it; `default` when the text is not JSON or is `null`.
struct Embedded<'a> {
    text: &'a str,
    default: &'static str,
}

impl Serialize for Embedded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(self.text) {
            Ok(raw) if raw.get() != "null" => raw.serialize(s),
            _ => match serde_json::from_str::<&RawValue>(self.default) {
                Ok(raw) => raw.serialize(s),
                Err(_) => s.serialize_unit(),
            },
        }
    }
}

fn embedded<'a>(text: &'a str, default: &'static str) -> Embedded<'a> {
    Embedded { text, default }
}

/// Seconds as the reference server prints them (microsecond precision).
fn round_secs(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
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
    parameters: Embedded<'a>,
    idempotency_key: Option<&'a str>,
    context: Embedded<'a>,
    empirical_policy: FlowRunPolicy,
    tags: Embedded<'a>,
    labels: Embedded<'a>,
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
    created_by: Embedded<'a>,
    /// `None` leaves the field out (a worker's poll answer names the pool one level up).
    #[serde(skip_serializing_if = "Option::is_none")]
    work_pool_id: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    work_pool_name: Option<Option<&'a str>>,
    state: Option<&'a State>,
    job_variables: Embedded<'a>,
}

impl<'a> FlowRunOut<'a> {
    pub fn new(r: &'a FlowRunRow, state: Option<&'a State>, now: DateTime<Utc>) -> Self {
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
            parameters: embedded(&r.parameters, "{}"),
            idempotency_key: r.idempotency_key.as_deref(),
            context: embedded(&r.context, "{}"),
            empirical_policy: flow_policy(r),
            tags: embedded(&r.tags, "[]"),
            labels: embedded(&r.labels, "{}"),
            parent_task_run_id: r.parent_task_run_id.as_deref(),
            state_type: r.state_type.as_deref(),
            state_name: r.state_name.as_deref(),
            run_count: r.run_count,
            expected_start_time: opt_t(&r.expected_start_time),
            next_scheduled_start_time: opt_t(&r.next_scheduled_start_time),
            start_time: opt_t(&r.start_time),
            end_time: opt_t(&r.end_time),
            total_run_time: round_secs(r.total_run_time),
            estimated_run_time: round_secs(estimated_run_time(
                r.total_run_time,
                &r.state_type,
                &r.state_timestamp,
                now,
            )),
            estimated_start_time_delta: round_secs(start_delta(
                &r.start_time,
                &r.expected_start_time,
                &r.state_type,
                now,
            )),
            auto_scheduled: r.auto_scheduled,
            infrastructure_document_id: r.infrastructure_document_id.as_deref(),
            infrastructure_pid: r.infrastructure_pid.as_deref(),
            created_by: embedded(r.created_by.as_deref().unwrap_or("null"), "null"),
            work_pool_id: Some(r.work_pool_id.as_deref()),
            work_pool_name: Some(r.work_pool_name.as_deref()),
            state,
            job_variables: embedded(&r.job_variables, "{}"),
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

/// `TaskRun`.
pub fn task_run_json(r: &TaskRunRow, state: Option<&State>, now: DateTime<Utc>) -> Value {
    let policy = serde_json::to_value(task_policy(r)).unwrap_or(Value::Null);
    json!({
        "id": r.id,
        "created": ts(&r.created),
        "updated": ts(&r.updated),
        "name": r.name,
        "flow_run_id": r.flow_run_id,
        "task_key": r.task_key,
        "dynamic_key": r.dynamic_key,
        "cache_key": r.cache_key,
        "cache_expiration": opt_ts(&r.cache_expiration),
        "task_version": r.task_version,
        "empirical_policy": policy,
        "tags": json_or(&r.tags, json!([])),
        "labels": json_or(&r.labels, json!({})),
        "state_id": r.state_id,
        "task_inputs": json_or(&r.task_inputs, json!({})),
        "state_type": r.state_type,
        "state_name": r.state_name,
        "run_count": r.run_count,
        "flow_run_run_count": r.flow_run_run_count,
        "expected_start_time": opt_ts(&r.expected_start_time),
        "next_scheduled_start_time": opt_ts(&r.next_scheduled_start_time),
        "start_time": opt_ts(&r.start_time),
        "end_time": opt_ts(&r.end_time),
        "total_run_time": secs(r.total_run_time),
        "estimated_run_time": secs(estimated_run_time(r.total_run_time, &r.state_type, &r.state_timestamp, now)),
        "estimated_start_time_delta": secs(start_delta(&r.start_time, &r.expected_start_time, &r.state_type, now)),
        "state": opt_state_json(state),
    })
}
