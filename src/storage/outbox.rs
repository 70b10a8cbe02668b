//! The event outbox: events produced by API transactions are inserted here in the same
//! transaction, and the relay moves them to the streams role. Rows are claimed in order and
//! deleted once published.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::event_outbox;
use super::{Conn, Database, StorageResult};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = event_outbox)]
pub struct NewOutboxRow {
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub event_id: String,
    pub event: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = event_outbox)]
pub struct OutboxRow {
    pub seq: i64,
    pub workspace_id: String,
    pub event_id: String,
    pub event: String,
}

/// Appends events to the outbox (outside of a larger transaction).
pub async fn append(db: &Database, rows: &[NewOutboxRow]) -> StorageResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut conn = db.write().await?;
    crate::db_run!(conn, |c| {
        for row in rows {
            diesel::insert_into(event_outbox::table)
                .values(row)
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// Claims up to `limit` rows in order, hands them to `publish`, and deletes those it confirms.
/// On PostgreSQL the rows are locked with SKIP LOCKED so replicas relay disjoint rows; on SQLite
/// the single writer connection already serialises relays.
pub async fn relay<F, Fut>(db: &Database, limit: i64, publish: F) -> StorageResult<usize>
where
    F: FnOnce(Vec<OutboxRow>) -> Fut + Send,
    Fut: std::future::Future<Output = Vec<i64>> + Send,
{
    use diesel_async::AsyncConnection;
    let conn = db.write().await?;
    // Two arms: only PostgreSQL can lock rows with SKIP LOCKED.
    let n = match conn {
        Conn::Pg(mut pg) => {
            pg.transaction::<_, diesel::result::Error, _>(async |c| {
                let rows: Vec<OutboxRow> = event_outbox::table
                    .order(event_outbox::seq.asc())
                    .limit(limit)
                    .for_update()
                    .skip_locked()
                    .select(OutboxRow::as_select())
                    .load(c)
                    .await?;
                let done = publish(rows).await;
                let n = done.len();
                if !done.is_empty() {
                    diesel::delete(event_outbox::table.filter(event_outbox::seq.eq_any(done)))
                        .execute(c)
                        .await?;
                }
                Ok(n)
            })
            .await?
        }
        Conn::Sqlite(mut sq) => {
            let c = &mut *sq;
            let rows: Vec<OutboxRow> = event_outbox::table
                .order(event_outbox::seq.asc())
                .limit(limit)
                .select(OutboxRow::as_select())
                .load(c)
                .await?;
            let done = publish(rows).await;
            let n = done.len();
            if !done.is_empty() {
                diesel::delete(event_outbox::table.filter(event_outbox::seq.eq_any(done)))
                    .execute(c)
                    .await?;
            }
            n
        }
    };
    Ok(n)
}
