//! A pool's queues: insert and update (keeping priorities unique), reads, filters, deletes and
//! their active slots.
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::super::schema::{deployments, flow_runs, work_queues};
use super::super::{Conn, StorageResult};
use super::{ids, QueueRow};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::pools::WorkQueueFilter;
use crate::query::Page;

/// Inserts a queue; with `explicit_priority`, the pool's other queues make room for it
/// ([`rebalance_priorities`]), in the same transaction.
pub async fn insert_queue(
    c: &mut Conn,
    q: &QueueRow,
    explicit_priority: bool,
) -> StorageResult<()> {
    write_queue(c, q, true, explicit_priority).await
}

/// Inserts (`insert`) or updates a queue; with `rebalance`, the pool's other queues make room
/// for its priority ([`rebalance_priorities`]), in the same transaction.
async fn write_queue(
    c: &mut Conn,
    q: &QueueRow,
    insert: bool,
    rebalance: bool,
) -> StorageResult<()> {
    c.transaction(async |c| {
        db_run!(c, |c| {
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
    })
    .await?;
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
    c: &mut Conn,
    ws: &WorkspaceId,
    pool_id: &str,
    name: &str,
) -> StorageResult<Option<QueueRow>> {
    let row = db_run!(c, |c| {
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
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<QueueRow>> {
    let row = db_run!(c, |c| {
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
    c: &mut Conn,
    ws: &WorkspaceId,
    pool_id: Option<&str>,
    f: &WorkQueueFilter,
    page: Page,
) -> StorageResult<Vec<QueueRow>> {
    let rows = db_run!(c, |c| {
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
pub async fn update_queue(
    c: &mut Conn,
    q: &QueueRow,
    new_priority: Option<i32>,
) -> StorageResult<()> {
    write_queue(c, q, false, new_priority.is_some()).await
}

/// Deletes a queue; its deployments keep the queue name but lose the id (the reference's
/// `ON DELETE SET NULL`).
pub async fn delete_queue(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<bool> {
    let n = c
        .transaction(async |c| {
            db_run!(c, |c| {
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
            .map_err(Into::into)
        })
        .await?;
    Ok(n == 1)
}

/// Runs in `states` per queue, for the given queues (one grouped query; queues without such
/// runs are absent).
pub async fn active_slots_by_queue(
    c: &mut Conn,
    queue_ids: &[String],
    states: &[&str],
) -> StorageResult<std::collections::HashMap<String, i64>> {
    if queue_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(Option<String>, i64)> = db_run!(c, |c| {
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
