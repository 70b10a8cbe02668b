//! A worker's poll: the due runs of a pool's queues, in priority order within the pool's and
//! the queues' concurrency limits, in one transaction.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::super::rows::{FlowRunRow, FlowRunStateRow};
use super::super::schema::{deployments, flow_run_states, flow_runs, work_pools, work_queues};
use super::super::{flow_runs as runs_store, Backend, Conn, StorageResult};
use super::{PoolRow, QueueRow, ACTIVE};
use crate::db_run;
use crate::ids::FlowRunId;

/// A scheduled run handed to a worker, with the queue it came from.
#[derive(Debug, Clone)]
pub struct ScheduledRun {
    pub run: FlowRunRow,
    pub work_queue_id: String,
}

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
        states: HashMap<String, FlowRunStateRow>,
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
/// per queue, the queue ids again (rank), total. `placeholder(n)` writes the `n`th bind's
/// placeholder (from 1).
fn due_sql(placeholder: fn(usize) -> String, n_queues: usize, before: bool, after: bool) -> String {
    let mut n = 0;
    let mut p = || {
        n += 1;
        placeholder(n)
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

/// A worker's poll, in one transaction (one commit): the pool (by name), its queues (all, or
/// those named; a missing one stops before anything is written), `last_polled` and READY for
/// those queues (paused ones keep their status) and their deployments, the active runs per
/// queue (only when a concurrency limit applies), the due runs of all eligible queues in one
/// statement (see `due_sql`), their rows, and with `with_states` their current states.
#[expect(
    clippy::too_many_arguments,
    reason = "one transaction of the poll; its inputs are the request's fields, named at the call"
)]
pub async fn poll(
    c: &mut Conn,
    target: PollPool<'_>,
    queue_names: &[String],
    before: Option<NaiveDateTime>,
    after: Option<NaiveDateTime>,
    limit: i64,
    now: NaiveDateTime,
    with_states: bool,
) -> StorageResult<Poll> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    c.transaction(async |c| {
        let pool: PoolRow = match target {
            PollPool::Row(p) => p.clone(),
            PollPool::Name { ws, name } => {
                let found = db_run!(c, |c| {
                    work_pools::table
                        .filter(work_pools::workspace_id.eq(ws))
                        .filter(work_pools::name.eq(name))
                        .select(PoolRow::as_select())
                        .first(c)
                        .await
                        .optional()
                })?;
                match found {
                    Some(p) => p,
                    None => return Ok(Poll::NoPool),
                }
            }
        };
        let queues: Vec<QueueRow> = db_run!(c, |c| {
            let mut q = work_queues::table
                .filter(work_queues::work_pool_id.eq(&pool.id))
                .select(QueueRow::as_select())
                .into_boxed();
            if !queue_names.is_empty() {
                q = q.filter(work_queues::name.eq_any(queue_names));
            }
            q.order((work_queues::priority.asc(), work_queues::name.asc()))
                .load(c)
                .await
        })?;
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
            db_run!(c, |c| {
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
                .await
            })?;
        }
        let eligible: Vec<&QueueRow> = if pool.is_paused {
            Vec::new()
        } else {
            queues.iter().filter(|q| !q.is_paused).collect()
        };
        let mut total = if eligible.is_empty() { 0 } else { limit };
        let limited = pool.concurrency_limit.is_some()
            || eligible.iter().any(|q| q.concurrency_limit.is_some());
        let active: HashMap<String, i64> = if total > 0 && limited {
            let rows: Vec<(Option<String>, i64)> = db_run!(c, |c| {
                flow_runs::table
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
                    .await
            })?;
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
            let (n, has_before, has_after) = (caps.len(), before.is_some(), after.is_some());
            // The one place the backends' SQL differs: PostgreSQL numbers its bind placeholders
            // (`$1`, `$2`, …), SQLite writes `?` for each.
            let sql = match c.backend() {
                Backend::Pg(_) => due_sql(|i| format!("${i}"), n, has_before, has_after),
                Backend::Sqlite(_) => due_sql(|_| "?".into(), n, has_before, has_after),
            };
            let due: Vec<DueRow> = db_run!(c, |c| {
                let mut dq = crate::storage::boxed_for(&*c, diesel::sql_query(sql))
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
                dq.load(c).await
            })?;
            if !due.is_empty() {
                let ids: Vec<&str> = due.iter().map(|d| d.id.as_str()).collect();
                let found: Vec<FlowRunRow> = db_run!(c, |c| {
                    flow_runs::table
                        .filter(flow_runs::id.eq_any(&ids))
                        .select(FlowRunRow::as_select())
                        .load::<FlowRunRow>(c)
                        .await
                })?;
                let mut rows: HashMap<FlowRunId, FlowRunRow> =
                    found.into_iter().map(|r| (r.id.clone(), r)).collect();
                runs = due
                    .into_iter()
                    .filter_map(|d| {
                        rows.remove(d.id.as_str()).map(|run| ScheduledRun {
                            run,
                            work_queue_id: d.work_queue_id,
                        })
                    })
                    .collect();
            }
        }
        let mut states = HashMap::new();
        if with_states {
            let state_ids = runs_store::stored_state_ids(runs.iter().map(|r| &r.run));
            if !state_ids.is_empty() {
                let rows: Vec<FlowRunStateRow> = db_run!(c, |c| {
                    flow_run_states::table
                        .filter(flow_run_states::id.eq_any(&state_ids))
                        .select(FlowRunStateRow::as_select())
                        .load(c)
                        .await
                })?;
                states = rows.into_iter().map(|s| (s.id.clone(), s)).collect();
            }
            runs_store::add_unstored(&mut states, runs.iter().map(|r| &r.run));
        }
        Ok(Poll::Runs {
            pool: Box::new(pool),
            runs,
            states,
        })
    })
    .await
}
