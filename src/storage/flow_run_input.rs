//! Flow-run inputs (key/value text a paused flow run waits for), and the paused runs the
//! pause-expiration service looks at.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::escape_like;
use super::schema::{flow_run_states, flow_runs};
use super::{Conn, StorageError, StorageResult};
use crate::db_run;

pub(crate) use crate::storage::schema;

use crate::ids::{FlowRunId, WorkspaceId};
use schema::flow_run_inputs;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = flow_run_inputs)]
pub struct InputRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
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

/// Inserts the input, in a transaction of its own (a savepoint inside the caller's), so a
/// refused insert leaves the caller's transaction usable.
pub async fn insert(c: &mut Conn, row: &InputRow) -> StorageResult<Inserted> {
    use diesel::result::{DatabaseErrorKind, Error};
    // Inside the transaction a refusal is an error, so that it rolls back: `NotFound` when
    // there is no such run, `Conflict` when the key is taken.
    let out = c
        .transaction(async |c| {
            let runs: i64 = db_run!(c, |c| flow_runs::table
                .filter(flow_runs::workspace_id.eq(&row.workspace_id))
                .filter(flow_runs::id.eq(&row.flow_run_id))
                .count()
                .get_result(c)
                .await)?;
            if runs == 0 {
                return Err(StorageError::NotFound);
            }
            let inserted = db_run!(c, |c| diesel::insert_into(flow_run_inputs::table)
                .values(row)
                .execute(c)
                .await);
            match inserted {
                Ok(_) => Ok(()),
                Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
                    Err(StorageError::Conflict(info.message().to_string()))
                }
                Err(Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {
                    Err(StorageError::NotFound)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await;
    match out {
        Ok(()) => Ok(Inserted::Yes),
        Err(StorageError::NotFound) => Ok(Inserted::NoRun),
        Err(StorageError::Conflict(_)) => Ok(Inserted::Duplicate),
        Err(e) => Err(e),
    }
}

pub async fn find(
    c: &mut Conn,
    ws: &WorkspaceId,
    run: &str,
    key: &str,
) -> StorageResult<Option<InputRow>> {
    let row = db_run!(c, |c| flow_run_inputs::table
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
    c: &mut Conn,
    ws: &WorkspaceId,
    run: &str,
    prefix: &str,
    exclude: &[String],
    limit: i64,
) -> StorageResult<Vec<InputRow>> {
    let pattern = format!("{}%", escape_like(prefix));
    let rows = db_run!(c, |c| flow_run_inputs::table
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
pub async fn delete(c: &mut Conn, ws: &WorkspaceId, run: &str, key: &str) -> StorageResult<bool> {
    let n = db_run!(c, |c| diesel::delete(
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
pub type PausedRun = (WorkspaceId, FlowRunId, String);

/// PAUSED flow runs (any workspace) with ids after `after`, by id, with their state details.
pub async fn list_paused_runs(
    c: &mut Conn,
    after: &str,
    limit: i64,
) -> StorageResult<Vec<PausedRun>> {
    let rows = db_run!(c, |c| flow_runs::table
        .inner_join(
            flow_run_states::table.on(flow_run_states::id.nullable().eq(flow_runs::state_id))
        )
        // A literal, so both databases match the partial index `flow_runs_paused`.
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "flow_runs.state_type = 'PAUSED'"
        ))
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
