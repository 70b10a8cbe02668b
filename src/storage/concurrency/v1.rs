//! v1 (tag) limits: stored as v2 limits named `tag:<tag>`, slots held by leases whose holder is
//! the task run (API.md §7a).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::leases::give_back;
use super::{LeaseRow, LimitRow};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::Page;
use crate::storage::schema::{concurrency_leases, concurrency_limits};
use crate::storage::{Conn, StorageResult};

/// `LIKE` pattern matching a limit id inside a lease's `limit_ids` JSON array.
fn lease_pattern(limit_id: &str) -> String {
    format!(
        "%\"{}\"%",
        limit_id.replace('\\', "").replace(['%', '_'], "")
    )
}

/// Limits whose name starts with `prefix`, by name.
pub async fn list_by_prefix(
    c: &mut Conn,
    ws: &WorkspaceId,
    prefix: &str,
    page: Page,
) -> StorageResult<Vec<LimitRow>> {
    let escaped = crate::storage::filters::escape_like(prefix);
    let rows = db_run!(c, |c| {
        concurrency_limits::table
            .filter(concurrency_limits::workspace_id.eq(ws))
            .filter(
                concurrency_limits::name
                    .like(format!("{escaped}%"))
                    .escape('\\'),
            )
            .order(concurrency_limits::name.asc())
            .limit(page.limit)
            .offset(page.offset)
            .select(LimitRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// The leases holding slots of limit `limit_id`, oldest first.
pub async fn leases_on_limit(
    c: &mut Conn,
    ws: &WorkspaceId,
    limit_id: &str,
) -> StorageResult<Vec<LeaseRow>> {
    let rows = db_run!(c, |c| {
        concurrency_leases::table
            .filter(concurrency_leases::workspace_id.eq(ws))
            .filter(concurrency_leases::limit_ids.like(lease_pattern(limit_id)))
            .order((
                concurrency_leases::created.asc(),
                concurrency_leases::id.asc(),
            ))
            .select(LeaseRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Every lease of the workspace, oldest first (one query for many limits' holders).
pub async fn leases_in_workspace(c: &mut Conn, ws: &WorkspaceId) -> StorageResult<Vec<LeaseRow>> {
    let rows = db_run!(c, |c| {
        concurrency_leases::table
            .filter(concurrency_leases::workspace_id.eq(ws))
            .order((
                concurrency_leases::created.asc(),
                concurrency_leases::id.asc(),
            ))
            .select(LeaseRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// The leases of the workspace that hold slots of limit `limit_id` (unordered).
async fn leases_holding(
    c: &mut Conn,
    ws: &WorkspaceId,
    limit_id: &str,
) -> StorageResult<Vec<LeaseRow>> {
    Ok(db_run!(c, |c| {
        concurrency_leases::table
            .filter(concurrency_leases::workspace_id.eq(ws))
            .filter(concurrency_leases::limit_ids.like(lease_pattern(limit_id)))
            .select(LeaseRow::as_select())
            .load(c)
            .await
    })?)
}

async fn delete_lease(c: &mut Conn, id: &str) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::delete(concurrency_leases::table.filter(concurrency_leases::id.eq(id)))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Ends every lease on limit `limit_id` (their slots go back to all their limits) and makes
/// `holders` (holder JSON texts) the limit's only holders: one slot and one lease each, expiring
/// at `expiration`; in one transaction. False when there is no such limit.
pub async fn reset_holders(
    c: &mut Conn,
    ws: &WorkspaceId,
    limit_id: &str,
    holders: &[String],
    expiration: NaiveDateTime,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    c.transaction(async |c| {
        let exists: i64 = db_run!(c, |c| {
            concurrency_limits::table
                .filter(concurrency_limits::workspace_id.eq(ws))
                .filter(concurrency_limits::id.eq(limit_id))
                .count()
                .get_result(c)
                .await
        })?;
        if exists == 0 {
            return Ok(false);
        }
        for lease in leases_holding(c, ws, limit_id).await? {
            delete_lease(c, &lease.id).await?;
            let ids: Vec<String> = serde_json::from_str(&lease.limit_ids).unwrap_or_default();
            give_back(c, &ids, lease.slots, None).await?;
        }
        db_run!(c, |c| {
            diesel::update(concurrency_limits::table.filter(concurrency_limits::id.eq(limit_id)))
                .set((
                    concurrency_limits::active_slots.eq(holders.len() as i32),
                    concurrency_limits::updated.eq(now),
                ))
                .execute(c)
                .await
        })?;
        let ids = serde_json::to_string(&[limit_id]).unwrap_or_else(|_| "[]".into());
        for holder in holders {
            let row = LeaseRow {
                id: uuid::Uuid::new_v4().to_string(),
                workspace_id: ws.clone(),
                created: now,
                expiration,
                limit_ids: ids.clone(),
                slots: 1,
                holder: Some(holder.clone()),
            };
            db_run!(c, |c| {
                diesel::insert_into(concurrency_leases::table)
                    .values(&row)
                    .execute(c)
                    .await
            })?;
        }
        Ok(true)
    })
    .await
}

/// Deletes limit `limit_id` and ends its leases (their slots on other limits go back), in one
/// transaction. False when there is no such limit.
pub async fn delete_with_leases(
    c: &mut Conn,
    ws: &WorkspaceId,
    limit_id: &str,
) -> StorageResult<bool> {
    c.transaction(async |c| {
        for lease in leases_holding(c, ws, limit_id).await? {
            delete_lease(c, &lease.id).await?;
            let ids: Vec<String> = serde_json::from_str::<Vec<String>>(&lease.limit_ids)
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i != limit_id)
                .collect();
            give_back(c, &ids, lease.slots, None).await?;
        }
        let n = db_run!(c, |c| {
            diesel::delete(
                concurrency_limits::table
                    .filter(concurrency_limits::workspace_id.eq(ws))
                    .filter(concurrency_limits::id.eq(limit_id)),
            )
            .execute(c)
            .await
        })?;
        Ok(n == 1)
    })
    .await
}
