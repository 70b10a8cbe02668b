//! Block types: unique by slug within a workspace; protected (system) types refuse deletion.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters;
use super::queries::{type_by_id, type_by_slug};
use super::schema::block_types;
use super::{new_id, now, BlockError, BlockResult, BlockTypeRow};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::blocks::{BlockSchemaFilter, BlockTypeFilter};
use crate::query::Page;
use crate::storage::{Conn, StorageResult};

/// A block type as posted (`BlockTypeCreate`), already validated.
#[derive(Debug, Clone, Default)]
pub struct NewBlockType {
    pub name: String,
    pub slug: String,
    pub logo_url: Option<String>,
    pub documentation_url: Option<String>,
    pub description: Option<String>,
    pub code_example: Option<String>,
}

/// The updatable fields (`BlockTypeUpdate`): `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = block_types)]
pub struct BlockTypeChanges {
    pub logo_url: Option<Option<String>>,
    pub documentation_url: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub code_example: Option<Option<String>>,
}

/// Prefect escapes `&`, `<` and `>` in descriptions and code examples of created types.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Python's `html.unescape` for the entities `html_escape` produces (and quotes).
fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Inserts a block type; a taken slug is a conflict with Prefect's message.
pub async fn insert(
    c: &mut Conn,
    ws: &WorkspaceId,
    new: &NewBlockType,
) -> BlockResult<BlockTypeRow> {
    let t = now();
    let row = BlockTypeRow {
        id: new_id(),
        workspace_id: ws.clone(),
        created: t,
        updated: t,
        name: new.name.clone(),
        slug: new.slug.clone(),
        logo_url: new.logo_url.clone(),
        documentation_url: new.documentation_url.clone(),
        description: new.description.as_deref().map(html_escape),
        code_example: new.code_example.as_deref().map(html_escape),
        is_protected: false,
    };
    let n = db_run!(c, |c| {
        diesel::insert_into(block_types::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    if n == 0 {
        return Err(BlockError::Conflict(format!(
            "Block type with name \"{}\" already exists",
            new.name
        ))
        .into());
    }
    Ok(row)
}

pub async fn find(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<Option<BlockTypeRow>> {
    type_by_id(c, ws, id).await
}

pub async fn find_by_slug(
    c: &mut Conn,
    ws: &WorkspaceId,
    slug: &str,
) -> StorageResult<Option<BlockTypeRow>> {
    type_by_slug(c, ws, slug).await
}

/// Block types matching the filters, by name.
pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    t: Option<&BlockTypeFilter>,
    s: Option<&BlockSchemaFilter>,
    page: Page,
) -> StorageResult<Vec<BlockTypeRow>> {
    let rows = db_run!(c, |c| {
        let cond = filters::block_types_related(ws, t, s);
        block_types::table
            .filter(block_types::workspace_id.eq(ws))
            .filter(cond)
            .order((block_types::name.asc(), block_types::id.asc()))
            .limit(page.limit)
            .offset(page.offset)
            .select(BlockTypeRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Applies `changes` unless they would change nothing (Prefect compares, ignoring HTML
/// escaping, to avoid needless writes); false when no such type.
pub async fn update(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
    changes: &BlockTypeChanges,
) -> StorageResult<bool> {
    let Some(current) = find(c, ws, id).await? else {
        return Ok(false);
    };
    let same = |new: &Option<Option<String>>, old: &Option<String>| match new {
        Some(v) => v.as_deref().map(html_unescape) == old.as_deref().map(html_unescape),
        None => false,
    };
    if same(&changes.logo_url, &current.logo_url)
        && same(&changes.documentation_url, &current.documentation_url)
        && same(&changes.description, &current.description)
        && same(&changes.code_example, &current.code_example)
    {
        return Ok(true);
    }
    let nothing = changes.logo_url.is_none()
        && changes.documentation_url.is_none()
        && changes.description.is_none()
        && changes.code_example.is_none();
    let t = now();
    db_run!(c, |c| {
        let target = block_types::table
            .filter(block_types::workspace_id.eq(ws))
            .filter(block_types::id.eq(id));
        if nothing {
            diesel::update(target)
                .set(block_types::updated.eq(t))
                .execute(c)
                .await
        } else {
            diesel::update(target)
                .set((changes, block_types::updated.eq(t)))
                .execute(c)
                .await
        }
    })?;
    Ok(true)
}

/// Deletes a block type with its schemas and documents; protected types are refused.
pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &str) -> BlockResult<()> {
    let current = find(c, ws, id)
        .await?
        .ok_or_else(|| BlockError::NotFound("Block type not found".into()))?;
    if current.is_protected {
        return Err(
            BlockError::Forbidden("protected block types cannot be deleted.".into()).into(),
        );
    }
    let n = db_run!(c, |c| {
        diesel::delete(
            block_types::table
                .filter(block_types::workspace_id.eq(ws))
                .filter(block_types::id.eq(id))
                .filter(block_types::is_protected.eq(false)),
        )
        .execute(c)
        .await
    })?;
    if n == 0 {
        return Err(BlockError::NotFound("Block type not found".into()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        let s = "a <b> & \"c\"";
        assert_eq!(html_escape(s), "a &lt;b&gt; &amp; \"c\"");
        assert_eq!(html_unescape(&html_escape(s)), s);
    }
}
