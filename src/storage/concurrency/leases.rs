//! Leases: slots held under an id until released, renewed or expired. Ending a lease gives its
//! slots back to its limits ([`give_back`], shared with releases and the v1 limits).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::LeaseRow;
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::storage::schema::{concurrency_leases, concurrency_limits};
use crate::storage::{Conn, StorageResult};

/// Decrements `slots` on the limits `ids` (clamped at zero) and folds `occupancy` into the
/// running average. Runs inside the caller's transaction (releases, lease releases, expired
/// leases, v1 resets and deletions).
pub(super) async fn give_back(
    c: &mut Conn,
    ids: &[String],
    slots: i32,
    occupancy: Option<f64>,
) -> StorageResult<()> {
    for id in ids {
        db_run!(c, |c| {
            diesel::update(concurrency_limits::table.filter(concurrency_limits::id.eq(id)))
                .set(concurrency_limits::active_slots.eq(concurrency_limits::active_slots - slots))
                .execute(c)
                .await?;
            diesel::update(
                concurrency_limits::table
                    .filter(concurrency_limits::id.eq(id))
                    .filter(concurrency_limits::active_slots.lt(0)),
            )
            .set(concurrency_limits::active_slots.eq(0))
            .execute(c)
            .await
        })?;
        let Some(occ) = occupancy else {
            continue;
        };
        let avg: Option<f64> = db_run!(c, |c| {
            concurrency_limits::table
                .find(id)
                .select(concurrency_limits::avg_slot_occupancy_seconds)
                .first(c)
                .await
                .optional()
        })?;
        if let Some(avg) = avg {
            let next = avg + (occ / (slots.max(1) as f64) - avg) / 10.0;
            db_run!(c, |c| {
                diesel::update(concurrency_limits::table.filter(concurrency_limits::id.eq(id)))
                    .set(concurrency_limits::avg_slot_occupancy_seconds.eq(next.max(0.0)))
                    .execute(c)
                    .await
            })?;
        }
    }
    Ok(())
}

/// Ends a lease and frees its slots, in one transaction. False when there was no such lease.
pub async fn release_lease(
    c: &mut Conn,
    ws: &WorkspaceId,
    lease_id: &str,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    c.transaction(async |c| {
        let lease: Option<LeaseRow> = db_run!(c, |c| {
            concurrency_leases::table
                .filter(concurrency_leases::workspace_id.eq(ws))
                .filter(concurrency_leases::id.eq(lease_id))
                .select(LeaseRow::as_select())
                .first(c)
                .await
                .optional()
        })?;
        let Some(lease) = lease else { return Ok(false) };
        let deleted = db_run!(c, |c| {
            diesel::delete(concurrency_leases::table.filter(concurrency_leases::id.eq(&lease.id)))
                .execute(c)
                .await
        })?;
        if deleted == 1 {
            let ids: Vec<String> = serde_json::from_str(&lease.limit_ids).unwrap_or_default();
            let held = (now - lease.created).num_milliseconds().max(0) as f64 / 1000.0;
            give_back(c, &ids, lease.slots, Some(held)).await?;
        }
        Ok(true)
    })
    .await
}

/// Moves a lease's expiration; false when the lease is gone.
pub async fn renew_lease(
    c: &mut Conn,
    ws: &WorkspaceId,
    lease_id: &str,
    expiration: NaiveDateTime,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::update(
            concurrency_leases::table
                .filter(concurrency_leases::workspace_id.eq(ws))
                .filter(concurrency_leases::id.eq(lease_id)),
        )
        .set(concurrency_leases::expiration.eq(expiration))
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// Expired leases (any workspace), oldest first.
pub async fn expired_leases(
    c: &mut Conn,
    now: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<LeaseRow>> {
    let rows = db_run!(c, |c| {
        concurrency_leases::table
            .filter(concurrency_leases::expiration.lt(now))
            .order(concurrency_leases::expiration.asc())
            .limit(limit)
            .select(LeaseRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Slots held by leases on a limit (for tests and diagnostics).
pub async fn active_leases(c: &mut Conn, ws: &WorkspaceId) -> StorageResult<i64> {
    let n = db_run!(c, |c| concurrency_leases::table
        .filter(concurrency_leases::workspace_id.eq(ws))
        .count()
        .get_result::<i64>(c)
        .await)?;
    Ok(n)
}
