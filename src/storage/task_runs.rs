//! Task runs and their state history: reads and filters, REST renames and deletes, and the
//! batched upsert the task-run recorder applies from `prefect.task-run.*` events (last writer by
//! state timestamp wins; replaying events changes nothing).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::build;
use super::history::{self, HistoryGroup, Window};
use super::rows::{TaskRunOrchestrated, TaskRunRow, TaskRunStateRow};
use super::schema::{task_run_states, task_runs};
use super::{Backend, Conn, StorageError, StorageResult};
use crate::db_run;
use crate::ids::{FlowRunId, TaskRunId, WorkspaceId};
use crate::query::{Page, Related, TaskRunSort};

pub type TaskRunWithState = (TaskRunRow, Option<TaskRunStateRow>);

pub async fn find(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &TaskRunId,
) -> StorageResult<Option<TaskRunWithState>> {
    let row = db_run!(c, |c| {
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
    // By primary key alone, the workspace compared here: see `transitions::flow_step` on
    // PostgreSQL's generic plans.
    Ok(row.filter(|(r, _)| r.workspace_id == ws))
}

pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    sort: TaskRunSort,
    page: Page,
) -> StorageResult<Vec<TaskRunWithState>> {
    let (runs, states) = db_run!(c, |c| {
        let cond = build::task_runs_related(related);
        let mut q = task_runs::table
            .filter(task_runs::workspace_id.eq(ws))
            .filter(cond)
            .select(TaskRunRow::as_select())
            .into_boxed();
        q = match sort {
            TaskRunSort::IdDesc => q.order(task_runs::id.desc()),
            TaskRunSort::ExpectedStartTimeAsc => {
                q.order((task_runs::expected_start_time.asc(), task_runs::id.asc()))
            }
            TaskRunSort::ExpectedStartTimeDesc => {
                q.order((task_runs::expected_start_time.desc(), task_runs::id.desc()))
            }
            TaskRunSort::NameAsc => q.order((task_runs::name.asc(), task_runs::id.asc())),
            TaskRunSort::NameDesc => q.order((task_runs::name.desc(), task_runs::id.desc())),
            TaskRunSort::NextScheduledStartTimeAsc => q.order((
                task_runs::next_scheduled_start_time.asc(),
                task_runs::id.asc(),
            )),
            TaskRunSort::EndTimeDesc => q.order((task_runs::end_time.desc(), task_runs::id.desc())),
            TaskRunSort::DurationDesc => {
                q.order((task_runs::total_run_time.desc(), task_runs::id.desc()))
            }
            TaskRunSort::DurationAsc => {
                q.order((task_runs::total_run_time.asc(), task_runs::id.asc()))
            }
        };
        let runs: Vec<TaskRunRow> = q.limit(page.limit).offset(page.offset).load(c).await?;
        let ids: Vec<&String> = runs.iter().filter_map(|r| r.state_id.as_ref()).collect();
        let states: Vec<TaskRunStateRow> = if ids.is_empty() {
            Vec::new()
        } else {
            task_run_states::table
                .filter(task_run_states::id.eq_any(ids))
                .select(TaskRunStateRow::as_select())
                .load(c)
                .await?
        };
        Ok::<_, diesel::result::Error>((runs, states))
    })?;
    let mut by_id: std::collections::HashMap<String, TaskRunStateRow> =
        states.into_iter().map(|s| (s.id.clone(), s)).collect();
    Ok(runs
        .into_iter()
        .map(|r| {
            let s = r.state_id.as_ref().and_then(|id| by_id.remove(id));
            (r, s)
        })
        .collect())
}

pub async fn count(c: &mut Conn, ws: &WorkspaceId, related: &Related) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = build::task_runs_related(related);
        task_runs::table
            .filter(task_runs::workspace_id.eq(ws))
            .filter(cond)
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}

/// How many task runs matching `related` are in each state type (those with any).
pub async fn count_by_state(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
) -> StorageResult<Vec<(Option<String>, i64)>> {
    let rows = db_run!(c, |c| {
        task_runs::table
            .filter(task_runs::workspace_id.eq(ws))
            .filter(build::task_runs_related(related))
            .group_by(task_runs::state_type)
            .select((task_runs::state_type, diesel::dsl::count_star()))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Task runs matching `related` counted per interval of `step_us` of their start time from
/// `start`, and per state type: `(interval, state_type, count)`.
pub async fn count_by_start_interval(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    start: &chrono::NaiveDateTime,
    step_us: i64,
) -> StorageResult<Vec<(i64, Option<String>, i64)>> {
    let pg = c.is_postgres();
    let rows = db_run!(c, |c| {
        task_runs::table
            .filter(task_runs::workspace_id.eq(ws))
            .filter(build::task_runs_related(related))
            .filter(task_runs::start_time.ge(start))
            .group_by(history::group_by_interval())
            .select(history::interval_counts(
                pg,
                "task_runs.start_time",
                start,
                step_us,
            ))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Task runs of one flow run (for the graph), oldest expected start first.
pub async fn list_of_flow_run(
    c: &mut Conn,
    ws: &WorkspaceId,
    flow_run_id: &FlowRunId,
) -> StorageResult<Vec<TaskRunRow>> {
    let rows = db_run!(c, |c| {
        task_runs::table
            .filter(task_runs::workspace_id.eq(ws))
            .filter(task_runs::flow_run_id.eq(flow_run_id))
            .order((task_runs::expected_start_time.asc(), task_runs::id.asc()))
            .select(TaskRunRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// The history of runs matching `related` in `window`: one group per interval and state
/// (`storage::history`).
pub async fn history_groups(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    window: &Window,
) -> StorageResult<Vec<HistoryGroup>> {
    let pg = c.is_postgres();
    let rows = db_run!(c, |c| {
        let cond = build::task_runs_related(related);
        task_runs::table
            .filter(task_runs::workspace_id.eq(ws))
            .filter(cond)
            .filter(task_runs::expected_start_time.ge(window.start))
            .filter(task_runs::expected_start_time.lt(window.end))
            .group_by(history::group_by())
            .select(history::select("task_runs", pg, window))
            .load::<HistoryGroup>(c)
            .await
    })?;
    Ok(rows)
}

pub async fn list_states(
    c: &mut Conn,
    ws: &WorkspaceId,
    task_run_id: &TaskRunId,
) -> StorageResult<Vec<TaskRunStateRow>> {
    let rows = db_run!(c, |c| {
        task_run_states::table
            .filter(task_run_states::workspace_id.eq(ws))
            .filter(task_run_states::task_run_id.eq(task_run_id))
            .order((task_run_states::timestamp.asc(), task_run_states::id.asc()))
            .select(TaskRunStateRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn find_state(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<TaskRunStateRow>> {
    let row = db_run!(c, |c| {
        task_run_states::table
            .filter(task_run_states::workspace_id.eq(ws))
            .filter(task_run_states::id.eq(id))
            .select(TaskRunStateRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn update_name(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &TaskRunId,
    name: &str,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::update(
            task_runs::table
                .filter(task_runs::workspace_id.eq(ws))
                .filter(task_runs::id.eq(id)),
        )
        .set((
            task_runs::name.eq(name),
            task_runs::updated.eq(crate::time::now_naive()),
        ))
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &TaskRunId) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::delete(
            task_runs::table
                .filter(task_runs::workspace_id.eq(ws))
                .filter(task_runs::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// One task run as seen in the newest of its events, plus every state those events carried.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub run: TaskRunRow,
    pub states: Vec<TaskRunStateRow>,
}

/// Upserts recorded task runs and inserts their states, all of the batch or none. A row is
/// updated only when the incoming state is newer than the stored one; states are keyed by id, so
/// replays change nothing. Returns how many task runs were written.
pub async fn record(c: &mut Conn, batch: &[Recorded]) -> StorageResult<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    // PostgreSQL: one statement for the batch (below), atomic without a transaction around it
    // (BEGIN and COMMIT would add two round trips per batch); SQLite: row by row in one
    // transaction on its writer.
    if let Backend::Pg(pg) = c.backend() {
        return Ok(pg_record(pg, batch).await?);
    }
    c.transaction(async |c| sqlite_record(c, batch).await).await
}

async fn sqlite_record(c: &mut Conn, batch: &[Recorded]) -> StorageResult<usize> {
    use diesel::query_dsl::methods::FilterDsl;
    let Backend::Sqlite(c) = c.backend() else {
        return Err(StorageError::Internal("sqlite_record on PostgreSQL".into()));
    };
    let written = async {
        let mut written = 0;
        for r in batch {
            let newer = task_runs::state_timestamp
                .is_null()
                .or(task_runs::state_timestamp
                    .lt(r.run.state_timestamp)
                    .assume_not_null());
            let upsert = diesel::insert_into(task_runs::table)
                .values(&r.run)
                .on_conflict(task_runs::id)
                .do_update()
                .set(RecordedUpdate::from(&r.run));
            written += FilterDsl::filter(upsert, newer).execute(c).await?;
            for state in &r.states {
                diesel::insert_into(task_run_states::table)
                    .values(state)
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await?;
            }
        }
        Ok::<_, diesel::result::Error>(written)
    }
    .await?;
    Ok(written)
}

/// PostgreSQL: the whole batch as one statement, every column an array parameter. The same
/// upsert as SQLite's (the columns of `RecordedUpdate`, only over an older state) and the same
/// state inserts. Statement by statement, a batch of 500 task runs took ~250 ms (each statement
/// a round trip, pipelined or not); this is what bounded recording at ~2,000 task runs/s.
/// `collect` gives one entry per task run, so no row is upserted twice in one statement.
const PG_RECORD: &str = "WITH runs AS (\
    INSERT INTO task_runs AS t (id, workspace_id, created, updated, name, flow_run_id, task_key, \
        dynamic_key, cache_key, cache_expiration, task_version, empirical_policy, tags, labels, \
        task_inputs, state_id, state_type, state_name, state_timestamp, run_count, \
        flow_run_run_count, expected_start_time, next_scheduled_start_time, start_time, \
        end_time, total_run_time) \
    SELECT * FROM unnest(?::text[], ?::text[], ?::timestamp[], ?::timestamp[], ?::text[], \
        ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamp[], ?::text[], ?::text[], \
        ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamp[], \
        ?::int8[], ?::int8[], ?::timestamp[], ?::timestamp[], ?::timestamp[], ?::timestamp[], \
        ?::float8[]) \
    ON CONFLICT (id) DO UPDATE SET updated = EXCLUDED.updated, state_id = EXCLUDED.state_id, \
        state_type = EXCLUDED.state_type, state_name = EXCLUDED.state_name, \
        state_timestamp = EXCLUDED.state_timestamp, run_count = EXCLUDED.run_count, \
        flow_run_run_count = EXCLUDED.flow_run_run_count, \
        expected_start_time = EXCLUDED.expected_start_time, \
        next_scheduled_start_time = EXCLUDED.next_scheduled_start_time, \
        start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time, \
        total_run_time = EXCLUDED.total_run_time, name = EXCLUDED.name, \
        flow_run_id = EXCLUDED.flow_run_id, task_key = EXCLUDED.task_key, \
        dynamic_key = EXCLUDED.dynamic_key, cache_key = EXCLUDED.cache_key, \
        cache_expiration = EXCLUDED.cache_expiration, task_version = EXCLUDED.task_version, \
        empirical_policy = EXCLUDED.empirical_policy, tags = EXCLUDED.tags, \
        labels = EXCLUDED.labels, task_inputs = EXCLUDED.task_inputs \
    WHERE t.state_timestamp IS NULL OR t.state_timestamp < EXCLUDED.state_timestamp \
    RETURNING 1), \
  states AS (\
    INSERT INTO task_run_states (id, workspace_id, created, task_run_id, type, name, timestamp, \
        message, data, state_details) \
    SELECT * FROM unnest(?::text[], ?::text[], ?::timestamp[], ?::text[], ?::text[], \
        ?::text[], ?::timestamp[], ?::text[], ?::text[], ?::text[]) \
    ON CONFLICT DO NOTHING RETURNING 1) \
SELECT (SELECT count(*) FROM runs) AS n";

#[derive(diesel::QueryableByName)]
struct Written {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn pg_record(
    c: &mut diesel_async::AsyncPgConnection,
    batch: &[Recorded],
) -> diesel::QueryResult<usize> {
    use diesel::sql_types::{Array, BigInt, Double, Nullable, Text, Timestamp};
    let states: Vec<&TaskRunStateRow> = batch.iter().flat_map(|r| &r.states).collect();
    macro_rules! run_col {
        (|$r:ident| $e:expr) => {
            batch
                .iter()
                .map(|r| {
                    let $r = &r.run;
                    $e
                })
                .collect::<Vec<_>>()
        };
    }
    let q = super::postgres::Statement::new(PG_RECORD)
        .bind::<Array<Text>, _>(run_col!(|r| r.id.as_str()))
        .bind::<Array<Text>, _>(run_col!(|r| r.workspace_id.as_str()))
        .bind::<Array<Timestamp>, _>(run_col!(|r| r.created))
        .bind::<Array<Timestamp>, _>(run_col!(|r| r.updated))
        .bind::<Array<Text>, _>(run_col!(|r| r.name.as_str()))
        .bind::<Array<Nullable<Text>>, _>(run_col!(|r| r.flow_run_id.as_deref()))
        .bind::<Array<Text>, _>(run_col!(|r| r.task_key.as_str()))
        .bind::<Array<Text>, _>(run_col!(|r| r.dynamic_key.as_str()))
        .bind::<Array<Nullable<Text>>, _>(run_col!(|r| r.cache_key.as_deref()))
        .bind::<Array<Nullable<Timestamp>>, _>(run_col!(|r| r.cache_expiration))
        .bind::<Array<Nullable<Text>>, _>(run_col!(|r| r.task_version.as_deref()))
        .bind::<Array<Text>, _>(run_col!(|r| r.empirical_policy.as_str()))
        .bind::<Array<Text>, _>(run_col!(|r| r.tags.as_str()))
        .bind::<Array<Text>, _>(run_col!(|r| r.labels.as_str()))
        .bind::<Array<Text>, _>(run_col!(|r| r.task_inputs.as_str()))
        .bind::<Array<Nullable<Text>>, _>(run_col!(|r| r.state_id.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(run_col!(|r| r.state_type.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(run_col!(|r| r.state_name.as_deref()))
        .bind::<Array<Nullable<Timestamp>>, _>(run_col!(|r| r.state_timestamp))
        .bind::<Array<BigInt>, _>(run_col!(|r| r.run_count))
        .bind::<Array<BigInt>, _>(run_col!(|r| r.flow_run_run_count))
        .bind::<Array<Nullable<Timestamp>>, _>(run_col!(|r| r.expected_start_time))
        .bind::<Array<Nullable<Timestamp>>, _>(run_col!(|r| r.next_scheduled_start_time))
        .bind::<Array<Nullable<Timestamp>>, _>(run_col!(|r| r.start_time))
        .bind::<Array<Nullable<Timestamp>>, _>(run_col!(|r| r.end_time))
        .bind::<Array<Double>, _>(run_col!(|r| r.total_run_time));
    let written: Vec<Written> = super::flow_runs::bind_state_arrays!(q, &states, task_run_id)
        .load(c)
        .await?;
    // One row: the count of task runs written.
    Ok(written.iter().map(|w| w.n as usize).sum())
}

/// The columns an event may change on an existing task run (not `created`, not `workspace_id`):
/// what a transition owns, and the run's descriptive columns.
#[derive(AsChangeset)]
#[diesel(table_name = task_runs, treat_none_as_null = true)]
struct RecordedUpdate<'a> {
    #[diesel(embed)]
    orchestrated: TaskRunOrchestrated<'a>,
    name: &'a str,
    flow_run_id: Option<&'a str>,
    task_key: &'a str,
    dynamic_key: &'a str,
    cache_key: Option<&'a str>,
    cache_expiration: Option<chrono::NaiveDateTime>,
    task_version: Option<&'a str>,
    empirical_policy: &'a str,
    tags: &'a str,
    labels: &'a str,
    task_inputs: &'a str,
}

impl<'a> From<&'a TaskRunRow> for RecordedUpdate<'a> {
    fn from(r: &'a TaskRunRow) -> Self {
        RecordedUpdate {
            orchestrated: TaskRunOrchestrated::from(r),
            name: &r.name,
            flow_run_id: r.flow_run_id.as_deref(),
            task_key: &r.task_key,
            dynamic_key: &r.dynamic_key,
            cache_key: r.cache_key.as_deref(),
            cache_expiration: r.cache_expiration,
            task_version: r.task_version.as_deref(),
            empirical_policy: &r.empirical_policy,
            tags: &r.tags,
            labels: &r.labels,
            task_inputs: &r.task_inputs,
        }
    }
}
