//! Global (v2) concurrency limits and their leases. Slots are taken and given back with
//! conditional updates inside transactions, so concurrent clients never lose or double-count a
//! slot: a take that would overfill a limit, or that raced another writer, changes nothing.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::Page;
use super::schema::{concurrency_leases, concurrency_limits};
use super::{Database, StorageResult};
use crate::db_run;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = concurrency_limits)]
pub struct LimitRow {
    pub id: String,
    pub workspace_id: String,
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
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub expiration: NaiveDateTime,
    pub limit_ids: String,
    pub slots: i32,
    pub holder: Option<String>,
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

pub async fn insert(db: &Database, row: &LimitRow) -> StorageResult<()> {
    let mut conn = db.session().await?;
    db_run!(conn, |c| diesel::insert_into(concurrency_limits::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// A limit by id, or by name when `key` is not a UUID.
pub async fn find(db: &Database, ws: &str, key: &str) -> StorageResult<Option<LimitRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
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

pub async fn list(db: &Database, ws: &str, page: Page) -> StorageResult<Vec<LimitRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
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
    db: &Database,
    ws: &str,
    id: &str,
    changes: &LimitChanges,
) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
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

pub async fn delete(db: &Database, ws: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
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
pub struct AcquireRequest<'a> {
    pub names: &'a [String],
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

const RACE: &str = "orrery: concurrency slot race";
const ATTEMPTS: usize = 20;

/// Takes `slots` on every active limit named in `req.names`, all or nothing.
pub async fn acquire(db: &Database, ws: &str, req: &AcquireRequest<'_>) -> StorageResult<Acquired> {
    for _ in 0..ATTEMPTS {
        let mut conn = db.session().await?;
        let result = db_run!(conn, |c| {
            use diesel_async::AsyncConnection;
            c.transaction::<_, diesel::result::Error, _>(async |c| {
                let limits: Vec<LimitRow> = concurrency_limits::table
                    .filter(concurrency_limits::workspace_id.eq(ws))
                    .filter(concurrency_limits::name.eq_any(req.names))
                    .filter(concurrency_limits::active.eq(true))
                    .order(concurrency_limits::id.asc())
                    .select(LimitRow::as_select())
                    .load(c)
                    .await?;
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
                        diesel::update(
                            concurrency_limits::table.filter(concurrency_limits::id.eq(&l.id)),
                        )
                        .set(
                            concurrency_limits::denied_slots
                                .eq(concurrency_limits::denied_slots + req.slots),
                        )
                        .execute(c)
                        .await?;
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
                    let n = diesel::update(
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
                    .await?;
                    if n != 1 {
                        return Err(diesel::result::Error::QueryBuilderError(RACE.into()));
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
                            workspace_id: ws.to_string(),
                            created: req.now,
                            expiration: *expiration,
                            limit_ids: serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()),
                            slots: req.slots,
                            holder: holder.clone(),
                        };
                        diesel::insert_into(concurrency_leases::table)
                            .values(&row)
                            .execute(c)
                            .await?;
                        Some(id)
                    }
                    None => None,
                };
                Ok(Acquired::Granted {
                    limits: taken,
                    lease_id,
                })
            })
            .await
        });
        match result {
            Ok(a) => return Ok(a),
            Err(diesel::result::Error::QueryBuilderError(m)) if m.to_string() == RACE => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Acquired::Denied {
        retry_after: 1.0,
        zero_limit: false,
    })
}

/// Gives `slots` back to the named limits (never below zero), recording how long they were held.
pub async fn release(
    db: &Database,
    ws: &str,
    names: &[String],
    slots: i32,
    occupancy_seconds: Option<f64>,
) -> StorageResult<Vec<LimitRow>> {
    let mut conn = db.session().await?;
    let rows = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let limits: Vec<LimitRow> = concurrency_limits::table
                .filter(concurrency_limits::workspace_id.eq(ws))
                .filter(concurrency_limits::name.eq_any(names))
                .filter(concurrency_limits::active.eq(true))
                .select(LimitRow::as_select())
                .load(c)
                .await?;
            let ids: Vec<String> = limits.iter().map(|l| l.id.clone()).collect();
            give_back(c, &ids, slots, occupancy_seconds).await?;
            Ok(limits)
        })
        .await
    })?;
    Ok(rows)
}

/// Decrements `slots` on the limits `ids` (clamped at zero) and folds `occupancy` into the
/// running average. Shared by releases, lease releases and expired leases.
macro_rules! give_back_body {
    ($c:ident, $ids:expr, $slots:expr, $occupancy:expr) => {{
        for id in $ids {
            diesel::update(concurrency_limits::table.filter(concurrency_limits::id.eq(id)))
                .set(concurrency_limits::active_slots.eq(concurrency_limits::active_slots - $slots))
                .execute($c)
                .await?;
            diesel::update(
                concurrency_limits::table
                    .filter(concurrency_limits::id.eq(id))
                    .filter(concurrency_limits::active_slots.lt(0)),
            )
            .set(concurrency_limits::active_slots.eq(0))
            .execute($c)
            .await?;
            if let Some(occ) = $occupancy {
                let avg: Option<f64> = concurrency_limits::table
                    .find(id)
                    .select(concurrency_limits::avg_slot_occupancy_seconds)
                    .first($c)
                    .await
                    .optional()?;
                if let Some(avg) = avg {
                    let next = avg + (occ / ($slots.max(1) as f64) - avg) / 10.0;
                    diesel::update(concurrency_limits::table.filter(concurrency_limits::id.eq(id)))
                        .set(concurrency_limits::avg_slot_occupancy_seconds.eq(next.max(0.0)))
                        .execute($c)
                        .await?;
                }
            }
        }
        Ok::<(), diesel::result::Error>(())
    }};
}

async fn give_back<C>(
    c: &mut C,
    ids: &[String],
    slots: i32,
    occupancy: Option<f64>,
) -> Result<(), diesel::result::Error>
where
    C: GiveBack,
{
    c.give_back(ids, slots, occupancy).await
}

/// Backend dispatch for [`give_back_body!`] (called inside other transactions).
pub trait GiveBack {
    fn give_back(
        &mut self,
        ids: &[String],
        slots: i32,
        occupancy: Option<f64>,
    ) -> impl std::future::Future<Output = Result<(), diesel::result::Error>> + Send;
}

impl GiveBack for diesel_async::AsyncPgConnection {
    async fn give_back(
        &mut self,
        ids: &[String],
        slots: i32,
        occupancy: Option<f64>,
    ) -> Result<(), diesel::result::Error> {
        let c = self;
        give_back_body!(c, ids, slots, occupancy)
    }
}

impl GiveBack for super::SqliteConn {
    async fn give_back(
        &mut self,
        ids: &[String],
        slots: i32,
        occupancy: Option<f64>,
    ) -> Result<(), diesel::result::Error> {
        let c = self;
        give_back_body!(c, ids, slots, occupancy)
    }
}

/// Ends a lease and frees its slots. False when there was no such lease.
pub async fn release_lease(
    db: &Database,
    ws: &str,
    lease_id: &str,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let found = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let lease: Option<LeaseRow> = concurrency_leases::table
                .filter(concurrency_leases::workspace_id.eq(ws))
                .filter(concurrency_leases::id.eq(lease_id))
                .select(LeaseRow::as_select())
                .first(c)
                .await
                .optional()?;
            let Some(lease) = lease else { return Ok(false) };
            let deleted = diesel::delete(
                concurrency_leases::table.filter(concurrency_leases::id.eq(&lease.id)),
            )
            .execute(c)
            .await?;
            if deleted == 1 {
                let ids: Vec<String> = serde_json::from_str(&lease.limit_ids).unwrap_or_default();
                let held = (now - lease.created).num_milliseconds().max(0) as f64 / 1000.0;
                give_back(c, &ids, lease.slots, Some(held)).await?;
            }
            Ok(true)
        })
        .await
    })?;
    Ok(found)
}

/// Moves a lease's expiration; false when the lease is gone.
pub async fn renew_lease(
    db: &Database,
    ws: &str,
    lease_id: &str,
    expiration: NaiveDateTime,
) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
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
    db: &Database,
    now: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<LeaseRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
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
pub async fn active_leases(db: &Database, ws: &str) -> StorageResult<i64> {
    let mut conn = db.read().await?;
    let n = db_run!(conn, |c| concurrency_leases::table
        .filter(concurrency_leases::workspace_id.eq(ws))
        .count()
        .get_result::<i64>(c)
        .await)?;
    Ok(n)
}

// ---- v1 (tag) limits: stored as v2 limits named `tag:<tag>`, slots held by leases whose
// holder is the task run (API.md §7a).

/// `LIKE` pattern matching a limit id inside a lease's `limit_ids` JSON array.
fn lease_pattern(limit_id: &str) -> String {
    format!(
        "%\"{}\"%",
        limit_id.replace('\\', "").replace(['%', '_'], "")
    )
}

/// Limits whose name starts with `prefix`, by name.
pub async fn list_by_prefix(
    db: &Database,
    ws: &str,
    prefix: &str,
    page: Page,
) -> StorageResult<Vec<LimitRow>> {
    let escaped = super::filters::escape_like(prefix);
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
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
    db: &Database,
    ws: &str,
    limit_id: &str,
) -> StorageResult<Vec<LeaseRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
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
pub async fn leases_in_workspace(db: &Database, ws: &str) -> StorageResult<Vec<LeaseRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
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

/// Ends every lease on limit `limit_id` (their slots go back to all their limits) and makes
/// `holders` (holder JSON texts) the limit's only holders: one slot and one lease each, expiring
/// at `expiration`. False when there is no such limit.
pub async fn reset_holders(
    db: &Database,
    ws: &str,
    limit_id: &str,
    holders: &[String],
    expiration: NaiveDateTime,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let found = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let exists: i64 = concurrency_limits::table
                .filter(concurrency_limits::workspace_id.eq(ws))
                .filter(concurrency_limits::id.eq(limit_id))
                .count()
                .get_result(c)
                .await?;
            if exists == 0 {
                return Ok(false);
            }
            let leases: Vec<LeaseRow> = concurrency_leases::table
                .filter(concurrency_leases::workspace_id.eq(ws))
                .filter(concurrency_leases::limit_ids.like(lease_pattern(limit_id)))
                .select(LeaseRow::as_select())
                .load(c)
                .await?;
            for lease in leases {
                diesel::delete(
                    concurrency_leases::table.filter(concurrency_leases::id.eq(&lease.id)),
                )
                .execute(c)
                .await?;
                let ids: Vec<String> = serde_json::from_str(&lease.limit_ids).unwrap_or_default();
                give_back(c, &ids, lease.slots, None).await?;
            }
            diesel::update(concurrency_limits::table.filter(concurrency_limits::id.eq(limit_id)))
                .set((
                    concurrency_limits::active_slots.eq(holders.len() as i32),
                    concurrency_limits::updated.eq(now),
                ))
                .execute(c)
                .await?;
            let ids = serde_json::to_string(&[limit_id]).unwrap_or_else(|_| "[]".into());
            for holder in holders {
                let row = LeaseRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    workspace_id: ws.to_string(),
                    created: now,
                    expiration,
                    limit_ids: ids.clone(),
                    slots: 1,
                    holder: Some(holder.clone()),
                };
                diesel::insert_into(concurrency_leases::table)
                    .values(&row)
                    .execute(c)
                    .await?;
            }
            Ok(true)
        })
        .await
    })?;
    Ok(found)
}

/// Deletes limit `limit_id` and ends its leases (their slots on other limits go back).
/// False when there is no such limit.
pub async fn delete_with_leases(db: &Database, ws: &str, limit_id: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let found = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let leases: Vec<LeaseRow> = concurrency_leases::table
                .filter(concurrency_leases::workspace_id.eq(ws))
                .filter(concurrency_leases::limit_ids.like(lease_pattern(limit_id)))
                .select(LeaseRow::as_select())
                .load(c)
                .await?;
            for lease in leases {
                diesel::delete(
                    concurrency_leases::table.filter(concurrency_leases::id.eq(&lease.id)),
                )
                .execute(c)
                .await?;
                let ids: Vec<String> = serde_json::from_str::<Vec<String>>(&lease.limit_ids)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|i| i != limit_id)
                    .collect();
                give_back(c, &ids, lease.slots, None).await?;
            }
            let n = diesel::delete(
                concurrency_limits::table
                    .filter(concurrency_limits::workspace_id.eq(ws))
                    .filter(concurrency_limits::id.eq(limit_id)),
            )
            .execute(c)
            .await?;
            Ok(n == 1)
        })
        .await
    })?;
    Ok(found)
}
