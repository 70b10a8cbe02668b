//! The shared queries of the blocks feature (schemas, types, documents and the references
//! between them), written once for both backends; the feature's operations call them inside
//! their own transactions.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::definitions::SchemaGraph;
use super::schema::{
    block_document_references, block_documents, block_schema_references, block_schemas, block_types,
};
use super::{
    new_id, now, BlockDocumentRefRow, BlockDocumentRow, BlockSchemaRefRow, BlockSchemaRow,
    BlockTypeRow,
};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::storage::{Conn, StorageResult};

/// How many levels of nested schemas or documents are followed at most.
pub const MAX_ROUNDS: usize = 64;

/// The schemas `ids`, every schema they reference (transitively) and their block types.
pub async fn schema_graph(
    c: &mut Conn,
    ws: &WorkspaceId,
    ids: &[String],
) -> StorageResult<SchemaGraph> {
    let mut graph = SchemaGraph::default();
    let mut frontier: Vec<String> = ids.to_vec();
    let mut expanded: HashSet<String> = HashSet::new();
    for _ in 0..MAX_ROUNDS {
        if frontier.is_empty() {
            break;
        }
        let missing: Vec<String> = frontier
            .iter()
            .filter(|id| !graph.schemas.contains_key(*id))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let rows: Vec<BlockSchemaRow> = db_run!(c, |c| {
                block_schemas::table
                    .filter(block_schemas::workspace_id.eq(ws))
                    .filter(block_schemas::id.eq_any(&missing))
                    .select(BlockSchemaRow::as_select())
                    .load(c)
                    .await
            })?;
            for r in rows {
                graph.schemas.insert(r.id.clone(), r);
            }
        }
        let parents: Vec<String> = frontier
            .iter()
            .filter(|id| expanded.insert((*id).clone()))
            .cloned()
            .collect();
        if parents.is_empty() {
            break;
        }
        let refs: Vec<BlockSchemaRefRow> = db_run!(c, |c| {
            block_schema_references::table
                .filter(block_schema_references::workspace_id.eq(ws))
                .filter(block_schema_references::parent_block_schema_id.eq_any(&parents))
                .order((
                    block_schema_references::created.asc(),
                    block_schema_references::id.asc(),
                ))
                .select(BlockSchemaRefRow::as_select())
                .load(c)
                .await
        })?;
        frontier = refs
            .iter()
            .map(|r| r.reference_block_schema_id.clone())
            .filter(|id| !expanded.contains(id))
            .collect();
        graph.refs.extend(refs);
    }
    let type_ids: Vec<String> = graph
        .schemas
        .values()
        .map(|s| s.block_type_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let types = types_by_ids(c, ws, &type_ids).await?;
    graph.types = types.into_iter().map(|t| (t.id.clone(), t)).collect();
    Ok(graph)
}

/// The newest schema with `checksum` (and `version`, when given).
pub async fn newest_schema(
    c: &mut Conn,
    ws: &WorkspaceId,
    checksum: &str,
    version: Option<&str>,
) -> StorageResult<Option<BlockSchemaRow>> {
    Ok(db_run!(c, |c| {
        let mut q = block_schemas::table
            .filter(block_schemas::workspace_id.eq(ws))
            .filter(block_schemas::checksum.eq(checksum))
            .into_boxed();
        if let Some(v) = version {
            q = q.filter(block_schemas::version.eq(v));
        }
        q.order((block_schemas::created.desc(), block_schemas::id.desc()))
            .select(BlockSchemaRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

pub async fn schema_by_id(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<BlockSchemaRow>> {
    Ok(db_run!(c, |c| {
        block_schemas::table
            .filter(block_schemas::workspace_id.eq(ws))
            .filter(block_schemas::id.eq(id))
            .select(BlockSchemaRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

pub async fn insert_schema(c: &mut Conn, row: &BlockSchemaRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(block_schemas::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Records that `parent` nests `child` under `name` (once).
pub async fn link_schema(
    c: &mut Conn,
    ws: &WorkspaceId,
    parent: &str,
    child: &str,
    name: &str,
) -> StorageResult<()> {
    let exists = db_run!(c, |c| {
        block_schema_references::table
            .filter(block_schema_references::workspace_id.eq(ws))
            .filter(block_schema_references::parent_block_schema_id.eq(parent))
            .filter(block_schema_references::reference_block_schema_id.eq(child))
            .filter(block_schema_references::name.eq(name))
            .select(block_schema_references::id)
            .first::<String>(c)
            .await
            .optional()
    })?;
    if exists.is_some() {
        return Ok(());
    }
    let t = now();
    let row = BlockSchemaRefRow {
        id: new_id(),
        workspace_id: ws.clone(),
        created: t,
        updated: t,
        name: name.to_string(),
        parent_block_schema_id: parent.to_string(),
        reference_block_schema_id: child.to_string(),
    };
    db_run!(c, |c| {
        diesel::insert_into(block_schema_references::table)
            .values(&row)
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn type_by_slug(
    c: &mut Conn,
    ws: &WorkspaceId,
    slug: &str,
) -> StorageResult<Option<BlockTypeRow>> {
    Ok(db_run!(c, |c| {
        block_types::table
            .filter(block_types::workspace_id.eq(ws))
            .filter(block_types::slug.eq(slug))
            .select(BlockTypeRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

pub async fn type_by_id(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<BlockTypeRow>> {
    let found = types_by_ids(c, ws, &[id.to_string()]).await?;
    Ok(found.into_iter().next())
}

pub async fn types_by_ids(
    c: &mut Conn,
    ws: &WorkspaceId,
    ids: &[String],
) -> StorageResult<Vec<BlockTypeRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(db_run!(c, |c| {
        block_types::table
            .filter(block_types::workspace_id.eq(ws))
            .filter(block_types::id.eq_any(ids))
            .select(BlockTypeRow::as_select())
            .load(c)
            .await
    })?)
}

pub async fn doc_by_id(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<BlockDocumentRow>> {
    let found = docs_by_ids(c, ws, &[id.to_string()]).await?;
    Ok(found.into_iter().next())
}

pub async fn docs_by_ids(
    c: &mut Conn,
    ws: &WorkspaceId,
    ids: &[String],
) -> StorageResult<Vec<BlockDocumentRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(db_run!(c, |c| {
        block_documents::table
            .filter(block_documents::workspace_id.eq(ws))
            .filter(block_documents::id.eq_any(ids))
            .select(BlockDocumentRow::as_select())
            .load(c)
            .await
    })?)
}

/// References whose parent is one of `parents`, oldest first.
pub async fn doc_refs(
    c: &mut Conn,
    ws: &WorkspaceId,
    parents: &[String],
) -> StorageResult<Vec<BlockDocumentRefRow>> {
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    Ok(db_run!(c, |c| {
        block_document_references::table
            .filter(block_document_references::workspace_id.eq(ws))
            .filter(block_document_references::parent_block_document_id.eq_any(parents))
            .order((
                block_document_references::created.asc(),
                block_document_references::id.asc(),
            ))
            .select(BlockDocumentRefRow::as_select())
            .load(c)
            .await
    })?)
}

pub async fn insert_doc_ref(
    c: &mut Conn,
    ws: &WorkspaceId,
    parent: &str,
    child: &str,
    name: &str,
) -> StorageResult<()> {
    let t = now();
    let row = BlockDocumentRefRow {
        id: new_id(),
        workspace_id: ws.clone(),
        created: t,
        updated: t,
        name: name.to_string(),
        parent_block_document_id: parent.to_string(),
        reference_block_document_id: child.to_string(),
    };
    db_run!(c, |c| {
        diesel::insert_into(block_document_references::table)
            .values(&row)
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn delete_doc_ref(c: &mut Conn, id: &str) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::delete(
            block_document_references::table.filter(block_document_references::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(())
}
