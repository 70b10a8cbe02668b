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
    let mut conn = db.write().await?;
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

pub async fn save_pool(db: &Database, pool: &PoolRow) -> StorageResult<()> {
    let mut conn = db.write().await?;
    db_run!(conn, |c| diesel::update(
        work_pools::table.filter(work_pools::id.eq(&pool.id))
    )
    .set(pool)
    .execute(c)
    .await)?;
    Ok(())
}

pub async fn delete_pool(db: &Database, ws: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.write().await?;
    let n = db_run!(conn, |c| diesel::delete(
        work_pools::table
            .filter(work_pools::workspace_id.eq(ws))
            .filter(work_pools::id.eq(id))
    )
    .execute(c)
    .await)?;
    Ok(n == 1)
}

pub async fn insert_queue(db: &Database, q: &QueueRow) -> StorageResult<()> {
    let mut conn = db.write().await?;
    db_run!(conn, |c| diesel::insert_into(work_queues::table)
        .values(q)
        .execute(c)
        .await)?;
    Ok(())
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

pub async fn save_queue(db: &Database, q: &QueueRow) -> StorageResult<()> {
    let mut conn = db.write().await?;
    db_run!(conn, |c| diesel::update(
        work_queues::table.filter(work_queues::id.eq(&q.id))
    )
    .set(q)
    .execute(c)
    .await)?;
    Ok(())
}

pub async fn delete_queue(db: &Database, ws: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.write().await?;
    let n = db_run!(conn, |c| diesel::delete(
        work_queues::table
            .filter(work_queues::workspace_id.eq(ws))
            .filter(work_queues::id.eq(id))
    )
    .execute(c)
    .await)?;
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
    let mut conn = db.write().await?;
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
    let mut conn = db.write().await?;
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

/// Runs in PENDING, RUNNING or CANCELLING occupy a concurrency slot.
const ACTIVE: [&str; 3] = ["PENDING", "RUNNING", "CANCELLING"];

/// SCHEDULED runs due by `before` from the pool's unpaused queues (all, or those named), in
/// queue-priority order, within the pool's and each queue's concurrency limit. Skips runs being
/// retried in-process by their client. Marks the polled queues (and their deployments) READY.
pub async fn scheduled_runs(
    db: &Database,
    pool: &PoolRow,
    queue_names: &[String],
    before: NaiveDateTime,
    after: Option<NaiveDateTime>,
    limit: i64,
    now: NaiveDateTime,
) -> StorageResult<Vec<ScheduledRun>> {
    let mut conn = db.write().await?;
    let ws = pool.workspace_id.as_str();
    let out = db_run!(conn, |c| {
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
        let queue_ids: Vec<String> = queues.iter().map(|q| q.id.clone()).collect();
        diesel::update(work_queues::table.filter(work_queues::id.eq_any(&queue_ids)))
            .set(work_queues::last_polled.eq(now))
            .execute(c)
            .await?;
        diesel::update(
            work_queues::table
                .filter(work_queues::id.eq_any(&queue_ids))
                .filter(work_queues::is_paused.eq(false)),
        )
        .set(work_queues::status.eq("READY"))
        .execute(c)
        .await?;
        diesel::update(deployments::table.filter(deployments::work_queue_id.eq_any(&queue_ids)))
            .set((
                deployments::last_polled.eq(now),
                deployments::status.eq("READY"),
            ))
            .execute(c)
            .await?;
        let mut out: Vec<ScheduledRun> = Vec::new();
        let mut pool_room = match pool.concurrency_limit {
            _ if pool.is_paused => 0,
            Some(l) => {
                let active: i64 = flow_runs::table
                    .filter(
                        flow_runs::work_queue_id.eq_any(
                            work_queues::table
                                .filter(work_queues::work_pool_id.eq(&pool.id))
                                .select(work_queues::id.nullable()),
                        ),
                    )
                    .filter(flow_runs::state_type.eq_any(ACTIVE))
                    .count()
                    .get_result(c)
                    .await?;
                (l as i64 - active).max(0)
            }
            None => i64::MAX,
        };
        for queue in queues.iter().filter(|q| !q.is_paused) {
            let remaining = limit - out.len() as i64;
            if remaining <= 0 || pool_room <= 0 {
                break;
            }
            let queue_room = match queue.concurrency_limit {
                Some(l) => {
                    let active: i64 = flow_runs::table
                        .filter(flow_runs::work_queue_id.eq(&queue.id))
                        .filter(flow_runs::state_type.eq_any(ACTIVE))
                        .count()
                        .get_result(c)
                        .await?;
                    (l as i64 - active).max(0)
                }
                None => i64::MAX,
            };
            let take = remaining.min(pool_room).min(queue_room);
            if take <= 0 {
                continue;
            }
            let mut rq = flow_runs::table
                .filter(flow_runs::workspace_id.eq(ws))
                .filter(flow_runs::work_queue_id.eq(&queue.id))
                .filter(flow_runs::state_type.eq("SCHEDULED"))
                .filter(flow_runs::next_scheduled_start_time.le(before))
                .filter(diesel::dsl::not(
                    flow_runs::empirical_policy.like("%\"retry_type\":\"in_process\"%"),
                ))
                .select(FlowRunRow::as_select())
                .into_boxed();
            if let Some(a) = after {
                rq = rq.filter(flow_runs::next_scheduled_start_time.ge(a));
            }
            let runs: Vec<FlowRunRow> = rq
                .order(flow_runs::next_scheduled_start_time.asc())
                .limit(take)
                .load(c)
                .await?;
            pool_room -= runs.len() as i64;
            out.extend(runs.into_iter().map(|run| ScheduledRun {
                run,
                work_queue_id: queue.id.clone(),
            }));
        }
        Ok::<_, diesel::result::Error>(out)
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
    let mut conn = db.write().await?;
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
    let mut conn = db.write().await?;
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

/// PENDING + RUNNING + CANCELLING runs of the given queues.
pub async fn active_runs(db: &Database, queue_ids: &[String]) -> StorageResult<i64> {
    let mut conn = db.read().await?;
    let n = db_run!(conn, |c| {
        flow_runs::table
            .filter(flow_runs::work_queue_id.eq_any(queue_ids))
            .filter(flow_runs::state_type.eq_any(ACTIVE))
            .count()
            .get_result(c)
            .await
    })?;
    Ok(n)
}

/// Moves every queue of the pool at or after `from` one priority down.
pub async fn shift_priorities(db: &Database, pool_id: &str, from: i32) -> StorageResult<()> {
    let mut conn = db.write().await?;
    db_run!(conn, |c| {
        diesel::update(
            work_queues::table
                .filter(work_queues::work_pool_id.eq(pool_id))
                .filter(work_queues::priority.ge(from)),
        )
        .set(work_queues::priority.eq(work_queues::priority + 1))
        .execute(c)
        .await
    })?;
    Ok(())
}
