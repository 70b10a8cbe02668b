//! A pool's workers: heartbeats, reads, deletes, and the foreman's health marks.
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::super::schema::{deployments, work_pools, work_queues, workers};
use super::super::{Conn, StorageResult};
use super::{PoolRow, QueueRow, WorkerRow};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::pools::WorkerFilter;
use crate::query::Page;

/// Records a worker heartbeat (creating the worker), marking it ONLINE.
pub async fn heartbeat(
    c: &mut Conn,
    ws: &WorkspaceId,
    pool_id: &str,
    name: &str,
    interval: Option<i32>,
    now: NaiveDateTime,
) -> StorageResult<()> {
    let row = WorkerRow {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: ws.clone(),
        created: now,
        updated: now,
        name: name.to_string(),
        work_pool_id: pool_id.to_string(),
        last_heartbeat_time: now,
        heartbeat_interval_seconds: interval,
        status: "ONLINE".into(),
    };
    db_run!(c, |c| {
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
    c: &mut Conn,
    ws: &WorkspaceId,
    pool_id: &str,
    f: &WorkerFilter,
    page: Page,
) -> StorageResult<Vec<WorkerRow>> {
    let rows = db_run!(c, |c| {
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
    c: &mut Conn,
    ws: &WorkspaceId,
    pool_id: &str,
    name: &str,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
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

/// Foreman: workers whose last heartbeat is older than `multiple` × their interval (or the
/// fallback interval) go OFFLINE; pools without an online worker become NOT_READY (paused pools
/// stay PAUSED); queues and deployments not polled since `polled_before` become NOT_READY.
/// Returns the workers, pools and queues (and the ids of the deployments) whose status changed.
/// Each change is an UPDATE conditional on the status it leaves and counts only if it changed
/// the row: foremen on several replicas report (and emit the event of) each change once.
pub async fn mark_unhealthy(
    c: &mut Conn,
    now: NaiveDateTime,
    multiple: i64,
    fallback_interval: i64,
    polled_before: NaiveDateTime,
) -> StorageResult<(Vec<WorkerRow>, Vec<PoolRow>, Vec<QueueRow>, Vec<String>)> {
    let out = db_run!(c, |c| {
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
                let changed = diesel::update(
                    workers::table
                        .filter(workers::id.eq(&w.id))
                        .filter(workers::status.eq("ONLINE")),
                )
                .set(workers::status.eq("OFFLINE"))
                .execute(c)
                .await?;
                if changed > 0 {
                    offline.push(w);
                }
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
                let changed = diesel::update(
                    work_pools::table
                        .filter(work_pools::id.eq(&p.id))
                        .filter(work_pools::status.eq("READY")),
                )
                .set(work_pools::status.eq("NOT_READY"))
                .execute(c)
                .await?;
                if changed > 0 {
                    not_ready_pools.push(p);
                }
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
        let mut not_ready_queues = Vec::new();
        for q in stale_queues {
            let changed = diesel::update(
                work_queues::table
                    .filter(work_queues::id.eq(&q.id))
                    .filter(work_queues::status.eq("READY")),
            )
            .set(work_queues::status.eq("NOT_READY"))
            .execute(c)
            .await?;
            if changed > 0 {
                not_ready_queues.push(q);
            }
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
        diesel::update(
            deployments::table
                .filter(deployments::id.eq_any(&stale_deployments))
                .filter(deployments::status.eq("READY")),
        )
        .set(deployments::status.eq("NOT_READY"))
        .execute(c)
        .await?;
        Ok::<_, diesel::result::Error>((
            offline,
            not_ready_pools,
            not_ready_queues,
            stale_deployments,
        ))
    })?;
    Ok(out)
}
