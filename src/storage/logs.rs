//! Logs: batch inserts from `POST /logs/` and filtered reads.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::build;
use super::rows::LogRow;
use super::schema::logs;
use super::{Conn, StorageResult};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::{LogFilter, LogSort, Page};

/// Inserts the logs of one request; returns how many were written. Run it in a transaction, so
/// a batch is stored whole or not at all.
pub async fn insert(c: &mut Conn, rows: &[LogRow]) -> StorageResult<usize> {
    let n = db_run!(c, |c| {
        let mut n = 0;
        for row in rows {
            n += diesel::insert_into(logs::table)
                .values(row)
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(n)
    })?;
    Ok(n)
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
