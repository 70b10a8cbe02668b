//! Conversions between stored rows and the orchestration model: states, policies, the
//! snapshots the rules read and the columns their transforms write. The answers built from rows
//! are in `answers`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::ids::{FlowRunId, Id, TaskRunId, WorkspaceId};
use crate::orchestration::{
    EnclosingFlowRun, FlowRunPolicy, RunSnapshot, RunUpdate, State, StateDetails, StateType,
    TaskRunPolicy,
};
use crate::storage::rows::{FlowRunRow, FlowRunStateRow, TaskRunRow, TaskRunStateRow};

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn opt_utc(t: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    t.map(utc)
}

fn uuid<K>(s: &Option<Id<K>>) -> Option<Uuid> {
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
    run_id: &FlowRunId,
    s: &State,
    now: NaiveDateTime,
) -> FlowRunStateRow {
    FlowRunStateRow {
        id: s.id.to_string(),
        workspace_id: ws.clone(),
        created: now,
        flow_run_id: run_id.clone(),
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
    run_id: &TaskRunId,
    s: &State,
    now: NaiveDateTime,
) -> TaskRunStateRow {
    TaskRunStateRow {
        id: s.id.to_string(),
        workspace_id: ws.clone(),
        created: now,
        task_run_id: run_id.clone(),
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
