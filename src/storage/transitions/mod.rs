//! State transitions, in one transaction each: read the run (with its current state, flow and
//! subflow parent task), let the caller decide (orchestration is pure and lives elsewhere), then
//! write the new state, the run's columns, the parent task's mirrored state and the outbox
//! events together. A concurrent transition of the same run is detected (the run's `state_id`
//! changed under us) and the whole step is retried, so no transition is lost or doubled.
//!
//! The steps (`step.rs`) are written once, as async storage functions on a [`Conn`], for both
//! backends; on SQLite a whole step runs on the writer thread, one hand-off per transition. On
//! PostgreSQL most flow-run transitions and creations take the single-statement fast path
//! (`pg_fast.rs`) first, behind the same signatures. A new run is decided before it is
//! inserted, so creation writes the run's row once.
//!
//! Where to look: the handler is `api::flow_runs::set_state`, the rules are in
//! `orchestration`, the decision glue in `runs`, the SQL here.

mod pg_fast;
mod step;
mod task;

use std::future::Future;
use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::outbox::NewOutboxRow;
use super::rows::{FlowRow, FlowRunRow, FlowRunStateRow, TaskRunRow, TaskRunStateRow};
use super::schema::task_run_state_cache;
use super::{Database, StorageError, StorageResult};
use crate::ids::{FlowRunId, TaskRunId, WorkspaceId};

/// What a flow-run decision sees.
#[derive(Debug, Clone)]
pub struct FlowRunContext {
    pub run: FlowRunRow,
    pub current: Option<FlowRunStateRow>,
    pub flow: Option<FlowRow>,
    pub parent_task: Option<(TaskRunRow, Option<TaskRunStateRow>)>,
    /// Timestamps of this run's states at or after `since`.
    pub taken_timestamps: Vec<NaiveDateTime>,
    /// The deployment's concurrency limit, its collision strategy and how many of its other runs
    /// are PENDING, RUNNING or CANCELLING (when the run's deployment has a limit).
    pub deployment_concurrency: Option<(i32, i64, String)>,
}

/// What a flow-run decision writes.
#[derive(Debug, Clone, Default)]
pub struct FlowRunWrite {
    pub state: Option<FlowRunStateRow>,
    /// The state being left, when it had no row yet (`flow_runs::unstored_state`): written
    /// before `state`, so the history keeps it. Set by the storage layer, not by decisions.
    pub unstored_current: Option<FlowRunStateRow>,
    /// The run with its new values, when they changed; only the columns a transition owns are
    /// written (`FlowRunOrchestrated`).
    pub run: Option<FlowRunRow>,
    /// The subflow's parent task run with its new state.
    pub parent_task: Option<(TaskRunRow, TaskRunStateRow)>,
    pub outbox: Vec<NewOutboxRow>,
}

/// What a task-run decision sees.
#[derive(Debug, Clone)]
pub struct TaskRunContext {
    pub run: TaskRunRow,
    pub current: Option<TaskRunStateRow>,
    /// The enclosing flow run and its state.
    pub flow_run: Option<(FlowRunRow, Option<FlowRunStateRow>)>,
    /// The newest unexpired cached state for the proposed cache key, if one was asked for.
    pub cached: Option<TaskRunStateRow>,
}

/// A `task_run_state_cache` row to add (CacheInsertion).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = task_run_state_cache)]
pub struct CacheRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub cache_key: String,
    pub cache_expiration: Option<NaiveDateTime>,
    pub task_run_state_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct TaskRunWrite {
    pub state: Option<TaskRunStateRow>,
    pub run: Option<TaskRunRow>,
    pub outbox: Vec<NewOutboxRow>,
    pub cache: Option<CacheRow>,
}

/// What a creation did: made the run (with the decision's answer), or found the run that
/// already has its idempotency key (flow runs) or natural key (task runs).
#[derive(Debug)]
pub enum Created<R, I> {
    New(R),
    /// The id of the run that was there first.
    Existing(I),
}

/// A decision on a flow run: its context in, what to write and the caller's answer out.
pub type FlowDecide<R> = dyn Fn(FlowRunContext) -> (FlowRunWrite, R) + Send + Sync;
/// A decision on a task run.
pub type TaskDecide<R> = dyn Fn(TaskRunContext) -> (TaskRunWrite, R) + Send + Sync;

const ATTEMPTS: usize = 5;

/// Runs `attempt` again while it loses a race (the run changed under it); `NotFound` (no such
/// run) becomes `None`.
async fn with_retries<R, Fut>(mut attempt: impl FnMut() -> Fut) -> StorageResult<Option<R>>
where
    Fut: Future<Output = StorageResult<R>>,
{
    for _ in 0..ATTEMPTS {
        match attempt().await {
            Ok(r) => return Ok(Some(r)),
            Err(StorageError::NotFound) => return Ok(None),
            Err(StorageError::Raced) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Conflict(
        "the run kept changing; try again".into(),
    ))
}

/// Runs `decide` on the current flow run `run_id` and writes what it returns, atomically.
/// `None` when there is no such run in the workspace.
pub async fn transition_flow_run<R, F>(
    db: &Database,
    ws: &WorkspaceId,
    run_id: &FlowRunId,
    since: NaiveDateTime,
    decide: F,
) -> StorageResult<Option<R>>
where
    R: Send + 'static,
    F: Fn(FlowRunContext) -> (FlowRunWrite, R) + Send + Sync + 'static,
{
    let decide: Arc<FlowDecide<R>> = Arc::new(decide);
    let (ws, run_id): (WorkspaceId, Arc<str>) = (ws.clone(), run_id.as_str().into());
    with_retries(|| {
        let (ws, run_id, decide) = (ws.clone(), run_id.clone(), decide.clone());
        db.write(async move |c| {
            if let Some(out) = pg_fast::flow_step(c, &ws, &run_id, since, &*decide).await? {
                return Ok(out);
            }
            c.transaction(async |c| step::flow_step(c, &ws, &run_id, since, &*decide).await)
                .await
        })
    })
    .await
}

/// Inserts a flow run and applies its first state in one transaction. When the flow already has
/// a run with the same idempotency key, nothing is written and that run's id is answered.
/// `flow` is the run's flow when the caller has already read it (it is read otherwise).
pub async fn create_flow_run<R, F>(
    db: &Database,
    row: FlowRunRow,
    flow: Option<FlowRow>,
    decide: F,
) -> StorageResult<Created<R, FlowRunId>>
where
    R: Send + 'static,
    F: Fn(FlowRunContext) -> (FlowRunWrite, R) + Send + Sync + 'static,
{
    db.write(async move |c| {
        if let Some(out) = pg_fast::flow_create(c, &row, flow.as_ref(), &decide).await? {
            return Ok(out);
        }
        c.transaction(async |c| step::flow_create(c, &row, flow.as_ref(), &decide).await)
            .await
    })
    .await
}

/// Runs `decide` on task run `run_id` and writes what it returns, atomically.
pub async fn transition_task_run<R, F>(
    db: &Database,
    ws: &WorkspaceId,
    run_id: &TaskRunId,
    cache_key: Option<&str>,
    now: NaiveDateTime,
    decide: F,
) -> StorageResult<Option<R>>
where
    R: Send + 'static,
    F: Fn(TaskRunContext) -> (TaskRunWrite, R) + Send + Sync + 'static,
{
    let decide: Arc<TaskDecide<R>> = Arc::new(decide);
    let (ws, run_id): (WorkspaceId, Arc<str>) = (ws.clone(), run_id.as_str().into());
    let cache_key: Option<Arc<str>> = cache_key.map(Into::into);
    with_retries(|| {
        let (ws, run_id, decide) = (ws.clone(), run_id.clone(), decide.clone());
        let cache_key = cache_key.clone();
        db.transaction(async move |c| {
            task::task_step(c, &ws, &run_id, cache_key.as_deref(), now, &*decide).await
        })
    })
    .await
}

/// Inserts a task run (REST) and applies its first state, in one transaction. When a run with
/// the same (flow_run_id, task_key, dynamic_key) exists, nothing is written and its id is
/// answered.
pub async fn create_task_run<R, F>(
    db: &Database,
    row: TaskRunRow,
    cache_key: Option<String>,
    decide: F,
) -> StorageResult<Created<R, TaskRunId>>
where
    R: Send + 'static,
    F: Fn(TaskRunContext) -> (TaskRunWrite, R) + Send + Sync + 'static,
{
    let decide = Arc::new(decide);
    db.transaction(async move |c| task::task_create(c, &row, cache_key.as_deref(), &*decide).await)
        .await
}
