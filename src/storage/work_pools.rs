//! Work pools, their queues and workers: CRUD, the default queue, heartbeats, and the
//! selection of scheduled runs for a polling worker (queue priority, pool and queue
//! concurrency limits, paused pools and queues).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;

use super::filters::{IdFilter, Page, StringsFilter, TimeFilter};
use super::rows::FlowRunRow;
use super::schema::{deployments, flow_runs, work_pools, work_queues, workers};
use super::{Database, StorageResult};
use crate::db_run;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = work_pools, treat_none_as_null = true)]
pub struct PoolRow {
    pub id: String,
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub description: Option<String>,
    pub pool_type: String,
    pub base_job_template: String,
    pub is_paused: bool,
    pub concurrency_limit: Option<i32>,
    pub status: String,
    pub default_queue_id: Option<String>,
    pub storage_configuration: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = work_queues, treat_none_as_null = true)]
pub struct QueueRow {
    pub id: String,
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub description: String,
    pub is_paused: bool,
    pub concurrency_limit: Option<i32>,
    pub priority: i32,
    pub work_pool_id: String,
    pub filter: Option<String>,
    pub last_polled: Option<NaiveDateTime>,
    pub status: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = workers)]
pub struct WorkerRow {
    pub id: String,
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub work_pool_id: String,
    pub last_heartbeat_time: NaiveDateTime,
    pub heartbeat_interval_seconds: Option<i32>,
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkPoolFilter {
    pub id: Option<IdFilter>,
    pub name: Option<StringsFilter>,
    #[serde(rename = "type")]
    pub pool_type: Option<StringsFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkQueueFilter {
    pub id: Option<IdFilter>,
    pub name: Option<super::filters::NameFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkerFilter {
    pub last_heartbeat_time: Option<TimeFilter>,
    pub status: Option<StringsFilter>,
}

fn ids(v: &[uuid::Uuid]) -> Vec<String> {
    v.iter().map(|u| u.to_string()).collect()
}

/// Inserts a pool together with its `default` queue.
pub async fn insert_pool(
    db: &Database,
    pool: &PoolRow,
    default_queue: &QueueRow,
) -> StorageResult<()> {
    let mut conn = db.session().await?;
    db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            diesel::insert_into(work_pools::table)
                .values(pool)
                .execute(c)
                .await?;
            diesel::insert_into(work_queues::table)
                .values(default_queue)
                .execute(c)
                .await?;
            Ok(())
        })
        .await
    })?;
    Ok(())
}

pub async fn find_pool(db: &Database, ws: &str, name: &str) -> StorageResult<Option<PoolRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
        work_pools::table
            .filter(work_pools::workspace_id.eq(ws))
            .filter(work_pools::name.eq(name))
            .select(PoolRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// Names of these pools, by id.
pub async fn pool_names(
    db: &Database,
    ws: &str,
    pool_ids: &[String],
) -> StorageResult<std::collections::HashMap<String, String>> {
    if pool_ids.is_empty() {
        return Ok(Default::default());
    }
    let mut conn = db.read().await?;
    let rows: Vec<(String, String)> = db_run!(conn, |c| {
        work_pools::table
            .filter(work_pools::workspace_id.eq(ws))
            .filter(work_pools::id.eq_any(pool_ids))
            .select((work_pools::id, work_pools::name))
            .load(c)
            .await
    })?;
    Ok(rows.into_iter().collect())
}

/// The pool (id, name) of each of these queues, by queue id (one joined query).
pub async fn pools_of_queues(
    db: &Database,
    queue_ids: &[String],
) -> StorageResult<std::collections::HashMap<String, (String, String)>> {
    if queue_ids.is_empty() {
        return Ok(Default::default());
    }
    let mut conn = db.read().await?;
    let rows: Vec<(String, (String, String))> = db_run!(conn, |c| {
        work_queues::table
            .inner_join(work_pools::table.on(work_pools::id.eq(work_queues::work_pool_id)))
            .filter(work_queues::id.eq_any(queue_ids))
            .select((work_queues::id, (work_pools::id, work_pools::name)))
            .load(c)
            .await
    })?;
    Ok(rows.into_iter().collect())
}

pub async fn find_pool_by_id(db: &Database, ws: &str, id: &str) -> StorageResult<Option<PoolRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
        work_pools::table
            .filter(work_pools::workspace_id.eq(ws))
            .filter(work_pools::id.eq(id))
            .select(PoolRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn list_pools(
    db: &Database,
    ws: &str,
    f: &WorkPoolFilter,
    page: Page,
) -> StorageResult<Vec<PoolRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let mut q = work_pools::table
            .filter(work_pools::workspace_id.eq(ws))
            .select(PoolRow::as_select())
            .into_boxed();
        if let Some(v) = f.id.as_ref().and_then(|i| i.any_.as_ref()) {
            q = q.filter(work_pools::id.eq_any(ids(v)));
        }
        if let Some(v) = f.name.as_ref().and_then(|i| i.any_.as_ref()) {
            q = q.filter(work_pools::name.eq_any(v.clone()));
        }
        if let Some(v) = f.pool_type.as_ref().and_then(|i| i.any_.as_ref()) {
            q = q.filter(work_pools::pool_type.eq_any(v.clone()));
        }
        q.order(work_pools::name.asc())
            .limit(page.limit)
            .offset(page.offset)
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// How many pools match the filter (one COUNT query).
pub async fn count_pools(db: &Database, ws: &str, f: &WorkPoolFilter) -> StorageResult<i64> {
    let mut conn = db.read().await?;
    let n = db_run!(conn, |c| {
        let mut q = work_pools::table
            .filter(work_pools::workspace_id.eq(ws))
            .into_boxed();
        if let Some(v) = f.id.as_ref().and_then(|i| i.any_.as_ref()) {
            q = q.filter(work_pools::id.eq_any(ids(v)));
        }
        if let Some(v) = f.name.as_ref().and_then(|i| i.any_.as_ref()) {
            q = q.filter(work_pools::name.eq_any(v.clone()));
        }
        if let Some(v) = f.pool_type.as_ref().and_then(|i| i.any_.as_ref()) {
            q = q.filter(work_pools::pool_type.eq_any(v.clone()));
        }
        q.count().get_result::<i64>(c).await
    })?;
    Ok(n)
}

pub async fn save_pool(db: &Database, pool: &PoolRow) -> StorageResult<()> {
    let mut conn = db.session().await?;
    db_run!(conn, |c| diesel::update(
        work_pools::table.filter(work_pools::id.eq(&pool.id))
    )
    .set(pool)
    .execute(c)
    .await)?;
    Ok(())
}

/// Deletes a pool with its queues and workers; its deployments lose their queue (id and name),
/// as the reference server's do.
pub async fn delete_pool(db: &Database, ws: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let queue_ids: Vec<String> = work_queues::table
                .filter(work_queues::work_pool_id.eq(id))
                .select(work_queues::id)
                .load(c)
                .await?;
            if !queue_ids.is_empty() {
                diesel::update(
                    deployments::table.filter(deployments::work_queue_id.eq_any(&queue_ids)),
                )
                .set((
                    deployments::work_queue_id.eq(None::<String>),
                    deployments::work_queue_name.eq(None::<String>),
                ))
                .execute(c)
                .await?;
                diesel::delete(work_queues::table.filter(work_queues::id.eq_any(&queue_ids)))
                    .execute(c)
                    .await?;
            }
            diesel::delete(workers::table.filter(workers::work_pool_id.eq(id)))
                .execute(c)
                .await?;
            diesel::delete(
                work_pools::table
                    .filter(work_pools::workspace_id.eq(ws))
                    .filter(work_pools::id.eq(id)),
            )
            .execute(c)
            .await
        })
        .await
    })?;
    Ok(n == 1)
}

/// Inserts a queue; with `explicit_priority`, the pool's other queues make room for it
/// ([`rebalance_priorities`]), in the same transaction.
pub async fn insert_queue(
    db: &Database,
    q: &QueueRow,
    explicit_priority: bool,
) -> StorageResult<()> {
    write_queue(db, q, true, explicit_priority).await
}

/// Inserts (`insert`) or updates a queue; with `rebalance`, the pool's other queues make room
/// for its priority ([`rebalance_priorities`]), in the same transaction.
async fn write_queue(
    db: &Database,
    q: &QueueRow,
    insert: bool,
    rebalance: bool,
) -> StorageResult<()> {
    let mut conn = db.session().await?;
    db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            if insert {
                diesel::insert_into(work_queues::table)
                    .values(q)
                    .execute(c)
                    .await?;
            } else {
                diesel::update(work_queues::table.filter(work_queues::id.eq(&q.id)))
                    .set(q)
                    .execute(c)
                    .await?;
            }
            if rebalance {
                let queues: Vec<(String, i32)> = work_queues::table
                    .filter(work_queues::work_pool_id.eq(&q.work_pool_id))
                    .select((work_queues::id, work_queues::priority))
                    .order((work_queues::priority.asc(), work_queues::created.asc()))
                    .load(c)
                    .await?;
                for (id, p) in rebalance_priorities(&queues, &q.id, q.priority) {
                    diesel::update(work_queues::table.filter(work_queues::id.eq(id)))
                        .set(work_queues::priority.eq(p))
                        .execute(c)
                        .await?;
                }
            }
            Ok(())
        })
        .await
    })?;
    Ok(())
}

/// Prefect's `bulk_update_work_queue_priorities` for one queue: `queues` are the pool's
/// (id, priority) in priority order; `target` takes `priority`, placed before the first other
/// queue at or after it, and the queues from there on are renumbered so that priorities stay
/// unique and increasing with the fewest changes. Returns the (id, priority) pairs to write.
pub fn rebalance_priorities(
    queues: &[(String, i32)],
    target: &str,
    priority: i32,
) -> Vec<(String, i32)> {
    let mut order: Vec<(String, i32)> = queues
        .iter()
        .filter(|(id, _)| id != target)
        .cloned()
        .collect();
    if let Some(i) = order.iter().position(|(_, p)| *p >= priority) {
        order.insert(i, (target.to_string(), priority));
    }
    let mut changed = vec![(target.to_string(), priority)];
    let mut last = 0;
    for (id, p) in order {
        if p <= last {
            last = last.saturating_add(1);
            if id == target {
                changed[0].1 = last;
            } else {
                changed.push((id, last));
            }
        } else {
            last = p;
        }
    }
    let before: std::collections::HashMap<&str, i32> =
        queues.iter().map(|(id, p)| (id.as_str(), *p)).collect();
    changed.retain(|(id, p)| before.get(id.as_str()) != Some(p));
    changed
}

pub async fn find_queue(
    db: &Database,
    ws: &str,
    pool_id: &str,
    name: &str,
) -> StorageResult<Option<QueueRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
        work_queues::table
            .filter(work_queues::workspace_id.eq(ws))
            .filter(work_queues::work_pool_id.eq(pool_id))
            .filter(work_queues::name.eq(name))
            .select(QueueRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn find_queue_by_id(
    db: &Database,
    ws: &str,
    id: &str,
) -> StorageResult<Option<QueueRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
        work_queues::table
            .filter(work_queues::workspace_id.eq(ws))
            .filter(work_queues::id.eq(id))
            .select(QueueRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// Queues of one pool (or of every pool when `pool_id` is None), by priority then name.
pub async fn list_queues(
    db: &Database,
    ws: &str,
    pool_id: Option<&str>,
    f: &WorkQueueFilter,
    page: Page,
) -> StorageResult<Vec<QueueRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let mut q = work_queues::table
            .filter(work_queues::workspace_id.eq(ws))
            .select(QueueRow::as_select())
            .into_boxed();
        if let Some(p) = pool_id {
            q = q.filter(work_queues::work_pool_id.eq(p.to_string()));
        }
        if let Some(v) = f.id.as_ref().and_then(|i| i.any_.as_ref()) {
            q = q.filter(work_queues::id.eq_any(ids(v)));
        }
        if let Some(n) = &f.name {
            if let Some(v) = &n.any_ {
                q = q.filter(work_queues::name.eq_any(v.clone()));
            }
            if let Some(prefixes) = &n.startswith_ {
                if let Some(p) = prefixes.iter().next() {
                    q = q.filter(work_queues::name.like(format!("{p}%")));
                }
            }
        }
        q.order((work_queues::priority.asc(), work_queues::name.asc()))
            .limit(page.limit)
            .offset(page.offset)
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Saves a queue; with `new_priority` (its new `priority`), the pool's other queues make room
/// for it ([`rebalance_priorities`]), in the same transaction.
pub async fn save_queue(
    db: &Database,
    q: &QueueRow,
    new_priority: Option<i32>,
) -> StorageResult<()> {
    write_queue(db, q, false, new_priority.is_some()).await
}

/// Deletes a queue; its deployments keep the queue name but lose the id (the reference's
/// `ON DELETE SET NULL`).
pub async fn delete_queue(db: &Database, ws: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            diesel::update(deployments::table.filter(deployments::work_queue_id.eq(id)))
                .set(deployments::work_queue_id.eq(None::<String>))
                .execute(c)
                .await?;
            diesel::delete(
                work_queues::table
                    .filter(work_queues::workspace_id.eq(ws))
                    .filter(work_queues::id.eq(id)),
            )
            .execute(c)
            .await
        })
        .await
    })?;
    Ok(n == 1)
}

/// Records a worker heartbeat (creating the worker), marking it ONLINE.
pub async fn heartbeat(
    db: &Database,
    ws: &str,
    pool_id: &str,
    name: &str,
    interval: Option<i32>,
    now: NaiveDateTime,
) -> StorageResult<()> {
    let row = WorkerRow {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: ws.to_string(),
        created: now,
        updated: now,
        name: name.to_string(),
        work_pool_id: pool_id.to_string(),
        last_heartbeat_time: now,
        heartbeat_interval_seconds: interval,
        status: "ONLINE".into(),
    };
    let mut conn = db.session().await?;
    db_run!(conn, |c| {
        diesel::insert_into(workers::table)
            .values(&row)
            .on_conflict((workers::work_pool_id, workers::name))
            .do_update()
            .set((
                workers::last_heartbeat_time.eq(now),
                workers::heartbeat_interval_seconds.eq(interval),
                workers::status.eq("ONLINE"),
                workers::updated.eq(now),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn list_workers(
    db: &Database,
    ws: &str,
    pool_id: &str,
    f: &WorkerFilter,
    page: Page,
) -> StorageResult<Vec<WorkerRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let mut q = workers::table
            .filter(workers::workspace_id.eq(ws))
            .filter(workers::work_pool_id.eq(pool_id))
            .select(WorkerRow::as_select())
            .into_boxed();
        if let Some(s) = &f.status {
            if let Some(v) = &s.any_ {
                q = q.filter(workers::status.eq_any(v.clone()));
            }
            if let Some(v) = &s.not_any_ {
                q = q.filter(workers::status.ne_all(v.clone()));
            }
        }
        if let Some(t) = &f.last_heartbeat_time {
            if let Some(b) = &t.before_ {
                q = q.filter(workers::last_heartbeat_time.le(b.naive_utc()));
            }
            if let Some(a) = &t.after_ {
                q = q.filter(workers::last_heartbeat_time.ge(a.naive_utc()));
            }
        }
        q.order(workers::last_heartbeat_time.desc())
            .limit(page.limit)
            .offset(page.offset)
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn delete_worker(
    db: &Database,
    ws: &str,
    pool_id: &str,
    name: &str,
) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        diesel::delete(
            workers::table
                .filter(workers::workspace_id.eq(ws))
                .filter(workers::work_pool_id.eq(pool_id))
                .filter(workers::name.eq(name)),
        )
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// A scheduled run handed to a worker, with the queue it came from.
#[derive(Debug, Clone)]
pub struct ScheduledRun {
    pub run: FlowRunRow,
    pub work_queue_id: String,
}

/// Runs in PENDING or RUNNING occupy a pool or queue concurrency slot when runs are handed to
/// workers (the reference's `get-runs-from-worker-queues` query; CANCELLING does not count).
pub const ACTIVE: [&str; 2] = ["PENDING", "RUNNING"];

/// What `/work_queues/{id}` reports as a queue's active slots (the reference's legacy queue
/// routes count CANCELLING runs too).
pub const LEGACY_QUEUE_ACTIVE: [&str; 3] = ["PENDING", "RUNNING", "CANCELLING"];

/// Which pool a worker polls: looked up by name inside the poll's transaction, or already read.
pub enum PollPool<'a> {
    Name { ws: &'a str, name: &'a str },
    Row(&'a PoolRow),
}

/// What a worker's poll found.
pub enum Poll {
    /// No pool of that name in the workspace (nothing was written).
    NoPool,
    /// A named queue is not in the pool (nothing was written).
    NoQueue { pool: String, queue: String },
    Runs {
        pool: Box<PoolRow>,
        runs: Vec<ScheduledRun>,
        /// The current states of `runs` by state id (empty unless asked for).
        states: std::collections::HashMap<String, super::rows::FlowRunStateRow>,
    },
}

/// One row of the due-runs query.
#[derive(QueryableByName)]
struct DueRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    work_queue_id: String,
}

/// `empirical_policy` of a run being retried in-process by its client (not handed to workers).
const IN_PROCESS_RETRY: &str = "%\"retry_type\":\"in_process\"%";

/// The due runs of `n_queues` queues in one statement (both backends have ROW_NUMBER): each
/// queue's SCHEDULED runs numbered by `next_scheduled_start_time`, at most the queue's cap of
/// them, ordered by the queue's rank (priority order) then time, at most `total` in all. That is
/// what taking each queue's runs in priority order up to the remaining room gives. Binds, in
/// order: workspace, the queue ids, the in-process pattern, [before], [after], (queue id, cap)
/// per queue, the queue ids again (rank), total.
fn due_sql(pg: bool, n_queues: usize, before: bool, after: bool) -> String {
    let mut n = 0;
    let mut p = || {
        n += 1;
        if pg {
            format!("${n}")
        } else {
            "?".to_string()
        }
    };
    let mut s = String::with_capacity(1024);
    s.push_str(
        "SELECT due.id, due.work_queue_id FROM (SELECT flow_runs.id AS id, \
         flow_runs.work_queue_id AS work_queue_id, flow_runs.next_scheduled_start_time AS t, \
         ROW_NUMBER() OVER (PARTITION BY flow_runs.work_queue_id \
         ORDER BY flow_runs.next_scheduled_start_time, flow_runs.id) AS rn \
         FROM flow_runs WHERE flow_runs.workspace_id = ",
    );
    s.push_str(&p());
    s.push_str(" AND flow_runs.work_queue_id IN (");
    for i in 0..n_queues {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&p());
    }
    s.push_str(
        ") AND flow_runs.state_type = 'SCHEDULED' AND NOT (flow_runs.empirical_policy LIKE ",
    );
    s.push_str(&p());
    s.push(')');
    if before {
        s.push_str(" AND flow_runs.next_scheduled_start_time <= ");
        s.push_str(&p());
    }
    if after {
        s.push_str(" AND flow_runs.next_scheduled_start_time >= ");
        s.push_str(&p());
    }
    s.push_str(") due WHERE due.rn <= CASE due.work_queue_id");
    for _ in 0..n_queues {
        s.push_str(" WHEN ");
        s.push_str(&p());
        s.push_str(" THEN ");
        s.push_str(&p());
    }
    s.push_str(" ELSE 0 END ORDER BY CASE due.work_queue_id");
    for i in 0..n_queues {
        s.push_str(" WHEN ");
        s.push_str(&p());
        s.push_str(&format!(" THEN {i}"));
    }
    s.push_str(&format!(" ELSE {n_queues} END, due.t, due.id LIMIT "));
    s.push_str(&p());
    s
}

/// `q` boxed for the backend of `c` (so the binds can be added in a loop).
fn boxed_for<C: diesel_async::AsyncConnection>(
    _: &C,
    q: diesel::query_builder::SqlQuery,
) -> diesel::query_builder::BoxedSqlQuery<'static, C::Backend, diesel::query_builder::SqlQuery> {
    q.into_boxed()
}

/// A worker's poll, in one transaction (one commit): the pool (by name), its queues (all, or
/// those named; a missing one stops before anything is written), `last_polled` and READY for
/// those queues (paused ones keep their status) and their deployments, the active runs per
/// queue (only when a concurrency limit applies), the due runs of all eligible queues in one
/// statement (see `due_sql`), their rows, and with `with_states` their current states.
#[allow(clippy::too_many_arguments)]
pub async fn poll(
    db: &Database,
    target: PollPool<'_>,
    queue_names: &[String],
    before: Option<NaiveDateTime>,
    after: Option<NaiveDateTime>,
    limit: i64,
    now: NaiveDateTime,
    with_states: bool,
) -> StorageResult<Poll> {
    use super::schema::flow_run_states;
    use diesel::sql_types::{BigInt, Text, Timestamp};
    let mut conn = db.session().await?;
    let pg = conn.is_postgres();
    let out = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let pool: PoolRow = match target {
                PollPool::Row(p) => p.clone(),
                PollPool::Name { ws, name } => {
                    let found = work_pools::table
                        .filter(work_pools::workspace_id.eq(ws))
                        .filter(work_pools::name.eq(name))
                        .select(PoolRow::as_select())
                        .first(c)
                        .await
                        .optional()?;
                    match found {
                        Some(p) => p,
                        None => return Ok(Poll::NoPool),
                    }
                }
            };
            let mut q = work_queues::table
                .filter(work_queues::work_pool_id.eq(&pool.id))
                .select(QueueRow::as_select())
                .into_boxed();
            if !queue_names.is_empty() {
                q = q.filter(work_queues::name.eq_any(queue_names));
            }
            let queues: Vec<QueueRow> = q
                .order((work_queues::priority.asc(), work_queues::name.asc()))
                .load(c)
                .await?;
            if let Some(missing) = queue_names
                .iter()
                .find(|n| !queues.iter().any(|q| &q.name == *n))
            {
                return Ok(Poll::NoQueue {
                    pool: pool.name.clone(),
                    queue: missing.clone(),
                });
            }
            let queue_ids: Vec<&str> = queues.iter().map(|q| q.id.as_str()).collect();
            if !queue_ids.is_empty() {
                diesel::update(work_queues::table.filter(work_queues::id.eq_any(&queue_ids)))
                    .set((
                        work_queues::last_polled.eq(now),
                        work_queues::status.eq(diesel::dsl::case_when(
                            work_queues::is_paused.eq(false),
                            "READY".into_sql::<Text>(),
                        )
                        .otherwise(work_queues::status)),
                    ))
                    .execute(c)
                    .await?;
                diesel::update(
                    deployments::table.filter(deployments::work_queue_id.eq_any(&queue_ids)),
                )
                .set((
                    deployments::last_polled.eq(now),
                    deployments::status.eq("READY"),
                ))
                .execute(c)
                .await?;
            }
            let eligible: Vec<&QueueRow> = if pool.is_paused {
                Vec::new()
            } else {
                queues.iter().filter(|q| !q.is_paused).collect()
            };
            let mut total = if eligible.is_empty() { 0 } else { limit };
            let limited = pool.concurrency_limit.is_some()
                || eligible.iter().any(|q| q.concurrency_limit.is_some());
            let active: std::collections::HashMap<String, i64> = if total > 0 && limited {
                let rows: Vec<(Option<String>, i64)> = flow_runs::table
                    .filter(
                        flow_runs::work_queue_id.eq_any(
                            work_queues::table
                                .filter(work_queues::work_pool_id.eq(&pool.id))
                                .select(work_queues::id.nullable()),
                        ),
                    )
                    .filter(flow_runs::state_type.eq_any(ACTIVE))
                    .group_by(flow_runs::work_queue_id)
                    .select((flow_runs::work_queue_id, diesel::dsl::count_star()))
                    .load(c)
                    .await?;
                rows.into_iter()
                    .filter_map(|(q, n)| q.map(|q| (q, n)))
                    .collect()
            } else {
                Default::default()
            };
            if let Some(l) = pool.concurrency_limit {
                let used: i64 = active.values().sum();
                total = total.min((l as i64 - used).max(0));
            }
            let caps: Vec<(&str, i64)> = eligible
                .iter()
                .map(|q| {
                    let room = match q.concurrency_limit {
                        Some(l) => (l as i64 - active.get(&q.id).copied().unwrap_or(0)).max(0),
                        None => i64::MAX,
                    };
                    (q.id.as_str(), room.min(total))
                })
                .filter(|(_, cap)| *cap > 0)
                .collect();
            let mut runs: Vec<ScheduledRun> = Vec::new();
            if total > 0 && !caps.is_empty() {
                let sql = due_sql(pg, caps.len(), before.is_some(), after.is_some());
                let mut dq = boxed_for(&*c, diesel::sql_query(sql))
                    .bind::<Text, _>(pool.workspace_id.clone());
                for (id, _) in &caps {
                    dq = dq.bind::<Text, _>(id.to_string());
                }
                dq = dq.bind::<Text, _>(IN_PROCESS_RETRY);
                if let Some(b) = before {
                    dq = dq.bind::<Timestamp, _>(b);
                }
                if let Some(a) = after {
                    dq = dq.bind::<Timestamp, _>(a);
                }
                for (id, cap) in &caps {
                    dq = dq.bind::<Text, _>(id.to_string()).bind::<BigInt, _>(*cap);
                }
                for (id, _) in &caps {
                    dq = dq.bind::<Text, _>(id.to_string());
                }
                dq = dq.bind::<BigInt, _>(total);
                let due: Vec<DueRow> = dq.load(c).await?;
                if !due.is_empty() {
                    let ids: Vec<&str> = due.iter().map(|d| d.id.as_str()).collect();
                    let mut rows: std::collections::HashMap<String, FlowRunRow> = flow_runs::table
                        .filter(flow_runs::id.eq_any(&ids))
                        .select(FlowRunRow::as_select())
                        .load::<FlowRunRow>(c)
                        .await?
                        .into_iter()
                        .map(|r| (r.id.clone(), r))
                        .collect();
                    runs = due
                        .into_iter()
                        .filter_map(|d| {
                            rows.remove(&d.id).map(|run| ScheduledRun {
                                run,
                                work_queue_id: d.work_queue_id,
                            })
                        })
                        .collect();
                }
            }
            let mut states = std::collections::HashMap::new();
            if with_states {
                let state_ids = super::flow_runs::stored_state_ids(runs.iter().map(|r| &r.run));
                if !state_ids.is_empty() {
                    let rows: Vec<super::rows::FlowRunStateRow> = flow_run_states::table
                        .filter(flow_run_states::id.eq_any(&state_ids))
                        .select(super::rows::FlowRunStateRow::as_select())
                        .load(c)
                        .await?;
                    states = rows.into_iter().map(|s| (s.id.clone(), s)).collect();
                }
                super::flow_runs::add_unstored(&mut states, runs.iter().map(|r| &r.run));
            }
            Ok(Poll::Runs {
                pool: Box::new(pool),
                runs,
                states,
            })
        })
        .await
    })?;
    Ok(out)
}

/// Foreman: workers whose last heartbeat is older than `multiple` × their interval (or the
/// fallback interval) go OFFLINE; pools without an online worker become NOT_READY (paused pools
/// stay PAUSED); queues and deployments not polled since `polled_before` become NOT_READY.
/// Returns the ids of workers, pools, queues and deployments whose status changed.
pub async fn mark_unhealthy(
    db: &Database,
    now: NaiveDateTime,
    multiple: i64,
    fallback_interval: i64,
    polled_before: NaiveDateTime,
) -> StorageResult<(Vec<WorkerRow>, Vec<PoolRow>, Vec<QueueRow>, Vec<String>)> {
    let mut conn = db.session().await?;
    let out = db_run!(conn, |c| {
        let online: Vec<WorkerRow> = workers::table
            .filter(workers::status.eq("ONLINE"))
            .select(WorkerRow::as_select())
            .load(c)
            .await?;
        let mut offline = Vec::new();
        for w in online {
            let interval = w
                .heartbeat_interval_seconds
                .map(i64::from)
                .unwrap_or(fallback_interval);
            if w.last_heartbeat_time + chrono::Duration::seconds(interval * multiple) < now {
                diesel::update(
                    workers::table
                        .filter(workers::id.eq(&w.id))
                        .filter(workers::status.eq("ONLINE")),
                )
                .set(workers::status.eq("OFFLINE"))
                .execute(c)
                .await?;
                offline.push(w);
            }
        }
        let ready_pools: Vec<PoolRow> = work_pools::table
            .filter(work_pools::status.eq("READY"))
            .select(PoolRow::as_select())
            .load(c)
            .await?;
        let mut not_ready_pools = Vec::new();
        for p in ready_pools {
            let alive: i64 = workers::table
                .filter(workers::work_pool_id.eq(&p.id))
                .filter(workers::status.eq("ONLINE"))
                .count()
                .get_result(c)
                .await?;
            if alive == 0 {
                diesel::update(work_pools::table.filter(work_pools::id.eq(&p.id)))
                    .set(work_pools::status.eq("NOT_READY"))
                    .execute(c)
                    .await?;
                not_ready_pools.push(p);
            }
        }
        let stale_queues: Vec<QueueRow> = work_queues::table
            .filter(work_queues::status.eq("READY"))
            .filter(
                work_queues::last_polled
                    .is_null()
                    .or(work_queues::last_polled.lt(polled_before)),
            )
            .select(QueueRow::as_select())
            .load(c)
            .await?;
        for q in &stale_queues {
            diesel::update(work_queues::table.filter(work_queues::id.eq(&q.id)))
                .set(work_queues::status.eq("NOT_READY"))
                .execute(c)
                .await?;
        }
        let stale_deployments: Vec<String> = deployments::table
            .filter(deployments::status.eq("READY"))
            .filter(
                deployments::last_polled
                    .is_null()
                    .or(deployments::last_polled.lt(polled_before)),
            )
            .select(deployments::id)
            .load(c)
            .await?;
        diesel::update(deployments::table.filter(deployments::id.eq_any(&stale_deployments)))
            .set(deployments::status.eq("NOT_READY"))
            .execute(c)
            .await?;
        Ok::<_, diesel::result::Error>((offline, not_ready_pools, stale_queues, stale_deployments))
    })?;
    Ok(out)
}

/// Marks a pool READY after a heartbeat (unless paused).
pub async fn mark_pool_ready(db: &Database, pool_id: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        diesel::update(
            work_pools::table
                .filter(work_pools::id.eq(pool_id))
                .filter(work_pools::status.eq("NOT_READY")),
        )
        .set(work_pools::status.eq("READY"))
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// Runs in `states` per queue, for the given queues (one grouped query; queues without such
/// runs are absent).
pub async fn active_slots_by_queue(
    db: &Database,
    queue_ids: &[String],
    states: &[&str],
) -> StorageResult<std::collections::HashMap<String, i64>> {
    if queue_ids.is_empty() {
        return Ok(Default::default());
    }
    let mut conn = db.read().await?;
    let rows: Vec<(Option<String>, i64)> = db_run!(conn, |c| {
        flow_runs::table
            .filter(flow_runs::work_queue_id.eq_any(queue_ids))
            .filter(flow_runs::state_type.eq_any(states))
            .group_by(flow_runs::work_queue_id)
            .select((flow_runs::work_queue_id, diesel::dsl::count_star()))
            .load(c)
            .await
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(q, n)| q.map(|q| (q, n)))
        .collect())
}

/// PENDING + RUNNING runs per pool (through the pools' queues), for the given pools.
pub async fn active_slots_by_pool(
    db: &Database,
    pool_ids: &[String],
) -> StorageResult<std::collections::HashMap<String, i64>> {
    if pool_ids.is_empty() {
        return Ok(Default::default());
    }
    let mut conn = db.read().await?;
    let rows: Vec<(String, i64)> = db_run!(conn, |c| {
        flow_runs::table
            .inner_join(
                work_queues::table.on(flow_runs::work_queue_id.eq(work_queues::id.nullable())),
            )
            .filter(work_queues::work_pool_id.eq_any(pool_ids))
            .filter(flow_runs::state_type.eq_any(ACTIVE))
            .group_by(work_queues::work_pool_id)
            .select((work_queues::work_pool_id, diesel::dsl::count_star()))
            .load(c)
            .await
    })?;
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::rebalance_priorities;

    fn queues(list: &[(&str, i32)]) -> Vec<(String, i32)> {
        list.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    #[test]
    fn a_taken_priority_pushes_the_following_queues_down() {
        let qs = queues(&[("default", 1), ("q2", 2), ("q3", 3), ("q1", 5), ("new", 1)]);
        let mut changed = rebalance_priorities(&qs, "new", 1);
        changed.sort();
        // q1 (5) already comes after the renumbered q3 (4): it keeps its priority.
        assert_eq!(changed, queues(&[("default", 2), ("q2", 3), ("q3", 4)]));
    }

    #[test]
    fn a_free_priority_changes_nothing_else() {
        let qs = queues(&[("default", 1), ("q2", 2), ("q6", 6)]);
        assert_eq!(
            rebalance_priorities(&qs, "q6", 4),
            queues(&[("q6", 4)]),
            "only the moved queue"
        );
        assert_eq!(
            rebalance_priorities(&qs, "q2", 9),
            queues(&[("q2", 9)]),
            "past the end"
        );
    }

    #[test]
    fn moving_up_shifts_until_a_gap() {
        // urgent 1, default 2, q2 3, q3 4, q4 5, q1 6, q6 7; q6 -> 2.
        let qs = queues(&[
            ("urgent", 1),
            ("default", 2),
            ("q2", 3),
            ("q3", 4),
            ("q4", 5),
            ("q1", 6),
            ("q6", 7),
        ]);
        let mut changed = rebalance_priorities(&qs, "q6", 2);
        changed.sort();
        assert_eq!(
            changed,
            queues(&[
                ("default", 3),
                ("q1", 7),
                ("q2", 4),
                ("q3", 5),
                ("q4", 6),
                ("q6", 2)
            ])
        );
    }
}
