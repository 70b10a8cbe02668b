//! Global (v2) concurrency limits and their leases. Slots are taken and given back with
//! conditional updates inside transactions, so concurrent clients never lose or double-count a
//! slot: a take that would overfill a limit, or that raced another writer, changes nothing.
//!
//! `limits.rs` has the v2 limits (and taking and giving back slots), `leases.rs` the leases,
//! `v1.rs` the tag (v1) limits, which are v2 limits named `tag:<tag>` whose slots are held by
//! leases of task runs.

mod leases;
mod limits;
mod v1;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{concurrency_leases, concurrency_limits};
use crate::ids::WorkspaceId;

pub use leases::{active_leases, expired_leases, release_lease, renew_lease};
pub use limits::{acquire, delete, find, insert, list, release, update, AcquireRequest, Acquired};
pub use v1::{
    delete_with_leases, leases_in_workspace, leases_on_limit, list_by_prefix, reset_holders,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = concurrency_limits)]
pub struct LimitRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub active: bool,
    pub name: String,
    pub limit_: i32,
    pub active_slots: i32,
    pub denied_slots: i32,
    pub slot_decay_per_second: f64,
    pub avg_slot_occupancy_seconds: f64,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = concurrency_limits)]
pub struct LimitChanges {
    pub updated: Option<NaiveDateTime>,
    pub active: Option<bool>,
    pub name: Option<String>,
    pub limit_: Option<i32>,
    pub active_slots: Option<i32>,
    pub denied_slots: Option<i32>,
    pub slot_decay_per_second: Option<f64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = concurrency_leases)]
pub struct LeaseRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub expiration: NaiveDateTime,
    pub limit_ids: String,
    pub slots: i32,
    pub holder: Option<String>,
}
