//! Flow runs and their state history: reads, filters, updates and deletes. State transitions
//! (which run orchestration inside one transaction) live in `transitions.rs`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::{backend, Cond, FilterSql, FlowRunSort, Page, Related};
use super::rows::{FlowRunRow, FlowRunStateRow};
use super::schema::{flow_run_states, flow_runs, task_runs};
use super::{Database, StorageResult};
use crate::db_run;

/// A run with its current state.
pub type RunWithState = (FlowRunRow, Option<FlowRunStateRow>);

/// The message of the first state of the runs the scheduler creates.
pub const SCHEDULED_MESSAGE: &str = "Flow run scheduled";

/// The scheduler writes no state row for the runs it creates (a second row and its index
/// entries per run were about a third of PostgreSQL's work in a scheduler cycle): such a run's
/// `state_id` is its own id, and its SCHEDULED state is fully given by its columns. This builds
/// that state; the run's first transition writes it as a row beside the new state, so the
/// history keeps it. `None` for every other run (their current state has a row).
pub fn unstored_state(run: &FlowRunRow) -> Option<FlowRunStateRow> {
    if run.state_id.as_deref() != Some(run.id.as_str()) {
        return None;
    }
    let scheduled = run.next_scheduled_start_time?;
    Some(FlowRunStateRow {
        id: run.id.clone(),
        workspace_id: run.workspace_id.clone(),
        created: run.created,
        flow_run_id: run.id.clone(),
        state_type: run.state_type.clone()?,
        name: run.state_name.clone()?,
        timestamp: run.state_timestamp?,
        message: Some(SCHEDULED_MESSAGE.to_string()),
        data: None,
        // The other details take their defaults when read.
        state_details: serde_json::json!({
            "flow_run_id": run.id,
            "scheduled_time": crate::time::format_naive(&scheduled),
        })
        .to_string(),
    })
}

/// `state` (the row `run.state_id` names, if it was found), or the state the run has without a
/// row ([`unstored_state`]).
pub fn state_or_unstored(
    run: &FlowRunRow,
    state: Option<FlowRunStateRow>,
) -> Option<FlowRunStateRow> {
    state.or_else(|| unstored_state(run))
}

/// The state ids of `runs` that name a row (not [`unstored_state`]s).
pub fn stored_state_ids<'a>(runs: impl Iterator<Item = &'a FlowRunRow>) -> Vec<&'a String> {
    runs.filter_map(|r| r.state_id.as_ref().filter(|s| **s != r.id))
        .collect()
}

fn runs_cond<C>(c: &C, related: &Related) -> Cond<flow_runs::table, C::Backend>
where
    C: diesel_async::AsyncConnection,
    C::Backend: FilterSql,
{
    let _ = backend(c);
    <C::Backend as FilterSql>::flow_runs_related(related)
}

pub async fn find(db: &Database, ws: &str, id: &str) -> StorageResult<Option<RunWithState>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
        flow_runs::table
            .left_join(
                flow_run_states::table.on(flow_run_states::id.nullable().eq(flow_runs::state_id)),
            )
            .filter(flow_runs::id.eq(id))
            .select((
                FlowRunRow::as_select(),
                Option::<FlowRunStateRow>::as_select(),
            ))
            .first(c)
            .await
            .optional()
    })?;
    // By primary key alone, the workspace compared here: see `transitions::flow_step` on
    // PostgreSQL's generic plans.
    Ok(row.filter(|(r, _)| r.workspace_id == ws).map(|(r, s)| {
        let s = state_or_unstored(&r, s);
        (r, s)
    }))
}

pub async fn list(
    db: &Database,
    ws: &str,
    related: &Related,
    sort: FlowRunSort,
    page: Page,
) -> StorageResult<Vec<RunWithState>> {
    let mut conn = db.read().await?;
    let (runs, states) = db_run!(conn, |c| {
        let cond = runs_cond(c, related);
        let mut q = flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(cond)
            .select(FlowRunRow::as_select())
            .into_boxed();
        q = match sort {
            FlowRunSort::IdDesc => q.order(flow_runs::id.desc()),
            FlowRunSort::StartTimeAsc => {
                q.order((flow_runs::start_time.asc(), flow_runs::id.asc()))
            }
            FlowRunSort::StartTimeDesc => {
                q.order((flow_runs::start_time.desc(), flow_runs::id.desc()))
            }
            FlowRunSort::ExpectedStartTimeAsc => {
                q.order((flow_runs::expected_start_time.asc(), flow_runs::id.asc()))
            }
            FlowRunSort::ExpectedStartTimeDesc => {
                q.order((flow_runs::expected_start_time.desc(), flow_runs::id.desc()))
            }
            FlowRunSort::NameAsc => q.order((flow_runs::name.asc(), flow_runs::id.asc())),
            FlowRunSort::NameDesc => q.order((flow_runs::name.desc(), flow_runs::id.desc())),
            FlowRunSort::NextScheduledStartTimeAsc => q.order((
                flow_runs::next_scheduled_start_time.asc(),
                flow_runs::id.asc(),
            )),
            FlowRunSort::EndTimeDesc => q.order((flow_runs::end_time.desc(), flow_runs::id.desc())),
        };
        let runs: Vec<FlowRunRow> = q.limit(page.limit).offset(page.offset).load(c).await?;
        let state_ids = stored_state_ids(runs.iter());
        let states: Vec<FlowRunStateRow> = if state_ids.is_empty() {
            Vec::new()
        } else {
            flow_run_states::table
                .filter(flow_run_states::id.eq_any(state_ids))
                .select(FlowRunStateRow::as_select())
                .load(c)
                .await?
        };
        Ok::<_, diesel::result::Error>((runs, states))
    })?;
    let mut by_id: std::collections::HashMap<String, FlowRunStateRow> =
        states.into_iter().map(|s| (s.id.clone(), s)).collect();
    Ok(runs
        .into_iter()
        .map(|r| {
            let s = r.state_id.as_ref().and_then(|id| by_id.remove(id));
            let s = state_or_unstored(&r, s);
            (r, s)
        })
        .collect())
}

pub async fn count(db: &Database, ws: &str, related: &Related) -> StorageResult<i64> {
    crate::count_in_workspace!(db, flow_runs, ws, runs_cond(related))
}

/// The columns history and lateness need, for runs matching `related` with an expected start
/// in [start, end).
pub async fn history_rows(
    db: &Database,
    ws: &str,
    related: &Related,
    start: NaiveDateTime,
    end: NaiveDateTime,
) -> StorageResult<Vec<FlowRunRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let cond = runs_cond(c, related);
        flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(cond)
            .filter(flow_runs::expected_start_time.ge(start))
            .filter(flow_runs::expected_start_time.lt(end))
            .select(FlowRunRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Saves the run's editable columns (name, flow_version, parameters, policy, tags, pid, job
/// variables, labels); false when no such run.
pub async fn save(db: &Database, ws: &str, run: &FlowRunRow) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        diesel::update(
            flow_runs::table
                .filter(flow_runs::workspace_id.eq(ws))
                .filter(flow_runs::id.eq(&run.id)),
        )
        .set((
            flow_runs::name.eq(&run.name),
            flow_runs::flow_version.eq(&run.flow_version),
            flow_runs::parameters.eq(&run.parameters),
            flow_runs::empirical_policy.eq(&run.empirical_policy),
            flow_runs::tags.eq(&run.tags),
            flow_runs::labels.eq(&run.labels),
            flow_runs::infrastructure_pid.eq(&run.infrastructure_pid),
            flow_runs::job_variables.eq(&run.job_variables),
            flow_runs::updated.eq(crate::time::now_naive()),
        ))
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

pub async fn delete(db: &Database, ws: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        diesel::delete(
            flow_runs::table
                .filter(flow_runs::workspace_id.eq(ws))
                .filter(flow_runs::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// Deletes up to `limit` runs matching `related`; returns their ids.
pub async fn bulk_delete(
    db: &Database,
    ws: &str,
    related: &Related,
    limit: i64,
) -> StorageResult<Vec<String>> {
    let mut conn = db.session().await?;
    let ids = db_run!(conn, |c| {
        let cond = runs_cond(c, related);
        let ids: Vec<String> = flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(cond)
            .select(flow_runs::id)
            .order(flow_runs::id.asc())
            .limit(limit)
            .load(c)
            .await?;
        diesel::delete(
            flow_runs::table
                .filter(flow_runs::workspace_id.eq(ws))
                .filter(flow_runs::id.eq_any(&ids)),
        )
        .execute(c)
        .await?;
        Ok::<_, diesel::result::Error>(ids)
    })?;
    Ok(ids)
}

/// The ids of up to `limit` runs matching `related` (for bulk state changes).
pub async fn ids(
    db: &Database,
    ws: &str,
    related: &Related,
    limit: i64,
) -> StorageResult<Vec<String>> {
    let mut conn = db.read().await?;
    let ids = db_run!(conn, |c| {
        let cond = runs_cond(c, related);
        flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(cond)
            .select(flow_runs::id)
            .order(flow_runs::id.asc())
            .limit(limit)
            .load::<String>(c)
            .await
    })?;
    Ok(ids)
}

/// The run's states, oldest first.
pub async fn states(db: &Database, ws: &str, run_id: &str) -> StorageResult<Vec<FlowRunStateRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let rows: Vec<FlowRunStateRow> = flow_run_states::table
            .filter(flow_run_states::workspace_id.eq(ws))
            .filter(flow_run_states::flow_run_id.eq(run_id))
            .order((flow_run_states::timestamp.asc(), flow_run_states::id.asc()))
            .select(FlowRunStateRow::as_select())
            .load(c)
            .await?;
        Ok::<_, diesel::result::Error>(rows)
    })?;
    drop(conn);
    if !rows.is_empty() {
        return Ok(rows);
    }
    // No rows: a run the scheduler created, whose only state has none yet.
    Ok(find(db, ws, run_id)
        .await?
        .and_then(|(r, _)| unstored_state(&r))
        .into_iter()
        .collect())
}

pub async fn find_state(
    db: &Database,
    ws: &str,
    id: &str,
) -> StorageResult<Option<FlowRunStateRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
        let row: Option<FlowRunStateRow> = flow_run_states::table
            .filter(flow_run_states::workspace_id.eq(ws))
            .filter(flow_run_states::id.eq(id))
            .select(FlowRunStateRow::as_select())
            .first(c)
            .await
            .optional()?;
        Ok::<_, diesel::result::Error>(row)
    })?;
    drop(conn);
    if row.is_some() {
        return Ok(row);
    }
    // The state without a row of a run the scheduler created has the run's id.
    Ok(find(db, ws, id)
        .await?
        .and_then(|(r, _)| unstored_state(&r)))
}

/// The current states of `runs`, by state id.
pub async fn find_states_of(
    db: &Database,
    runs: &[FlowRunRow],
) -> StorageResult<std::collections::HashMap<String, FlowRunStateRow>> {
    let ids = stored_state_ids(runs.iter());
    let rows: Vec<FlowRunStateRow> = if ids.is_empty() {
        Vec::new()
    } else {
        let mut conn = db.read().await?;
        db_run!(conn, |c| {
            flow_run_states::table
                .filter(flow_run_states::id.eq_any(&ids))
                .select(FlowRunStateRow::as_select())
                .load(c)
                .await
        })?
    };
    let mut out: std::collections::HashMap<String, FlowRunStateRow> =
        rows.into_iter().map(|s| (s.id.clone(), s)).collect();
    add_unstored(&mut out, runs.iter());
    Ok(out)
}

/// Adds the [`unstored_state`]s of `runs` to `states` (current states by id).
pub fn add_unstored<'a>(
    states: &mut std::collections::HashMap<String, FlowRunStateRow>,
    runs: impl Iterator<Item = &'a FlowRunRow>,
) {
    for s in runs.filter_map(unstored_state) {
        states.insert(s.id.clone(), s);
    }
}

/// (workspace, id) of SCHEDULED runs not yet Late whose start time is before `cutoff`.
pub async fn late_candidates(
    db: &Database,
    cutoff: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<(String, String)>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        // A literal, not a bound parameter, so both databases match the partial index
        // `flow_runs_scheduled_next` (only SCHEDULED runs) to this query.
        flow_runs::table
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "flow_runs.state_type = 'SCHEDULED'",
            ))
            .filter(flow_runs::state_name.ne("Late"))
            .filter(flow_runs::next_scheduled_start_time.lt(cutoff))
            .order(flow_runs::next_scheduled_start_time.asc())
            .limit(limit)
            .select((flow_runs::workspace_id, flow_runs::id))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// (workspace, id) of runs in CANCELLING since before `cutoff`.
pub async fn stuck_cancelling(
    db: &Database,
    cutoff: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<(String, String)>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        flow_runs::table
            .filter(flow_runs::state_type.eq("CANCELLING"))
            .filter(flow_runs::state_timestamp.lt(cutoff))
            .limit(limit)
            .select((flow_runs::workspace_id, flow_runs::id))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// The average lateness in seconds of the matching runs, computed in SQL (null when none match):
/// `start_time - expected_start_time` for started runs that started late, `now -
/// expected_start_time` for unstarted, unfinished runs that are overdue, 0 otherwise — the
/// reference's `/flow_runs/lateness` expression.
pub async fn average_lateness(
    db: &Database,
    ws: &str,
    related: &Related,
    now: NaiveDateTime,
) -> StorageResult<Option<f64>> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Double, Nullable, Timestamp};
    const UNFINISHED: &str = "start_time IS NULL AND state_type NOT IN ('COMPLETED', 'FAILED', \
                              'CANCELLED', 'CRASHED') AND expected_start_time < ";
    let mut conn = db.read().await?;
    // Two arms: the date arithmetic differs (EXTRACT EPOCH vs julianday).
    let avg = match conn.backend() {
        super::Backend::Pg(c) => {
            let cond = runs_cond(c, related);
            flow_runs::table
                .filter(flow_runs::workspace_id.eq(ws))
                .filter(cond)
                .select(
                    sql::<Nullable<Double>>(
                        "CAST(AVG(CASE WHEN start_time > expected_start_time THEN \
                         EXTRACT(EPOCH FROM (start_time - expected_start_time)) WHEN ",
                    )
                    .sql(UNFINISHED)
                    .bind::<Timestamp, _>(now)
                    .sql(" THEN EXTRACT(EPOCH FROM (")
                    .bind::<Timestamp, _>(now)
                    .sql(" - expected_start_time)) ELSE 0 END) AS DOUBLE PRECISION)"),
                )
                .get_result::<Option<f64>>(c)
                .await?
        }
        super::Backend::Sqlite(c) => {
            let cond = runs_cond(c, related);
            flow_runs::table
                .filter(flow_runs::workspace_id.eq(ws))
                .filter(cond)
                .select(
                    sql::<Nullable<Double>>(
                        "AVG(CASE WHEN start_time > expected_start_time THEN \
                         (julianday(start_time) - julianday(expected_start_time)) * 86400.0 WHEN ",
                    )
                    .sql(UNFINISHED)
                    .bind::<Timestamp, _>(now)
                    .sql(" THEN (julianday(")
                    .bind::<Timestamp, _>(now)
                    .sql(") - julianday(expected_start_time)) * 86400.0 ELSE 0.0 END)"),
                )
                .get_result::<Option<f64>>(c)
                .await?
        }
    };
    Ok(avg)
}

const TERMINAL_TYPES: [&str; 4] = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"];

/// An unfinished subflow of a cancelled parent: (workspace, id, its deployment).
pub type Subflow = (String, String, Option<String>);

/// Unfinished subflow runs of flow runs CANCELLED since `since`, except CANCELLING runs of a
/// deployment (their worker is already stopping them).
pub async fn orphaned_subflows(
    db: &Database,
    since: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<Subflow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let parent = diesel::alias!(flow_runs as parent);
        let parents = parent
            .filter(parent.field(flow_runs::state_type).eq("CANCELLED"))
            .filter(parent.field(flow_runs::end_time).ge(since))
            .select(parent.field(flow_runs::id).nullable());
        let parent_tasks = task_runs::table
            .filter(task_runs::flow_run_id.eq_any(parents))
            .select(task_runs::id.nullable());
        flow_runs::table
            .filter(flow_runs::parent_task_run_id.eq_any(parent_tasks))
            .filter(flow_runs::state_type.ne_all(TERMINAL_TYPES))
            .filter(
                flow_runs::deployment_id
                    .is_null()
                    .or(flow_runs::state_type.ne("CANCELLING")),
            )
            .order(flow_runs::id.asc())
            .limit(limit)
            .select((
                flow_runs::workspace_id,
                flow_runs::id,
                flow_runs::deployment_id,
            ))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// (workspace, id) of the unfinished task runs of flow runs CANCELLED since `since`.
pub async fn orphaned_task_runs(
    db: &Database,
    since: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<(String, String)>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let parents = flow_runs::table
            .filter(flow_runs::state_type.eq("CANCELLED"))
            .filter(flow_runs::end_time.ge(since))
            .select(flow_runs::id.nullable());
        task_runs::table
            .filter(task_runs::flow_run_id.eq_any(parents))
            .filter(task_runs::state_type.is_not_null())
            .filter(task_runs::state_type.ne_all(TERMINAL_TYPES))
            .order(task_runs::id.asc())
            .limit(limit)
            .select((task_runs::workspace_id, task_runs::id))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// PostgreSQL: `INSERT INTO flow_runs (every column) SELECT * FROM unnest(one array per column)`
/// followed by `$tail` (`RETURNING id`, with or without `ON CONFLICT DO NOTHING` before it): the
/// text whose binds [`bind_run_arrays`] supplies.
macro_rules! insert_runs_from_arrays {
    ($tail:literal) => {
        concat!(
        "INSERT INTO flow_runs (id, workspace_id, created, updated, name, flow_id, state_id, \
         state_type, state_name, state_timestamp, deployment_id, deployment_version, \
         work_queue_id, work_queue_name, work_pool_id, work_pool_name, flow_version, parameters, \
         idempotency_key, context, empirical_policy, tags, labels, parent_task_run_id, run_count, \
         expected_start_time, next_scheduled_start_time, start_time, end_time, total_run_time, \
         auto_scheduled, infrastructure_document_id, infrastructure_pid, created_by, \
         job_variables) \
         SELECT * FROM unnest(?::text[], ?::text[], ?::timestamp[], ?::timestamp[], ?::text[], \
         ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamp[], ?::text[], ?::text[], \
         ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], \
         ?::text[], ?::text[], ?::text[], ?::text[], ?::int8[], ?::timestamp[], ?::timestamp[], \
         ?::timestamp[], ?::timestamp[], ?::float8[], ?::bool[], ?::text[], ?::text[], \
         ?::text[], ?::text[]) ",
            $tail
        )
    };
}
pub(super) use insert_runs_from_arrays;

/// PostgreSQL: every column of `runs` as one array parameter each, in the table's column order
/// (`id` … `job_variables`), for `INSERT INTO flow_runs (…) SELECT * FROM unnest(?::text[], …)`.
pub(super) fn bind_run_arrays<'a>(
    q: super::postgres::Statement<'a>,
    runs: &[&'a FlowRunRow],
) -> super::postgres::Statement<'a> {
    use diesel::sql_types::{Array, BigInt, Bool, Double, Nullable, Text, Timestamp};
    macro_rules! col {
        ($q:expr, $st:ty, |$r:ident| $e:expr) => {
            $q.bind::<Array<$st>, _>(runs.iter().map(|$r| $e).collect::<Vec<_>>())
        };
    }
    let q = col!(q, Text, |r| r.id.as_str());
    let q = col!(q, Text, |r| r.workspace_id.as_str());
    let q = col!(q, Timestamp, |r| r.created);
    let q = col!(q, Timestamp, |r| r.updated);
    let q = col!(q, Text, |r| r.name.as_str());
    let q = col!(q, Text, |r| r.flow_id.as_str());
    let q = col!(q, Nullable<Text>, |r| r.state_id.as_deref());
    let q = col!(q, Nullable<Text>, |r| r.state_type.as_deref());
    let q = col!(q, Nullable<Text>, |r| r.state_name.as_deref());
    let q = col!(q, Nullable<Timestamp>, |r| r.state_timestamp);
    let q = col!(q, Nullable<Text>, |r| r.deployment_id.as_deref());
    let q = col!(q, Nullable<Text>, |r| r.deployment_version.as_deref());
    let q = col!(q, Nullable<Text>, |r| r.work_queue_id.as_deref());
    let q = col!(q, Nullable<Text>, |r| r.work_queue_name.as_deref());
    let q = col!(q, Nullable<Text>, |r| r.work_pool_id.as_deref());
    let q = col!(q, Nullable<Text>, |r| r.work_pool_name.as_deref());
    let q = col!(q, Nullable<Text>, |r| r.flow_version.as_deref());
    let q = col!(q, Text, |r| r.parameters.as_str());
    let q = col!(q, Nullable<Text>, |r| r.idempotency_key.as_deref());
    let q = col!(q, Text, |r| r.context.as_str());
    let q = col!(q, Text, |r| r.empirical_policy.as_str());
    let q = col!(q, Text, |r| r.tags.as_str());
    let q = col!(q, Text, |r| r.labels.as_str());
    let q = col!(q, Nullable<Text>, |r| r.parent_task_run_id.as_deref());
    let q = col!(q, BigInt, |r| r.run_count);
    let q = col!(q, Nullable<Timestamp>, |r| r.expected_start_time);
    let q = col!(q, Nullable<Timestamp>, |r| r.next_scheduled_start_time);
    let q = col!(q, Nullable<Timestamp>, |r| r.start_time);
    let q = col!(q, Nullable<Timestamp>, |r| r.end_time);
    let q = col!(q, Double, |r| r.total_run_time);
    let q = col!(q, Bool, |r| r.auto_scheduled);
    let q = col!(q, Nullable<Text>, |r| r
        .infrastructure_document_id
        .as_deref());
    let q = col!(q, Nullable<Text>, |r| r.infrastructure_pid.as_deref());
    let q = col!(q, Nullable<Text>, |r| r.created_by.as_deref());
    col!(q, Text, |r| r.job_variables.as_str())
}

/// PostgreSQL: binds every column of `$states` (a slice of flow-run or task-run state rows;
/// `$run` names their run-id field) to `$q` as one array parameter each, in the order of both
/// state tables' columns (`id` … `state_details`).
macro_rules! bind_state_arrays {
    ($q:expr, $states:expr, $run:ident) => {{
        use diesel::sql_types::{Array, Nullable, Text, Timestamp};
        let states = $states;
        $q.bind::<Array<Text>, _>(states.iter().map(|s| s.id.as_str()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(
                states
                    .iter()
                    .map(|s| s.workspace_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Timestamp>, _>(states.iter().map(|s| s.created).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(states.iter().map(|s| s.$run.as_str()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(
                states
                    .iter()
                    .map(|s| s.state_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(states.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
            .bind::<Array<Timestamp>, _>(states.iter().map(|s| s.timestamp).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                states
                    .iter()
                    .map(|s| s.message.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(
                states.iter().map(|s| s.data.as_deref()).collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(
                states
                    .iter()
                    .map(|s| s.state_details.as_str())
                    .collect::<Vec<_>>(),
            )
    }};
}
pub(super) use bind_state_arrays;
