//! Variables: named JSON values with tags, unique by name within a workspace. Created, read by
//! id or name, filtered (`VariableFilter`), counted, updated and deleted.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::build::combine;
use super::filters::sql::Where;
use super::filters::tag_pattern;
use super::{Conn, StorageResult};
use crate::col;
use crate::db_run;
use crate::query::Page;

pub(crate) use crate::storage::schema;

use crate::ids::WorkspaceId;
use crate::query::variables::{VariableFilter, VariableIdFilter, VariableSort};
use schema::variables;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = variables)]
pub struct VariableRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    /// Compact JSON text.
    pub value: String,
    /// Compact JSON array text.
    pub tags: String,
}

/// The columns a PATCH may change (`None`: unchanged).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = variables)]
pub struct VariableChanges {
    pub updated: Option<NaiveDateTime>,
    pub name: Option<String>,
    pub value: Option<String>,
    pub tags: Option<String>,
}

/// The variables a filter selects.
fn cond(f: &VariableFilter) -> Where {
    let mut c = Vec::new();
    if let Some(VariableIdFilter { any_: Some(ids) }) = &f.id {
        let ids: Vec<String> = ids.iter().map(|u| u.to_string()).collect();
        c.push(Where::is_in(col!(variables::id), ids));
    }
    if let Some(n) = &f.name {
        if let Some(any) = &n.any_ {
            c.push(Where::is_in(col!(variables::name), any.clone()));
        }
        if let Some(like) = n.like_.as_deref().filter(|l| !l.is_empty()) {
            let pattern = format!("%{}%", like.to_lowercase());
            c.push(Where::ilike(col!(variables::name), pattern, false));
        }
    }
    if let Some(t) = &f.tags {
        let mut inner = Vec::new();
        for tag in t.all_.iter().flatten() {
            inner.push(Where::like(col!(variables::tags), tag_pattern(tag)));
        }
        match t.is_null_ {
            Some(true) => inner.push(Where::eq(col!(variables::tags), "[]")),
            Some(false) => inner.push(Where::ne(col!(variables::tags), "[]")),
            None => {}
        }
        if !inner.is_empty() {
            c.push(combine(t.operator, inner));
        }
    }
    combine(f.operator, c)
}

/// Inserts a variable; `StorageError::Conflict` when the name is taken.
pub async fn insert(c: &mut Conn, row: &VariableRow) -> StorageResult<()> {
    db_run!(c, |c| diesel::insert_into(variables::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

pub async fn find(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<Option<VariableRow>> {
    let row = db_run!(c, |c| variables::table
        .filter(variables::workspace_id.eq(ws))
        .filter(variables::id.eq(id))
        .select(VariableRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

pub async fn find_by_name(
    c: &mut Conn,
    ws: &WorkspaceId,
    name: &str,
) -> StorageResult<Option<VariableRow>> {
    let row = db_run!(c, |c| variables::table
        .filter(variables::workspace_id.eq(ws))
        .filter(variables::name.eq(name))
        .select(VariableRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// The variables of `names` that exist (one query per 500 names, within SQLite's limit on
/// bound parameters).
pub async fn find_by_names(
    c: &mut Conn,
    ws: &WorkspaceId,
    names: &[String],
) -> StorageResult<Vec<VariableRow>> {
    let mut rows = Vec::new();
    for chunk in names.chunks(500) {
        let found: Vec<VariableRow> = db_run!(c, |c| variables::table
            .filter(variables::workspace_id.eq(ws))
            .filter(variables::name.eq_any(chunk))
            .select(VariableRow::as_select())
            .load(c)
            .await)?;
        rows.extend(found);
    }
    Ok(rows)
}

pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    filter: &VariableFilter,
    sort: VariableSort,
    page: Page,
) -> StorageResult<Vec<VariableRow>> {
    let rows = db_run!(c, |c| {
        let cond = cond(filter);
        let mut q = variables::table
            .filter(variables::workspace_id.eq(ws))
            .filter(cond)
            .select(VariableRow::as_select())
            .into_boxed();
        q = match sort {
            VariableSort::CreatedDesc => q.order((variables::created.desc(), variables::id.desc())),
            VariableSort::UpdatedDesc => q.order((variables::updated.desc(), variables::id.desc())),
            VariableSort::NameDesc => q.order(variables::name.desc()),
            VariableSort::NameAsc => q.order(variables::name.asc()),
        };
        q.limit(page.limit).offset(page.offset).load(c).await
    })?;
    Ok(rows)
}

pub async fn count(c: &mut Conn, ws: &WorkspaceId, filter: &VariableFilter) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = cond(filter);
        variables::table
            .filter(variables::workspace_id.eq(ws))
            .filter(cond)
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}

/// Which variable an update or delete addresses.
#[derive(Debug, Clone)]
pub enum Key {
    Id(String),
    Name(String),
}

/// Applies `changes`; false when no such variable. A new name that is taken is a
/// `StorageError::Conflict`.
pub async fn update(
    c: &mut Conn,
    ws: &WorkspaceId,
    key: &Key,
    changes: &VariableChanges,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        match key {
            Key::Id(id) => {
                diesel::update(
                    variables::table
                        .filter(variables::workspace_id.eq(ws))
                        .filter(variables::id.eq(id)),
                )
                .set(changes)
                .execute(c)
                .await
            }
            Key::Name(name) => {
                diesel::update(
                    variables::table
                        .filter(variables::workspace_id.eq(ws))
                        .filter(variables::name.eq(name)),
                )
                .set(changes)
                .execute(c)
                .await
            }
        }
    })?;
    Ok(n > 0)
}

/// Deletes a variable; false when no such variable.
pub async fn delete(c: &mut Conn, ws: &WorkspaceId, key: &Key) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        match key {
            Key::Id(id) => {
                diesel::delete(
                    variables::table
                        .filter(variables::workspace_id.eq(ws))
                        .filter(variables::id.eq(id)),
                )
                .execute(c)
                .await
            }
            Key::Name(name) => {
                diesel::delete(
                    variables::table
                        .filter(variables::workspace_id.eq(ws))
                        .filter(variables::name.eq(name)),
                )
                .execute(c)
                .await
            }
        }
    })?;
    Ok(n > 0)
}
