//! The steps of a task-run transition and of a task run's creation (REST), written once for
//! both backends; each runs inside the caller's transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{Created, TaskDecide, TaskRunContext, TaskRunWrite};
use crate::db_run;
use crate::ids::{TaskRunId, WorkspaceId};
use crate::storage::rows::{
    FlowRunRow, FlowRunStateRow, TaskRunOrchestrated, TaskRunRow, TaskRunStateRow,
};
use crate::storage::schema::{task_run_state_cache, task_run_states, task_runs};
use crate::storage::{outbox, Conn, StorageError, StorageResult};

/// The enclosing flow run of a task run, with its state.
async fn enclosing_flow_run(
    c: &mut Conn,
    run: &TaskRunRow,
) -> StorageResult<Option<(FlowRunRow, Option<FlowRunStateRow>)>> {
    match &run.flow_run_id {
        Some(id) => crate::storage::flow_runs::find(c, &run.workspace_id, id).await,
        None => Ok(None),
    }
}

/// The newest unexpired cached state for `key`.
async fn cached_state(
    c: &mut Conn,
    ws: &WorkspaceId,
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
    ws: &WorkspaceId,
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
async fn existing_task_run(c: &mut Conn, row: &TaskRunRow) -> StorageResult<Option<TaskRunId>> {
    Ok(db_run!(c, |c| match &row.flow_run_id {
        Some(fr) => {
            task_runs::table
                .filter(task_runs::flow_run_id.eq(fr))
                .filter(task_runs::task_key.eq(&row.task_key))
                .filter(task_runs::dynamic_key.eq(&row.dynamic_key))
                .select(task_runs::id)
                .first::<TaskRunId>(c)
                .await
                .optional()
        }
        None => {
            task_runs::table
                .find(&row.id)
                .select(task_runs::id)
                .first::<TaskRunId>(c)
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
) -> StorageResult<Created<R, TaskRunId>> {
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
    let ws = &row.workspace_id;
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
        Ok::<_, diesel::result::Error>(updated)
    })?;
    outbox::insert(c, &w.outbox).await?;
    Ok(run_updated)
}
