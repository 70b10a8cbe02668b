//! PostgreSQL: most flow-run transitions in one read and one statement, without a transaction
//! around them. The run (with its state, flow and its deployment's concurrency limit) is read by
//! primary key; the decision is made; then a single data-modifying statement updates the run
//! only if it still has the state the decision was made on, and inserts the new state and the
//! outbox events only if that update happened. One statement is atomic on its own, so the
//! state, the run's columns and the events are still written together or not at all, and a lost
//! race (no row updated) retries the whole step like the transaction path does. Creating a run
//! is one statement the same way: the run's INSERT, then its first state and events if the run
//! was inserted (not if its idempotency key was taken). BEGIN, a read, three or four writes and
//! COMMIT (four round trips) become two round trips, one for a creation.
//!
//! Subflows (whose parent task run mirrors the state) and runs of deployments with a concurrency
//! limit (which take the deployment's lock) need the transaction, so for them these answer
//! `None` and the caller runs the transaction path.
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Text, Timestamp};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::step::{keep_unstored, taken_timestamps, with_unstored};
use super::{Created, FlowDecide, FlowRunContext, FlowRunWrite};
use crate::ids::{FlowRunId, WorkspaceId};
use crate::storage::postgres::Statement;
use crate::storage::rows::{FlowRow, FlowRunRow, FlowRunStateRow};
use crate::storage::schema::{deployments, flow_run_states, flow_runs, flows};
use crate::storage::{Backend, Conn, StorageError, StorageResult};

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
             ob AS (INSERT INTO event_outbox (workspace_id, created, event_id, event, pending) \
             SELECT o.* FROM ",
            $src,
            ", unnest(?::text[], ?::timestamp[], ?::text[], ?::text[], ?::int4[]) \
             AS o(ws, created, event_id, event, pending)) SELECT count(*) AS n FROM ",
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
        crate::storage::flow_runs::insert_runs_from_arrays!("ON CONFLICT DO NOTHING RETURNING id"),
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
) -> diesel::QueryResult<bool> {
    let states: Vec<&FlowRunStateRow> = w.unstored_current.iter().chain(w.state.iter()).collect();
    let o = w.outbox.iter();
    macro_rules! field_of {
        ($it:expr, $f:ident) => {
            $it.clone().map(|x| x.$f.clone()).collect::<Vec<_>>()
        };
    }
    let counted: Vec<Count> =
        crate::storage::flow_runs::bind_state_arrays!(q, &states, flow_run_id)
            .bind::<Array<Text>, _>(field_of!(o, workspace_id))
            .bind::<Array<Timestamp>, _>(field_of!(o, created))
            .bind::<Array<Text>, _>(field_of!(o, event_id))
            .bind::<Array<Text>, _>(field_of!(o, event))
            .bind::<Array<diesel::sql_types::Integer>, _>(field_of!(o, pending))
            .load(c)
            .await?;
    Ok(matches!(counted.as_slice(), [Count { n: 1 }]))
}

/// `Ok(None)`: this run needs the transaction path (or the database is not PostgreSQL).
pub(super) async fn flow_step<R>(
    conn: &mut Conn,
    ws: &WorkspaceId,
    run_id: &str,
    since: NaiveDateTime,
    decide: &FlowDecide<R>,
) -> StorageResult<Option<R>> {
    let Backend::Pg(c) = conn.backend() else {
        return Ok(None);
    };
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
        .left_join(deployments::table.on(deployments::id.nullable().eq(flow_runs::deployment_id)))
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
        return Err(StorageError::NotFound);
    }
    if run.parent_task_run_id.is_some() || limit.is_some() {
        return Ok(None);
    }
    let (current, unstored) = with_unstored(&run, current);
    let taken_timestamps = taken_timestamps(conn, &current, &unstored, run_id, since).await?;
    let Backend::Pg(c) = conn.backend() else {
        return Ok(None);
    };
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
        return Err(StorageError::Raced);
    }
    Ok(Some(out))
}

/// `Ok(None)`: this run needs the transaction path (or the database is not PostgreSQL).
pub(super) async fn flow_create<R>(
    conn: &mut Conn,
    row: &FlowRunRow,
    flow: Option<&FlowRow>,
    decide: &FlowDecide<R>,
) -> StorageResult<Option<Created<R, FlowRunId>>> {
    let Backend::Pg(c) = conn.backend() else {
        return Ok(None);
    };
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
        return Ok(Some(Created::New(out)));
    }
    // Not inserted: the flow already has a run with this idempotency key.
    let existing: FlowRunId = flow_runs::table
        .filter(flow_runs::flow_id.eq(&row.flow_id))
        .filter(flow_runs::idempotency_key.eq(&row.idempotency_key))
        .select(flow_runs::id)
        .first(c)
        .await?;
    Ok(Some(Created::Existing(existing)))
}
