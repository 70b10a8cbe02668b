//! Block schemas: unique by (checksum, version) within a workspace. A schema posted with nested
//! block schemas is stored as several schemas plus references between them (the nested ones
//! are registered from the parent's `definitions` when they are not known yet); reads rebuild
//! the full fields. Schemas of protected (system) types refuse deletion.

use std::collections::{HashSet, VecDeque};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use super::checksum::{schema_checksum, truthy};
use super::definitions::{
    child_fields, declared_refs, stored_fields, with_definitions, SchemaGraph,
};
use super::filters;
use super::queries::{
    insert_schema, link_schema, newest_schema, schema_by_id, schema_graph, type_by_id, type_by_slug,
};
use super::schema::{block_schemas, block_types};
use super::{
    new_id, now, BlockError, BlockResult, BlockSchemaRow, BlockTypeRow, DEFAULT_SCHEMA_VERSION,
};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::blocks::{AnyIds, BlockSchemaFilter};
use crate::query::Page;
use crate::storage::{Conn, StorageError, StorageResult};

/// A schema as read: its row, its full fields and its block type.
#[derive(Debug, Clone)]
pub struct SchemaView {
    pub row: BlockSchemaRow,
    pub fields: Value,
    pub block_type: Option<BlockTypeRow>,
}

/// A schema as posted (`BlockSchemaCreate`), already validated.
#[derive(Debug, Clone)]
pub struct NewBlockSchema {
    pub fields: Value,
    pub block_type_id: String,
    pub capabilities: Vec<String>,
    pub version: String,
}

/// Views of `rows` (in their order), rebuilt from `graph`.
pub(crate) fn views(rows: Vec<BlockSchemaRow>, graph: &SchemaGraph) -> Vec<SchemaView> {
    rows.into_iter()
        .map(|row| SchemaView {
            fields: graph.full_fields(&row.id),
            block_type: graph.types.get(&row.block_type_id).cloned(),
            row,
        })
        .collect()
}

/// Schemas matching the filter, newest first.
pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    f: Option<&BlockSchemaFilter>,
    page: Page,
) -> StorageResult<Vec<SchemaView>> {
    let all = BlockSchemaFilter::default();
    let f = f.unwrap_or(&all);
    let rows: Vec<BlockSchemaRow> = db_run!(c, |c| {
        let cond = filters::block_schema(f);
        block_schemas::table
            .filter(block_schemas::workspace_id.eq(ws))
            .filter(cond)
            .order((block_schemas::created.desc(), block_schemas::id.desc()))
            .limit(page.limit)
            .offset(page.offset)
            .select(BlockSchemaRow::as_select())
            .load(c)
            .await
    })?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let graph = schema_graph(c, ws, &ids).await?;
    Ok(views(rows, &graph))
}

/// One schema by id.
pub async fn find(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<Option<SchemaView>> {
    let Ok(uuid) = uuid::Uuid::parse_str(id) else {
        return Ok(None);
    };
    let f = BlockSchemaFilter {
        id: Some(AnyIds {
            any_: Some(vec![uuid]),
        }),
        ..Default::default()
    };
    let page = Page {
        limit: 1,
        offset: 0,
    };
    Ok(list(c, ws, Some(&f), page).await?.into_iter().next())
}

/// The newest schema with `checksum` (and `version`, when given).
pub async fn find_by_checksum(
    c: &mut Conn,
    ws: &WorkspaceId,
    checksum: &str,
    version: Option<&str>,
) -> StorageResult<Option<SchemaView>> {
    match newest_schema(c, ws, checksum, version).await? {
        None => Ok(None),
        Some(row) => {
            let graph = schema_graph(c, ws, std::slice::from_ref(&row.id)).await?;
            Ok(views(vec![row], &graph).into_iter().next())
        }
    }
}

/// Work of one schema creation: the schema itself, then the references it declares.
enum Step {
    /// Create (unless its checksum and version exist) and link it to `parent` under a name.
    Create {
        fields: Value,
        block_type_id: String,
        capabilities: Vec<String>,
        version: String,
        definitions: Option<Value>,
        parent: Option<(String, String)>,
    },
    /// Resolve a declared reference of `parent`: link an existing schema with that checksum,
    /// or register it from the root's definitions.
    Reference {
        parent: String,
        name: String,
        slug: String,
        checksum: String,
        base: Value,
        definitions: Option<Value>,
    },
}

/// Creates a block schema (with the nested schemas it declares, in one transaction) or returns
/// the one with the same checksum and version; returns the view and whether it is new.
pub async fn create(
    c: &mut Conn,
    ws: &WorkspaceId,
    new: &NewBlockSchema,
) -> BlockResult<(SchemaView, bool)> {
    let checksum = schema_checksum(&new.fields);
    c.transaction(async |c| {
        if type_by_id(c, ws, &new.block_type_id).await?.is_none() {
            return Err(BlockError::NotFound(format!(
                "Block type {} not found.",
                new.block_type_id
            ))
            .into());
        }
        let (id, fresh) = match newest_schema(c, ws, &checksum, Some(&new.version)).await? {
            Some(existing) => (existing.id, false),
            None => {
                let root = Step::Create {
                    fields: new.fields.clone(),
                    block_type_id: new.block_type_id.clone(),
                    capabilities: new.capabilities.clone(),
                    version: new.version.clone(),
                    definitions: None,
                    parent: None,
                };
                (run_steps(c, ws, root).await?, true)
            }
        };
        let row = schema_by_id(c, ws, &id)
            .await?
            .ok_or(StorageError::NotFound)?;
        let graph = schema_graph(c, ws, std::slice::from_ref(&row.id)).await?;
        let mut view = views(vec![row], &graph)
            .into_iter()
            .next()
            .ok_or(StorageError::NotFound)?;
        if fresh {
            // Prefect answers a new schema with the stored fields plus the posted
            // references and definitions (a later read rebuilds the definitions).
            view.fields = created_fields(&view.row.fields, &new.fields);
        }
        Ok((view, fresh))
    })
    .await
}

fn created_fields(stored: &str, posted: &Value) -> Value {
    let mut f = match super::json_text(stored, Value::Null) {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let refs = posted
        .get("block_schema_references")
        .cloned()
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    f.insert("block_schema_references".into(), refs);
    if let Some(defs) = posted.get("definitions").filter(|d| !d.is_null()) {
        f.insert("definitions".into(), defs.clone());
    }
    Value::Object(f)
}

fn missing_type(slug: &str) -> BlockError {
    BlockError::Conflict(format!(
        "Cannot create block schema because block type '{slug}' was not found.Did you forget to register the block type?"
    ))
}

/// Runs the creation steps depth-first, in the order Prefect registers nested schemas;
/// returns the id of the root schema.
async fn run_steps(c: &mut Conn, ws: &WorkspaceId, root: Step) -> BlockResult<String> {
    let mut queue: VecDeque<Step> = VecDeque::from([root]);
    let mut root_id: Option<String> = None;
    let mut steps = 0usize;
    while let Some(step) = queue.pop_front() {
        steps += 1;
        if steps > 10_000 {
            return Err(BlockError::Invalid("Block schema nesting is too deep.".into()).into());
        }
        match step {
            Step::Create {
                fields,
                block_type_id,
                capabilities,
                version,
                definitions,
                parent,
            } => {
                let defs = definitions
                    .filter(truthy)
                    .or_else(|| fields.get("definitions").cloned());
                let checksum = schema_checksum(&with_definitions(&fields, defs.as_ref()));
                let existing = newest_schema(c, ws, &checksum, Some(&version)).await?;
                let (id, fresh) = match existing {
                    Some(existing) => (existing.id, false),
                    None => {
                        let stored = stored_fields(&fields, defs.as_ref());
                        let t = now();
                        let row = BlockSchemaRow {
                            id: new_id(),
                            workspace_id: ws.clone(),
                            created: t,
                            updated: t,
                            checksum,
                            fields: super::to_text(&stored),
                            capabilities: super::to_text(&capabilities),
                            version,
                            block_type_id,
                        };
                        insert_schema(c, &row).await?;
                        (row.id, true)
                    }
                };
                if root_id.is_none() {
                    root_id = Some(id.clone());
                }
                if let Some((parent, name)) = parent {
                    link_schema(c, ws, &parent, &id, &name).await?;
                }
                if fresh {
                    let base = stored_fields(&fields, defs.as_ref());
                    let refs = declared_refs(&fields)?;
                    for r in refs.into_iter().rev() {
                        queue.push_front(Step::Reference {
                            parent: id.clone(),
                            name: r.name,
                            slug: r.block_type_slug,
                            checksum: r.checksum,
                            base: base.clone(),
                            definitions: defs.clone(),
                        });
                    }
                }
            }
            Step::Reference {
                parent,
                name,
                slug,
                checksum,
                base,
                definitions,
            } => {
                let Some(block_type) = type_by_slug(c, ws, &slug).await? else {
                    return Err(missing_type(&slug).into());
                };
                if let Some(existing) = newest_schema(c, ws, &checksum, None).await? {
                    link_schema(c, ws, &parent, &existing.id, &name).await?;
                    continue;
                }
                let Some(defs) = definitions else {
                    return Err(BlockError::Invalid(
                        "Unable to create nested block schema due to missing definitions in root block schema fields".into(),
                    ).into());
                };
                let Some(fields) = child_fields(&defs, &base, &name, &slug) else {
                    return Err(BlockError::Invalid(format!(
                        "Unable to create nested block schema for block type '{}' due to missing definition.",
                        block_type.name
                    )).into());
                };
                queue.push_front(Step::Create {
                    fields,
                    block_type_id: block_type.id,
                    capabilities: Vec::new(),
                    version: DEFAULT_SCHEMA_VERSION.to_string(),
                    definitions: Some(defs),
                    parent: Some((parent, name)),
                });
            }
        }
    }
    root_id.ok_or(StorageError::NotFound)
}

/// Deletes a schema (and its documents), in one transaction; schemas of protected types are
/// refused.
pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &str) -> BlockResult<()> {
    c.transaction(async |c| {
        let found: Option<bool> = db_run!(c, |c| {
            block_schemas::table
                .inner_join(block_types::table.on(block_types::id.eq(block_schemas::block_type_id)))
                .filter(block_schemas::workspace_id.eq(ws))
                .filter(block_schemas::id.eq(id))
                .select(block_types::is_protected)
                .first(c)
                .await
                .optional()
        })?;
        match found {
            None => Err(BlockError::NotFound("Block schema not found".into()).into()),
            Some(true) => Err(BlockError::Forbidden(
                "Block schemas for protected block types cannot be deleted.".into(),
            )
            .into()),
            Some(false) => {
                db_run!(c, |c| {
                    diesel::delete(
                        block_schemas::table
                            .filter(block_schemas::workspace_id.eq(ws))
                            .filter(block_schemas::id.eq(id)),
                    )
                    .execute(c)
                    .await
                })?;
                Ok(())
            }
        }
    })
    .await
}

/// Every capability any schema of the workspace declares, sorted.
pub async fn capabilities(c: &mut Conn, ws: &WorkspaceId) -> StorageResult<Vec<String>> {
    let texts: Vec<String> = db_run!(c, |c| {
        block_schemas::table
            .filter(block_schemas::workspace_id.eq(ws))
            .select(block_schemas::capabilities)
            .distinct()
            .load(c)
            .await
    })?;
    let mut all: Vec<String> = texts
        .iter()
        .filter_map(|t| serde_json::from_str::<Vec<String>>(t).ok())
        .flatten()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    all.sort();
    Ok(all)
}
