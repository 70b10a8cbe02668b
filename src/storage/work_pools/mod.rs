//! Work pools, their queues and workers: CRUD, the default queue (`pools.rs`), queue priorities
//! (`queues.rs`), heartbeats and the foreman's health marks (`workers.rs`), and the selection of
//! scheduled runs for a polling worker (`poll.rs`: queue priority, pool and queue concurrency
//! limits, paused pools and queues).

mod poll;
mod pools;
mod queues;
mod workers;

pub use poll::{poll, Poll, PollPool, ScheduledRun};
pub use pools::{
    active_slots_by_pool, count_pools, delete_pool, find_pool, find_pool_by_id, insert_pool,
    list_pools, mark_pool_ready, pool_names, pools_of_queues, update_pool,
};
pub use queues::{
    active_slots_by_queue, delete_queue, find_queue, find_queue_by_id, insert_queue, list_queues,
    rebalance_priorities, update_queue,
};
pub use workers::{delete_worker, heartbeat, list_workers, mark_unhealthy};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{work_pools, work_queues};
use crate::ids::WorkspaceId;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = work_pools, treat_none_as_null = true)]
pub struct PoolRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
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
    pub workspace_id: WorkspaceId,
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
#[diesel(table_name = super::schema::workers)]
pub struct WorkerRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub work_pool_id: String,
    pub last_heartbeat_time: NaiveDateTime,
    pub heartbeat_interval_seconds: Option<i32>,
    pub status: String,
}

fn ids(v: &[uuid::Uuid]) -> Vec<String> {
    v.iter().map(|u| u.to_string()).collect()
}

/// Runs in PENDING or RUNNING occupy a pool or queue concurrency slot when runs are handed to
/// workers (the reference's `get-runs-from-worker-queues` query; CANCELLING does not count).
pub const ACTIVE: [&str; 2] = ["PENDING", "RUNNING"];

/// What `/work_queues/{id}` reports as a queue's active slots (the reference's legacy queue
/// routes count CANCELLING runs too).
pub const LEGACY_QUEUE_ACTIVE: [&str; 3] = ["PENDING", "RUNNING", "CANCELLING"];
