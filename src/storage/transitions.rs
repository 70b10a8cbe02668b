//! State transitions, in one transaction each: read the run (with its current state, flow and
//! subflow parent task), let the caller decide (orchestration is pure and lives elsewhere), then
//! write the new state, the run's columns, the parent task's mirrored state and the outbox
//! events together. A concurrent transition of the same run is detected (the run's `state_id`
//! changed under us) and the whole step is retried, so no transition is lost or doubled.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::outbox::NewOutboxRow;
use super::rows::{FlowRow, FlowRunRow, FlowRunStateRow, TaskRunRow, TaskRunStateRow};
use super::schema::{
    event_outbox, flow_run_states, flow_runs, flows, task_run_state_cache, task_run_states,
    task_runs,
};
use super::{Database, StorageError, StorageResult};
use crate::db_run;

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
    /// The run's new column values (saved whole), when they changed.
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
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(deployment_id)
            .execute(self)
            .await
            .map(|_| ())
    }
}

impl LockDeployment for super::SqliteConn {
    /// SQLite: the single writer connection already serialises transitions.
    async fn lock_deployment(&mut self, _deployment_id: &str) -> Result<(), diesel::result::Error> {
        Ok(())
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

/// Loads a flow run's context, asks `decide`, and writes the result: the body shared by
/// creation and transitions, expanded once per backend inside `db_run!`.
macro_rules! flow_step {
    ($c:ident, $ws:expr, $run_id:expr, $since:expr, $decide:expr) => {{
        let run: FlowRunRow = flow_runs::table
            .filter(flow_runs::workspace_id.eq($ws))
            .filter(flow_runs::id.eq($run_id))
            .select(FlowRunRow::as_select())
            .first($c)
            .await?;
        let current: Option<FlowRunStateRow> = match &run.state_id {
            Some(id) => flow_run_states::table
                .find(id)
                .select(FlowRunStateRow::as_select())
                .first($c)
                .await
                .optional()?,
            None => None,
        };
        let flow: Option<FlowRow> = flows::table
            .find(&run.flow_id)
            .select(FlowRow::as_select())
            .first($c)
            .await
            .optional()?;
        let parent_task = match &run.parent_task_run_id {
            Some(id) => {
                let t: Option<TaskRunRow> = task_runs::table
                    .find(id)
                    .select(TaskRunRow::as_select())
                    .first($c)
                    .await
                    .optional()?;
                match t {
                    Some(t) => {
                        let s: Option<TaskRunStateRow> = match &t.state_id {
                            Some(sid) => task_run_states::table
                                .find(sid)
                                .select(TaskRunStateRow::as_select())
                                .first($c)
                                .await
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
        let taken_timestamps: Vec<NaiveDateTime> = flow_run_states::table
            .filter(flow_run_states::flow_run_id.eq($run_id))
            .filter(flow_run_states::timestamp.ge($since))
            .select(flow_run_states::timestamp)
            .load($c)
            .await?;
        let deployment_concurrency = match &run.deployment_id {
            Some(did) => {
                let d: Option<(Option<i32>, Option<String>)> = super::schema::deployments::table
                    .find(did)
                    .select((
                        super::schema::deployments::concurrency_limit,
                        super::schema::deployments::concurrency_options,
                    ))
                    .first($c)
                    .await
                    .optional()?;
                match d {
                    Some((Some(limit), options)) => {
                        $c.lock_deployment(did).await?;
                        let active: i64 = flow_runs::table
                            .filter(flow_runs::deployment_id.eq(did))
                            .filter(flow_runs::id.ne($run_id))
                            .filter(flow_runs::state_type.eq_any([
                                "PENDING",
                                "RUNNING",
                                "CANCELLING",
                            ]))
                            .count()
                            .get_result($c)
                            .await?;
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
        let expected_state = run.state_id.clone();
        let (write, out) = $decide(FlowRunContext {
            run,
            current,
            flow,
            parent_task,
            taken_timestamps,
            deployment_concurrency,
        });
        let FlowRunWrite {
            state,
            run,
            parent_task,
            outbox,
        } = write;
        if let Some(s) = &state {
            diesel::insert_into(flow_run_states::table)
                .values(s)
                .execute($c)
                .await?;
        }
        if let Some(r) = &run {
            let target = flow_runs::table.filter(flow_runs::id.eq(&r.id));
            let n = match &expected_state {
                Some(sid) => {
                    diesel::update(target.filter(flow_runs::state_id.eq(sid)))
                        .set(r)
                        .execute($c)
                        .await?
                }
                None => {
                    diesel::update(target.filter(flow_runs::state_id.is_null()))
                        .set(r)
                        .execute($c)
                        .await?
                }
            };
            if n != 1 {
                return Err(race());
            }
        }
        if let Some((t, s)) = &parent_task {
            diesel::insert_into(task_run_states::table)
                .values(s)
                .execute($c)
                .await?;
            diesel::update(task_runs::table.filter(task_runs::id.eq(&t.id)))
                .set(t)
                .execute($c)
                .await?;
        }
        for row in &outbox {
            diesel::insert_into(event_outbox::table)
                .values(row)
                .execute($c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(out)
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
    R: Send,
    F: Fn(FlowRunContext) -> (FlowRunWrite, R) + Send + Sync,
{
    for _ in 0..ATTEMPTS {
        let mut conn = db.write().await?;
        let result = db_run!(conn, |c| {
            use diesel_async::AsyncConnection;
            c.transaction::<_, diesel::result::Error, _>(async |c| {
                flow_step!(c, ws, run_id, since, &decide)
            })
            .await
        });
        match result {
            Ok(r) => return Ok(Some(r)),
            Err(diesel::result::Error::NotFound) => return Ok(None),
            Err(e) if is_race(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StorageError::Conflict(
        "the run kept changing; try again".into(),
    ))
}

/// Inserts a flow run and applies its first state in one transaction. When the flow already has
/// a run with the same idempotency key, nothing is written and `Err(existing id)` is returned.
pub async fn create_flow_run<R, F>(
    db: &Database,
    row: &FlowRunRow,
    decide: F,
) -> StorageResult<Result<R, String>>
where
    R: Send,
    F: Fn(FlowRunContext) -> (FlowRunWrite, R) + Send + Sync,
{
    let mut conn = db.write().await?;
    let ws = row.workspace_id.as_str();
    let since = row.created;
    let result = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let inserted = diesel::insert_into(flow_runs::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(c)
                .await?;
            if inserted == 0 {
                let existing: String = flow_runs::table
                    .filter(flow_runs::workspace_id.eq(ws))
                    .filter(flow_runs::flow_id.eq(&row.flow_id))
                    .filter(flow_runs::idempotency_key.eq(&row.idempotency_key))
                    .select(flow_runs::id)
                    .first(c)
                    .await?;
                return Ok(Err(existing));
            }
            let out = flow_step!(c, ws, &row.id, since, &decide)?;
            Ok(Ok(out))
        })
        .await
    });
    Ok(result?)
}

macro_rules! task_step {
    ($c:ident, $ws:expr, $run_id:expr, $cache_key:expr, $now:expr, $decide:expr) => {{
        let run: TaskRunRow = task_runs::table
            .filter(task_runs::workspace_id.eq($ws))
            .filter(task_runs::id.eq($run_id))
            .select(TaskRunRow::as_select())
            .first($c)
            .await?;
        let current: Option<TaskRunStateRow> = match &run.state_id {
            Some(id) => task_run_states::table
                .find(id)
                .select(TaskRunStateRow::as_select())
                .first($c)
                .await
                .optional()?,
            None => None,
        };
        let flow_run = match &run.flow_run_id {
            Some(fid) => {
                let fr: Option<FlowRunRow> = flow_runs::table
                    .find(fid)
                    .select(FlowRunRow::as_select())
                    .first($c)
                    .await
                    .optional()?;
                match fr {
                    Some(fr) => {
                        let s: Option<FlowRunStateRow> = match &fr.state_id {
                            Some(sid) => flow_run_states::table
                                .find(sid)
                                .select(FlowRunStateRow::as_select())
                                .first($c)
                                .await
                                .optional()?,
                            None => None,
                        };
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
                .await
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
        let TaskRunWrite {
            state,
            run,
            outbox,
            cache,
        } = write;
        if let Some(row) = &cache {
            diesel::insert_into(task_run_state_cache::table)
                .values(row)
                .execute($c)
                .await?;
        }
        if let Some(s) = &state {
            diesel::insert_into(task_run_states::table)
                .values(s)
                .execute($c)
                .await?;
        }
        if let Some(r) = &run {
            let target = task_runs::table.filter(task_runs::id.eq(&r.id));
            let n = match &expected_state {
                Some(sid) => {
                    diesel::update(target.filter(task_runs::state_id.eq(sid)))
                        .set(r)
                        .execute($c)
                        .await?
                }
                None => {
                    diesel::update(target.filter(task_runs::state_id.is_null()))
                        .set(r)
                        .execute($c)
                        .await?
                }
            };
            if n != 1 {
                return Err(race());
            }
        }
        for row in &outbox {
            diesel::insert_into(event_outbox::table)
                .values(row)
                .execute($c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(out)
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
    R: Send,
    F: Fn(TaskRunContext) -> (TaskRunWrite, R) + Send + Sync,
{
    for _ in 0..ATTEMPTS {
        let mut conn = db.write().await?;
        let result = db_run!(conn, |c| {
            use diesel_async::AsyncConnection;
            c.transaction::<_, diesel::result::Error, _>(async |c| {
                task_step!(c, ws, run_id, cache_key, now, &decide)
            })
            .await
        });
        match result {
            Ok(r) => return Ok(Some(r)),
            Err(diesel::result::Error::NotFound) => return Ok(None),
            Err(e) if is_race(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StorageError::Conflict(
        "the run kept changing; try again".into(),
    ))
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
    R: Send,
    F: Fn(TaskRunContext) -> (TaskRunWrite, R) + Send + Sync,
{
    let mut conn = db.write().await?;
    let ws = row.workspace_id.as_str();
    let result = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let existing: Option<String> = match &row.flow_run_id {
                Some(fr) => task_runs::table
                    .filter(task_runs::flow_run_id.eq(fr))
                    .filter(task_runs::task_key.eq(&row.task_key))
                    .filter(task_runs::dynamic_key.eq(&row.dynamic_key))
                    .select(task_runs::id)
                    .first(c)
                    .await
                    .optional()?,
                None => task_runs::table
                    .find(&row.id)
                    .select(task_runs::id)
                    .first(c)
                    .await
                    .optional()?,
            };
            if let Some(id) = existing {
                return Ok(Err(id));
            }
            diesel::insert_into(task_runs::table)
                .values(row)
                .execute(c)
                .await?;
            let now = row.created;
            let out = task_step!(c, ws, &row.id, cache_key, now, &decide)?;
            Ok(Ok(out))
        })
        .await
    });
    Ok(result?)
}
