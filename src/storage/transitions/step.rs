//! The steps of a transition, written once for both backends: read what a decision needs, ask
//! it, write what it returned. Each runs inside the caller's transaction.
//!
//! The run is read by its primary key alone and its workspace compared here. With
//! `workspace_id = $1 AND id = $2`, PostgreSQL's cached generic plan for the prepared
//! statement, made while the table was still small and never analysed, used the
//! `(workspace_id, flow_id)` index and filtered on `id`: every transition then walked all of
//! the workspace's runs (1.3 ms a read on average over a 20 s lifecycle bench, growing with the
//! table) until autovacuum's first ANALYZE of the table replaced the plan.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{
    Created, FlowDecide, FlowRunContext, FlowRunWrite, TaskDecide, TaskRunContext, TaskRunWrite,
};
use crate::db_run;
use crate::storage::rows::{
    FlowRow, FlowRunOrchestrated, FlowRunRow, FlowRunStateRow, TaskRunOrchestrated, TaskRunRow,
    TaskRunStateRow,
};
use crate::storage::schema::{
    deployments, event_outbox, flow_run_states, flow_runs, flows, task_run_state_cache,
    task_run_states, task_runs,
};
use crate::storage::{Backend, Conn, StorageError, StorageResult};

/// The current state to decide on (the row, or the run's state without one) and, when it has no
/// row, that state to write with the next one.
pub(super) fn with_unstored(
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
pub(super) fn keep_unstored(
    mut write: FlowRunWrite,
    unstored: Option<FlowRunStateRow>,
) -> FlowRunWrite {
    if write.state.is_some() {
        write.unstored_current = unstored;
    }
    write
}

/// The timestamps of the flow run's states at or after `since`, for a step whose current state
/// is `current` and, when that has no row, `unstored`. States are written with the time of their
/// transition, so when the current state is older than `since` no other state can be newer
/// (short of clocks that disagree by more than a transition): no lookup then; nor for a state
/// without a row, the run's only one.
pub(super) async fn taken_timestamps(
    c: &mut Conn,
    current: &Option<FlowRunStateRow>,
    unstored: &Option<FlowRunStateRow>,
    run_id: &str,
    since: NaiveDateTime,
) -> StorageResult<Vec<NaiveDateTime>> {
    if current.as_ref().is_some_and(|s| s.timestamp < since) {
        return Ok(Vec::new());
    }
    if let Some(u) = unstored {
        return Ok(vec![u.timestamp]);
    }
    Ok(db_run!(c, |c| {
        flow_run_states::table
            .filter(flow_run_states::flow_run_id.eq(run_id))
            .filter(flow_run_states::timestamp.ge(since))
            .select(flow_run_states::timestamp)
            .load(c)
            .await
    })?)
}

/// Serialises deployment-concurrency checks of one deployment within a transaction. Two arms:
/// PostgreSQL takes a transaction-scoped advisory lock, so two workers cannot both take the
/// last slot; SQLite's single writer already serialises transitions.
async fn lock_deployment(c: &mut Conn, deployment_id: &str) -> StorageResult<()> {
    if let Backend::Pg(pg) = c.backend() {
        crate::storage::postgres::Statement::new("SELECT pg_advisory_xact_lock(hashtext(?))")
            .bind::<diesel::sql_types::Text, _>(deployment_id)
            .execute(pg)
            .await?;
    }
    Ok(())
}

/// The subflow's parent task run with its state, when the run has one.
async fn parent_task(
    c: &mut Conn,
    run: &FlowRunRow,
) -> StorageResult<Option<(TaskRunRow, Option<TaskRunStateRow>)>> {
    let Some(id) = &run.parent_task_run_id else {
        return Ok(None);
    };
    let found: Option<(TaskRunRow, Option<TaskRunStateRow>)> = db_run!(c, |c| {
        task_runs::table
            .left_join(
                task_run_states::table.on(task_run_states::id.nullable().eq(task_runs::state_id)),
            )
            .filter(task_runs::id.eq(id))
            .select((
                TaskRunRow::as_select(),
                Option::<TaskRunStateRow>::as_select(),
            ))
            .first(c)
            .await
            .optional()
    })?;
    Ok(found)
}

/// The deployment's concurrency limit, strategy and active runs (taking the deployment's lock),
/// when the run's deployment has a limit.
async fn deployment_concurrency(
    c: &mut Conn,
    run: &FlowRunRow,
) -> StorageResult<Option<(i32, i64, String)>> {
    let Some(did) = &run.deployment_id else {
        return Ok(None);
    };
    let d: Option<(Option<i32>, Option<String>)> = db_run!(c, |c| {
        deployments::table
            .find(did)
            .select((
                deployments::concurrency_limit,
                deployments::concurrency_options,
            ))
            .first(c)
            .await
            .optional()
    })?;
    let Some((Some(limit), options)) = d else {
        return Ok(None);
    };
    lock_deployment(c, did).await?;
    let active: i64 = db_run!(c, |c| {
        flow_runs::table
            .filter(flow_runs::deployment_id.eq(did))
            .filter(flow_runs::id.ne(&run.id))
            .filter(flow_runs::state_type.eq_any(["PENDING", "RUNNING", "CANCELLING"]))
            .count()
            .get_result(c)
            .await
    })?;
    let strategy = options
        .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
        .and_then(|o| {
            o.get("collision_strategy")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "ENQUEUE".into());
    Ok(Some((limit, active, strategy)))
}

/// The flow named by `row`, unless the caller has it already.
async fn flow_of(
    c: &mut Conn,
    row: &FlowRunRow,
    flow: Option<&FlowRow>,
) -> StorageResult<Option<FlowRow>> {
    if let Some(flow) = flow {
        return Ok(Some(flow.clone()));
    }
    Ok(db_run!(c, |c| {
        flows::table
            .find(&row.flow_id)
            .select(FlowRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// One flow-run transition: read, decide, write; [`StorageError::Raced`] when the run changed
/// under the step.
pub(super) async fn flow_step<R>(
    c: &mut Conn,
    ws: &str,
    run_id: &str,
    since: NaiveDateTime,
    decide: &FlowDecide<R>,
) -> StorageResult<R> {
    // The run, its current state and its flow in one round trip.
    let (run, current, flow): (FlowRunRow, Option<FlowRunStateRow>, Option<FlowRow>) =
        db_run!(c, |c| {
            flow_runs::table
                .left_join(
                    flow_run_states::table
                        .on(flow_run_states::id.nullable().eq(flow_runs::state_id)),
                )
                .left_join(flows::table.on(flows::id.eq(flow_runs::flow_id)))
                .filter(flow_runs::id.eq(run_id))
                .select((
                    FlowRunRow::as_select(),
                    Option::<FlowRunStateRow>::as_select(),
                    Option::<FlowRow>::as_select(),
                ))
                .first(c)
                .await
        })?;
    if run.workspace_id != ws {
        return Err(StorageError::NotFound);
    }
    let parent_task = parent_task(c, &run).await?;
    let deployment_concurrency = deployment_concurrency(c, &run).await?;
    let (current, unstored) = with_unstored(&run, current);
    let taken_timestamps = taken_timestamps(c, &current, &unstored, run_id, since).await?;
    let expected_state = run.state_id.clone();
    let (write, out) = decide(FlowRunContext {
        run,
        current,
        flow,
        parent_task,
        taken_timestamps,
        deployment_concurrency,
    });
    let write = keep_unstored(write, unstored);
    if !write_flow(c, &write, expected_state.as_deref()).await? {
        return Err(StorageError::Raced);
    }
    Ok(out)
}

/// Inserts `row` unless its idempotency key is taken, then writes its first state.
pub(super) async fn flow_create<R>(
    c: &mut Conn,
    row: &FlowRunRow,
    flow: Option<&FlowRow>,
    decide: &FlowDecide<R>,
) -> StorageResult<Created<R>> {
    // A new run has no states yet, so the decision is made before anything is written and the
    // run is inserted with its decided columns: no read-back, no second write of the row.
    let flow = flow_of(c, row, flow).await?;
    let parent_task = parent_task(c, row).await?;
    let deployment_concurrency = deployment_concurrency(c, row).await?;
    let (write, out) = decide(FlowRunContext {
        run: row.clone(),
        current: None,
        flow,
        parent_task,
        taken_timestamps: Vec::new(),
        deployment_concurrency,
    });
    let values = write.run.as_ref().unwrap_or(row);
    let inserted = db_run!(c, |c| {
        diesel::insert_into(flow_runs::table)
            .values(values)
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    if inserted == 0 {
        let existing: String = db_run!(c, |c| {
            flow_runs::table
                .filter(flow_runs::workspace_id.eq(&row.workspace_id))
                .filter(flow_runs::flow_id.eq(&row.flow_id))
                .filter(flow_runs::idempotency_key.eq(&row.idempotency_key))
                .select(flow_runs::id)
                .first(c)
                .await
        })?;
        return Ok(Created::Existing(existing));
    }
    let rest = FlowRunWrite { run: None, ..write };
    write_flow(c, &rest, None).await?;
    Ok(Created::New(out))
}

/// Writes what a flow-run decision returned, in order. Answers `false` when the run's row no
/// longer had the state the decision was made on (a concurrent transition).
async fn write_flow(c: &mut Conn, w: &FlowRunWrite, expected: Option<&str>) -> StorageResult<bool> {
    let run_updated = db_run!(c, |c| {
        if let Some(s) = &w.unstored_current {
            // A concurrent step may have written it; the guarded update below then finds the
            // run changed and the step is retried.
            diesel::insert_into(flow_run_states::table)
                .values(s)
                .on_conflict_do_nothing()
                .execute(c)
                .await?;
        }
        if let Some(s) = &w.state {
            diesel::insert_into(flow_run_states::table)
                .values(s)
                .execute(c)
                .await?;
        }
        let mut updated = true;
        if let Some(r) = &w.run {
            let target = flow_runs::table.filter(flow_runs::id.eq(&r.id));
            let n = match expected {
                Some(sid) => {
                    diesel::update(target.filter(flow_runs::state_id.eq(sid)))
                        .set(FlowRunOrchestrated::from(r))
                        .execute(c)
                        .await?
                }
                None => {
                    diesel::update(target.filter(flow_runs::state_id.is_null()))
                        .set(FlowRunOrchestrated::from(r))
                        .execute(c)
                        .await?
                }
            };
            updated = n == 1;
        }
        if let Some((t, s)) = &w.parent_task {
            diesel::insert_into(task_run_states::table)
                .values(s)
                .execute(c)
                .await?;
            diesel::update(task_runs::table.filter(task_runs::id.eq(&t.id)))
                .set(TaskRunOrchestrated::from(t))
                .execute(c)
                .await?;
        }
        for row in &w.outbox {
            diesel::insert_into(event_outbox::table)
                .values(row)
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(updated)
    })?;
    Ok(run_updated)
}

/// The enclosing flow run of a task run, with its state.
async fn enclosing_flow_run(
    c: &mut Conn,
    run: &TaskRunRow,
) -> StorageResult<Option<(FlowRunRow, Option<FlowRunStateRow>)>> {
    let Some(fid) = &run.flow_run_id else {
        return Ok(None);
    };
    let found: Option<(FlowRunRow, Option<FlowRunStateRow>)> = db_run!(c, |c| {
        flow_runs::table
            .left_join(
                flow_run_states::table.on(flow_run_states::id.nullable().eq(flow_runs::state_id)),
            )
            .filter(flow_runs::id.eq(fid))
            .select((
                FlowRunRow::as_select(),
                Option::<FlowRunStateRow>::as_select(),
            ))
            .first(c)
            .await
            .optional()
    })?;
    Ok(found.map(|(fr, s)| {
        let s = crate::storage::flow_runs::state_or_unstored(&fr, s);
        (fr, s)
    }))
}

/// The newest unexpired cached state for `key`.
async fn cached_state(
    c: &mut Conn,
    ws: &str,
    key: &str,
    now: NaiveDateTime,
) -> StorageResult<Option<TaskRunStateRow>> {
    Ok(db_run!(c, |c| {
        task_run_state_cache::table
            .inner_join(
                task_run_states::table
                    .on(task_run_states::id.eq(task_run_state_cache::task_run_state_id)),
            )
            .filter(task_run_state_cache::workspace_id.eq(ws))
            .filter(task_run_state_cache::cache_key.eq(key))
            .filter(
                task_run_state_cache::cache_expiration
                    .is_null()
                    .or(task_run_state_cache::cache_expiration.gt(now)),
            )
            .order(task_run_state_cache::created.desc())
            .select(TaskRunStateRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// One task-run transition: read, decide, write; [`StorageError::Raced`] when the run changed
/// under the step.
pub(super) async fn task_step<R>(
    c: &mut Conn,
    ws: &str,
    run_id: &str,
    cache_key: Option<&str>,
    now: NaiveDateTime,
    decide: &TaskDecide<R>,
) -> StorageResult<R> {
    // The run and its current state in one round trip.
    let (run, current): (TaskRunRow, Option<TaskRunStateRow>) = db_run!(c, |c| {
        task_runs::table
            .left_join(
                task_run_states::table.on(task_run_states::id.nullable().eq(task_runs::state_id)),
            )
            .filter(task_runs::id.eq(run_id))
            .select((
                TaskRunRow::as_select(),
                Option::<TaskRunStateRow>::as_select(),
            ))
            .first(c)
            .await
    })?;
    if run.workspace_id != ws {
        return Err(StorageError::NotFound);
    }
    let flow_run = enclosing_flow_run(c, &run).await?;
    let cached = match cache_key {
        Some(key) => cached_state(c, ws, key, now).await?,
        None => None,
    };
    let expected_state = run.state_id.clone();
    let (write, out) = decide(TaskRunContext {
        run,
        current,
        flow_run,
        cached,
    });
    if !write_task(c, &write, expected_state.as_deref()).await? {
        return Err(StorageError::Raced);
    }
    Ok(out)
}

/// The id of the task run with `row`'s natural key (flow run, task key, dynamic key), or with
/// its id when it has no flow run.
async fn existing_task_run(c: &mut Conn, row: &TaskRunRow) -> StorageResult<Option<String>> {
    Ok(db_run!(c, |c| match &row.flow_run_id {
        Some(fr) => {
            task_runs::table
                .filter(task_runs::flow_run_id.eq(fr))
                .filter(task_runs::task_key.eq(&row.task_key))
                .filter(task_runs::dynamic_key.eq(&row.dynamic_key))
                .select(task_runs::id)
                .first::<String>(c)
                .await
                .optional()
        }
        None => {
            task_runs::table
                .find(&row.id)
                .select(task_runs::id)
                .first::<String>(c)
                .await
                .optional()
        }
    })?)
}

/// Inserts `row` unless its natural key is taken, then runs its first step.
pub(super) async fn task_create<R>(
    c: &mut Conn,
    row: &TaskRunRow,
    cache_key: Option<&str>,
    decide: &TaskDecide<R>,
) -> StorageResult<Created<R>> {
    if let Some(id) = existing_task_run(c, row).await? {
        return Ok(Created::Existing(id));
    }
    // A concurrent request for the same natural key may insert first: then this one answers
    // with that run, as when it was there before.
    let inserted = db_run!(c, |c| {
        diesel::insert_into(task_runs::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    if inserted == 0 {
        return existing_task_run(c, row)
            .await?
            .map(Created::Existing)
            .ok_or(StorageError::NotFound);
    }
    let ws = row.workspace_id.as_str();
    let out = task_step(c, ws, &row.id, cache_key, row.created, decide).await?;
    Ok(Created::New(out))
}

/// Writes what a task-run decision returned, in order; `false` as for [`write_flow`].
async fn write_task(c: &mut Conn, w: &TaskRunWrite, expected: Option<&str>) -> StorageResult<bool> {
    let run_updated = db_run!(c, |c| {
        if let Some(row) = &w.cache {
            diesel::insert_into(task_run_state_cache::table)
                .values(row)
                .execute(c)
                .await?;
        }
        if let Some(s) = &w.state {
            diesel::insert_into(task_run_states::table)
                .values(s)
                .execute(c)
                .await?;
        }
        let mut updated = true;
        if let Some(r) = &w.run {
            let target = task_runs::table.filter(task_runs::id.eq(&r.id));
            let n = match expected {
                Some(sid) => {
                    diesel::update(target.filter(task_runs::state_id.eq(sid)))
                        .set(TaskRunOrchestrated::from(r))
                        .execute(c)
                        .await?
                }
                None => {
                    diesel::update(target.filter(task_runs::state_id.is_null()))
                        .set(TaskRunOrchestrated::from(r))
                        .execute(c)
                        .await?
                }
            };
            updated = n == 1;
        }
        for row in &w.outbox {
            diesel::insert_into(event_outbox::table)
                .values(row)
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(updated)
    })?;
    Ok(run_updated)
}
