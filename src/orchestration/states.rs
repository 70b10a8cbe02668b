//! The Prefect state model: `StateType`, `StateDetails`, `State` and the `StateCreate` request
//! body, serde-compatible with Prefect 3's JSON.
//!
//! Owns: field names, defaults and (de)serialisation leniency of states. Must not touch:
//! storage rows, HTTP, clocks (callers pass ids and `now`).

use crate::time;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The nine state types (`prefect.server.schemas.states.StateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StateType {
    Scheduled,
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Crashed,
    Paused,
    Cancelling,
}

impl StateType {
    /// Every state type, in Prefect's declaration order.
    pub const ALL: [StateType; 9] = [
        StateType::Scheduled,
        StateType::Pending,
        StateType::Running,
        StateType::Completed,
        StateType::Failed,
        StateType::Cancelled,
        StateType::Crashed,
        StateType::Paused,
        StateType::Cancelling,
    ];

    /// COMPLETED, FAILED, CANCELLED and CRASHED (`TERMINAL_STATES`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StateType::Completed | StateType::Failed | StateType::Cancelled | StateType::Crashed
        )
    }

    /// The name a state gets when none is given ("Scheduled", "Pending", ...).
    pub fn default_name(self) -> &'static str {
        match self {
            StateType::Scheduled => "Scheduled",
            StateType::Pending => "Pending",
            StateType::Running => "Running",
            StateType::Completed => "Completed",
            StateType::Failed => "Failed",
            StateType::Cancelled => "Cancelled",
            StateType::Crashed => "Crashed",
            StateType::Paused => "Paused",
            StateType::Cancelling => "Cancelling",
        }
    }

    /// The wire value ("SCHEDULED", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            StateType::Scheduled => "SCHEDULED",
            StateType::Pending => "PENDING",
            StateType::Running => "RUNNING",
            StateType::Completed => "COMPLETED",
            StateType::Failed => "FAILED",
            StateType::Cancelled => "CANCELLED",
            StateType::Crashed => "CRASHED",
            StateType::Paused => "PAUSED",
            StateType::Cancelling => "CANCELLING",
        }
    }
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown state type string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStateType(pub String);

impl fmt::Display for UnknownStateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown state type {:?}", self.0)
    }
}

impl std::error::Error for UnknownStateType {}

impl FromStr for StateType {
    type Err = UnknownStateType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StateType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownStateType(s.to_owned()))
    }
}

/// `null` counts as `false` for Prefect's non-optional booleans, so a `null` never reaches
/// the client (whose model would refuse it).
fn null_as_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// `StateDetails` (API.md §6.2). Every field is serialised, nulls included. Unknown keys are
/// ignored, as Prefect's server model does (`extra="ignore"`); missing keys take defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateDetails {
    pub flow_run_id: Option<Uuid>,
    pub task_run_id: Option<Uuid>,
    /// For task runs that stand for subflows: the subflow's run id.
    pub child_flow_run_id: Option<Uuid>,
    #[serde(with = "crate::time::lenient::option")]
    pub scheduled_time: Option<DateTime<Utc>>,
    pub cache_key: Option<String>,
    #[serde(with = "crate::time::lenient::option")]
    pub cache_expiration: Option<DateTime<Utc>>,
    /// Prefect default `false`.
    pub deferred: Option<bool>,
    /// Non-optional in Prefect (default `false`); `null` is read as `false`.
    #[serde(deserialize_with = "null_as_false")]
    pub untrackable_result: bool,
    #[serde(with = "crate::time::lenient::option")]
    pub pause_timeout: Option<DateTime<Utc>>,
    /// Non-optional in Prefect (default `false`); `null` is read as `false`.
    #[serde(deserialize_with = "null_as_false")]
    pub pause_reschedule: bool,
    pub pause_key: Option<String>,
    pub run_input_keyset: Option<Value>,
    pub refresh_cache: Option<bool>,
    pub retriable: Option<bool>,
    pub transition_id: Option<Uuid>,
    pub task_parameters_id: Option<Uuid>,
    pub traceparent: Option<String>,
    pub deployment_concurrency_lease_id: Option<Uuid>,
}

impl Default for StateDetails {
    fn default() -> Self {
        StateDetails {
            flow_run_id: None,
            task_run_id: None,
            child_flow_run_id: None,
            scheduled_time: None,
            cache_key: None,
            cache_expiration: None,
            deferred: Some(false),
            untrackable_result: false,
            pause_timeout: None,
            pause_reschedule: false,
            pause_key: None,
            run_input_keyset: None,
            refresh_cache: None,
            retriable: None,
            transition_id: None,
            task_parameters_id: None,
            traceparent: None,
            deployment_concurrency_lease_id: None,
        }
    }
}

/// A run state as the API returns it and the database stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StateWire")]
pub struct State {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub state_type: StateType,
    pub name: String,
    #[serde(with = "crate::time::lenient")]
    pub timestamp: DateTime<Utc>,
    pub message: Option<String>,
    pub data: Option<Value>,
    pub state_details: StateDetails,
}

/// Lenient reading form of [`State`]: a missing name defaults from the type.
#[derive(Deserialize)]
struct StateWire {
    id: Uuid,
    #[serde(rename = "type")]
    state_type: StateType,
    #[serde(default)]
    name: Option<String>,
    #[serde(with = "crate::time::lenient")]
    timestamp: DateTime<Utc>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default, deserialize_with = "details_or_default")]
    state_details: StateDetails,
}

fn details_or_default<'de, D: Deserializer<'de>>(d: D) -> Result<StateDetails, D::Error> {
    Ok(Option::<StateDetails>::deserialize(d)?.unwrap_or_default())
}

impl From<StateWire> for State {
    fn from(w: StateWire) -> Self {
        State {
            id: w.id,
            name: w
                .name
                .unwrap_or_else(|| w.state_type.default_name().to_owned()),
            state_type: w.state_type,
            timestamp: w.timestamp,
            message: w.message,
            data: w.data,
            state_details: w.state_details,
        }
    }
}

impl State {
    /// A state of `state_type` with its default name and default details. As in Prefect, a
    /// SCHEDULED state without a scheduled time is scheduled for `timestamp`.
    pub fn new(state_type: StateType, id: Uuid, timestamp: DateTime<Utc>) -> State {
        let timestamp = time::truncate_micros(timestamp);
        let mut state = State {
            id,
            state_type,
            name: state_type.default_name().to_owned(),
            timestamp,
            message: None,
            data: None,
            state_details: StateDetails::default(),
        };
        state.default_scheduled_time(timestamp);
        state
    }

    /// Builds the state to propose from a request body: `id` (the caller mints a uuid7) and
    /// `now` become the id and timestamp (a `timestamp` or `id` in the body is ignored), the
    /// name defaults from the type, and SCHEDULED gets `scheduled_time = now` when unset.
    pub fn from_create(create: StateCreate, id: Uuid, now: DateTime<Utc>) -> State {
        let now = time::truncate_micros(now);
        let mut state = State {
            id,
            name: create
                .name
                .unwrap_or_else(|| create.state_type.default_name().to_owned()),
            state_type: create.state_type,
            timestamp: now,
            message: create.message,
            data: create.data,
            state_details: create.state_details.unwrap_or_default(),
        };
        state.default_scheduled_time(now);
        state
    }

    /// Same state content under a new id and timestamp (Prefect's `fresh_copy`).
    pub fn fresh_copy(&self, id: Uuid, now: DateTime<Utc>) -> State {
        State {
            id,
            timestamp: time::truncate_micros(now),
            ..self.clone()
        }
    }

    /// Sets the name (builder style).
    pub fn named(mut self, name: &str) -> State {
        self.name = name.to_owned();
        self
    }

    /// Sets the message (builder style).
    pub fn with_message(mut self, message: Option<String>) -> State {
        self.message = message;
        self
    }

    fn default_scheduled_time(&mut self, now: DateTime<Utc>) {
        if self.state_type == StateType::Scheduled && self.state_details.scheduled_time.is_none() {
            self.state_details.scheduled_time = Some(now);
        }
    }

    pub fn is_scheduled(&self) -> bool {
        self.state_type == StateType::Scheduled
    }
    pub fn is_pending(&self) -> bool {
        self.state_type == StateType::Pending
    }
    pub fn is_running(&self) -> bool {
        self.state_type == StateType::Running
    }
    pub fn is_completed(&self) -> bool {
        self.state_type == StateType::Completed
    }
    pub fn is_paused(&self) -> bool {
        self.state_type == StateType::Paused
    }
    pub fn is_cancelling(&self) -> bool {
        self.state_type == StateType::Cancelling
    }
    /// Terminal (COMPLETED, FAILED, CANCELLED, CRASHED).
    pub fn is_final(&self) -> bool {
        self.state_type.is_terminal()
    }
}

/// The `state` object of `POST /flow_runs/{id}/set_state` and friends. Unknown keys are refused
/// (Prefect: 422 `extra_forbidden`). `timestamp` and `id` are accepted and ignored by
/// [`State::from_create`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateCreate {
    #[serde(rename = "type")]
    pub state_type: StateType,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub state_details: Option<StateDetails>,
    #[serde(default, with = "crate::time::lenient::option")]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub id: Option<Uuid>,
}

impl StateCreate {
    /// A bare request for `state_type` (everything else defaulted).
    pub fn of(state_type: StateType) -> StateCreate {
        StateCreate {
            state_type,
            name: None,
            message: None,
            data: None,
            state_details: None,
            timestamp: None,
            id: None,
        }
    }
}

/// The state a subflow's parent task run is force-set to when the subflow changes state
/// (`UpdateSubflowParentTask`): a fresh copy of the subflow's written state with
/// `child_flow_run_id` set to the subflow run. Orchestrate it on the task run with `force`.
pub fn subflow_parent_task_state(
    written: &State,
    subflow_run_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> State {
    let mut state = written.fresh_copy(id, now);
    state.state_details.child_flow_run_id = Some(subflow_run_id);
    state
}
