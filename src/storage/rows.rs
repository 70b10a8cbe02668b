//! Row types of the orion tables, shared by the storage functions of each resource. JSON
//! columns are text holding compact JSON; timestamps are naive UTC.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{flow_run_states, flow_runs, flows, logs, task_run_states, task_runs};
use crate::ids::{DeploymentId, FlowId, FlowRunId, TaskRunId, WorkspaceId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = flows)]
pub struct FlowRow {
    pub id: FlowId,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub tags: String,
    pub labels: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = flow_runs, treat_none_as_null = true)]
pub struct FlowRunRow {
    pub id: FlowRunId,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub flow_id: FlowId,
    pub state_id: Option<String>,
    pub state_type: Option<String>,
    pub state_name: Option<String>,
    pub state_timestamp: Option<NaiveDateTime>,
    pub deployment_id: Option<DeploymentId>,
    pub deployment_version: Option<String>,
    pub work_queue_id: Option<String>,
    pub work_queue_name: Option<String>,
    pub work_pool_id: Option<String>,
    pub work_pool_name: Option<String>,
    pub flow_version: Option<String>,
    pub parameters: String,
    pub idempotency_key: Option<String>,
    pub context: String,
    pub empirical_policy: String,
    pub tags: String,
    pub labels: String,
    pub parent_task_run_id: Option<TaskRunId>,
    pub run_count: i64,
    pub expected_start_time: Option<NaiveDateTime>,
    pub next_scheduled_start_time: Option<NaiveDateTime>,
    pub start_time: Option<NaiveDateTime>,
    pub end_time: Option<NaiveDateTime>,
    pub total_run_time: f64,
    pub auto_scheduled: bool,
    pub infrastructure_document_id: Option<String>,
    pub infrastructure_pid: Option<String>,
    pub created_by: Option<String>,
    pub job_variables: String,
}

/// A state row of either run kind (the two tables have the same shape).
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub run_id: String,
    pub state_type: String,
    pub name: String,
    pub timestamp: NaiveDateTime,
    pub message: Option<String>,
    pub data: Option<String>,
    pub state_details: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = flow_run_states, treat_none_as_null = true)]
pub struct FlowRunStateRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub flow_run_id: FlowRunId,
    pub state_type: String,
    pub name: String,
    pub timestamp: NaiveDateTime,
    pub message: Option<String>,
    pub data: Option<String>,
    pub state_details: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = task_run_states)]
pub struct TaskRunStateRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub task_run_id: TaskRunId,
    pub state_type: String,
    pub name: String,
    pub timestamp: NaiveDateTime,
    pub message: Option<String>,
    pub data: Option<String>,
    pub state_details: String,
}

impl From<FlowRunStateRow> for StateRow {
    fn from(r: FlowRunStateRow) -> Self {
        StateRow {
            id: r.id,
            workspace_id: r.workspace_id,
            created: r.created,
            run_id: r.flow_run_id.into_string(),
            state_type: r.state_type,
            name: r.name,
            timestamp: r.timestamp,
            message: r.message,
            data: r.data,
            state_details: r.state_details,
        }
    }
}

impl From<TaskRunStateRow> for StateRow {
    fn from(r: TaskRunStateRow) -> Self {
        StateRow {
            id: r.id,
            workspace_id: r.workspace_id,
            created: r.created,
            run_id: r.task_run_id.into_string(),
            state_type: r.state_type,
            name: r.name,
            timestamp: r.timestamp,
            message: r.message,
            data: r.data,
            state_details: r.state_details,
        }
    }
}

impl StateRow {
    pub fn flow(self) -> FlowRunStateRow {
        FlowRunStateRow {
            id: self.id,
            workspace_id: self.workspace_id,
            created: self.created,
            flow_run_id: FlowRunId::new(self.run_id),
            state_type: self.state_type,
            name: self.name,
            timestamp: self.timestamp,
            message: self.message,
            data: self.data,
            state_details: self.state_details,
        }
    }

    pub fn task(self) -> TaskRunStateRow {
        TaskRunStateRow {
            id: self.id,
            workspace_id: self.workspace_id,
            created: self.created,
            task_run_id: TaskRunId::new(self.run_id),
            state_type: self.state_type,
            name: self.name,
            timestamp: self.timestamp,
            message: self.message,
            data: self.data,
            state_details: self.state_details,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = task_runs, treat_none_as_null = true)]
pub struct TaskRunRow {
    pub id: TaskRunId,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub flow_run_id: Option<FlowRunId>,
    pub task_key: String,
    pub dynamic_key: String,
    pub cache_key: Option<String>,
    pub cache_expiration: Option<NaiveDateTime>,
    pub task_version: Option<String>,
    pub empirical_policy: String,
    pub tags: String,
    pub labels: String,
    pub task_inputs: String,
    pub state_id: Option<String>,
    pub state_type: Option<String>,
    pub state_name: Option<String>,
    pub state_timestamp: Option<NaiveDateTime>,
    pub run_count: i64,
    pub flow_run_run_count: i64,
    pub expected_start_time: Option<NaiveDateTime>,
    pub next_scheduled_start_time: Option<NaiveDateTime>,
    pub start_time: Option<NaiveDateTime>,
    pub end_time: Option<NaiveDateTime>,
    pub total_run_time: f64,
}

/// The columns of a flow run that a state transition owns. A transition writes only these, so
/// what others change at the same time (a worker's `infrastructure_pid`, a PATCH of the name,
/// tags or labels) is never overwritten with the value read before the transition.
#[derive(AsChangeset)]
#[diesel(table_name = flow_runs, treat_none_as_null = true)]
pub struct FlowRunOrchestrated<'a> {
    updated: NaiveDateTime,
    state_id: Option<&'a str>,
    state_type: Option<&'a str>,
    state_name: Option<&'a str>,
    state_timestamp: Option<NaiveDateTime>,
    empirical_policy: &'a str,
    run_count: i64,
    expected_start_time: Option<NaiveDateTime>,
    next_scheduled_start_time: Option<NaiveDateTime>,
    start_time: Option<NaiveDateTime>,
    end_time: Option<NaiveDateTime>,
    total_run_time: f64,
}

impl<'a> From<&'a FlowRunRow> for FlowRunOrchestrated<'a> {
    fn from(r: &'a FlowRunRow) -> Self {
        FlowRunOrchestrated {
            updated: r.updated,
            state_id: r.state_id.as_deref(),
            state_type: r.state_type.as_deref(),
            state_name: r.state_name.as_deref(),
            state_timestamp: r.state_timestamp,
            empirical_policy: &r.empirical_policy,
            run_count: r.run_count,
            expected_start_time: r.expected_start_time,
            next_scheduled_start_time: r.next_scheduled_start_time,
            start_time: r.start_time,
            end_time: r.end_time,
            total_run_time: r.total_run_time,
        }
    }
}

/// The columns of a task run that a state transition owns (see [`FlowRunOrchestrated`]).
#[derive(AsChangeset)]
#[diesel(table_name = task_runs, treat_none_as_null = true)]
pub struct TaskRunOrchestrated<'a> {
    updated: NaiveDateTime,
    state_id: Option<&'a str>,
    state_type: Option<&'a str>,
    state_name: Option<&'a str>,
    state_timestamp: Option<NaiveDateTime>,
    run_count: i64,
    flow_run_run_count: i64,
    expected_start_time: Option<NaiveDateTime>,
    next_scheduled_start_time: Option<NaiveDateTime>,
    start_time: Option<NaiveDateTime>,
    end_time: Option<NaiveDateTime>,
    total_run_time: f64,
}

impl<'a> From<&'a TaskRunRow> for TaskRunOrchestrated<'a> {
    fn from(r: &'a TaskRunRow) -> Self {
        TaskRunOrchestrated {
            updated: r.updated,
            state_id: r.state_id.as_deref(),
            state_type: r.state_type.as_deref(),
            state_name: r.state_name.as_deref(),
            state_timestamp: r.state_timestamp,
            run_count: r.run_count,
            flow_run_run_count: r.flow_run_run_count,
            expected_start_time: r.expected_start_time,
            next_scheduled_start_time: r.next_scheduled_start_time,
            start_time: r.start_time,
            end_time: r.end_time,
            total_run_time: r.total_run_time,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = logs)]
pub struct LogRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub level: i32,
    pub message: String,
    pub timestamp: NaiveDateTime,
    pub flow_run_id: Option<String>,
    pub task_run_id: Option<String>,
    pub worker_id: Option<String>,
}
