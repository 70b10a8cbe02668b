//! Deployments and their schedules: upsert by (flow, name), reads, filters, updates, deletes,
//! schedule CRUD, the runner poll (`get_scheduled_flow_runs` by deployment), and the removal
//! of future auto-scheduled runs when schedules change.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;

use super::filters::{backend, FilterSql, NameFilter, Page, Related, StringsFilter, TagsFilter};
use super::rows::FlowRunRow;
use super::schema::{deployment_schedules, deployments, flow_runs, flows};
use super::{Backend, Conn, Database, StorageResult};
use crate::db_run;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = deployments, treat_none_as_null = true)]
pub struct DeploymentRow {
    pub id: String,
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub flow_id: String,
    pub paused: bool,
    pub concurrency_limit: Option<i32>,
    pub concurrency_options: Option<String>,
    pub global_concurrency_limit_id: Option<String>,
    pub job_variables: String,
    pub parameters: String,
    pub tags: String,
    pub labels: String,
    pub work_queue_name: Option<String>,
    pub work_queue_id: Option<String>,
    pub last_polled: Option<NaiveDateTime>,
    pub parameter_openapi_schema: Option<String>,
    pub path: Option<String>,
    pub pull_steps: Option<String>,
    pub entrypoint: Option<String>,
    pub storage_document_id: Option<String>,
    pub infrastructure_document_id: Option<String>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub status: String,
    pub enforce_parameter_schema: bool,
    pub version_info: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = deployment_schedules, treat_none_as_null = true)]
pub struct ScheduleRow {
    pub id: String,
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub deployment_id: String,
    pub schedule: String,
    pub active: bool,
    pub max_scheduled_runs: Option<i32>,
    pub parameters: String,
    pub slug: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeploymentFilter {
    pub operator: super::filters::Operator,
    pub concurrency_limit: Option<serde_json::Value>,
    pub id: Option<super::filters::IdFilter>,
    pub name: Option<NameFilter>,
    pub flow_or_deployment_name: Option<NameFilter>,
    pub paused: Option<EqBool>,
    pub tags: Option<TagsFilter>,
    pub work_queue_name: Option<StringsFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EqBool {
    pub eq_: Option<bool>,
}

/// Inserts the deployment, or updates the one with the same flow and name (keeping its id and
/// creation time) and replaces its schedules; deletes the old deployment's future
/// auto-scheduled runs. Returns (row, created).
pub async fn upsert(
    db: &Database,
    row: &DeploymentRow,
    schedules: &[ScheduleRow],
    now: NaiveDateTime,
) -> StorageResult<(DeploymentRow, bool)> {
    let mut conn = db.session().await?;
    let out = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let existing: Option<DeploymentRow> = deployments::table
                .filter(deployments::workspace_id.eq(&row.workspace_id))
                .filter(deployments::flow_id.eq(&row.flow_id))
                .filter(deployments::name.eq(&row.name))
                .select(DeploymentRow::as_select())
                .first(c)
                .await
                .optional()?;
            let (saved, created) = match existing {
                Some(old) => {
                    let mut next = row.clone();
                    next.id = old.id.clone();
                    next.created = old.created;
                    next.status = old.status.clone();
                    next.last_polled = old.last_polled;
                    diesel::update(deployments::table.filter(deployments::id.eq(&old.id)))
                        .set(&next)
                        .execute(c)
                        .await?;
                    diesel::delete(
                        deployment_schedules::table
                            .filter(deployment_schedules::deployment_id.eq(&old.id)),
                    )
                    .execute(c)
                    .await?;
                    diesel::delete(
                        flow_runs::table
                            .filter(flow_runs::deployment_id.eq(&old.id))
                            .filter(flow_runs::auto_scheduled.eq(true))
                            .filter(flow_runs::state_type.eq("SCHEDULED"))
                            .filter(flow_runs::next_scheduled_start_time.ge(now)),
                    )
                    .execute(c)
                    .await?;
                    (next, false)
                }
                None => {
                    diesel::insert_into(deployments::table)
                        .values(row)
                        .execute(c)
                        .await?;
                    (row.clone(), true)
                }
            };
            for s in schedules {
                let s = ScheduleRow {
                    deployment_id: saved.id.clone(),
                    ..s.clone()
                };
                diesel::insert_into(deployment_schedules::table)
                    .values(&s)
                    .execute(c)
                    .await?;
            }
            Ok((saved, created))
        })
        .await
    })?;
    Ok(out)
}

pub async fn find(db: &Database, ws: &str, id: &str) -> StorageResult<Option<DeploymentRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
        deployments::table
            .filter(deployments::workspace_id.eq(ws))
            .filter(deployments::id.eq(id))
            .select(DeploymentRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn find_by_name(
    db: &Database,
    ws: &str,
    flow_name: &str,
    name: &str,
) -> StorageResult<Option<DeploymentRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
        deployments::table
            .inner_join(flows::table.on(flows::id.eq(deployments::flow_id)))
            .filter(deployments::workspace_id.eq(ws))
            .filter(flows::name.eq(flow_name))
            .filter(deployments::name.eq(name))
            .select(DeploymentRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// Sorts of `/deployments/filter` and `/deployments/paginate`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentSort {
    CreatedDesc,
    UpdatedDesc,
    #[default]
    NameAsc,
    NameDesc,
}

fn deployments_cond<C>(
    c: &C,
    related: &Related,
) -> super::filters::Cond<deployments::table, C::Backend>
where
    C: diesel_async::AsyncConnection,
    C::Backend: FilterSql,
{
    let _ = backend(c);
    <C::Backend as FilterSql>::deployments_related(related)
}

/// One page of the deployments matching the filters (deployment, flow, flow run, task run,
/// work pool and queue filters), in `sort` order.
pub async fn list(
    db: &Database,
    ws: &str,
    related: &Related,
    sort: DeploymentSort,
    page: Page,
) -> StorageResult<Vec<DeploymentRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let cond = deployments_cond(c, related);
        let mut q = deployments::table
            .filter(deployments::workspace_id.eq(ws))
            .filter(cond)
            .select(DeploymentRow::as_select())
            .into_boxed();
        q = match sort {
            DeploymentSort::NameDesc => q.order((deployments::name.desc(), deployments::id.desc())),
            DeploymentSort::CreatedDesc => {
                q.order((deployments::created.desc(), deployments::id.desc()))
            }
            DeploymentSort::UpdatedDesc => {
                q.order((deployments::updated.desc(), deployments::id.desc()))
            }
            DeploymentSort::NameAsc => q.order((deployments::name.asc(), deployments::id.asc())),
        };
        q.limit(page.limit).offset(page.offset).load(c).await
    })?;
    Ok(rows)
}

/// How many deployments match the filters (one COUNT query).
pub async fn count(db: &Database, ws: &str, related: &Related) -> StorageResult<i64> {
    crate::count_in_workspace!(db, deployments, ws, deployments_cond(related))
}

/// Pauses or resumes deployment `id` of `ws`, writing only `paused` and `updated` (so a
/// concurrent PATCH or poll is not undone); false when there is no such deployment.
pub async fn set_paused(
    db: &Database,
    ws: &str,
    id: &str,
    paused: bool,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| diesel::update(
        deployments::table
            .filter(deployments::workspace_id.eq(ws))
            .filter(deployments::id.eq(id))
    )
    .set((deployments::paused.eq(paused), deployments::updated.eq(now)))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

pub async fn delete(db: &Database, ws: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            diesel::delete(
                flow_runs::table
                    .filter(flow_runs::deployment_id.eq(id))
                    .filter(flow_runs::auto_scheduled.eq(true))
                    .filter(flow_runs::state_type.eq("SCHEDULED")),
            )
            .execute(c)
            .await?;
            diesel::delete(
                deployments::table
                    .filter(deployments::workspace_id.eq(ws))
                    .filter(deployments::id.eq(id)),
            )
            .execute(c)
            .await
        })
        .await
    })?;
    Ok(n == 1)
}

/// Deletes the deployment's SCHEDULED auto-scheduled runs at or after `from` (so the scheduler
/// regenerates them from the current schedules).
/// Inside a transaction on `$c`: deletes the schedules of deployment `$replacing` (an
/// `Option<&str>`) if given, then inserts `$rows`.
macro_rules! schedules_written_on {
    ($c:expr, $replacing:expr, $rows:expr) => {
        if let Some(id) = $replacing {
            diesel::delete(
                deployment_schedules::table.filter(deployment_schedules::deployment_id.eq(id)),
            )
            .execute($c)
            .await?;
        }
        for r in $rows {
            diesel::insert_into(deployment_schedules::table)
                .values(r)
                .execute($c)
                .await?;
        }
    };
}

/// Deletes the auto-scheduled runs of deployment `$id` still SCHEDULED from `$from` on; the
/// statement's future, for either backend.
macro_rules! delete_future_auto_runs_on {
    ($c:expr, $id:expr, $from:expr) => {
        diesel::delete(
            flow_runs::table
                .filter(flow_runs::deployment_id.eq($id))
                .filter(flow_runs::auto_scheduled.eq(true))
                .filter(flow_runs::state_type.eq("SCHEDULED"))
                .filter(flow_runs::next_scheduled_start_time.ge($from)),
        )
        .execute($c)
    };
}

pub async fn delete_future_auto_runs(
    db: &Database,
    deployment_id: &str,
    from: NaiveDateTime,
) -> StorageResult<usize> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        delete_future_auto_runs_on!(c, deployment_id, from).await
    })?;
    Ok(n)
}

/// A deployment's PATCH, all or nothing in one transaction: its schedules replaced (when
/// given), its row saved, and its future auto-scheduled runs deleted, for the scheduler to
/// create again from what is now stored.
pub async fn update(
    db: &Database,
    row: &DeploymentRow,
    schedules: Option<&[ScheduleRow]>,
    now: NaiveDateTime,
) -> StorageResult<()> {
    let mut conn = db.session().await?;
    db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            if let Some(rows) = schedules {
                schedules_written_on!(c, Some(row.id.as_str()), rows);
            }
            diesel::update(deployments::table.filter(deployments::id.eq(&row.id)))
                .set(row)
                .execute(c)
                .await?;
            delete_future_auto_runs_on!(c, &row.id, now).await?;
            Ok(())
        })
        .await
    })?;
    Ok(())
}

pub async fn schedules(
    db: &Database,
    deployment_ids: &[String],
) -> StorageResult<Vec<ScheduleRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        deployment_schedules::table
            .filter(deployment_schedules::deployment_id.eq_any(deployment_ids))
            .order((
                deployment_schedules::created.asc(),
                deployment_schedules::id.asc(),
            ))
            .select(ScheduleRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Inserts schedules, all or none (a duplicate slug adds nothing).
pub async fn insert_schedules(db: &Database, rows: &[ScheduleRow]) -> StorageResult<()> {
    let mut conn = db.session().await?;
    db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            schedules_written_on!(c, None::<&str>, rows);
            Ok(())
        })
        .await
    })?;
    Ok(())
}

pub async fn save_schedule(db: &Database, row: &ScheduleRow) -> StorageResult<()> {
    let mut conn = db.session().await?;
    db_run!(conn, |c| diesel::update(
        deployment_schedules::table.filter(deployment_schedules::id.eq(&row.id))
    )
    .set(row)
    .execute(c)
    .await)?;
    Ok(())
}

pub async fn delete_schedule(db: &Database, deployment_id: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        diesel::delete(
            deployment_schedules::table
                .filter(deployment_schedules::deployment_id.eq(deployment_id))
                .filter(deployment_schedules::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// SCHEDULED runs of the deployments due by `before`, soonest first; marks the deployments
/// polled and READY.
pub async fn scheduled_runs(
    db: &Database,
    ws: &str,
    ids: &[String],
    before: NaiveDateTime,
    limit: i64,
    now: NaiveDateTime,
) -> StorageResult<Vec<FlowRunRow>> {
    let mut conn = db.session().await?;
    let rows = db_run!(conn, |c| {
        diesel::update(
            deployments::table
                .filter(deployments::workspace_id.eq(ws))
                .filter(deployments::id.eq_any(ids)),
        )
        .set((
            deployments::last_polled.eq(now),
            deployments::status.eq("READY"),
        ))
        .execute(c)
        .await?;
        flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(flow_runs::deployment_id.eq_any(ids))
            .filter(flow_runs::state_type.eq("SCHEDULED"))
            .filter(flow_runs::next_scheduled_start_time.le(before))
            .order(flow_runs::next_scheduled_start_time.asc())
            .limit(limit)
            .select(FlowRunRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Active deployments (not paused) with at least one active schedule, after `after_id`, in id
/// order (the scheduler walks them in batches); with `updated_since`, only those updated since.
pub async fn schedulable(
    db: &Database,
    after_id: &str,
    limit: i64,
    updated_since: Option<NaiveDateTime>,
) -> StorageResult<Vec<DeploymentRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let mut q = deployments::table
            .filter(deployments::paused.eq(false))
            .filter(deployments::id.gt(after_id))
            .filter(
                deployments::id.eq_any(
                    deployment_schedules::table
                        .filter(deployment_schedules::active.eq(true))
                        .select(deployment_schedules::deployment_id),
                ),
            )
            .into_boxed();
        if let Some(t) = updated_since {
            q = q.filter(deployments::updated.ge(t));
        }
        q.order(deployments::id.asc())
            .limit(limit)
            .select(DeploymentRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Idempotency keys of the runs of these deployments (of workspace `ws`) expected in
/// [`from`, `to`]: the scheduler's runs carry their scheduled date as `expected_start_time`, so
/// these are the keys a scheduler pass over that window can collide with.
pub async fn scheduled_keys_in_window(
    db: &Database,
    ws: &str,
    deployment_ids: &[String],
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> StorageResult<std::collections::HashSet<String>> {
    let mut conn = db.read().await?;
    let keys: Vec<Option<String>> = db_run!(conn, |c| {
        flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(flow_runs::expected_start_time.ge(from))
            .filter(flow_runs::expected_start_time.le(to))
            .filter(flow_runs::deployment_id.eq_any(deployment_ids))
            .filter(flow_runs::idempotency_key.is_not_null())
            .select(flow_runs::idempotency_key)
            .load(c)
            .await
    })?;
    Ok(keys.into_iter().flatten().collect())
}

/// Runs per PostgreSQL statement: each column is one array parameter, so the size only bounds
/// the length of one statement.
const PG_CHUNK: usize = 1000;

/// The runs of one PostgreSQL statement, from one array per column, and how many went in.
/// Array parameters instead of a VALUES list of 35,000 parameters: PostgreSQL's CPU for a cycle
/// of 61,000 runs went from 9.3 s to about 4 s (bench/README, session 4). This one fails on a
/// taken idempotency key; [`PG_INSERT_SCHEDULED_SKIP`] skips such runs.
const PG_INSERT_SCHEDULED: &str = concat!(
    "WITH runs AS (",
    super::flow_runs::insert_runs_from_arrays!("RETURNING id"),
    ") SELECT COUNT(*) AS n FROM runs"
);

/// [`PG_INSERT_SCHEDULED`] skipping the runs whose idempotency key is taken.
const PG_INSERT_SCHEDULED_SKIP: &str = concat!(
    "WITH runs AS (",
    super::flow_runs::insert_runs_from_arrays!("ON CONFLICT DO NOTHING RETURNING id"),
    ") SELECT COUNT(*) AS n FROM runs"
);

#[derive(diesel::QueryableByName)]
struct Inserted {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Inserts `chunk` (inside the caller's transaction) and returns how many runs were new.
///
/// The keys were looked up just before, so the chunk goes in with a plain INSERT first, under a
/// savepoint: `ON CONFLICT DO NOTHING` probes both unique indexes for every row before
/// inserting it, a tenth of PostgreSQL's CPU in a scheduler cycle (perf). When a key was taken
/// meanwhile (another scheduler, another replica), the INSERT fails on it, waiting for that
/// writer's commit first, and the chunk goes in again skipping the taken keys.
async fn pg_insert_scheduled(
    c: &mut diesel_async::AsyncPgConnection,
    chunk: &[FlowRunRow],
) -> diesel::QueryResult<usize> {
    use diesel::result::{DatabaseErrorKind, Error};
    use diesel_async::AsyncConnection;
    let runs: Vec<&FlowRunRow> = chunk.iter().collect();
    let insert = async |c: &mut diesel_async::AsyncPgConnection, sql: &'static str| {
        let q = super::flow_runs::bind_run_arrays(super::postgres::Statement::new(sql), &runs);
        let inserted: Vec<Inserted> = q.load(c).await?;
        // One row: the count of runs inserted.
        Ok::<usize, Error>(inserted.iter().map(|i| i.n as usize).sum())
    };
    match c
        .transaction::<_, Error, _>(async |c| insert(c, PG_INSERT_SCHEDULED).await)
        .await
    {
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            insert(c, PG_INSERT_SCHEDULED_SKIP).await
        }
        other => other,
    }
}

/// Inserts auto-scheduled runs in one transaction, without state rows (their SCHEDULED state
/// is `flow_runs::unstored_state`); a run whose idempotency key exists is skipped, so
/// concurrent schedulers never create a run twice. PostgreSQL: [`PG_INSERT_SCHEDULED`] per
/// chunk. SQLite (one serialized writer): `INSERT OR IGNORE` of each run. Returns how many
/// runs were new.
pub async fn insert_scheduled_runs(c: &mut Conn, runs: Vec<FlowRunRow>) -> StorageResult<usize> {
    if runs.is_empty() {
        return Ok(0);
    }
    c.transaction(async move |c| {
        {
            // Two arms: PostgreSQL inserts chunks from array parameters; SQLite row by row
            // through one cached prepared statement on its writer (as fast as 500-row INSERTs,
            // measured).
            let n = match c.backend() {
                Backend::Pg(pg) => {
                    let mut n = 0;
                    for chunk in runs.chunks(PG_CHUNK) {
                        n += pg_insert_scheduled(pg, chunk).await?;
                    }
                    n
                }
                Backend::Sqlite(sq) => {
                    sq.spawn_blocking(move |raw| {
                        let mut n = 0;
                        for run in &runs {
                            let run = diesel::insert_or_ignore_into(flow_runs::table).values(run);
                            n += diesel::RunQueryDsl::execute(run, raw)?;
                        }
                        Ok(n)
                    })
                    .await?
                }
            };
            Ok(n)
        }
    })
    .await
}
