//! The event outbox: every event the server accepts is written here first — in the API
//! transaction that produced it, or by the ingest of `/events/in` and `POST /events` — and
//! stays until every consumer that must see it has it durably. The relay claims unpublished rows
//! in order and puts them on the stream (marking them `published`); each consumer, once it has
//! done its work, [`settle`]s its bit of `pending`; a row with no bit left is deleted. So a
//! stream that loses entries (Redis flushed or restarted without persistence, the embedded
//! server's in-memory stream after a crash) loses nothing: the relay puts the rows still pending
//! back on the stream ([`unpublish_all`], [`unpublish_older`]) and the consumers, idempotent on
//! event id, see them again.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::event_outbox;
use super::{Backend, Conn, StorageResult};
use crate::ids::WorkspaceId;

/// The consumers that must see an event, one bit each in `pending`. The migration's default is
/// [`TO_PERSISTER`] (every event goes to the events database); a consumer added later adds its
/// bit here, to the rows that need it, and to that default.
pub const TO_PERSISTER: i32 = 1;
/// The task-run recorder: only the client's `prefect.task-run.*` events carry its bit.
pub const TO_RECORDER: i32 = 2;
/// The automation triggers' evaluator: every event (any of them may match a trigger).
pub const TO_TRIGGERS: i32 = 4;
/// What every event waits for.
pub const TO_EVERY: i32 = TO_PERSISTER | TO_TRIGGERS;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = event_outbox)]
pub struct NewOutboxRow {
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub event_id: String,
    pub event: String,
    /// The consumers that must confirm it: `TO_PERSISTER`, plus `TO_RECORDER` where it applies.
    pub pending: i32,
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
    if rows.is_empty() {
        return Ok(());
    }
    // Two arms: PostgreSQL takes a batch in multi-row statements (a round trip per row was
    // what an ingest of 500 events spent its time on); diesel's SQLite has no multi-row insert,
    // and there a row is a call into the library, not a round trip.
    match c.backend() {
        Backend::Pg(c) => {
            for chunk in rows.chunks(1_000) {
                diesel::insert_into(event_outbox::table)
                    .values(chunk)
                    .execute(c)
                    .await?;
            }
        }
        Backend::Sqlite(c) => {
            for row in rows {
                diesel::insert_into(event_outbox::table)
                    .values(row)
                    .execute(c)
                    .await?;
            }
        }
    }
    Ok(())
}

/// What one relay pass did.
#[derive(Debug)]
pub enum Relayed {
    /// PostgreSQL: this many rows were claimed, published and marked, in one transaction.
    Marked(usize),
    /// SQLite: the rows with these `seq`s were published; the caller marks them with
    /// [`mark_published`] on the writer (a reader connection cannot write).
    Published(Vec<i64>),
}

/// Claims up to `limit` unpublished rows in order and hands them to `publish`, which answers
/// the `seq`s it got out. On PostgreSQL the rows are locked with SKIP LOCKED so replicas relay
/// disjoint rows, and marked published in the claiming transaction, which rolls back (leaving
/// every claimed row unpublished) unless `publish` confirms them all; on SQLite one process
/// relays an embedded database, so the rows are only read here. Run it on a connection from
/// [`Database::read`](super::Database::read).
pub async fn relay<F, Fut>(
    c: &mut Conn,
    limit: i64,
    max_bytes: i64,
    now: NaiveDateTime,
    publish: F,
) -> StorageResult<Relayed>
where
    F: FnOnce(Vec<OutboxRow>) -> Fut + Send,
    Fut: std::future::Future<Output = Vec<i64>> + Send,
{
    use diesel_async::AsyncConnection;
    // Two arms: only PostgreSQL can lock rows with SKIP LOCKED.
    match c.backend() {
        Backend::Pg(pg) => {
            let result = pg
                .transaction::<_, diesel::result::Error, _>(async |c| {
                    // Raw SQL: diesel cannot put a locking subquery in an UPDATE's filter.
                    // The running size of the locked rows (octet_length reads a stored value's
                    // size without decompressing it) cuts the batch at `max_bytes`.
                    let mut rows: Vec<OutboxRow> = super::postgres::Statement::new(
                        "UPDATE event_outbox SET published = ? WHERE seq IN (SELECT seq FROM \
                         (SELECT seq, sum(octet_length(event)) OVER (ORDER BY seq) \
                         - octet_length(event) AS before FROM (SELECT seq, event FROM \
                         event_outbox WHERE published IS NULL ORDER BY seq LIMIT ? \
                         FOR UPDATE SKIP LOCKED) AS claimable) AS sized WHERE before < ?) \
                         RETURNING seq, workspace_id, event_id, event",
                    )
                    .bind::<diesel::sql_types::Timestamp, _>(now)
                    .bind::<diesel::sql_types::BigInt, _>(limit)
                    .bind::<diesel::sql_types::BigInt, _>(max_bytes)
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
            Ok(Relayed::Marked(n))
        }
        Backend::Sqlite(c) => {
            // Sizes first, then only the rows that fit: a backlog of large events is not
            // read whole into memory. `octet_length` (SQLite 3.43+, bundled) takes a text's size
            // from the record header without loading the text.
            let sizes: Vec<(i64, i64)> = event_outbox::table
                .filter(event_outbox::published.is_null())
                .order(event_outbox::seq.asc())
                .limit(limit)
                .select((
                    event_outbox::seq,
                    diesel::dsl::sql::<diesel::sql_types::BigInt>("octet_length(event)"),
                ))
                .load(c)
                .await?;
            let Some(last) = last_that_fits(&sizes, max_bytes) else {
                return Ok(Relayed::Published(publish(Vec::new()).await));
            };
            let rows: Vec<OutboxRow> = event_outbox::table
                .filter(event_outbox::published.is_null())
                .filter(event_outbox::seq.le(last))
                .order(event_outbox::seq.asc())
                .limit(limit)
                .select(OutboxRow::as_select())
                .load(c)
                .await?;
            Ok(Relayed::Published(publish(rows).await))
        }
    }
}

/// The `seq` of the last row, in order, that starts before `max_bytes` of the rows before it (so
/// the first row always fits, however large).
fn last_that_fits(sizes: &[(i64, i64)], max_bytes: i64) -> Option<i64> {
    let mut before = 0i64;
    let mut last = None;
    for (seq, size) in sizes {
        if before >= max_bytes {
            break;
        }
        last = Some(*seq);
        before = before.saturating_add(*size);
    }
    last
}

/// Marks the rows with these `seq`s published at `now` (SQLite's relay, on the writer).
pub async fn mark_published(c: &mut Conn, seqs: &[i64], now: NaiveDateTime) -> StorageResult<()> {
    if seqs.is_empty() {
        return Ok(());
    }
    crate::db_run!(c, |c| {
        diesel::update(event_outbox::table.filter(event_outbox::seq.eq_any(seqs)))
            .set(event_outbox::published.eq(now))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// `consumer` (one of the `TO_*` bits) has done its work for the rows with these `seq`s: rows
/// it was the last to wait for are deleted, and its bit is cleared on the others. Returns how
/// many were deleted. Idempotent: settling a row twice, or one already gone, changes nothing.
/// Most rows wait for one consumer only (the server's own events, for the persister), so the
/// first statement usually settles the whole batch and the other two are skipped.
pub async fn settle(c: &mut Conn, consumer: i32, seqs: &[i64]) -> StorageResult<usize> {
    if seqs.is_empty() {
        return Ok(0);
    }
    // The bit is one of the constants above, never a request's value.
    let has_bit = format!("(pending & {consumer}) <> 0");
    let deleted = crate::db_run!(c, |c| {
        let mut deleted = diesel::delete(
            event_outbox::table
                .filter(event_outbox::seq.eq_any(seqs))
                .filter(event_outbox::pending.eq(consumer)),
        )
        .execute(c)
        .await?;
        if deleted < seqs.len() {
            let cleared = diesel::update(
                event_outbox::table
                    .filter(event_outbox::seq.eq_any(seqs))
                    .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&has_bit)),
            )
            .set(event_outbox::pending.eq(event_outbox::pending - consumer))
            .execute(c)
            .await?;
            // Another consumer may have cleared its bit between the two statements: a row
            // left with none is deleted here.
            if cleared > 0 {
                deleted += diesel::delete(
                    event_outbox::table
                        .filter(event_outbox::seq.eq_any(seqs))
                        .filter(event_outbox::pending.eq(0)),
                )
                .execute(c)
                .await?;
            }
        }
        Ok::<_, diesel::result::Error>(deleted)
    })?;
    Ok(deleted)
}

/// Deletes the rows with these `seq`s whatever consumers wait for them (rows that cannot be
/// read, so no consumer could ever confirm them).
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

/// Every published row that is still pending goes back to unpublished, so the relay puts it on
/// the stream again: for a stream that lost its entries (a new broker epoch). Returns how many.
pub async fn unpublish_all(c: &mut Conn) -> StorageResult<usize> {
    let n = crate::db_run!(c, |c| {
        diesel::update(event_outbox::table.filter(event_outbox::published.is_not_null()))
            .set(event_outbox::published.eq(None::<NaiveDateTime>))
            .execute(c)
            .await
    })?;
    Ok(n)
}

/// Rows published before `before` and still pending go back to unpublished: entries the stream
/// lost without a new epoch (trimmed before they were read, a failover to a replica that had
/// not got them). Returns how many.
pub async fn unpublish_older(c: &mut Conn, before: NaiveDateTime) -> StorageResult<usize> {
    let n = crate::db_run!(c, |c| {
        diesel::update(event_outbox::table.filter(event_outbox::published.lt(before)))
            .set(event_outbox::published.eq(None::<NaiveDateTime>))
            .execute(c)
            .await
    })?;
    Ok(n)
}

/// How many rows wait: (not yet published, published and not yet confirmed by every consumer).
pub async fn backlog(c: &mut Conn) -> StorageResult<(i64, i64)> {
    let (unpublished, total) = crate::db_run!(c, |c| {
        let unpublished = event_outbox::table
            .filter(event_outbox::published.is_null())
            .count()
            .get_result::<i64>(c)
            .await?;
        let total = event_outbox::table.count().get_result::<i64>(c).await?;
        Ok::<_, diesel::result::Error>((unpublished, total))
    })?;
    Ok((unpublished, total - unpublished))
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_batch_stops_at_its_size_but_always_takes_one_row() {
        let rows = [(1, 600), (2, 600), (3, 10), (4, 10)];
        assert_eq!(
            super::last_that_fits(&rows, 1000),
            Some(2),
            "starts under the budget"
        );
        assert_eq!(
            super::last_that_fits(&rows, 100),
            Some(1),
            "one, however large"
        );
        assert_eq!(super::last_that_fits(&rows, 1 << 20), Some(4));
        assert_eq!(super::last_that_fits(&[], 1000), None);
    }
}
