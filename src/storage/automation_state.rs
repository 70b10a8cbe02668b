//! The state of trigger evaluation — buckets (a trigger's open window per `for_each` key) and
//! the child firings a composite trigger is waiting on — and the actions firings started, from
//! the moment a firing writes them to the moment the executor records how they ended.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::automation_child_firings as children;
use super::schema::automation_evaluated_events as evaluated;
use super::schema::{automation_actions as actions, automation_buckets as buckets};
use super::{Backend, Conn, StorageResult};
use crate::db_run;
use crate::ids::WorkspaceId;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = buckets)]
pub struct BucketRow {
    pub workspace_id: WorkspaceId,
    pub automation_id: String,
    pub trigger_id: String,
    /// JSON array of the `for_each` values.
    pub bucketing_key: String,
    pub window_start: NaiveDateTime,
    pub window_end: NaiveDateTime,
    pub count: i64,
    /// JSON of the last event counted (or that opened the window).
    pub last_event: Option<String>,
    pub updated: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = children)]
pub struct ChildFiringRow {
    pub automation_id: String,
    pub parent_trigger_id: String,
    pub child_trigger_id: String,
    pub child_firing_id: String,
    pub child_fired_at: NaiveDateTime,
    /// JSON of the firing.
    pub child_firing: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = actions)]
pub struct ActionRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub automation_id: String,
    pub created: NaiveDateTime,
    pub action_index: i32,
    /// JSON of the triggered action (the action, its automation and its firing's context).
    pub triggered_action: String,
    pub state: String,
    pub attempts: i32,
    pub not_before: NaiveDateTime,
    pub finished: Option<NaiveDateTime>,
    pub reason: Option<String>,
}

pub const PENDING: &str = "pending";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// Serialises evaluations of the same keys (a trigger, a composite trigger) until the caller's
/// transaction ends. Two arms: PostgreSQL takes transaction-scoped advisory locks, in sorted
/// order so two replicas can't deadlock; SQLite's single writer already serialises them.
pub async fn lock(c: &mut Conn, keys: &[String]) -> StorageResult<()> {
    if let Backend::Pg(pg) = c.backend() {
        let mut keys: Vec<&String> = keys.iter().collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            super::postgres::Statement::new("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))")
                .bind::<diesel::sql_types::Text, _>(k.as_str())
                .execute(pg)
                .await?;
        }
    }
    Ok(())
}

/// Records these events as evaluated and answers those no earlier evaluation recorded, in the
/// caller's transaction: an event delivered again, or read by two replicas at once, is
/// evaluated once (the second waits on the first's row, then finds it). Two arms: PostgreSQL
/// inserts the batch in one statement; SQLite's inserts are calls into the library.
pub async fn first_evaluation(
    c: &mut Conn,
    ids: &[String],
    now: NaiveDateTime,
) -> StorageResult<Vec<String>> {
    let mut ids: Vec<&String> = ids.iter().collect();
    // One order for every transaction, so two never wait on each other's rows.
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    match c.backend() {
        Backend::Pg(pg) => {
            #[derive(QueryableByName)]
            struct New {
                #[diesel(sql_type = diesel::sql_types::Text)]
                event_id: String,
            }
            let owned: Vec<String> = ids.into_iter().cloned().collect();
            let rows: Vec<New> = super::postgres::Statement::new(
                "INSERT INTO automation_evaluated_events (event_id, evaluated) \
                 SELECT unnest(?::text[]), ? ON CONFLICT DO NOTHING RETURNING event_id",
            )
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(owned)
            .bind::<diesel::sql_types::Timestamp, _>(now)
            .load(pg)
            .await?;
            Ok(rows.into_iter().map(|r| r.event_id).collect())
        }
        Backend::Sqlite(sq) => {
            let mut new = Vec::new();
            for id in ids {
                let n = diesel::insert_into(evaluated::table)
                    .values((evaluated::event_id.eq(id), evaluated::evaluated.eq(now)))
                    .on_conflict_do_nothing()
                    .execute(sq)
                    .await?;
                if n == 1 {
                    new.push(id.clone());
                }
            }
            Ok(new)
        }
    }
}

/// Forgets the evaluations recorded before `before` (no delivery comes that late).
pub async fn prune_evaluated(c: &mut Conn, before: NaiveDateTime) -> StorageResult<usize> {
    Ok(db_run!(c, |c| diesel::delete(
        evaluated::table.filter(evaluated::evaluated.lt(before))
    )
    .execute(c)
    .await)?)
}

/// A trigger's buckets: every key, or the one given.
pub async fn buckets_of(
    c: &mut Conn,
    automation_id: &str,
    trigger_id: &str,
    key: Option<&str>,
) -> StorageResult<Vec<BucketRow>> {
    Ok(db_run!(c, |c| {
        let mut q = buckets::table
            .filter(buckets::automation_id.eq(automation_id))
            .filter(buckets::trigger_id.eq(trigger_id))
            .select(BucketRow::as_select())
            .into_boxed();
        if let Some(k) = key {
            q = q.filter(buckets::bucketing_key.eq(k));
        }
        q.load(c).await
    })?)
}

/// Writes a bucket, replacing the key's old one.
pub async fn put_bucket(c: &mut Conn, row: &BucketRow) -> StorageResult<()> {
    db_run!(c, |c| diesel::insert_into(buckets::table)
        .values(row)
        .on_conflict((
            buckets::automation_id,
            buckets::trigger_id,
            buckets::bucketing_key
        ))
        .do_update()
        .set(row)
        .execute(c)
        .await)?;
    Ok(())
}

pub async fn delete_bucket(
    c: &mut Conn,
    automation_id: &str,
    trigger_id: &str,
    key: &str,
) -> StorageResult<()> {
    db_run!(c, |c| diesel::delete(
        buckets::table
            .filter(buckets::automation_id.eq(automation_id))
            .filter(buckets::trigger_id.eq(trigger_id))
            .filter(buckets::bucketing_key.eq(key))
    )
    .execute(c)
    .await)?;
    Ok(())
}

/// Deletes buckets whose window closed before `before` (nothing can count in them any more).
pub async fn sweep_buckets(c: &mut Conn, before: NaiveDateTime) -> StorageResult<usize> {
    Ok(db_run!(c, |c| diesel::delete(
        buckets::table.filter(buckets::window_end.lt(before))
    )
    .execute(c)
    .await)?)
}

/// A composite trigger's child firings, after dropping those fired before `since` (when the
/// composite has a `within`).
pub async fn child_firings(
    c: &mut Conn,
    automation_id: &str,
    parent: &str,
    since: Option<NaiveDateTime>,
) -> StorageResult<Vec<ChildFiringRow>> {
    if let Some(since) = since {
        db_run!(c, |c| diesel::delete(
            children::table
                .filter(children::automation_id.eq(automation_id))
                .filter(children::parent_trigger_id.eq(parent))
                .filter(children::child_fired_at.lt(since))
        )
        .execute(c)
        .await)?;
    }
    Ok(db_run!(c, |c| children::table
        .filter(children::automation_id.eq(automation_id))
        .filter(children::parent_trigger_id.eq(parent))
        .select(ChildFiringRow::as_select())
        .load(c)
        .await)?)
}

/// Records a child's firing, replacing that child's previous one.
pub async fn put_child_firing(c: &mut Conn, row: &ChildFiringRow) -> StorageResult<()> {
    db_run!(c, |c| diesel::insert_into(children::table)
        .values(row)
        .on_conflict((
            children::automation_id,
            children::parent_trigger_id,
            children::child_trigger_id
        ))
        .do_update()
        .set(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// Deletes these child firings (the composite fired on them); answers how many were there.
pub async fn take_child_firings(
    c: &mut Conn,
    automation_id: &str,
    parent: &str,
    firing_ids: &[String],
) -> StorageResult<usize> {
    Ok(db_run!(c, |c| diesel::delete(
        children::table
            .filter(children::automation_id.eq(automation_id))
            .filter(children::parent_trigger_id.eq(parent))
            .filter(children::child_firing_id.eq_any(firing_ids))
    )
    .execute(c)
    .await)?)
}

pub async fn insert_actions(c: &mut Conn, rows: &[ActionRow]) -> StorageResult<()> {
    for row in rows {
        db_run!(c, |c| diesel::insert_into(actions::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)
            .await)?;
    }
    Ok(())
}

/// Claims up to `limit` actions that are due (pending, or running past their claim: the
/// process running them died), marking them running until `until`. Two arms: PostgreSQL skips
/// rows another replica is claiming; SQLite's single writer makes the read and the update one
/// step. Run it in a transaction.
pub async fn claim_due(
    c: &mut Conn,
    now: NaiveDateTime,
    until: NaiveDateTime,
    limit: i64,
) -> StorageResult<Vec<ActionRow>> {
    macro_rules! due {
        () => {
            actions::table
                .filter(actions::state.eq_any([PENDING, RUNNING]))
                .filter(actions::not_before.le(now))
                .order(actions::not_before.asc())
                .limit(limit)
                .select(ActionRow::as_select())
        };
    }
    let mut rows: Vec<ActionRow> = match c.backend() {
        Backend::Pg(c) => due!().for_update().skip_locked().load(c).await?,
        Backend::Sqlite(c) => due!().load(c).await?,
    };
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    db_run!(c, |c| diesel::update(
        actions::table.filter(actions::id.eq_any(&ids))
    )
    .set((
        actions::state.eq(RUNNING),
        actions::attempts.eq(actions::attempts + 1),
        actions::not_before.eq(until),
    ))
    .execute(c)
    .await)?;
    for r in &mut rows {
        r.state = RUNNING.into();
        r.attempts += 1;
        r.not_before = until;
    }
    Ok(rows)
}

/// Records how a claimed action ended (`DONE` or `FAILED`), or puts it back (`PENDING`, due
/// at `not_before`) for another attempt. Answers false when the row is no longer this claim's
/// (another process took it over after the claim ran out).
pub async fn finish(
    c: &mut Conn,
    id: &str,
    attempts: i32,
    state: &str,
    reason: Option<&str>,
    now: NaiveDateTime,
    not_before: NaiveDateTime,
) -> StorageResult<bool> {
    let finished = (state != PENDING).then_some(now);
    let n = db_run!(c, |c| diesel::update(
        actions::table
            .filter(actions::id.eq(id))
            .filter(actions::state.eq(RUNNING))
            .filter(actions::attempts.eq(attempts))
    )
    .set((
        actions::state.eq(state),
        actions::finished.eq(finished),
        actions::reason.eq(reason),
        actions::not_before.eq(not_before),
    ))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// One action by id.
pub async fn action(c: &mut Conn, id: &str) -> StorageResult<Option<ActionRow>> {
    Ok(db_run!(c, |c| actions::table
        .filter(actions::id.eq(id))
        .select(ActionRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Deletes the records of actions that ended before `before`.
pub async fn delete_finished_before(c: &mut Conn, before: NaiveDateTime) -> StorageResult<usize> {
    Ok(db_run!(c, |c| diesel::delete(
        actions::table
            .filter(actions::finished.is_not_null())
            .filter(actions::finished.lt(before))
    )
    .execute(c)
    .await)?)
}
