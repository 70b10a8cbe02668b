//! Work pools: insert (with the default queue), reads, filters, updates, deletes, READY after a
//! heartbeat, and their active slots.
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::super::schema::{deployments, flow_runs, work_pools, work_queues, workers};
use super::super::{Conn, StorageResult};
use super::{ids, PoolRow, QueueRow, ACTIVE};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::pools::WorkPoolFilter;
use crate::query::Page;

/// Inserts a pool together with its `default` queue.
pub async fn insert_pool(
    c: &mut Conn,
    pool: &PoolRow,
    default_queue: &QueueRow,
) -> StorageResult<()> {
    c.transaction(async |c| {
        db_run!(c, |c| {
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
    })
    .await?;
    Ok(())
}

pub async fn find_pool(
    c: &mut Conn,
    ws: &WorkspaceId,
    name: &str,
) -> StorageResult<Option<PoolRow>> {
    let row = db_run!(c, |c| {
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
    c: &mut Conn,
    ws: &WorkspaceId,
    pool_ids: &[String],
) -> StorageResult<std::collections::HashMap<String, String>> {
    if pool_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String, String)> = db_run!(c, |c| {
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
    c: &mut Conn,
    queue_ids: &[String],
) -> StorageResult<std::collections::HashMap<String, (String, String)>> {
    if queue_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String, (String, String))> = db_run!(c, |c| {
        work_queues::table
            .inner_join(work_pools::table.on(work_pools::id.eq(work_queues::work_pool_id)))
            .filter(work_queues::id.eq_any(queue_ids))
            .select((work_queues::id, (work_pools::id, work_pools::name)))
            .load(c)
            .await
    })?;
    Ok(rows.into_iter().collect())
}

pub async fn find_pool_by_id(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<PoolRow>> {
    let row = db_run!(c, |c| {
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
    c: &mut Conn,
    ws: &WorkspaceId,
    f: &WorkPoolFilter,
    page: Page,
) -> StorageResult<Vec<PoolRow>> {
    let rows = db_run!(c, |c| {
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
pub async fn count_pools(c: &mut Conn, ws: &WorkspaceId, f: &WorkPoolFilter) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
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

pub async fn update_pool(c: &mut Conn, pool: &PoolRow) -> StorageResult<()> {
    db_run!(c, |c| diesel::update(
        work_pools::table.filter(work_pools::id.eq(&pool.id))
    )
    .set(pool)
    .execute(c)
    .await)?;
    Ok(())
}

/// Deletes a pool with its queues and workers; its deployments lose their queue (id and name),
/// as the reference server's do.
pub async fn delete_pool(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<bool> {
    let n = c
        .transaction(async |c| {
            db_run!(c, |c| {
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
            .map_err(Into::into)
        })
        .await?;
    Ok(n == 1)
}

/// Marks a pool READY after a heartbeat (unless paused).
pub async fn mark_pool_ready(c: &mut Conn, pool_id: &str) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
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

/// PENDING + RUNNING runs per pool (through the pools' queues), for the given pools.
pub async fn active_slots_by_pool(
    c: &mut Conn,
    pool_ids: &[String],
) -> StorageResult<std::collections::HashMap<String, i64>> {
    if pool_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String, i64)> = db_run!(c, |c| {
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
