//! Deleting a deleted workspace's rows, a batch at a time, from the orion and events databases
//! (the workspace's nebula rows go with the request; see `identities::delete_workspace`).

use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use super::{Backend, Conn, StorageResult};

/// Orion tables with a `workspace_id`, children before their parents (the foreign keys cascade,
/// but a batch of parents would otherwise take an unbounded number of children with it).
pub const ORION_TABLES: &[&str] = &[
    "automation_related_resources",
    "automations",
    "logs",
    "task_run_state_cache",
    "task_run_states",
    "task_runs",
    "flow_run_states",
    "flow_run_inputs",
    "artifacts",
    "artifact_collections",
    "flow_runs",
    "deployment_schedules",
    "deployments",
    "workers",
    "work_queues",
    "work_pools",
    "flows",
    "concurrency_leases",
    "concurrency_limits",
    "block_document_references",
    "block_documents",
    "block_schema_references",
    "block_schemas",
    "block_types",
    "variables",
    "saved_searches",
    "configuration",
    // Events of the workspace still on their way to the events database.
    "event_outbox",
];

/// Events tables with a `workspace_id`.
pub const EVENTS_TABLES: &[&str] = &["event_resources", "events", "event_counts"];

/// Deletes up to `batch` rows of workspace `ws` from `table` (one of the lists above); how many.
pub async fn delete_batch(c: &mut Conn, table: &str, ws: &str, batch: i64) -> StorageResult<usize> {
    debug_assert!(ORION_TABLES.contains(&table) || EVENTS_TABLES.contains(&table));
    if !(ORION_TABLES.contains(&table) || EVENTS_TABLES.contains(&table)) {
        return Ok(0);
    }
    // Two arms: a bounded DELETE needs a row address in a subquery, `ctid` on PostgreSQL and
    // `rowid` on SQLite (neither has DELETE ... LIMIT by default).
    let n = match c.backend() {
        Backend::Pg(c) => {
            diesel::sql_query(format!(
                "DELETE FROM {table} WHERE ctid IN \
                 (SELECT ctid FROM {table} WHERE workspace_id = $1 LIMIT $2)"
            ))
            .bind::<Text, _>(ws)
            .bind::<BigInt, _>(batch)
            .execute(c)
            .await?
        }
        Backend::Sqlite(c) => {
            diesel::sql_query(format!(
                "DELETE FROM {table} WHERE rowid IN \
                 (SELECT rowid FROM {table} WHERE workspace_id = ? LIMIT ?)"
            ))
            .bind::<Text, _>(ws)
            .bind::<BigInt, _>(batch)
            .execute(c)
            .await?
        }
    };
    Ok(n)
}
