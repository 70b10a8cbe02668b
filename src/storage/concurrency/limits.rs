//! The v2 limits: created, read by id or name, listed, updated and deleted; slots taken on
//! several limits at once (all or nothing, optionally under a lease) and given back.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::leases::give_back;
use super::{LeaseRow, LimitChanges, LimitRow};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::Page;
use crate::storage::schema::{concurrency_leases, concurrency_limits};
use crate::storage::{Conn, StorageError, StorageResult};

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

pub async fn insert(c: &mut Conn, row: &LimitRow) -> StorageResult<()> {
    db_run!(c, |c| diesel::insert_into(concurrency_limits::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// A limit by id, or by name when `key` is not a UUID.
pub async fn find(c: &mut Conn, ws: &WorkspaceId, key: &str) -> StorageResult<Option<LimitRow>> {
    let row = db_run!(c, |c| {
        let q = concurrency_limits::table
            .filter(concurrency_limits::workspace_id.eq(ws))
            .select(LimitRow::as_select());
        if is_uuid(key) {
            q.filter(concurrency_limits::id.eq(key))
                .first(c)
                .await
                .optional()
        } else {
            q.filter(concurrency_limits::name.eq(key))
                .first(c)
                .await
                .optional()
        }
    })?;
    Ok(row)
}

pub async fn list(c: &mut Conn, ws: &WorkspaceId, page: Page) -> StorageResult<Vec<LimitRow>> {
    let rows = db_run!(c, |c| {
        concurrency_limits::table
            .filter(concurrency_limits::workspace_id.eq(ws))
            .order(concurrency_limits::name.asc())
            .limit(page.limit)
            .offset(page.offset)
            .select(LimitRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn update(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
    changes: &LimitChanges,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::update(
            concurrency_limits::table
                .filter(concurrency_limits::workspace_id.eq(ws))
                .filter(concurrency_limits::id.eq(id)),
        )
        .set(changes)
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::delete(
            concurrency_limits::table
                .filter(concurrency_limits::workspace_id.eq(ws))
                .filter(concurrency_limits::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// The outcome of asking for slots.
#[derive(Debug, Clone)]
pub enum Acquired {
    /// Slots taken on these limits (none when no active limit matched), under this lease.
    Granted {
        limits: Vec<LimitRow>,
        lease_id: Option<String>,
    },
    /// A limit is full (or its limit is 0); ask again after this many seconds.
    Denied { retry_after: f64, zero_limit: bool },
}

/// What an acquisition asks for.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    pub names: Vec<String>,
    pub slots: i32,
    pub rate_limit: bool,
    /// `Some((expiration, holder JSON))` to take the slots under a lease.
    pub lease: Option<(NaiveDateTime, Option<String>)>,
    pub now: NaiveDateTime,
}

/// Slots left over after decay: rate limits give back `slot_decay_per_second` slots per second.
fn decayed(l: &LimitRow, now: NaiveDateTime) -> i32 {
    if l.slot_decay_per_second <= 0.0 {
        return l.active_slots;
    }
    let secs = (now - l.updated).num_milliseconds().max(0) as f64 / 1000.0;
    let freed = (secs * l.slot_decay_per_second).floor() as i64;
    (l.active_slots as i64 - freed).max(0) as i32
}

const ATTEMPTS: usize = 20;

/// Takes `slots` on every active limit named in `req.names`, all or nothing: each attempt is a
/// transaction (a savepoint inside the caller's), tried again when another writer changed a
/// limit between its read and its write.
pub async fn acquire(
    c: &mut Conn,
    ws: &WorkspaceId,
    req: &AcquireRequest,
) -> StorageResult<Acquired> {
    for _ in 0..ATTEMPTS {
        match c.transaction(async |c| try_acquire(c, ws, req).await).await {
            Err(StorageError::Raced) => continue,
            other => return other,
        }
    }
    Ok(Acquired::Denied {
        retry_after: 1.0,
        zero_limit: false,
    })
}

/// One attempt of [`acquire`]; [`StorageError::Raced`] when a limit changed under it.
async fn try_acquire(
    c: &mut Conn,
    ws: &WorkspaceId,
    req: &AcquireRequest,
) -> StorageResult<Acquired> {
    let limits: Vec<LimitRow> = db_run!(c, |c| {
        concurrency_limits::table
            .filter(concurrency_limits::workspace_id.eq(ws))
            .filter(concurrency_limits::name.eq_any(&req.names))
            .filter(concurrency_limits::active.eq(true))
            .order(concurrency_limits::id.asc())
            .select(LimitRow::as_select())
            .load(c)
            .await
    })?;
    let mut denied = None;
    for l in &limits {
        if l.limit_ == 0 {
            denied = Some((0.0, true));
            break;
        }
        if decayed(l, req.now) + req.slots > l.limit_ {
            let wait = if req.rate_limit && l.slot_decay_per_second > 0.0 {
                req.slots as f64 / l.slot_decay_per_second
            } else {
                l.avg_slot_occupancy_seconds
            };
            denied = Some((wait, false));
            break;
        }
    }
    if let Some((wait, zero)) = denied {
        for l in &limits {
            db_run!(c, |c| {
                diesel::update(concurrency_limits::table.filter(concurrency_limits::id.eq(&l.id)))
                    .set(
                        concurrency_limits::denied_slots
                            .eq(concurrency_limits::denied_slots + req.slots),
                    )
                    .execute(c)
                    .await
            })?;
        }
        return Ok(Acquired::Denied {
            retry_after: wait,
            zero_limit: zero,
        });
    }
    let mut taken = Vec::with_capacity(limits.len());
    for l in limits {
        let next = decayed(&l, req.now) + req.slots;
        // Conditional on the values we read: a concurrent writer makes this a no-op.
        let n = db_run!(c, |c| {
            diesel::update(
                concurrency_limits::table
                    .filter(concurrency_limits::id.eq(&l.id))
                    .filter(concurrency_limits::active_slots.eq(l.active_slots))
                    .filter(concurrency_limits::updated.eq(l.updated)),
            )
            .set((
                concurrency_limits::active_slots.eq(next),
                concurrency_limits::updated.eq(req.now),
            ))
            .execute(c)
            .await
        })?;
        if n != 1 {
            return Err(StorageError::Raced);
        }
        taken.push(LimitRow {
            active_slots: next,
            updated: req.now,
            ..l
        });
    }
    let lease_id = match &req.lease {
        Some((expiration, holder)) => {
            let id = uuid::Uuid::new_v4().to_string();
            let ids: Vec<&str> = taken.iter().map(|l| l.id.as_str()).collect();
            let row = LeaseRow {
                id: id.clone(),
                workspace_id: ws.clone(),
                created: req.now,
                expiration: *expiration,
                limit_ids: serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()),
                slots: req.slots,
                holder: holder.clone(),
            };
            db_run!(c, |c| {
                diesel::insert_into(concurrency_leases::table)
                    .values(&row)
                    .execute(c)
                    .await
            })?;
            Some(id)
        }
        None => None,
    };
    Ok(Acquired::Granted {
        limits: taken,
        lease_id,
    })
}

/// Gives `slots` back to the named limits (never below zero), recording how long they were held;
/// in one transaction.
pub async fn release(
    c: &mut Conn,
    ws: &WorkspaceId,
    names: &[String],
    slots: i32,
    occupancy_seconds: Option<f64>,
) -> StorageResult<Vec<LimitRow>> {
    c.transaction(async |c| {
        let limits: Vec<LimitRow> = db_run!(c, |c| {
            concurrency_limits::table
                .filter(concurrency_limits::workspace_id.eq(ws))
                .filter(concurrency_limits::name.eq_any(names))
                .filter(concurrency_limits::active.eq(true))
                .select(LimitRow::as_select())
                .load(c)
                .await
        })?;
        let ids: Vec<String> = limits.iter().map(|l| l.id.clone()).collect();
        give_back(c, &ids, slots, occupancy_seconds).await?;
        Ok(limits)
    })
    .await
}
