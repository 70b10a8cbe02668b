//! Event retention: events older than the cutoff deleted a batch at a time, with their related
//! resources, and taken off `event_counts` in the same transaction, so totals stay exact while a
//! pass runs. On PostgreSQL a batch's rows are locked with `SKIP LOCKED`, so two replicas doing
//! it at once delete (and subtract) disjoint rows; SQLite has one writer.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::counts::{self, hour_of};
use crate::ids::WorkspaceId;
use crate::storage::schema::{event_counts, event_resources, events};
use crate::storage::{Backend, Conn, StorageResult};

/// The workspaces with counted events in an hour before `cutoff`.
pub async fn workspaces_with_events_before(
    c: &mut Conn,
    cutoff: NaiveDateTime,
) -> StorageResult<Vec<WorkspaceId>> {
    let rows = crate::db_run!(c, |c| {
        event_counts::table
            .filter(event_counts::hour.lt(hour_of(cutoff)))
            .select(event_counts::workspace_id)
            .distinct()
            .load::<WorkspaceId>(c)
            .await
    })?;
    Ok(rows)
}

/// Deletes up to `batch` events of `ws` that occurred before the hour of `cutoff`, with their
/// resources and counts, in one transaction; how many. When none are left, the hours' emptied
/// count rows go too.
pub async fn delete_batch(
    c: &mut Conn,
    ws: &WorkspaceId,
    cutoff: NaiveDateTime,
    batch: i64,
) -> StorageResult<usize> {
    let cutoff = hour_of(cutoff);
    let ws = ws.clone();
    c.transaction(async move |c| {
        let old = events::table
            .filter(events::workspace_id.eq(&ws))
            .filter(events::occurred.lt(cutoff))
            .order(events::occurred.asc())
            .limit(batch)
            .select(super::EventRow::as_select());
        // Two arms: PostgreSQL locks the batch so a concurrent pass skips it.
        let rows: Vec<super::EventRow> = match c.backend() {
            Backend::Pg(c) => old.for_update().skip_locked().load(c).await?,
            Backend::Sqlite(c) => {
                events::table
                    .filter(events::workspace_id.eq(&ws))
                    .filter(events::occurred.lt(cutoff))
                    .order(events::occurred.asc())
                    .limit(batch)
                    .select(super::EventRow::as_select())
                    .load(c)
                    .await?
            }
        };
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        crate::db_run!(c, |c| {
            diesel::delete(event_resources::table.filter(event_resources::event_id.eq_any(&ids)))
                .execute(c)
                .await?;
            diesel::delete(events::table.filter(events::id.eq_any(&ids)))
                .execute(c)
                .await
        })?;
        for t in counts::tally(rows.iter()) {
            crate::db_run!(c, |c| {
                diesel::update(
                    event_counts::table
                        .filter(event_counts::workspace_id.eq(&t.workspace_id))
                        .filter(event_counts::hour.eq(t.hour))
                        .filter(event_counts::event.eq(&t.event)),
                )
                .set(event_counts::count.eq(event_counts::count - t.count))
                .execute(c)
                .await
            })?;
        }
        if (rows.len() as i64) < batch {
            crate::db_run!(c, |c| {
                diesel::delete(
                    event_counts::table
                        .filter(event_counts::workspace_id.eq(&ws))
                        .filter(event_counts::hour.lt(cutoff))
                        .filter(event_counts::count.le(0)),
                )
                .execute(c)
                .await
            })?;
        }
        Ok(rows.len())
    })
    .await
}
