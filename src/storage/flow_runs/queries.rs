//! Flow-run queries across runs: the groups of the history charts, the average lateness, and what
//! the background services look for (late, stuck-cancelling and orphaned runs).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db_run;
use crate::ids::{DeploymentId, FlowId, FlowRunId, TaskRunId, WorkspaceId};
use crate::query::Related;
use crate::storage::filters::build;
use crate::storage::history::{self, HistoryGroup, Window};
use crate::storage::schema::{flow_runs, task_runs};
use crate::storage::{Backend, Conn, StorageResult};

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
        let cond = build::flow_runs_related(related);
        flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(cond)
            .filter(flow_runs::expected_start_time.ge(window.start))
            .filter(flow_runs::expected_start_time.lt(window.end))
            .group_by(history::group_by())
            .select(history::select("flow_runs", pg, window))
            .load::<HistoryGroup>(c)
            .await
    })?;
    Ok(rows)
}

/// (workspace, id) of SCHEDULED runs not yet Late whose start time is before `cutoff`.
pub async fn list_late_candidates(
    c: &mut Conn,
    cutoff: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<(WorkspaceId, FlowRunId)>> {
    let rows = db_run!(c, |c| {
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
pub async fn list_stuck_cancelling(
    c: &mut Conn,
    cutoff: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<(WorkspaceId, FlowRunId)>> {
    let rows = db_run!(c, |c| {
        flow_runs::table
            .filter(state_is("flow_runs", "CANCELLING"))
            .filter(flow_runs::state_timestamp.lt(cutoff))
            .order(flow_runs::state_timestamp.asc())
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
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    now: NaiveDateTime,
) -> StorageResult<Option<f64>> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Double, Nullable, Timestamp};
    const UNFINISHED: &str = "start_time IS NULL AND state_type NOT IN ('COMPLETED', 'FAILED', \
                              'CANCELLED', 'CRASHED') AND expected_start_time < ";
    // Two arms: the date arithmetic differs (EXTRACT EPOCH vs julianday).
    let avg = match c.backend() {
        Backend::Pg(c) => {
            let cond = build::flow_runs_related(related);
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
        Backend::Sqlite(c) => {
            let cond = build::flow_runs_related(related);
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

/// `{table}.state_type = '{state}'` as a literal, not a bound parameter, so both databases match
/// the query to the partial index of runs in that state (migration 9). Both are constants.
fn state_is(
    table: &'static str,
    state: &'static str,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>(&format!("{table}.state_type = '{state}'"))
}

const TERMINAL_TYPES: [&str; 4] = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"];

/// An unfinished subflow of a cancelled parent: (workspace, id, its deployment).
pub type Subflow = (WorkspaceId, FlowRunId, Option<DeploymentId>);

/// Unfinished subflow runs of flow runs CANCELLED since `since`, except CANCELLING runs of a
/// deployment (their worker is already stopping them).
pub async fn list_orphaned_subflows(
    c: &mut Conn,
    since: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<Subflow>> {
    let rows = db_run!(c, |c| {
        let parent = diesel::alias!(flow_runs as parent);
        let parents = parent
            .filter(state_is("parent", "CANCELLED"))
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

/// (workspace, id) of the unfinished task runs of flow runs CANCELLED since `since`, except
/// the parent task runs of unfinished subflows: those take their subflow's state when the
/// subflow is cancelled (`list_orphaned_subflows`), so they are not cancelled twice.
pub async fn list_orphaned_task_runs(
    c: &mut Conn,
    since: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<(WorkspaceId, TaskRunId)>> {
    let rows = db_run!(c, |c| {
        let parents = flow_runs::table
            .filter(state_is("flow_runs", "CANCELLED"))
            .filter(flow_runs::end_time.ge(since))
            .select(flow_runs::id.nullable());
        let sub = diesel::alias!(flow_runs as sub);
        let unfinished_subflow = sub
            .filter(
                sub.field(flow_runs::parent_task_run_id)
                    .eq(task_runs::id.nullable()),
            )
            .filter(sub.field(flow_runs::state_type).ne_all(TERMINAL_TYPES));
        task_runs::table
            .filter(task_runs::flow_run_id.eq_any(parents))
            .filter(task_runs::state_type.is_not_null())
            .filter(task_runs::state_type.ne_all(TERMINAL_TYPES))
            .filter(diesel::dsl::not(diesel::dsl::exists(unfinished_subflow)))
            .order(task_runs::id.asc())
            .limit(limit)
            .select((task_runs::workspace_id, task_runs::id))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// A flow's next scheduled run (`/ui/flows/next-runs`).
#[derive(Debug, Clone, Queryable)]
pub struct NextRun {
    pub id: FlowRunId,
    pub flow_id: FlowId,
    pub name: String,
    pub state_name: Option<String>,
    pub state_type: Option<String>,
    pub next_scheduled_start_time: Option<NaiveDateTime>,
}

/// One id of a raw query.
#[derive(QueryableByName)]
struct MaybeId {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    id: Option<String>,
}

/// The earliest SCHEDULED run of each of `flows` that has one. One statement of one scalar
/// subquery per flow, each a short read of the partial index `flow_runs_flow_scheduled_next`
/// (the literal `'SCHEDULED'` lets both planners use it), then the rows by id.
pub async fn next_scheduled_of_flows(
    c: &mut Conn,
    ws: &WorkspaceId,
    flows: &[FlowId],
) -> StorageResult<Vec<NextRun>> {
    if flows.is_empty() {
        return Ok(Vec::new());
    }
    let numbered = matches!(c.backend(), Backend::Pg(_));
    let sql = flows
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let (f, w) = match numbered {
                true => (format!("${}", 2 * i + 1), format!("${}", 2 * i + 2)),
                false => ("?".to_string(), "?".to_string()),
            };
            format!(
                "SELECT (SELECT f.id FROM flow_runs f WHERE f.flow_id = {f} \
                 AND f.state_type = 'SCHEDULED' AND f.next_scheduled_start_time IS NOT NULL \
                 AND f.workspace_id = {w} ORDER BY f.next_scheduled_start_time, f.id LIMIT 1) AS id"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let found: Vec<MaybeId> = db_run!(c, |c| {
        let mut q = crate::storage::boxed_for(&*c, diesel::sql_query(sql));
        for f in flows {
            q = q
                .bind::<diesel::sql_types::Text, _>(f.to_string())
                .bind::<diesel::sql_types::Text, _>(ws.to_string());
        }
        q.load(c).await
    })?;
    let ids: Vec<String> = found.into_iter().filter_map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db_run!(c, |c| {
        flow_runs::table
            .filter(flow_runs::id.eq_any(&ids))
            .select((
                flow_runs::id,
                flow_runs::flow_id,
                flow_runs::name,
                flow_runs::state_name,
                flow_runs::state_type,
                flow_runs::next_scheduled_start_time,
            ))
            .load::<NextRun>(c)
            .await
    })?;
    Ok(rows)
}

/// The number of task runs of each of `runs` that has any, not counting the task runs that
/// stand for a subflow run (as the reference's `/ui/flow_runs/count-task-runs`).
pub async fn count_task_runs_of(
    c: &mut Conn,
    ws: &WorkspaceId,
    runs: &[FlowRunId],
) -> StorageResult<Vec<(Option<FlowRunId>, i64)>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db_run!(c, |c| {
        task_runs::table
            .filter(task_runs::workspace_id.eq(ws))
            .filter(task_runs::flow_run_id.eq_any(runs))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                flow_runs::table.filter(flow_runs::parent_task_run_id.eq(task_runs::id.nullable())),
            )))
            .group_by(task_runs::flow_run_id)
            .select((task_runs::flow_run_id, diesel::dsl::count_star()))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// What `/ui/flow_runs/history` plots of a run: its state, times and run time.
#[derive(Debug, Clone, Queryable)]
pub struct RunPoint {
    pub id: FlowRunId,
    pub state_type: Option<String>,
    pub state_name: Option<String>,
    pub state_timestamp: Option<NaiveDateTime>,
    pub start_time: Option<NaiveDateTime>,
    pub expected_start_time: Option<NaiveDateTime>,
    pub total_run_time: f64,
}

/// The runs matching `related`, sorted and paged like `/flow_runs/filter`, reading only the
/// columns [`RunPoint`] holds (no JSON columns, no state rows).
pub async fn list_points(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    sort: crate::query::FlowRunSort,
    page: crate::query::Page,
) -> StorageResult<Vec<RunPoint>> {
    let rows = db_run!(c, |c| {
        let q = flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(build::flow_runs_related(related))
            .select((
                flow_runs::id,
                flow_runs::state_type,
                flow_runs::state_name,
                flow_runs::state_timestamp,
                flow_runs::start_time,
                flow_runs::expected_start_time,
                flow_runs::total_run_time,
            ))
            .into_boxed();
        super::sorted(q, sort)
            .limit(page.limit)
            .offset(page.offset)
            .load::<RunPoint>(c)
            .await
    })?;
    Ok(rows)
}
