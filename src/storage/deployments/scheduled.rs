//! What the scheduler and the runner read and write of deployments: the runner poll
//! (`get_scheduled_flow_runs` by deployment), the deployments to plan runs for, the keys already
//! taken, the batched insert of planned runs, and how big the scheduler's batches are.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::super::rows::FlowRunRow;
use super::super::schema::{deployment_schedules, deployments, flow_runs};
use super::super::{Backend, Conn, Database, StorageResult};
use super::DeploymentRow;
use crate::db_run;
use crate::ids::{DeploymentId, WorkspaceId};

/// How the scheduler walks the deployments: `batch` deployments per pass step, with up to
/// `parallel` batch inserts in flight while the next batch is planned.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub parallel: usize,
    pub batch: i64,
}

/// Deployments per pass step (PostgreSQL): `(PG_PARALLEL + 1)` × 100 × up to `max_runs` rows
/// in memory at once (the batches being inserted and the one being planned).
const PG_BATCH: i64 = 100;
/// PostgreSQL: batch inserts in flight at once, on as many connections (a backend uses one
/// core).
const PG_PARALLEL: usize = 2;
/// SQLite: deployments per pass step. Fewer, bigger write transactions on the single writer:
/// a cycle of 1,000 deployments × 61 runs took 1.45–1.77 s with 250 and 1.69–1.98 s with 100,
/// for a peak RSS of 118–123 MB instead of 69–81 MB.
const SQLITE_BATCH: i64 = 250;

/// The scheduler's batching for the backend of `db`.
pub fn scheduler_batching(db: &Database) -> Batching {
    // Two arms: PostgreSQL takes parallel inserts on several connections; SQLite has one
    // writer, so one insert at a time, in bigger batches (measured, see `SQLITE_BATCH`).
    match db {
        Database::Postgres(_) => Batching {
            parallel: PG_PARALLEL,
            batch: PG_BATCH,
        },
        Database::Sqlite(_) => Batching {
            parallel: 1,
            batch: SQLITE_BATCH,
        },
    }
}

/// SCHEDULED runs of the deployments due by `before`, soonest first; marks the deployments
/// polled and READY.
pub async fn scheduled_runs(
    c: &mut Conn,
    ws: &WorkspaceId,
    ids: &[String],
    before: NaiveDateTime,
    limit: i64,
    now: NaiveDateTime,
) -> StorageResult<Vec<FlowRunRow>> {
    let rows = db_run!(c, |c| {
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
pub async fn list_schedulable(
    c: &mut Conn,
    after_id: &str,
    limit: i64,
    updated_since: Option<NaiveDateTime>,
) -> StorageResult<Vec<DeploymentRow>> {
    let rows = db_run!(c, |c| {
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
    c: &mut Conn,
    ws: &WorkspaceId,
    deployment_ids: &[DeploymentId],
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> StorageResult<std::collections::HashSet<String>> {
    let keys: Vec<Option<String>> = db_run!(c, |c| {
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
/// of 61,000 runs went from 9.3 s to about 4 s (bench/README, session 4). A run whose
/// idempotency key is taken (another scheduler or replica got there first) is skipped. The
/// conflict target names the idempotency index alone, so only that index is probed before each
/// row goes in (a bare `ON CONFLICT` probes the primary key too), and a lost race is not an
/// error in the database's log (a plain INSERT that failed and was retried wrote one per race).
const PG_INSERT_SCHEDULED: &str = concat!(
    "WITH runs AS (",
    super::super::flow_runs::insert_runs_from_arrays!(
        "ON CONFLICT (flow_id, idempotency_key) WHERE idempotency_key IS NOT NULL \
         DO NOTHING RETURNING id"
    ),
    ") SELECT COUNT(*) AS n FROM runs"
);

#[derive(diesel::QueryableByName)]
struct Inserted {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Inserts `chunk` (inside the caller's transaction) and returns how many runs were new.
async fn pg_insert_scheduled(
    c: &mut diesel_async::AsyncPgConnection,
    chunk: &[FlowRunRow],
) -> diesel::QueryResult<usize> {
    let runs: Vec<&FlowRunRow> = chunk.iter().collect();
    let q = super::super::flow_runs::bind_run_arrays(
        super::super::postgres::Statement::new(PG_INSERT_SCHEDULED),
        &runs,
    );
    let inserted: Vec<Inserted> = q.load(c).await?;
    // One row: the count of runs inserted.
    Ok(inserted.iter().map(|i| i.n as usize).sum())
}

/// Whether [`insert_scheduled_runs`] re-checks, in its transaction, that each run's deployment
/// is still not paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfPaused {
    /// The scheduler service: it read the deployments before planning, and a pause may have
    /// committed since (deleting the future runs); the runs of a now-paused deployment are
    /// dropped. On PostgreSQL the deployments are read `FOR SHARE`, so a pause that starts now
    /// waits for this transaction and then deletes what it inserted.
    Skip,
    /// `POST /deployments/{id}/schedule`, which (like the reference) schedules a paused
    /// deployment too.
    Insert,
}

/// Of `runs`, those whose deployment is not paused now (see [`IfPaused::Skip`]).
async fn runs_of_unpaused(c: &mut Conn, runs: Vec<FlowRunRow>) -> StorageResult<Vec<FlowRunRow>> {
    let mut ids: Vec<DeploymentId> = runs
        .iter()
        .filter_map(|r| r.deployment_id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let unpaused = deployments::table
        .filter(deployments::id.eq_any(ids))
        .filter(deployments::paused.eq(false))
        .select(deployments::id);
    // Two arms: PostgreSQL locks the rows against a concurrent pause; SQLite's writer already
    // serialises this transaction with the pause's.
    let unpaused: std::collections::HashSet<DeploymentId> = match c.backend() {
        Backend::Pg(c) => unpaused.for_share().load(c).await?,
        Backend::Sqlite(c) => unpaused.load(c).await?,
    }
    .into_iter()
    .collect();
    Ok(runs
        .into_iter()
        .filter(|r| {
            r.deployment_id
                .as_ref()
                .is_some_and(|d| unpaused.contains(d))
        })
        .collect())
}

/// Inserts auto-scheduled runs in one transaction, without state rows (their SCHEDULED state
/// is `flow_runs::unstored_state`); a run whose idempotency key exists is skipped, so
/// concurrent schedulers never create a run twice. PostgreSQL: [`PG_INSERT_SCHEDULED`] per
/// chunk. SQLite (one serialized writer): `INSERT OR IGNORE` of each run. Returns how many
/// runs were new.
pub async fn insert_scheduled_runs(
    c: &mut Conn,
    runs: Vec<FlowRunRow>,
    if_paused: IfPaused,
) -> StorageResult<usize> {
    if runs.is_empty() {
        return Ok(0);
    }
    c.transaction(async move |c| {
        let runs = match if_paused {
            IfPaused::Skip => runs_of_unpaused(c, runs).await?,
            IfPaused::Insert => runs,
        };
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
    })
    .await
}
