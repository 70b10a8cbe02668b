//! The engine's inputs and outputs: `RunSnapshot` and `Proposal` in; `Outcome` (status,
//! details, the state to write, the run's new column values and side effects for the caller)
//! out.
//!
//! Owns: the contract between orchestration and its callers (API handlers, services). Every
//! database read a rule needs is a field the caller fills in the same transaction; every write a
//! rule asks for is a field of `Outcome` the caller performs. Must not touch: storage, HTTP.

use super::results::{OrchestrationDetails, OrchestrationResult, SetStateStatus};
use super::run_policy::{FlowRunPolicy, TaskRunPolicy};
use super::states::{State, StateType};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Which kind of run is changing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunKind {
    #[default]
    Flow,
    Task,
}

/// The flow run enclosing a task run, as read by the caller (`context.flow_run()` in Prefect).
#[derive(Debug, Clone, PartialEq)]
pub struct EnclosingFlowRun {
    pub id: Uuid,
    pub run_count: i64,
    /// The flow run's current state (`None` if it has none).
    pub state: Option<State>,
}

/// What the rules need to know of the run, read by the caller in the same transaction
/// (row locked for update).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunSnapshot {
    pub id: Uuid,
    /// Tasks: the enclosing flow run's id (`task_run.flow_run_id`).
    pub flow_run_id: Option<Uuid>,
    pub run_count: i64,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// Seconds spent in RUNNING so far.
    pub total_run_time: f64,
    pub expected_start_time: Option<DateTime<Utc>>,
    pub next_scheduled_start_time: Option<DateTime<Utc>>,
    /// Flows.
    pub deployment_id: Option<Uuid>,
    /// Flows.
    pub infrastructure_pid: Option<String>,
    /// Flows: set for subflows.
    pub parent_task_run_id: Option<Uuid>,
    /// Flows: `empirical_policy`.
    pub flow_policy: FlowRunPolicy,
    /// Tasks: `empirical_policy`.
    pub task_policy: TaskRunPolicy,
    /// Tasks: the flow run attempt this task run last ran under.
    pub flow_run_run_count: i64,
    /// Tasks: the enclosing flow run, if `flow_run_id` is set and the row exists.
    pub flow_run: Option<EnclosingFlowRun>,
    /// Flows (`EnsureFlowRunStateTimestampIsUnique`): timestamps of this run's stored states
    /// at or after the proposed timestamp. The current state's timestamp is always checked; a
    /// caller that wants full protection passes the rest (`SELECT timestamp FROM
    /// flow_run_state WHERE flow_run_id = ? AND timestamp >= ?`).
    pub taken_state_timestamps: Vec<DateTime<Utc>>,
    /// Flows (`SecureFlowConcurrencySlots`): the deployment's concurrency limit and how many of
    /// its other runs hold a slot (PENDING, RUNNING or CANCELLING), read by the caller.
    pub deployment_concurrency: Option<DeploymentConcurrency>,
}

/// A deployment's concurrency limit as the caller read it in the transition's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentConcurrency {
    pub limit: i64,
    pub active: i64,
    /// `ENQUEUE` (default) or `CANCEL_NEW`.
    pub collision_strategy: String,
}

/// Tunables the rules read from settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestrationConfig {
    /// `PREFECT_SERVER_TASKS_MAX_CACHE_KEY_LENGTH` (default 2000), used by `CacheInsertion`.
    pub max_cache_key_length: usize,
}

impl Default for OrchestrationConfig {
    fn default() -> Self {
        OrchestrationConfig {
            max_cache_key_length: 2000,
        }
    }
}

/// One proposed transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub kind: RunKind,
    pub run: RunSnapshot,
    /// The run's current state (`None` for a run's first state).
    pub current: Option<State>,
    /// Built by the caller with [`State::from_create`]: fresh id (uuid7), timestamp = `now`,
    /// name defaulted. Alternative states a rule proposes (AwaitingRetry, Cancelled, Cached,
    /// ...) reuse this id and `now`.
    pub proposed: State,
    pub force: bool,
    pub now: DateTime<Utc>,
    /// Client version from the User-Agent (`prefect/3.9.1 ...`); kept for the deployment
    /// concurrency rules, which are not implemented yet.
    pub client_version: Option<String>,
    /// Tasks (`CacheRetrieval`): the newest unexpired cached state for
    /// `proposed.state_details.cache_key`, read by the caller (cache rows whose
    /// `cache_expiration` is null or later than `now`, newest first). Ignored otherwise.
    pub cached_state: Option<State>,
    pub config: OrchestrationConfig,
}

/// The orchestration policies (`core_policy.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    CoreFlow,
    MinimalFlow,
    MarkLateRuns,
    CoreTask,
    BackgroundTask,
    MinimalTask,
}

impl PolicyKind {
    /// Prefect's choice: flows use Core, or Minimal with `force`; tasks use Background when
    /// the proposed state is `deferred` (even with `force`), else Minimal with `force`, else
    /// Core.
    pub fn select(kind: RunKind, force: bool, proposed: &State) -> PolicyKind {
        match kind {
            RunKind::Flow if force => PolicyKind::MinimalFlow,
            RunKind::Flow => PolicyKind::CoreFlow,
            RunKind::Task if proposed.state_details.deferred == Some(true) => {
                PolicyKind::BackgroundTask
            }
            RunKind::Task if force => PolicyKind::MinimalTask,
            RunKind::Task => PolicyKind::CoreTask,
        }
    }
}

/// New values for the run's columns. When `Outcome::state_to_write` is `Some`, write all of
/// them (the `state_*` fields are then `Some`). When nothing is written, only
/// `empirical_policy` can be `Some` (pause/resume bookkeeping) and must still be written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunUpdate {
    pub state_id: Option<Uuid>,
    pub state_type: Option<StateType>,
    pub state_name: Option<String>,
    pub state_timestamp: Option<DateTime<Utc>>,
    pub run_count: i64,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub total_run_time: f64,
    pub expected_start_time: Option<DateTime<Utc>>,
    pub next_scheduled_start_time: Option<DateTime<Utc>>,
    /// Tasks.
    pub flow_run_run_count: i64,
    /// Flows: `Some` only when the policy changed (retry_type, pause_keys, resuming).
    pub empirical_policy: Option<FlowRunPolicy>,
}

/// `CacheInsertion`: add a `task_run_state_cache` row.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheInsert {
    pub cache_key: String,
    pub cache_expiration: Option<DateTime<Utc>>,
    pub task_run_state_id: Uuid,
}

/// `EnqueueScheduledTasks`: how to hand a deferred task run to task workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskQueueAction {
    /// `TaskQueue.enqueue`.
    Enqueue,
    /// `TaskQueue.retry` (the written state is `AwaitingRetry`).
    Retry,
}

/// Writes and notifications the rules ask the caller to perform, in the same transaction
/// (queue pushes after commit).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SideEffects {
    pub cache_insert: Option<CacheInsert>,
    /// `ReleaseTaskConcurrencySlots`: drop this task run from the tag concurrency slots it
    /// holds (v1 `active_slots`, v2 leases held by this run).
    pub release_task_concurrency_slots: bool,
    pub enqueue_task_run: Option<TaskQueueAction>,
    /// `UpdateSubflowParentTask`: force-set this task run (the subflow's parent task run) to
    /// [`super::subflow_parent_task_state`] of the written state.
    pub update_subflow_parent_task: Option<Uuid>,
}

/// The result of orchestrating one proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub policy: PolicyKind,
    pub status: SetStateStatus,
    pub details: OrchestrationDetails,
    /// The validated state (ACCEPT), or the alternative (REJECT with a state, or CacheInsertion's
    /// REJECT of an over-long key, which still writes). `None`: nothing is written (WAIT,
    /// ABORT, REJECT without a state) and the response carries the current state.
    pub state_to_write: Option<State>,
    pub run_update: RunUpdate,
    pub effects: SideEffects,
    /// Names of the rules that changed the outcome or the run, in firing order.
    pub fired_rules: Vec<&'static str>,
}

impl Outcome {
    /// The response body: the written state, else the run's current state.
    pub fn response(&self, current: Option<&State>) -> OrchestrationResult {
        OrchestrationResult {
            state: self.state_to_write.clone().or_else(|| current.cloned()),
            status: self.status,
            details: self.details.clone(),
        }
    }
}
