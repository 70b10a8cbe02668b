//! Flow runs and their state history: reads, filters, updates and deletes (here), the queries
//! of history and of the background services (`queries.rs`), and the PostgreSQL array inserts
//! the scheduler and the transitions share (`arrays.rs`). State transitions (which run
//! orchestration inside one transaction) live in `transitions`.

mod arrays;
mod queries;

pub(super) use arrays::{bind_run_arrays, bind_state_arrays, insert_runs_from_arrays};
pub use queries::*;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db_run;
use crate::ids::{FlowRunId, WorkspaceId};
use crate::query::{FlowRunSort, Page, Related};
use crate::storage::filters::build;
use crate::storage::rows::{FlowRunRow, FlowRunStateRow};
use crate::storage::schema::{flow_run_states, flow_runs};
use crate::storage::{Conn, StorageResult};

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
        id: run.id.to_string(),
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

pub async fn find(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &FlowRunId,
) -> StorageResult<Option<RunWithState>> {
    let row = db_run!(c, |c| {
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

/// When a run started or, before it starts, when it is expected to: what START_TIME sorts on
/// (Prefect's `coalesce(start_time, expected_start_time)`; index `flow_runs_workspace_start`).
fn started_or_expected(
) -> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Timestamp>> {
    diesel::dsl::sql("coalesce(flow_runs.start_time, flow_runs.expected_start_time)")
}

/// `q` in the order of `sort`, the id breaking ties (the same order for every kind of list).
pub(super) fn sorted<'a, DB, ST>(
    q: flow_runs::BoxedQuery<'a, DB, ST>,
    sort: FlowRunSort,
) -> flow_runs::BoxedQuery<'a, DB, ST>
where
    DB: diesel::backend::Backend + diesel::backend::DieselReserveSpecialization + 'a,
{
    match sort {
        FlowRunSort::IdDesc => q.order(flow_runs::id.desc()),
        FlowRunSort::StartTimeAsc => q.order((started_or_expected().asc(), flow_runs::id.asc())),
        FlowRunSort::StartTimeDesc => q.order((started_or_expected().desc(), flow_runs::id.desc())),
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
    }
}

pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    sort: FlowRunSort,
    page: Page,
) -> StorageResult<Vec<RunWithState>> {
    let (runs, states) = db_run!(c, |c| {
        let cond = build::flow_runs_related(related);
        let mut q = flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(cond)
            .select(FlowRunRow::as_select())
            .into_boxed();
        q = sorted(q, sort);
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

/// The name of flow run `id` of `ws`, if there is one.
pub async fn find_name(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &FlowRunId,
) -> StorageResult<Option<String>> {
    let name = db_run!(c, |c| {
        flow_runs::table
            .filter(flow_runs::id.eq(id))
            .filter(flow_runs::workspace_id.eq(ws))
            .select(flow_runs::name)
            .first::<String>(c)
            .await
            .optional()
    })?;
    Ok(name)
}

pub async fn count(c: &mut Conn, ws: &WorkspaceId, related: &Related) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = build::flow_runs_related(related);
        flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(cond)
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}

/// Saves the run's editable columns (name, flow_version, parameters, policy, tags, pid, job
/// variables, labels); false when no such run.
pub async fn update(c: &mut Conn, ws: &WorkspaceId, run: &FlowRunRow) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
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

pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &FlowRunId) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
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

/// Deletes up to `limit` runs matching `related`; returns their ids. Run it in a transaction.
pub async fn bulk_delete(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    limit: i64,
) -> StorageResult<Vec<FlowRunId>> {
    let ids = db_run!(c, |c| {
        let cond = build::flow_runs_related(related);
        let ids: Vec<FlowRunId> = flow_runs::table
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
pub async fn list_ids(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    limit: i64,
) -> StorageResult<Vec<FlowRunId>> {
    let ids = db_run!(c, |c| {
        let cond = build::flow_runs_related(related);
        flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(cond)
            .select(flow_runs::id)
            .order(flow_runs::id.asc())
            .limit(limit)
            .load::<FlowRunId>(c)
            .await
    })?;
    Ok(ids)
}

/// The run's states, oldest first.
pub async fn list_states(
    c: &mut Conn,
    ws: &WorkspaceId,
    run_id: &FlowRunId,
) -> StorageResult<Vec<FlowRunStateRow>> {
    let rows = db_run!(c, |c| {
        let rows: Vec<FlowRunStateRow> = flow_run_states::table
            .filter(flow_run_states::workspace_id.eq(ws))
            .filter(flow_run_states::flow_run_id.eq(run_id))
            .order((flow_run_states::timestamp.asc(), flow_run_states::id.asc()))
            .select(FlowRunStateRow::as_select())
            .load(c)
            .await?;
        Ok::<_, diesel::result::Error>(rows)
    })?;
    if !rows.is_empty() {
        return Ok(rows);
    }
    // No rows: a run the scheduler created, whose only state has none yet.
    Ok(find(c, ws, run_id)
        .await?
        .and_then(|(r, _)| unstored_state(&r))
        .into_iter()
        .collect())
}

pub async fn find_state(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<FlowRunStateRow>> {
    let row = db_run!(c, |c| {
        let row: Option<FlowRunStateRow> = flow_run_states::table
            .filter(flow_run_states::workspace_id.eq(ws))
            .filter(flow_run_states::id.eq(id))
            .select(FlowRunStateRow::as_select())
            .first(c)
            .await
            .optional()?;
        Ok::<_, diesel::result::Error>(row)
    })?;
    if row.is_some() {
        return Ok(row);
    }
    // The state without a row of a run the scheduler created has the run's id.
    let run = FlowRunId::new(id);
    Ok(find(c, ws, &run)
        .await?
        .and_then(|(r, _)| unstored_state(&r)))
}

/// The current states of `runs`, by state id.
pub async fn find_states_of(
    c: &mut Conn,
    runs: &[FlowRunRow],
) -> StorageResult<std::collections::HashMap<String, FlowRunStateRow>> {
    let ids = stored_state_ids(runs.iter());
    let rows: Vec<FlowRunStateRow> = if ids.is_empty() {
        Vec::new()
    } else {
        db_run!(c, |c| {
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
