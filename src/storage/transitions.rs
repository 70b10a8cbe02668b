//! State transitions, in one transaction each: read the run (with its current state, flow and
//! subflow parent task), let the caller decide (orchestration is pure and lives elsewhere), then
//! write the new state, the run's columns, the parent task's mirrored state and the outbox
//! events together. A concurrent transition of the same run is detected (the run's `state_id`
//! changed under us) and the whole step is retried, so no transition is lost or doubled.
//!
//! The hot path of the server, so each backend gets what suits it: on PostgreSQL the reads are
//! one joined query and the writes are pipelined (sent together, answered together); on SQLite
//! the whole step runs synchronously on the thread that owns the writer connection, one hand-off
//! per transition instead of one per statement. A new run is decided before it is inserted, so
//! creation writes the run's row once.

use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::outbox::NewOutboxRow;
use super::rows::{
    FlowRow, FlowRunOrchestrated, FlowRunRow, FlowRunStateRow, TaskRunOrchestrated, TaskRunRow,
    TaskRunStateRow,
};
use super::schema::{
    event_outbox, flow_run_states, flow_runs, flows, task_run_state_cache, task_run_states,
    task_runs,
};
use super::{Database, StorageError, StorageResult};

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
    pub workspace_id: String,
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

/// Serialises deployment-concurrency checks of one deployment within a transaction.
pub trait LockDeployment {
    fn lock_deployment(
        &mut self,
        deployment_id: &str,
    ) -> impl std::future::Future<Output = Result<(), diesel::result::Error>> + Send;
}

impl LockDeployment for diesel_async::AsyncPgConnection {
    /// PostgreSQL: a transaction-scoped advisory lock on the deployment, so two workers cannot
    /// both take the last slot.
    async fn lock_deployment(&mut self, deployment_id: &str) -> Result<(), diesel::result::Error> {
        super::postgres::Statement::new("SELECT pg_advisory_xact_lock(hashtext(?))")
            .bind::<diesel::sql_types::Text, _>(deployment_id)
            .execute(self)
            .await
            .map(|_| ())
    }
}

type QueryResult<T> = Result<T, diesel::result::Error>;

/// Writes what a decision returned, inside the step's transaction. Answers `false` when the
/// run's row no longer had the state the decision was made on (a concurrent transition).
pub trait StepWrites {
    fn write_flow(
        &mut self,
        w: &FlowRunWrite,
        expected_state: Option<&str>,
    ) -> impl std::future::Future<Output = QueryResult<bool>> + Send;
    fn write_task(
        &mut self,
        w: &TaskRunWrite,
        expected_state: Option<&str>,
    ) -> impl std::future::Future<Output = QueryResult<bool>> + Send;
}

/// The statements of a write, in order, as futures of one backend. Each statement is
/// independent of the others' results (no foreign key ties a run to its current state), so
/// PostgreSQL can pipeline them; index `run_at` is the guarded update of the run.
macro_rules! step_statements {
    (flow, $c:expr, $w:expr, $expected:expr, $push:ident) => {{
        let mut run_at = None;
        if let Some(s) = &$w.unstored_current {
            // A concurrent step may have written it; the guarded update below then finds the
            // run changed and the step is retried.
            let _ = $push!(diesel::insert_into(flow_run_states::table)
                .values(s)
                .on_conflict_do_nothing()
                .execute($c));
        }
        if let Some(s) = &$w.state {
            let _ = $push!(diesel::insert_into(flow_run_states::table)
                .values(s)
                .execute($c));
        }
        if let Some(r) = &$w.run {
            let target = flow_runs::table.filter(flow_runs::id.eq(&r.id));
            run_at = Some(match $expected {
                Some(sid) => $push!(diesel::update(target.filter(flow_runs::state_id.eq(sid)))
                    .set(FlowRunOrchestrated::from(r))
                    .execute($c)),
                None => $push!(diesel::update(target.filter(flow_runs::state_id.is_null()))
                    .set(FlowRunOrchestrated::from(r))
                    .execute($c)),
            });
        }
        if let Some((t, s)) = &$w.parent_task {
            let _ = $push!(diesel::insert_into(task_run_states::table)
                .values(s)
                .execute($c));
            let _ = $push!(
                diesel::update(task_runs::table.filter(task_runs::id.eq(&t.id)))
                    .set(TaskRunOrchestrated::from(t))
                    .execute($c)
            );
        }
        for row in &$w.outbox {
            let _ = $push!(diesel::insert_into(event_outbox::table)
                .values(row)
                .execute($c));
        }
        run_at
    }};
    (task, $c:expr, $w:expr, $expected:expr, $push:ident) => {{
        let mut run_at = None;
        if let Some(row) = &$w.cache {
            let _ = $push!(diesel::insert_into(task_run_state_cache::table)
                .values(row)
                .execute($c));
        }
        if let Some(s) = &$w.state {
            let _ = $push!(diesel::insert_into(task_run_states::table)
                .values(s)
                .execute($c));
        }
        if let Some(r) = &$w.run {
            let target = task_runs::table.filter(task_runs::id.eq(&r.id));
            run_at = Some(match $expected {
                Some(sid) => $push!(diesel::update(target.filter(task_runs::state_id.eq(sid)))
                    .set(TaskRunOrchestrated::from(r))
                    .execute($c)),
                None => $push!(diesel::update(target.filter(task_runs::state_id.is_null()))
                    .set(TaskRunOrchestrated::from(r))
                    .execute($c)),
            });
        }
        for row in &$w.outbox {
            let _ = $push!(diesel::insert_into(event_outbox::table)
                .values(row)
                .execute($c));
        }
        run_at
    }};
}

/// PostgreSQL: all statements are sent at once on the connection (pipelined) and their
/// answers read together — one round trip instead of one per statement.
async fn pipelined(
    futures: Vec<futures_util::future::BoxFuture<'_, QueryResult<usize>>>,
    run_at: Option<usize>,
) -> QueryResult<bool> {
    let counts = futures_util::future::try_join_all(futures).await?;
    Ok(run_at.is_none_or(|i| counts.get(i) == Some(&1)))
}

impl StepWrites for diesel_async::AsyncPgConnection {
    async fn write_flow(&mut self, w: &FlowRunWrite, expected: Option<&str>) -> QueryResult<bool> {
        let mut c: &diesel_async::AsyncPgConnection = self;
        let mut futures = Vec::new();
        macro_rules! push {
            ($f:expr) => {{
                futures.push($f);
                futures.len() - 1
            }};
        }
        let run_at = step_statements!(flow, &mut c, w, expected, push);
        pipelined(futures, run_at).await
    }

    async fn write_task(&mut self, w: &TaskRunWrite, expected: Option<&str>) -> QueryResult<bool> {
        let mut c: &diesel_async::AsyncPgConnection = self;
        let mut futures = Vec::new();
        macro_rules! push {
            ($f:expr) => {{
                futures.push($f);
                futures.len() - 1
            }};
        }
        let run_at = step_statements!(task, &mut c, w, expected, push);
        pipelined(futures, run_at).await
    }
}

/// Raised inside a transaction when the run changed under us; the step is retried.
const RACE: &str = "orrery: concurrent transition";
const ATTEMPTS: usize = 5;

fn race() -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(RACE.into())
}

fn is_race(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::QueryBuilderError(m) if m.to_string() == RACE)
}

/// The current state to decide on (the row, or the run's state without one) and, when it has no
/// row, that state to write with the next one.
fn with_unstored(
    run: &FlowRunRow,
    current: Option<FlowRunStateRow>,
) -> (Option<FlowRunStateRow>, Option<FlowRunStateRow>) {
    match current {
        Some(s) => (Some(s), None),
        None => {
            let unstored = crate::storage::flow_runs::unstored_state(run);
            (unstored.clone(), unstored)
        }
    }
}

/// `write`, which also writes the state it leaves when that had no row (and a new state is
/// written: a decision that writes no state leaves the run as it was).
fn keep_unstored(mut write: FlowRunWrite, unstored: Option<FlowRunStateRow>) -> FlowRunWrite {
    if write.state.is_some() {
        write.unstored_current = unstored;
    }
    write
}

/// What a flow-run decision needs besides the run itself: the subflow's parent task run (with
/// its state) and the deployment's concurrency (taking the deployment's lock when it has a
/// limit). Each is read only when the run has one.
macro_rules! flow_related {
    ($c:ident, $run:expr, [$($aw:tt)*]) => {{
        let run: &FlowRunRow = $run;
        let run_id = run.id.as_str();
        let parent_task = match &run.parent_task_run_id {
            Some(id) => {
                let t: Option<TaskRunRow> = task_runs::table
                    .find(id)
                    .select(TaskRunRow::as_select())
                    .first($c)
                    $($aw)*
                    .optional()?;
                match t {
                    Some(t) => {
                        let s: Option<TaskRunStateRow> = match &t.state_id {
                            Some(sid) => task_run_states::table
                                .find(sid)
                                .select(TaskRunStateRow::as_select())
                                .first($c)
                                $($aw)*
                                .optional()?,
                            None => None,
                        };
                        Some((t, s))
                    }
                    None => None,
                }
            }
            None => None,
        };
        let deployment_concurrency = match &run.deployment_id {
            Some(did) => {
                let d: Option<(Option<i32>, Option<String>)> = crate::storage::schema::deployments::table
                    .find(did)
                    .select((
                        crate::storage::schema::deployments::concurrency_limit,
                        crate::storage::schema::deployments::concurrency_options,
                    ))
                    .first($c)
                    $($aw)*
                    .optional()?;
                match d {
                    Some((Some(limit), options)) => {
                        $c.lock_deployment(did)$($aw)*?;
                        let active: i64 = flow_runs::table
                            .filter(flow_runs::deployment_id.eq(did))
                            .filter(flow_runs::id.ne(run_id))
                            .filter(flow_runs::state_type.eq_any([
                                "PENDING",
                                "RUNNING",
                                "CANCELLING",
                            ]))
                            .count()
                            .get_result($c)
                            $($aw)*?;
                        let strategy = options
                            .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
                            .and_then(|o| {
                                o.get("collision_strategy")
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string)
                            })
                            .unwrap_or_else(|| "ENQUEUE".into());
                        Some((limit, active, strategy))
                    }
                    _ => None,
                }
            }
            None => None,
        };
        (parent_task, deployment_concurrency)
    }};
}

/// Loads a flow run's context, asks `decide`, and writes the result, expanded once per
/// backend.
///
/// The run is read by its primary key alone and its workspace compared here (`task_step` too).
/// With `workspace_id = $1 AND id = $2`, PostgreSQL's cached generic plan for the prepared
/// statement, made while the table was still small and never analysed, used the
/// `(workspace_id, flow_id)` index and filtered on `id`: every transition then walked all of
/// the workspace's runs, 1.3 ms a read on average over a 20 s lifecycle bench and growing with
/// the table (auto_explain showed 5,900 rows removed by the filter), until autovacuum's first
/// ANALYZE of the table replaced the plan.
/// The timestamps of the flow run's states at or after `$since`, for a step whose current state
/// is `$current` and, when that has no row, `$unstored`. States are written with the time of
/// their transition, so when the current state is older than `since` no other state can be newer
/// (short of clocks that disagree by more than a transition): no lookup then; nor for a state
/// without a row, the run's only one.
macro_rules! taken_timestamps {
    ($c:ident, $current:expr, $unstored:expr, $run_id:expr, $since:expr, [$($aw:tt)*]) => {{
        let current: &Option<FlowRunStateRow> = $current;
        let unstored: &Option<FlowRunStateRow> = $unstored;
        let taken: Vec<NaiveDateTime> = if current.as_ref().is_some_and(|s| s.timestamp < $since) {
            Vec::new()
        } else if let Some(u) = unstored {
            vec![u.timestamp]
        } else {
            flow_run_states::table
                .filter(flow_run_states::flow_run_id.eq($run_id))
                .filter(flow_run_states::timestamp.ge($since))
                .select(flow_run_states::timestamp)
                .load($c)
                $($aw)*?
        };
        taken
    }};
}

macro_rules! flow_step {
    ($c:ident, $ws:expr, $run_id:expr, $since:expr, $decide:expr, [$($aw:tt)*]) => {{
        // The run, its current state and its flow in one round trip.
        let (run, current, flow): (FlowRunRow, Option<FlowRunStateRow>, Option<FlowRow>) =
            flow_runs::table
                .left_join(
                    flow_run_states::table
                        .on(flow_run_states::id.nullable().eq(flow_runs::state_id)),
                )
                .left_join(flows::table.on(flows::id.eq(flow_runs::flow_id)))
                .filter(flow_runs::id.eq($run_id))
                .select((
                    FlowRunRow::as_select(),
                    Option::<FlowRunStateRow>::as_select(),
                    Option::<FlowRow>::as_select(),
                ))
                .first($c)
                $($aw)*?;
        if run.workspace_id != $ws {
            return Err(diesel::result::Error::NotFound);
        }
        let (parent_task, deployment_concurrency) = flow_related!($c, &run, [$($aw)*]);
        let (current, unstored) = with_unstored(&run, current);
        let taken_timestamps =
            taken_timestamps!($c, &current, &unstored, $run_id, $since, [$($aw)*]);
        let expected_state = run.state_id.clone();
        let (write, out) = $decide(FlowRunContext {
            run,
            current,
            flow,
            parent_task,
            taken_timestamps,
            deployment_concurrency,
        });
        let write = keep_unstored(write, unstored);
        if !$c.write_flow(&write, expected_state.as_deref())$($aw)*? {
            return Err(race());
        }
        Ok::<_, diesel::result::Error>(out)
    }};
}

/// Inserts `$row` unless its idempotency key is taken, then runs the first step: the body of
/// `create_flow_run`, expanded once per backend.
macro_rules! flow_create {
    ($c:ident, $row:expr, $flow:expr, $decide:expr, [$($aw:tt)*]) => {{
        // A new run has no states yet, so the decision is made before anything is written and
        // the run is inserted with its decided columns: no read-back, no second write of the row.
        let row: &FlowRunRow = $row;
        let flow: Option<FlowRow> = match $flow {
            Some(flow) => Some(flow.clone()),
            None => flows::table
                .find(&row.flow_id)
                .select(FlowRow::as_select())
                .first($c)
                $($aw)*
                .optional()?,
        };
        let (parent_task, deployment_concurrency) = flow_related!($c, row, [$($aw)*]);
        let (write, out) = $decide(FlowRunContext {
            run: row.clone(),
            current: None,
            flow,
            parent_task,
            taken_timestamps: Vec::new(),
            deployment_concurrency,
        });
        let inserted = diesel::insert_into(flow_runs::table)
            .values(write.run.as_ref().unwrap_or(row))
            .on_conflict_do_nothing()
            .execute($c)$($aw)*?;
        if inserted == 0 {
            let existing: String = flow_runs::table
                .filter(flow_runs::workspace_id.eq(&row.workspace_id))
                .filter(flow_runs::flow_id.eq(&row.flow_id))
                .filter(flow_runs::idempotency_key.eq(&row.idempotency_key))
                .select(flow_runs::id)
                .first($c)$($aw)*?;
            Ok(Err(existing))
        } else {
            let rest = FlowRunWrite {
                run: None,
                ..write
            };
            $c.write_flow(&rest, None)$($aw)*?;
            Ok(Ok(out))
        }
    }};
}

/// Retries a step while it loses a race; `NotFound` (no such run) becomes `None`.
macro_rules! with_retries {
    ($attempt:expr) => {{
        let mut outcome = Err(StorageError::Conflict(
            "the run kept changing; try again".into(),
        ));
        for _ in 0..ATTEMPTS {
            match $attempt {
                Ok(r) => {
                    outcome = Ok(Some(r));
                    break;
                }
                Err(diesel::result::Error::NotFound) => {
                    outcome = Ok(None);
                    break;
                }
                Err(e) if is_race(&e) => continue,
                Err(e) => {
                    outcome = Err(e.into());
                    break;
                }
            }
        }
        outcome
    }};
}

/// Runs `decide` on the current flow run `run_id` and writes what it returns, atomically.
/// `None` when there is no such run in the workspace.
pub async fn transition_flow_run<R, F>(
    db: &Database,
    ws: &str,
    run_id: &str,
    since: NaiveDateTime,
    decide: F,
) -> StorageResult<Option<R>>
where
    R: Send + 'static,
    F: Fn(FlowRunContext) -> (FlowRunWrite, R) + Send + Sync + 'static,
{
    let decide = Arc::new(decide);
    with_retries!(match db {
        Database::Postgres(pg) => {
            let mut c = pg.get().await?;
            let c: &mut diesel_async::AsyncPgConnection = &mut c;
            match pg_fast::flow_step(c, ws, run_id, since, &*decide).await {
                Ok(Some(out)) => Ok(out),
                Ok(None) => {
                    c.transaction::<_, diesel::result::Error, _>(
                        async |c| flow_step!(c, ws, run_id, since, &*decide, [.await]),
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        Database::Sqlite(s) => {
            let (ws, run_id, decide) = (ws.to_string(), run_id.to_string(), decide.clone());
            s.run_write(move |c| blocking::flow_transition(c, &ws, &run_id, since, &*decide))
                .await
        }
    })
}

/// Inserts a flow run and applies its first state in one transaction. When the flow already has
/// a run with the same idempotency key, nothing is written and `Err(existing id)` is returned.
/// `flow` is the run's flow when the caller has already read it (it is read otherwise).
pub async fn create_flow_run<R, F>(
    db: &Database,
    row: &FlowRunRow,
    flow: Option<&FlowRow>,
    decide: F,
) -> StorageResult<Result<R, String>>
where
    R: Send + 'static,
    F: Fn(FlowRunContext) -> (FlowRunWrite, R) + Send + Sync + 'static,
{
    let result = match db {
        Database::Postgres(pg) => {
            let mut c = pg.get().await?;
            let c: &mut diesel_async::AsyncPgConnection = &mut c;
            match pg_fast::flow_create(c, row, flow, &decide).await {
                Ok(Some(out)) => Ok(out),
                Ok(None) => {
                    c.transaction::<_, diesel::result::Error, _>(
                        async |c| flow_create!(c, row, flow, &decide, [.await]),
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        Database::Sqlite(s) => {
            let (row, flow) = (row.clone(), flow.cloned());
            s.run_write(move |c| blocking::flow_create(c, &row, flow.as_ref(), &decide))
                .await
        }
    };
    Ok(result?)
}

macro_rules! task_step {
    ($c:ident, $ws:expr, $run_id:expr, $cache_key:expr, $now:expr, $decide:expr, [$($aw:tt)*]) => {{
        // The run and its current state in one round trip.
        let (run, current): (TaskRunRow, Option<TaskRunStateRow>) = task_runs::table
            .left_join(
                task_run_states::table.on(task_run_states::id.nullable().eq(task_runs::state_id)),
            )
            .filter(task_runs::id.eq($run_id))
            .select((TaskRunRow::as_select(), Option::<TaskRunStateRow>::as_select()))
            .first($c)
            $($aw)*?;
        if run.workspace_id != $ws {
            return Err(diesel::result::Error::NotFound);
        }
        let flow_run = match &run.flow_run_id {
            Some(fid) => {
                let fr: Option<FlowRunRow> = flow_runs::table
                    .find(fid)
                    .select(FlowRunRow::as_select())
                    .first($c)
                    $($aw)*
                    .optional()?;
                match fr {
                    Some(fr) => {
                        let s: Option<FlowRunStateRow> = match &fr.state_id {
                            Some(sid) => flow_run_states::table
                                .find(sid)
                                .select(FlowRunStateRow::as_select())
                                .first($c)
                                $($aw)*
                                .optional()?,
                            None => None,
                        };
                        let s = crate::storage::flow_runs::state_or_unstored(&fr, s);
                        Some((fr, s))
                    }
                    None => None,
                }
            }
            None => None,
        };
        let cached: Option<TaskRunStateRow> = match $cache_key {
            Some(key) => task_run_state_cache::table
                .inner_join(
                    task_run_states::table
                        .on(task_run_states::id.eq(task_run_state_cache::task_run_state_id)),
                )
                .filter(task_run_state_cache::workspace_id.eq($ws))
                .filter(task_run_state_cache::cache_key.eq(key))
                .filter(
                    task_run_state_cache::cache_expiration
                        .is_null()
                        .or(task_run_state_cache::cache_expiration.gt($now)),
                )
                .order(task_run_state_cache::created.desc())
                .select(TaskRunStateRow::as_select())
                .first($c)
                $($aw)*
                .optional()?,
            None => None,
        };
        let expected_state = run.state_id.clone();
        let (write, out) = $decide(TaskRunContext {
            run,
            current,
            flow_run,
            cached,
        });
        if !$c.write_task(&write, expected_state.as_deref())$($aw)*? {
            return Err(race());
        }
        Ok::<_, diesel::result::Error>(out)
    }};
}

/// Inserts `$row` unless its natural key is taken, then runs the first step: the body of
/// `create_task_run`, expanded once per backend.
macro_rules! task_create {
    ($c:ident, $row:expr, $cache_key:expr, $decide:expr, [$($aw:tt)*]) => {{
        let row: &TaskRunRow = $row;
        let ws = row.workspace_id.as_str();
        macro_rules! existing {
            () => {
                match &row.flow_run_id {
                    Some(fr) => task_runs::table
                        .filter(task_runs::flow_run_id.eq(fr))
                        .filter(task_runs::task_key.eq(&row.task_key))
                        .filter(task_runs::dynamic_key.eq(&row.dynamic_key))
                        .select(task_runs::id)
                        .first::<String>($c)$($aw)*
                        .optional()?,
                    None => task_runs::table
                        .find(&row.id)
                        .select(task_runs::id)
                        .first::<String>($c)$($aw)*
                        .optional()?,
                }
            };
        }
        match existing!() {
            Some(id) => Ok(Err(id)),
            None => {
                // A concurrent request for the same natural key may insert first: then this
                // one answers with that run, as when it was there before.
                let inserted = diesel::insert_into(task_runs::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute($c)$($aw)*?;
                if inserted == 0 {
                    return existing!().ok_or(diesel::result::Error::NotFound).map(Err);
                }
                let out = task_step!($c, ws, &row.id, $cache_key, row.created, $decide, [$($aw)*])?;
                Ok(Ok(out))
            }
        }
    }};
}

/// Runs `decide` on task run `run_id` and writes what it returns, atomically.
pub async fn transition_task_run<R, F>(
    db: &Database,
    ws: &str,
    run_id: &str,
    cache_key: Option<&str>,
    now: NaiveDateTime,
    decide: F,
) -> StorageResult<Option<R>>
where
    R: Send + 'static,
    F: Fn(TaskRunContext) -> (TaskRunWrite, R) + Send + Sync + 'static,
{
    let decide = Arc::new(decide);
    with_retries!(match db {
        Database::Postgres(pg) => {
            let mut c = pg.get().await?;
            let c: &mut diesel_async::AsyncPgConnection = &mut c;
            c.transaction::<_, diesel::result::Error, _>(
                async |c| task_step!(c, ws, run_id, cache_key, now, &*decide, [.await]),
            )
            .await
        }
        Database::Sqlite(s) => {
            let (ws, run_id, decide) = (ws.to_string(), run_id.to_string(), decide.clone());
            let cache_key = cache_key.map(str::to_string);
            s.run_write(move |c| {
                blocking::task_transition(c, &ws, &run_id, cache_key.as_deref(), now, &*decide)
            })
            .await
        }
    })
}

/// Inserts a task run (REST) and applies its first state, in one transaction. When a run with
/// the same (flow_run_id, task_key, dynamic_key) exists, nothing is written and `Err(existing
/// id)` is returned.
pub async fn create_task_run<R, F>(
    db: &Database,
    row: &TaskRunRow,
    cache_key: Option<&str>,
    decide: F,
) -> StorageResult<Result<R, String>>
where
    R: Send + 'static,
    F: Fn(TaskRunContext) -> (TaskRunWrite, R) + Send + Sync + 'static,
{
    let result = match db {
        Database::Postgres(pg) => {
            let mut c = pg.get().await?;
            let c: &mut diesel_async::AsyncPgConnection = &mut c;
            c.transaction::<_, diesel::result::Error, _>(
                async |c| task_create!(c, row, cache_key, &decide, [.await]),
            )
            .await
        }
        Database::Sqlite(s) => {
            let row = row.clone();
            let cache_key = cache_key.map(str::to_string);
            s.run_write(move |c| blocking::task_create(c, &row, cache_key.as_deref(), &decide))
                .await
        }
    };
    Ok(result?)
}

/// PostgreSQL: most flow-run transitions in one read and one statement, without a transaction
/// around them. The run (with its state, flow and its deployment's concurrency limit) is read by
/// primary key; the decision is made; then a single data-modifying statement updates the run
/// only if it still has the state the decision was made on, and inserts the new state and the
/// outbox events only if that update happened. One statement is atomic on its own, so the
/// state, the run's columns and the events are still written together or not at all, and a lost
/// race (no row updated) retries the whole step like the transaction path does. Creating a run
/// is one statement the same way: the run's INSERT, then its first state and events if the run
/// was inserted (not if its idempotency key was taken). BEGIN, a read, three or four writes and
/// COMMIT (four round trips) become two round trips, one for a creation.
///
/// Subflows (whose parent task run mirrors the state) and runs of deployments with a concurrency
/// limit (which take the deployment's lock) need the transaction, so for them these answer
/// `None` and the caller runs the transaction path.
mod pg_fast {
    use diesel::sql_types::{Array, BigInt, Double, Nullable, Text, Timestamp};
    use diesel_async::AsyncPgConnection;

    use super::*;
    use crate::storage::postgres::Statement;
    use crate::storage::schema::deployments;

    /// `$head` (a CTE named `$src` that returns the run's id when it wrote the run), then the new
    /// state and the outbox rows from arrays, inserted only when `$src` returned a row, and that
    /// row count. `?` marks each bind, in order (see `postgres::Statement`).
    macro_rules! then_state_and_outbox {
        ($head:expr, $src:literal) => {
            concat!(
                $head,
                ", st AS (INSERT INTO flow_run_states (id, workspace_id, created, flow_run_id, \
                 type, name, timestamp, message, data, state_details) SELECT s.* FROM ",
                $src,
                ", unnest(?::text[], ?::text[], ?::timestamp[], ?::text[], ?::text[], ?::text[], \
                 ?::timestamp[], ?::text[], ?::text[], ?::text[]) \
                 AS s(id, ws, created, run, type, name, ts, message, data, details)), \
                 ob AS (INSERT INTO event_outbox (workspace_id, created, event_id, event) \
                 SELECT o.* FROM ",
                $src,
                ", unnest(?::text[], ?::timestamp[], ?::text[], ?::text[]) \
                 AS o(ws, created, event_id, event)) SELECT count(*) AS n FROM ",
                $src
            )
        };
    }

    const FLOW_WRITE: &str = then_state_and_outbox!(
        "WITH upd AS (UPDATE flow_runs SET updated = ?, state_id = ?, state_type = ?, \
         state_name = ?, state_timestamp = ?, empirical_policy = ?, run_count = ?, \
         expected_start_time = ?, next_scheduled_start_time = ?, start_time = ?, end_time = ?, \
         total_run_time = ? WHERE id = ? AND state_id IS NOT DISTINCT FROM ? RETURNING id)",
        "upd"
    );

    const FLOW_CREATE: &str = then_state_and_outbox!(
        concat!(
            "WITH ins AS (",
            crate::storage::flow_runs::insert_runs_from_arrays!(
                "ON CONFLICT DO NOTHING RETURNING id"
            ),
            ")"
        ),
        "ins"
    );

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// Binds the state and outbox arrays of `then_state_and_outbox!` and runs the statement:
    /// `true` when its CTE wrote the run.
    async fn run_with_state_and_outbox<'a>(
        c: &mut AsyncPgConnection,
        q: Statement<'a>,
        w: &'a FlowRunWrite,
    ) -> QueryResult<bool> {
        let states: Vec<&FlowRunStateRow> =
            w.unstored_current.iter().chain(w.state.iter()).collect();
        let o = w.outbox.iter();
        macro_rules! col {
            ($it:expr, $f:ident) => {
                $it.clone().map(|x| x.$f.clone()).collect::<Vec<_>>()
            };
        }
        let counted: Vec<Count> =
            crate::storage::flow_runs::bind_state_arrays!(q, &states, flow_run_id)
                .bind::<Array<Text>, _>(col!(o, workspace_id))
                .bind::<Array<Timestamp>, _>(col!(o, created))
                .bind::<Array<Text>, _>(col!(o, event_id))
                .bind::<Array<Text>, _>(col!(o, event))
                .load(c)
                .await?;
        Ok(matches!(counted.as_slice(), [Count { n: 1 }]))
    }

    /// `Ok(None)`: this run needs the transaction path.
    pub(super) async fn flow_step<R>(
        c: &mut AsyncPgConnection,
        ws: &str,
        run_id: &str,
        since: NaiveDateTime,
        decide: &(dyn Fn(FlowRunContext) -> (FlowRunWrite, R) + Send + Sync),
    ) -> QueryResult<Option<R>> {
        type Read = (
            FlowRunRow,
            Option<FlowRunStateRow>,
            Option<FlowRow>,
            Option<i32>,
        );
        let (run, current, flow, limit): Read = flow_runs::table
            .left_join(
                flow_run_states::table.on(flow_run_states::id.nullable().eq(flow_runs::state_id)),
            )
            .left_join(flows::table.on(flows::id.eq(flow_runs::flow_id)))
            .left_join(
                deployments::table.on(deployments::id.nullable().eq(flow_runs::deployment_id)),
            )
            .filter(flow_runs::id.eq(run_id))
            .select((
                FlowRunRow::as_select(),
                Option::<FlowRunStateRow>::as_select(),
                Option::<FlowRow>::as_select(),
                deployments::concurrency_limit.nullable(),
            ))
            .first(c)
            .await?;
        if run.workspace_id != ws {
            return Err(diesel::result::Error::NotFound);
        }
        if run.parent_task_run_id.is_some() || limit.is_some() {
            return Ok(None);
        }
        let (current, unstored) = with_unstored(&run, current);
        let taken_timestamps = taken_timestamps!(c, &current, &unstored, run_id, since, [.await]);
        let expected = run.state_id.clone();
        let (write, out) = decide(FlowRunContext {
            run,
            current,
            flow,
            parent_task: None,
            taken_timestamps,
            deployment_concurrency: None,
        });
        let write = keep_unstored(write, unstored);
        let Some(r) = &write.run else {
            // Nothing to write (a rejection or a wait that changed nothing).
            return if write.state.is_none() && write.outbox.is_empty() {
                Ok(Some(out))
            } else {
                Ok(None)
            };
        };
        let q = Statement::new(FLOW_WRITE)
            .bind::<Timestamp, _>(r.updated)
            .bind::<Nullable<Text>, _>(r.state_id.as_deref())
            .bind::<Nullable<Text>, _>(r.state_type.as_deref())
            .bind::<Nullable<Text>, _>(r.state_name.as_deref())
            .bind::<Nullable<Timestamp>, _>(r.state_timestamp)
            .bind::<Text, _>(r.empirical_policy.as_str())
            .bind::<BigInt, _>(r.run_count)
            .bind::<Nullable<Timestamp>, _>(r.expected_start_time)
            .bind::<Nullable<Timestamp>, _>(r.next_scheduled_start_time)
            .bind::<Nullable<Timestamp>, _>(r.start_time)
            .bind::<Nullable<Timestamp>, _>(r.end_time)
            .bind::<Double, _>(r.total_run_time)
            .bind::<Text, _>(r.id.as_str())
            .bind::<Nullable<Text>, _>(expected.as_deref());
        if !run_with_state_and_outbox(c, q, &write).await? {
            return Err(race());
        }
        Ok(Some(out))
    }

    /// `Ok(None)`: this run needs the transaction path.
    pub(super) async fn flow_create<R>(
        c: &mut AsyncPgConnection,
        row: &FlowRunRow,
        flow: Option<&FlowRow>,
        decide: &(dyn Fn(FlowRunContext) -> (FlowRunWrite, R) + Send + Sync),
    ) -> QueryResult<Option<Result<R, String>>> {
        if row.parent_task_run_id.is_some() || row.deployment_id.is_some() {
            return Ok(None);
        }
        let flow: Option<FlowRow> = match flow {
            Some(flow) => Some(flow.clone()),
            None => flows::table
                .find(&row.flow_id)
                .select(FlowRow::as_select())
                .first(c)
                .await
                .optional()?,
        };
        let (write, out) = decide(FlowRunContext {
            run: row.clone(),
            current: None,
            flow,
            parent_task: None,
            taken_timestamps: Vec::new(),
            deployment_concurrency: None,
        });
        let r = write.run.as_ref().unwrap_or(row);
        let q = crate::storage::flow_runs::bind_run_arrays(Statement::new(FLOW_CREATE), &[r]);
        if run_with_state_and_outbox(c, q, &write).await? {
            return Ok(Some(Ok(out)));
        }
        // Not inserted: the flow already has a run with this idempotency key.
        let existing: String = flow_runs::table
            .filter(flow_runs::flow_id.eq(&row.flow_id))
            .filter(flow_runs::idempotency_key.eq(&row.idempotency_key))
            .select(flow_runs::id)
            .first(c)
            .await?;
        Ok(Some(Err(existing)))
    }
}

/// SQLite: a whole step runs on the blocking thread that owns the writer connection, with
/// synchronous diesel — one hand-off per transition instead of one per statement, so the
/// writer is held only for the time SQLite itself needs.
mod blocking {
    use diesel::{Connection, OptionalExtension, RunQueryDsl, SqliteConnection};

    use super::*;

    pub(super) fn flow_transition<R>(
        c: &mut SqliteConnection,
        ws: &str,
        run_id: &str,
        since: NaiveDateTime,
        decide: &dyn Fn(FlowRunContext) -> (FlowRunWrite, R),
    ) -> QueryResult<R> {
        c.transaction(|c| flow_step!(c, ws, run_id, since, decide, []))
    }

    pub(super) fn flow_create<R>(
        c: &mut SqliteConnection,
        row: &FlowRunRow,
        flow: Option<&FlowRow>,
        decide: &dyn Fn(FlowRunContext) -> (FlowRunWrite, R),
    ) -> QueryResult<Result<R, String>> {
        c.transaction(|c| flow_create!(c, row, flow, decide, []))
    }

    pub(super) fn task_transition<R>(
        c: &mut SqliteConnection,
        ws: &str,
        run_id: &str,
        cache_key: Option<&str>,
        now: NaiveDateTime,
        decide: &dyn Fn(TaskRunContext) -> (TaskRunWrite, R),
    ) -> QueryResult<R> {
        c.transaction(|c| task_step!(c, ws, run_id, cache_key, now, decide, []))
    }

    pub(super) fn task_create<R>(
        c: &mut SqliteConnection,
        row: &TaskRunRow,
        cache_key: Option<&str>,
        decide: &dyn Fn(TaskRunContext) -> (TaskRunWrite, R),
    ) -> QueryResult<Result<R, String>> {
        c.transaction(|c| task_create!(c, row, cache_key, decide, []))
    }

    pub(super) trait LockDeployment {
        fn lock_deployment(&mut self, deployment_id: &str) -> QueryResult<()>;
    }

    impl LockDeployment for SqliteConnection {
        /// The single writer connection already serialises transitions.
        fn lock_deployment(&mut self, _deployment_id: &str) -> QueryResult<()> {
            Ok(())
        }
    }

    pub(super) trait StepWrites {
        fn write_flow(&mut self, w: &FlowRunWrite, expected: Option<&str>) -> QueryResult<bool>;
        fn write_task(&mut self, w: &TaskRunWrite, expected: Option<&str>) -> QueryResult<bool>;
    }

    impl StepWrites for SqliteConnection {
        fn write_flow(&mut self, w: &FlowRunWrite, expected: Option<&str>) -> QueryResult<bool> {
            let mut counts = Vec::new();
            macro_rules! push {
                ($f:expr) => {{
                    counts.push($f?);
                    counts.len() - 1
                }};
            }
            let run_at = step_statements!(flow, &mut *self, w, expected, push);
            Ok(run_at.is_none_or(|i| counts.get(i) == Some(&1)))
        }

        fn write_task(&mut self, w: &TaskRunWrite, expected: Option<&str>) -> QueryResult<bool> {
            let mut counts = Vec::new();
            macro_rules! push {
                ($f:expr) => {{
                    counts.push($f?);
                    counts.len() - 1
                }};
            }
            let run_at = step_statements!(task, &mut *self, w, expected, push);
            Ok(run_at.is_none_or(|i| counts.get(i) == Some(&1)))
        }
    }
}
