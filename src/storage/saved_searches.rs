//! Saved searches (UI filter sets): upserted by name, read by id, listed by name, deleted.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{Conn, StorageResult};
use crate::db_run;
use crate::query::Page;

pub(crate) use crate::storage::schema;

use crate::ids::WorkspaceId;
use schema::saved_searches;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = saved_searches)]
pub struct SavedSearchRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    /// Compact JSON array text.
    pub filters: String,
}

/// Inserts the search, or replaces the filters of the one with its name. Returns the stored
/// row and whether it is new. All in one transaction (a savepoint inside the caller's).
pub async fn upsert(c: &mut Conn, row: &SavedSearchRow) -> StorageResult<(SavedSearchRow, bool)> {
    c.transaction(async |c| {
        let out = db_run!(c, |c| {
            let inserted = diesel::insert_into(saved_searches::table)
                .values(row)
                .on_conflict((saved_searches::workspace_id, saved_searches::name))
                .do_nothing()
                .execute(c)
                .await?;
            if inserted == 0 {
                diesel::update(
                    saved_searches::table
                        .filter(saved_searches::workspace_id.eq(&row.workspace_id))
                        .filter(saved_searches::name.eq(&row.name)),
                )
                .set(saved_searches::filters.eq(&row.filters))
                .execute(c)
                .await?;
            }
            let stored = saved_searches::table
                .filter(saved_searches::workspace_id.eq(&row.workspace_id))
                .filter(saved_searches::name.eq(&row.name))
                .select(SavedSearchRow::as_select())
                .first(c)
                .await?;
            Ok::<_, diesel::result::Error>((stored, inserted == 1))
        })?;
        Ok(out)
    })
    .await
}

pub async fn find(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<SavedSearchRow>> {
    let row = db_run!(c, |c| saved_searches::table
        .filter(saved_searches::workspace_id.eq(ws))
        .filter(saved_searches::id.eq(id))
        .select(SavedSearchRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    page: Page,
) -> StorageResult<Vec<SavedSearchRow>> {
    let rows = db_run!(c, |c| saved_searches::table
        .filter(saved_searches::workspace_id.eq(ws))
        .order((saved_searches::name.asc(), saved_searches::id.asc()))
        .limit(page.limit)
        .offset(page.offset)
        .select(SavedSearchRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// Deletes a saved search; false when there is none.
pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<bool> {
    let n = db_run!(c, |c| diesel::delete(
        saved_searches::table
            .filter(saved_searches::workspace_id.eq(ws))
            .filter(saved_searches::id.eq(id)),
    )
    .execute(c)
    .await)?;
    Ok(n == 1)
}
