//! The events database: events as received, one row per event id, with their related
//! resources and the per-hour counts ([`counts`]). Writes are batched and idempotent (a replayed
//! event changes nothing); queries are in [`query`], retention in [`retention`].

pub mod counts;
pub mod query;
pub mod retention;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{event_resources, events};
use super::{Backend, Conn, StorageError, StorageResult};
use crate::db_run;
use crate::ids::WorkspaceId;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub occurred: NaiveDateTime,
    pub received: NaiveDateTime,
    pub event: String,
    pub resource_id: String,
    pub resource: String,
    pub related: String,
    pub payload: String,
    pub follows: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = event_resources)]
pub struct EventResourceRow {
    pub event_id: String,
    pub workspace_id: WorkspaceId,
    pub occurred: NaiveDateTime,
    pub resource_id: String,
    pub resource_role: String,
    pub resource: String,
}

/// Inserts events and their resources, skipping ids already stored, all of the batch or none;
/// returns how many were new.
pub async fn insert(
    c: &mut Conn,
    batch: &[(EventRow, Vec<EventResourceRow>)],
) -> StorageResult<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    // PostgreSQL takes the batch as multi-row statements (in its own transaction); SQLite, one
    // event at a time on its single writer, in one transaction.
    if let Backend::Pg(pg) = c.backend() {
        return insert_batched(pg, batch).await;
    }
    c.transaction(async |c| sqlite_insert(c, batch).await).await
}

async fn sqlite_insert(
    c: &mut Conn,
    batch: &[(EventRow, Vec<EventResourceRow>)],
) -> StorageResult<usize> {
    let Backend::Sqlite(c) = c.backend() else {
        return Err(StorageError::Internal("sqlite_insert on PostgreSQL".into()));
    };
    let n = {
        async {
            let mut n = 0;
            let mut new = Vec::new();
            for (event, resources) in batch {
                let inserted = diesel::insert_into(events::table)
                    .values(event)
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await?;
                if inserted == 1 {
                    n += 1;
                    new.push(event);
                    for r in resources {
                        diesel::insert_into(event_resources::table)
                            .values(r)
                            .on_conflict_do_nothing()
                            .execute(c)
                            .await?;
                    }
                }
            }
            for row in counts::tally(new) {
                diesel::insert_into(counts::table())
                    .values(&row)
                    .on_conflict(counts::key())
                    .do_update()
                    .set(counts::merge(false))
                    .execute(c)
                    .await?;
            }
            Ok::<_, diesel::result::Error>(n)
        }
        .await?
    };
    Ok(n)
}

/// PostgreSQL: the whole batch in two multi-row statements (events, then the resources of the
/// events that were new), instead of one statement per row.
async fn insert_batched(
    c: &mut diesel_async::AsyncPgConnection,
    batch: &[(EventRow, Vec<EventResourceRow>)],
) -> StorageResult<usize> {
    use diesel_async::AsyncConnection;
    // Bind parameters per statement are capped at 65,535; 10 columns per event row.
    const CHUNK: usize = 2000;
    let n = c
        .transaction::<_, diesel::result::Error, _>(async |c| {
            let mut new_ids = std::collections::HashSet::new();
            for chunk in batch.chunks(CHUNK) {
                let rows: Vec<&EventRow> = chunk.iter().map(|(e, _)| e).collect();
                let ids: Vec<String> = diesel::insert_into(events::table)
                    .values(rows)
                    .on_conflict_do_nothing()
                    .returning(events::id)
                    .get_results(c)
                    .await?;
                new_ids.extend(ids);
            }
            let resources: Vec<&EventResourceRow> = batch
                .iter()
                .filter(|(e, _)| new_ids.contains(&e.id))
                .flat_map(|(_, r)| r)
                .collect();
            for chunk in resources.chunks(CHUNK) {
                diesel::insert_into(event_resources::table)
                    .values(chunk.to_vec())
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await?;
            }
            // In key order, so two persisters adding to the same hours wait rather than deadlock.
            let tallies = counts::tally(
                batch
                    .iter()
                    .map(|(e, _)| e)
                    .filter(|e| new_ids.contains(&e.id)),
            );
            for chunk in tallies.chunks(CHUNK) {
                diesel::insert_into(counts::table())
                    .values(chunk)
                    .on_conflict(counts::key())
                    .do_update()
                    .set(counts::merge(true))
                    .execute(c)
                    .await?;
            }
            Ok(new_ids.len())
        })
        .await?;
    Ok(n)
}

/// Events of a workspace, newest first (used by tests and, later, the events API).
pub async fn list_recent(
    c: &mut Conn,
    ws: &WorkspaceId,
    limit: i64,
) -> StorageResult<Vec<EventRow>> {
    let rows = db_run!(c, |c| {
        events::table
            .filter(events::workspace_id.eq(ws))
            .order((events::occurred.desc(), events::id.desc()))
            .limit(limit)
            .select(EventRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn count(c: &mut Conn, ws: &WorkspaceId) -> StorageResult<i64> {
    let n = db_run!(c, |c| events::table
        .filter(events::workspace_id.eq(ws))
        .count()
        .get_result::<i64>(c)
        .await)?;
    Ok(n)
}

/// Events of a workspace that occurred at or after `since`, oldest first.
pub async fn list_since(
    c: &mut Conn,
    ws: &WorkspaceId,
    since: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<EventRow>> {
    let rows = db_run!(c, |c| {
        events::table
            .filter(events::workspace_id.eq(ws))
            .filter(events::occurred.ge(since))
            .order((events::occurred.asc(), events::id.asc()))
            .limit(limit)
            .select(EventRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}
