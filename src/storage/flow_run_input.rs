//! Flow-run inputs (key/value text a paused flow run waits for), and the paused runs the
//! pause-expiration service looks at.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::escape_like;
use super::schema::{flow_run_states, flow_runs};
use super::{Database, StorageResult};
use crate::db_run;

pub mod schema {
    diesel::table! {
        flow_run_inputs (id) {
            id -> Text,
            workspace_id -> Text,
            created -> Timestamp,
            updated -> Timestamp,
            flow_run_id -> Text,
            key -> Text,
            value -> Text,
            sender -> Nullable<Text>,
        }
    }
}

use schema::flow_run_inputs;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = flow_run_inputs)]
pub struct InputRow {
    pub id: String,
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub flow_run_id: String,
    pub key: String,
    pub value: String,
    pub sender: Option<String>,
}

/// How an insert went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Yes,
    /// The run already has an input with this key.
    Duplicate,
    /// No such flow run in the workspace.
    NoRun,
}

const NO_RUN: &str = "orrery: no such flow run";

pub async fn insert(db: &Database, row: &InputRow) -> StorageResult<Inserted> {
    use diesel::result::{DatabaseErrorKind, Error};
    let mut conn = db.session().await?;
    let out = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, Error, _>(async |c| {
            let runs: i64 = flow_runs::table
                .filter(flow_runs::workspace_id.eq(&row.workspace_id))
                .filter(flow_runs::id.eq(&row.flow_run_id))
                .count()
                .get_result(c)
                .await?;
            if runs == 0 {
                return Err(Error::QueryBuilderError(NO_RUN.into()));
            }
            diesel::insert_into(flow_run_inputs::table)
                .values(row)
                .execute(c)
                .await?;
            Ok(())
        })
        .await
    });
    match out {
        Ok(()) => Ok(Inserted::Yes),
        Err(Error::QueryBuilderError(m)) if m.to_string() == NO_RUN => Ok(Inserted::NoRun),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(Inserted::Duplicate),
        Err(Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => Ok(Inserted::NoRun),
        Err(e) => Err(e.into()),
    }
}

pub async fn find(
    db: &Database,
    ws: &str,
    run: &str,
    key: &str,
) -> StorageResult<Option<InputRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| flow_run_inputs::table
        .filter(flow_run_inputs::workspace_id.eq(ws))
        .filter(flow_run_inputs::flow_run_id.eq(run))
        .filter(flow_run_inputs::key.eq(key))
        .select(InputRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// Inputs of a run whose key starts with `prefix`, except `exclude`, oldest first.
pub async fn list(
    db: &Database,
    ws: &str,
    run: &str,
    prefix: &str,
    exclude: &[String],
    limit: i64,
) -> StorageResult<Vec<InputRow>> {
    let pattern = format!("{}%", escape_like(prefix));
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| flow_run_inputs::table
        .filter(flow_run_inputs::workspace_id.eq(ws))
        .filter(flow_run_inputs::flow_run_id.eq(run))
        .filter(flow_run_inputs::key.like(pattern).escape('\\'))
        .filter(flow_run_inputs::key.ne_all(exclude))
        .order((flow_run_inputs::created.asc(), flow_run_inputs::id.asc()))
        .limit(limit)
        .select(InputRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// Deletes an input; false when there is none.
pub async fn delete(db: &Database, ws: &str, run: &str, key: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| diesel::delete(
        flow_run_inputs::table
            .filter(flow_run_inputs::workspace_id.eq(ws))
            .filter(flow_run_inputs::flow_run_id.eq(run))
            .filter(flow_run_inputs::key.eq(key)),
    )
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// A paused run: (workspace id, run id, the current state's details as JSON text).
pub type PausedRun = (String, String, String);

/// PAUSED flow runs (any workspace) with ids after `after`, by id, with their state details.
pub async fn paused_runs(db: &Database, after: &str, limit: i64) -> StorageResult<Vec<PausedRun>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| flow_runs::table
        .inner_join(
            flow_run_states::table.on(flow_run_states::id.nullable().eq(flow_runs::state_id))
        )
        .filter(flow_runs::state_type.eq("PAUSED"))
        .filter(flow_runs::id.gt(after))
        .order(flow_runs::id.asc())
        .limit(limit)
        .select((
            flow_runs::workspace_id,
            flow_runs::id,
            flow_run_states::state_details,
        ))
        .load::<PausedRun>(c)
        .await)?;
    Ok(rows)
}
