//! The event outbox: events produced by API transactions are inserted here in the same
//! transaction, and the relay moves them to the streams role. Rows are claimed in order and
//! deleted once published.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::event_outbox;
use super::{Backend, Database, StorageResult};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = event_outbox)]
pub struct NewOutboxRow {
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub event_id: String,
    pub event: String,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
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
    let mut conn = db.session().await?;
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
    let mut conn = db.read().await?;
    // Two arms: only PostgreSQL can lock rows with SKIP LOCKED.
    let n = match conn.backend() {
        Backend::Pg(pg) => {
            // Claim and delete in one statement; if publishing fails the transaction rolls
            // back and the rows are there for the next attempt.
            let result = pg
                .transaction::<_, diesel::result::Error, _>(async |c| {
                    // Raw SQL: diesel cannot put a locking subquery in a DELETE's filter.
                    let mut rows: Vec<OutboxRow> = super::postgres::Statement::new(
                        "DELETE FROM event_outbox WHERE seq IN (SELECT seq FROM event_outbox \
                         ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED) \
                         RETURNING seq, workspace_id, event_id, event",
                    )
                    .bind::<diesel::sql_types::BigInt, _>(limit)
                    .load(c)
                    .await?;
                    rows.sort_by_key(|r| r.seq);
                    let claimed = rows.len();
                    if publish(rows).await.len() < claimed {
                        return Err(diesel::result::Error::RollbackTransaction);
                    }
                    Ok(claimed)
                })
                .await;
            let n = match result {
                Err(diesel::result::Error::RollbackTransaction) => 0,
                other => other?,
            };
            vacuum_when_due(db, n);
            n
        }
        // One process relays an embedded database: read, publish, then delete what was
        // published on the writer.
        Backend::Sqlite(c) => {
            let rows: Vec<OutboxRow> = event_outbox::table
                .order(event_outbox::seq.asc())
                .limit(limit)
                .select(OutboxRow::as_select())
                .load(c)
                .await?;
            drop(conn);
            let done = publish(rows).await;
            let n = done.len();
            if !done.is_empty() {
                db.write(async move |c| {
                    crate::db_run!(c, |c| {
                        diesel::delete(event_outbox::table.filter(event_outbox::seq.eq_any(done)))
                            .execute(c)
                            .await
                    })?;
                    Ok(())
                })
                .await?;
            }
            n
        }
    };
    Ok(n)
}

/// Rows deleted by this process's relay since its last `VACUUM` of the outbox.
static DELETED_SINCE_VACUUM: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);
/// Vacuum the outbox after this many deletions.
const VACUUM_EVERY: usize = 2_000;

/// PostgreSQL: the outbox is a queue — every row is inserted, claimed from the head of its
/// index and deleted within milliseconds. Autovacuum visits it at most once a minute, so in
/// between each claim walks the dead index entries and heap tuples of every row relayed since;
/// at a few hundred events a second that doubled the database's CPU per state change (measured
/// with the lifecycle bench). Vacuuming the small table every few thousand deletions keeps the
/// head clean. It runs on its own connection in the background, so relaying never waits for
/// it; a failure only costs speed, so it is logged, not returned. `TRUNCATE false`: the table's
/// tail is emptied every few milliseconds, so a plain VACUUM kept trying to cut it off, which takes
/// an ACCESS EXCLUSIVE lock that every transition's outbox INSERT then waited on — 707 ms per
/// VACUUM in pg_stat_statements during the lifecycle bench; 2.3 ms without the truncation.
fn vacuum_when_due(db: &Database, deleted: usize) {
    use std::sync::atomic::Ordering;
    let total = DELETED_SINCE_VACUUM.fetch_add(deleted, Ordering::Relaxed) + deleted;
    if total < VACUUM_EVERY {
        return;
    }
    DELETED_SINCE_VACUUM.store(0, Ordering::Relaxed);
    let db = db.clone();
    tokio::spawn(async move {
        use diesel_async::SimpleAsyncConnection;
        let result = match db.read().await {
            Ok(mut conn) => match conn.backend() {
                Backend::Pg(pg) => pg
                    .batch_execute("VACUUM (SKIP_LOCKED, TRUNCATE false) event_outbox")
                    .await
                    .map_err(|e| e.to_string()),
                Backend::Sqlite(_) => Ok(()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "outbox: vacuum failed");
        }
    });
}
