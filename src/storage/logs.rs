//! Logs: batch inserts from `POST /logs/` and filtered reads.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::build;
use super::postgres::Statement;
use super::rows::LogRow;
use super::schema::logs;
use super::{Backend, Conn, StorageResult};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::{LogFilter, LogSort, Page};

/// PostgreSQL: the whole batch in one statement of column arrays (a statement per row made
/// 20,000 logs take 6.5 s).
const PG_INSERT: &str = "INSERT INTO logs (id, workspace_id, created, updated, name, level, \
     message, timestamp, flow_run_id, task_run_id, worker_id) \
     SELECT * FROM unnest(?::text[], ?::text[], ?::timestamp[], ?::timestamp[], ?::text[], \
     ?::int[], ?::text[], ?::timestamp[], ?::text[], ?::text[], ?::text[])";
/// SQLite: rows per multi-row statement (11 parameters each, under SQLite's 32,766).
const SQLITE_ROWS: usize = 500;
const SQLITE_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Inserts the logs of one request; returns how many were written. Run it in a transaction, so
/// a batch is stored whole or not at all. Two arms: one statement of arrays on PostgreSQL;
/// multi-row statements on SQLite (diesel's SQLite has no batch insert for optional columns).
pub async fn insert(c: &mut Conn, rows: &[LogRow]) -> StorageResult<usize> {
    use diesel::sql_types::{Array, Integer, Nullable, Text, Timestamp};
    if rows.is_empty() {
        return Ok(0);
    }
    match c.backend() {
        Backend::Pg(c) => {
            let col = |f: fn(&LogRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
            let opt = |f: fn(&LogRow) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
            let time =
                |f: fn(&LogRow) -> chrono::NaiveDateTime| rows.iter().map(f).collect::<Vec<_>>();
            let n = Statement::new(PG_INSERT)
                .bind::<Array<Text>, _>(col(|r| r.id.clone()))
                .bind::<Array<Text>, _>(col(|r| r.workspace_id.to_string()))
                .bind::<Array<Timestamp>, _>(time(|r| r.created))
                .bind::<Array<Timestamp>, _>(time(|r| r.updated))
                .bind::<Array<Text>, _>(col(|r| r.name.clone()))
                .bind::<Array<Integer>, _>(rows.iter().map(|r| r.level).collect::<Vec<i32>>())
                .bind::<Array<Text>, _>(col(|r| r.message.clone()))
                .bind::<Array<Timestamp>, _>(time(|r| r.timestamp))
                .bind::<Array<Nullable<Text>>, _>(opt(|r| r.flow_run_id.clone()))
                .bind::<Array<Nullable<Text>>, _>(opt(|r| r.task_run_id.clone()))
                .bind::<Array<Nullable<Text>>, _>(opt(|r| r.worker_id.clone()))
                .execute(c)
                .await?;
            Ok(n)
        }
        Backend::Sqlite(c) => {
            let mut n = 0;
            for chunk in rows.chunks(SQLITE_ROWS) {
                let sql = format!(
                    "INSERT INTO logs (id, workspace_id, created, updated, name, level, message, \
                     timestamp, flow_run_id, task_run_id, worker_id) VALUES {}",
                    vec![SQLITE_ROW; chunk.len()].join(", ")
                );
                let mut q = diesel::sql_query(sql).into_boxed::<diesel::sqlite::Sqlite>();
                for r in chunk {
                    q = q
                        .bind::<Text, _>(r.id.clone())
                        .bind::<Text, _>(r.workspace_id.to_string())
                        .bind::<Timestamp, _>(r.created)
                        .bind::<Timestamp, _>(r.updated)
                        .bind::<Text, _>(r.name.clone())
                        .bind::<Integer, _>(r.level)
                        .bind::<Text, _>(r.message.clone())
                        .bind::<Timestamp, _>(r.timestamp)
                        .bind::<Nullable<Text>, _>(r.flow_run_id.clone())
                        .bind::<Nullable<Text>, _>(r.task_run_id.clone())
                        .bind::<Nullable<Text>, _>(r.worker_id.clone());
                }
                n += q.execute(c).await?;
            }
            Ok(n)
        }
    }
}

pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    filter: &LogFilter,
    sort: LogSort,
    page: Page,
) -> StorageResult<Vec<LogRow>> {
    let rows = db_run!(c, |c| {
        let cond = build::log(filter);
        let mut q = logs::table
            .filter(logs::workspace_id.eq(ws))
            .filter(cond)
            .select(LogRow::as_select())
            .into_boxed();
        q = match sort {
            LogSort::TimestampAsc => q.order((logs::timestamp.asc(), logs::id.asc())),
            LogSort::TimestampDesc => q.order((logs::timestamp.desc(), logs::id.desc())),
        };
        q.limit(page.limit).offset(page.offset).load(c).await
    })?;
    Ok(rows)
}
