//! The event outbox: events produced by API transactions are inserted here in the same
//! transaction, and the relay moves them to the streams role. Rows are claimed in order and
//! deleted once published.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::event_outbox;
use super::{Backend, Conn, StorageResult};
use crate::ids::WorkspaceId;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = event_outbox)]
pub struct NewOutboxRow {
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub event_id: String,
    pub event: String,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = event_outbox)]
pub struct OutboxRow {
    pub seq: i64,
    pub workspace_id: WorkspaceId,
    pub event_id: String,
    pub event: String,
}

/// Appends events to the outbox, in the caller's transaction when it has one (transitions write
/// theirs with the run's state; PostgreSQL's one-statement path has its own).
pub async fn insert(c: &mut Conn, rows: &[NewOutboxRow]) -> StorageResult<()> {
    crate::db_run!(c, |c| {
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

/// What one relay pass did.
#[derive(Debug)]
pub enum Relayed {
    /// PostgreSQL: this many rows were claimed, published and deleted, in one transaction.
    Deleted(usize),
    /// SQLite: the rows with these `seq`s were published; the caller deletes them with
    /// [`delete`] on the writer (a reader connection cannot write).
    Published(Vec<i64>),
}

/// Claims up to `limit` rows in order and hands them to `publish`, which answers the `seq`s it
/// got out. On PostgreSQL the rows are locked with SKIP LOCKED so replicas relay disjoint rows,
/// and deleted in the claiming transaction, which rolls back (leaving every claimed row) unless
/// `publish` confirms them all; on SQLite one process relays an embedded database, so the rows
/// are only read here. Run it on a connection from [`Database::read`](super::Database::read).
pub async fn relay<F, Fut>(c: &mut Conn, limit: i64, publish: F) -> StorageResult<Relayed>
where
    F: FnOnce(Vec<OutboxRow>) -> Fut + Send,
    Fut: std::future::Future<Output = Vec<i64>> + Send,
{
    use diesel_async::AsyncConnection;
    // Two arms: only PostgreSQL can lock rows with SKIP LOCKED.
    match c.backend() {
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
            Ok(Relayed::Deleted(n))
        }
        Backend::Sqlite(c) => {
            let rows: Vec<OutboxRow> = event_outbox::table
                .order(event_outbox::seq.asc())
                .limit(limit)
                .select(OutboxRow::as_select())
                .load(c)
                .await?;
            Ok(Relayed::Published(publish(rows).await))
        }
    }
}

/// Deletes the rows with these `seq`s (relayed ones).
pub async fn delete(c: &mut Conn, seqs: &[i64]) -> StorageResult<()> {
    if seqs.is_empty() {
        return Ok(());
    }
    crate::db_run!(c, |c| {
        diesel::delete(event_outbox::table.filter(event_outbox::seq.eq_any(seqs)))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// PostgreSQL: `VACUUM`s the outbox without truncating it (see the relay for why); nothing on
/// SQLite. Run it on a connection of its own, outside a transaction.
pub async fn vacuum(c: &mut Conn) -> StorageResult<()> {
    use diesel_async::SimpleAsyncConnection;
    // Two arms: the statement exists only on PostgreSQL.
    match c.backend() {
        Backend::Pg(pg) => {
            pg.batch_execute("VACUUM (SKIP_LOCKED, TRUNCATE false) event_outbox")
                .await?
        }
        Backend::Sqlite(_) => {}
    }
    Ok(())
}
