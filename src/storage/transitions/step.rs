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

use super::{Created, FlowDecide, FlowRunContext, FlowRunWrite};
use crate::db_run;
use crate::ids::{FlowRunId, WorkspaceId};
use crate::storage::rows::{
    FlowRow, FlowRunOrchestrated, FlowRunRow, FlowRunStateRow, TaskRunOrchestrated, TaskRunRow,
    TaskRunStateRow,
};
use crate::storage::schema::{
    deployments, flow_run_states, flow_runs, flows, task_run_states, task_runs,
};
use crate::storage::{outbox, Backend, Conn, StorageError, StorageResult};

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
    match &run.parent_task_run_id {
        Some(id) => crate::storage::task_runs::find(c, &run.workspace_id, id).await,
        None => Ok(None),
    }
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
    ws: &WorkspaceId,
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
) -> StorageResult<Created<R, FlowRunId>> {
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
        let existing: FlowRunId = db_run!(c, |c| {
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
        Ok::<_, diesel::result::Error>(updated)
    })?;
    outbox::insert(c, &w.outbox).await?;
    Ok(run_updated)
}
