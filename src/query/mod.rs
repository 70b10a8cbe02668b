//! What a list request asks for: the filters, sorts and paging of `/…/filter`, `/…/count` and
//! `/…/paginate` (API.md §3), as Prefect's client sends them. This is the API's contract: the
//! handlers deserialise these types, and storage takes them parsed and turns them into SQL
//! (`storage::filters`). Nothing here knows SQL or HTTP.

pub mod artifacts;
pub mod automations;
pub mod blocks;
pub mod events;
pub mod pools;
pub mod variables;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum Operator {
    #[default]
    #[serde(rename = "and_")]
    And,
    #[serde(rename = "or_")]
    Or,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IdFilter {
    pub any_: Option<Vec<Uuid>>,
    pub not_any_: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NameFilter {
    pub any_: Option<Vec<String>>,
    pub not_any_: Option<Vec<String>>,
    pub like_: Option<String>,
    pub startswith_: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TagsFilter {
    pub all_: Option<Vec<String>>,
    pub any_: Option<Vec<String>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TimeFilter {
    #[serde(with = "crate::time::opt")]
    pub before_: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::opt")]
    pub after_: Option<DateTime<Utc>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NullableIdFilter {
    pub any_: Option<Vec<Uuid>>,
    pub not_any_: Option<Vec<Uuid>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StringsFilter {
    pub any_: Option<Vec<String>>,
    pub not_any_: Option<Vec<String>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StateFilter {
    pub operator: Operator,
    #[serde(rename = "type")]
    pub state_type: Option<StringsFilter>,
    pub name: Option<StringsFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExistsFilter {
    pub exists_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IsNullFilter {
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CreatedByFilter {
    pub id_: Option<Vec<Uuid>>,
    pub type_: Option<Vec<String>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FlowFilter {
    pub operator: Operator,
    pub id: Option<IdFilter>,
    pub deployment: Option<IsNullFilter>,
    pub name: Option<NameFilter>,
    pub tags: Option<TagsFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FlowRunFilter {
    pub operator: Operator,
    pub id: Option<IdFilter>,
    pub name: Option<NameFilter>,
    pub tags: Option<TagsFilter>,
    pub deployment_id: Option<NullableIdFilter>,
    pub work_queue_name: Option<StringsFilter>,
    pub state: Option<StateFilter>,
    pub flow_version: Option<StringsFilter>,
    pub start_time: Option<TimeFilter>,
    pub end_time: Option<TimeFilter>,
    pub expected_start_time: Option<TimeFilter>,
    pub next_scheduled_start_time: Option<TimeFilter>,
    pub parent_flow_run_id: Option<IdFilter>,
    pub parent_task_run_id: Option<NullableIdFilter>,
    pub idempotency_key: Option<StringsFilter>,
    pub created_by: Option<CreatedByFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TaskRunFilter {
    pub operator: Operator,
    pub id: Option<IdFilter>,
    pub name: Option<NameFilter>,
    pub tags: Option<TagsFilter>,
    pub state: Option<StateFilter>,
    pub start_time: Option<TimeFilter>,
    pub end_time: Option<TimeFilter>,
    pub expected_start_time: Option<TimeFilter>,
    pub subflow_runs: Option<ExistsFilter>,
    pub flow_run_id: Option<NullableIdFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LevelFilter {
    pub ge_: Option<i32>,
    pub le_: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TextFilter {
    pub query: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LogFilter {
    pub operator: Operator,
    pub level: Option<LevelFilter>,
    pub timestamp: Option<TimeFilter>,
    pub flow_run_id: Option<IdFilter>,
    pub task_run_id: Option<NullableIdFilter>,
    pub text: Option<TextFilter>,
}

/// The sub-filters every run/flow query may combine. Filters of objects Orrery does not store
/// yet (deployments, work pools, work queues) are kept: when present they require a related
/// object to exist, exactly as Prefect's join does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Related {
    pub flows: Option<FlowFilter>,
    pub flow_runs: Option<FlowRunFilter>,
    pub task_runs: Option<TaskRunFilter>,
    pub deployments: Option<DeploymentFilter>,
    pub work_pools: Option<pools::WorkPoolFilter>,
    pub work_pool_queues: Option<pools::WorkQueueFilter>,
    pub work_queues: Option<pools::WorkQueueFilter>,
}

/// Sorts of `/flows/filter` (and deployments later).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowSort {
    CreatedDesc,
    UpdatedDesc,
    #[default]
    NameAsc,
    NameDesc,
}

/// Sorts of `/flow_runs/filter`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowRunSort {
    #[default]
    IdDesc,
    StartTimeAsc,
    StartTimeDesc,
    ExpectedStartTimeAsc,
    ExpectedStartTimeDesc,
    NameAsc,
    NameDesc,
    NextScheduledStartTimeAsc,
    EndTimeDesc,
}

/// Sorts of `/task_runs/filter`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskRunSort {
    #[default]
    IdDesc,
    ExpectedStartTimeAsc,
    ExpectedStartTimeDesc,
    NameAsc,
    NameDesc,
    NextScheduledStartTimeAsc,
    EndTimeDesc,
    DurationDesc,
    DurationAsc,
}

/// Sorts of `/logs/filter`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogSort {
    #[default]
    TimestampAsc,
    TimestampDesc,
}

/// Limit and offset of a list query, already validated.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// Page `number` (from 1) of `limit` rows, as the `/paginate` routes count; a number too
    /// large to reach gives an offset past every row instead of overflowing.
    pub fn numbered(number: i64, limit: i64) -> Page {
        Page {
            limit,
            offset: number.saturating_sub(1).max(0).saturating_mul(limit),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeploymentFilter {
    pub operator: Operator,
    pub concurrency_limit: Option<serde_json::Value>,
    pub id: Option<IdFilter>,
    pub name: Option<NameFilter>,
    pub flow_or_deployment_name: Option<NameFilter>,
    pub paused: Option<EqBool>,
    pub tags: Option<TagsFilter>,
    pub work_queue_name: Option<StringsFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EqBool {
    pub eq_: Option<bool>,
}

/// Sorts of `/deployments/filter` and `/deployments/paginate`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentSort {
    CreatedDesc,
    UpdatedDesc,
    #[default]
    NameAsc,
    NameDesc,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_accept_explicit_nulls() {
        let r: Related = serde_json::from_str(
            r#"{"flows":null,"flow_runs":{"parent_task_run_id":{"any_":["9f2a0b8e-5d1c-4c7e-8f00-000000000001"]}},"task_runs":null,"deployments":null}"#,
        )
        .expect("parses");
        assert!(r.flow_runs.is_some() && r.flows.is_none() && r.deployments.is_none());
    }
}
