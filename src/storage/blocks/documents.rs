//! Block documents: unique by (block type, name) within a workspace. Fields of the data that
//! reference another document (`{"$ref": {"block_document_id": ...}}`) are stored as
//! references and come back inline, with `block_document_references`, as Prefect returns
//! them. Secret fields are masked unless secrets are asked for. Anonymous documents get a
//! generated name and are hidden from lists unless asked for.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::{Map, Value};

use super::conn::{BlockConn, MAX_ROUNDS};
use super::definitions::SchemaGraph;
use super::filters::{
    AnyIds, AnyStrings, BlockDocumentFilter, BlockDocumentSort, BlockFilterSql, BlockTypeFilter,
    DocumentQuery, NameAnyLike,
};
use super::schema::block_documents;
use super::schemas::{views, SchemaView};
use super::secrets::{mask, restore_masked, secret_paths};
use super::{
    json_text, new_id, now, to_text, BlockDocumentRefRow, BlockDocumentRow, BlockError,
    BlockResult, BlockTypeRow,
};
use crate::db_run;
use crate::storage::filters::{backend, Cond, Page};
use crate::storage::{Database, StorageResult};

/// One document with its nested documents, as read.
#[derive(Debug, Clone)]
pub struct DocNode {
    pub row: BlockDocumentRow,
    pub block_type: Option<BlockTypeRow>,
    /// The document's own data (masked unless secrets were asked for).
    pub data: Map<String, Value>,
    /// Nested documents by the field name that references them.
    pub children: Vec<(String, DocNode)>,
}

/// A document as read: the tree and the document's schema.
#[derive(Debug, Clone)]
pub struct DocView {
    pub node: DocNode,
    pub schema: Option<SchemaView>,
}

/// A document as posted (`BlockDocumentCreate`), already validated.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub name: Option<String>,
    pub data: Map<String, Value>,
    pub block_schema_id: String,
    pub block_type_id: String,
    pub is_anonymous: bool,
}

/// An update (`BlockDocumentUpdate`): `data` is `None` when the update leaves the data alone.
#[derive(Debug, Clone)]
pub struct DocumentUpdate {
    pub block_schema_id: Option<String>,
    pub data: Option<Map<String, Value>>,
    pub merge_existing_data: bool,
}

fn cycle(parent: &str, child: &str) -> BlockError {
    BlockError::Invalid(format!(
        "Cannot create block document reference: it would introduce a cycle into the block_document_reference graph (parent={parent}, reference={child})."
    ))
}

/// The plain fields of a document's data and its `(field, referenced document id)` pairs.
type SplitData = (Map<String, Value>, Vec<(String, String)>);

/// Splits the data into the plain fields and the `(field, referenced document id)` pairs.
fn separate_refs(data: Map<String, Value>) -> BlockResult<SplitData> {
    let mut own = Map::new();
    let mut refs = Vec::new();
    for (key, value) in data {
        match value.as_object().and_then(|o| o.get("$ref")) {
            Some(r) => match r.get("block_document_id") {
                None | Some(Value::Null) => {
                    return Err(BlockError::Invalid(format!(
                        "Received block reference without a block_document_id in key {key}"
                    )))
                }
                Some(id) => {
                    let id = id
                        .as_str()
                        .and_then(|s| uuid::Uuid::parse_str(s).ok())
                        .ok_or(BlockError::Integrity)?;
                    refs.push((key, id.to_string()));
                }
            },
            None => {
                own.insert(key, value);
            }
        }
    }
    Ok((own, refs))
}

/// Whether `parent` → `child` would close a cycle of references.
async fn would_cycle<C: BlockConn>(
    c: &mut C,
    ws: &str,
    parent: &str,
    child: &str,
) -> BlockResult<bool> {
    if parent == child {
        return Ok(true);
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut frontier = vec![child.to_string()];
    while !frontier.is_empty() {
        if frontier.iter().any(|id| id == parent) {
            return Ok(true);
        }
        frontier.retain(|id| seen.insert(id.clone()));
        let refs = c.doc_refs(ws, &frontier).await?;
        frontier = refs
            .into_iter()
            .map(|r| r.reference_block_document_id)
            .filter(|id| !seen.contains(id))
            .collect();
    }
    Ok(false)
}

/// Adds the reference `parent.name` → `child` after checking it.
async fn add_ref<C: BlockConn>(
    c: &mut C,
    ws: &str,
    parent: &str,
    name: &str,
    child: &str,
) -> BlockResult<()> {
    if would_cycle(c, ws, parent, child).await? {
        return Err(cycle(parent, child));
    }
    if c.doc_by_id(ws, child).await?.is_none() {
        return Err(BlockError::Integrity);
    }
    c.insert_doc_ref(ws, parent, child, name).await?;
    Ok(())
}

/// Builds the views of `roots` (in their order): loads nested documents, their types and the
/// schemas, and masks secrets unless `include_secrets`.
async fn load_views<C: BlockConn>(
    c: &mut C,
    ws: &str,
    roots: Vec<BlockDocumentRow>,
    include_secrets: bool,
) -> QueryResult<Vec<DocView>> {
    let mut docs: HashMap<String, BlockDocumentRow> =
        roots.iter().map(|r| (r.id.clone(), r.clone())).collect();
    let mut refs: Vec<BlockDocumentRefRow> = Vec::new();
    let mut expanded: HashSet<String> = HashSet::new();
    let mut frontier: Vec<String> = roots.iter().map(|r| r.id.clone()).collect();
    for _ in 0..MAX_ROUNDS {
        frontier.retain(|id| expanded.insert(id.clone()));
        if frontier.is_empty() {
            break;
        }
        let found = c.doc_refs(ws, &frontier).await?;
        let missing: Vec<String> = found
            .iter()
            .map(|r| r.reference_block_document_id.clone())
            .filter(|id| !docs.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for row in c.docs_by_ids(ws, &missing).await? {
            docs.insert(row.id.clone(), row);
        }
        frontier = found
            .iter()
            .map(|r| r.reference_block_document_id.clone())
            .collect();
        refs.extend(found);
    }
    let type_ids: Vec<String> = docs
        .values()
        .map(|d| d.block_type_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let types: HashMap<String, BlockTypeRow> = c
        .types_by_ids(ws, &type_ids)
        .await?
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
    let schema_ids: Vec<String> = docs
        .values()
        .map(|d| d.block_schema_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let graph = c.schema_graph(ws, &schema_ids).await?;
    let tree = Tree {
        docs: &docs,
        refs: &refs,
        types: &types,
        graph: &graph,
        include_secrets,
    };
    Ok(roots
        .into_iter()
        .map(|root| {
            let schema = graph
                .schemas
                .get(&root.block_schema_id)
                .cloned()
                .and_then(|s| views(vec![s], &graph).into_iter().next());
            let mut path = Vec::new();
            DocView {
                node: tree.node(&root, &mut path),
                schema,
            }
        })
        .collect())
}

struct Tree<'a> {
    docs: &'a HashMap<String, BlockDocumentRow>,
    refs: &'a [BlockDocumentRefRow],
    types: &'a HashMap<String, BlockTypeRow>,
    graph: &'a SchemaGraph,
    include_secrets: bool,
}

impl Tree<'_> {
    fn node(&self, row: &BlockDocumentRow, path: &mut Vec<String>) -> DocNode {
        let mut data = match json_text(&row.data, Value::Object(Map::new())) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if !self.include_secrets {
            let fields = self
                .graph
                .schemas
                .get(&row.block_schema_id)
                .map(|s| json_text(&s.fields, Value::Null))
                .unwrap_or(Value::Null);
            data = mask(&data, &secret_paths(&fields));
        }
        path.push(row.id.clone());
        let mut children = Vec::new();
        if path.len() <= MAX_ROUNDS {
            for r in self
                .refs
                .iter()
                .filter(|r| r.parent_block_document_id == row.id)
            {
                if path.contains(&r.reference_block_document_id) {
                    continue;
                }
                if let Some(child) = self.docs.get(&r.reference_block_document_id) {
                    children.push((r.name.clone(), self.node(child, path)));
                }
            }
        }
        path.pop();
        DocNode {
            row: row.clone(),
            block_type: self.types.get(&row.block_type_id).cloned(),
            data,
            children,
        }
    }
}

fn docs_cond<C>(c: &C, ws: &str, q: &DocumentQuery) -> Cond<block_documents::table, C::Backend>
where
    C: diesel_async::AsyncConnection,
    C::Backend: BlockFilterSql,
{
    let _ = backend(c);
    <C::Backend as BlockFilterSql>::block_documents_related(ws, q)
}

/// Documents matching the query, sorted and paged, with their nested documents.
pub async fn list(
    db: &Database,
    ws: &str,
    q: &DocumentQuery,
    sort: BlockDocumentSort,
    page: Option<Page>,
    include_secrets: bool,
) -> StorageResult<Vec<DocView>> {
    let mut conn = db.read().await?;
    let out = db_run!(conn, |c| {
        let cond = docs_cond(c, ws, q);
        let mut query = block_documents::table
            .filter(block_documents::workspace_id.eq(ws))
            .filter(cond)
            .select(BlockDocumentRow::as_select())
            .into_boxed();
        query = match sort {
            BlockDocumentSort::NameAsc => {
                query.order((block_documents::name.asc(), block_documents::id.asc()))
            }
            BlockDocumentSort::NameDesc => {
                query.order((block_documents::name.desc(), block_documents::id.desc()))
            }
            BlockDocumentSort::BlockTypeAndNameAsc => query.order((
                block_documents::block_type_name.asc(),
                block_documents::name.asc(),
                block_documents::id.asc(),
            )),
        };
        if let Some(p) = page {
            query = query.limit(p.limit).offset(p.offset);
        }
        let roots: Vec<BlockDocumentRow> = query.load(c).await?;
        load_views(c, ws, roots, include_secrets).await
    })?;
    Ok(out)
}

pub async fn count(db: &Database, ws: &str, q: &DocumentQuery) -> StorageResult<i64> {
    crate::count_in_workspace!(db, block_documents, ws, docs_cond(ws, q))
}

/// The first document matching `q` (by name).
async fn first(
    db: &Database,
    ws: &str,
    q: &DocumentQuery,
    include_secrets: bool,
) -> StorageResult<Option<DocView>> {
    let one = Page {
        limit: 1,
        offset: 0,
    };
    let found = list(
        db,
        ws,
        q,
        BlockDocumentSort::NameAsc,
        Some(one),
        include_secrets,
    )
    .await?;
    Ok(found.into_iter().next())
}

/// One document by id (anonymous or not).
pub async fn find(
    db: &Database,
    ws: &str,
    id: &str,
    include_secrets: bool,
) -> StorageResult<Option<DocView>> {
    let Ok(uuid) = uuid::Uuid::parse_str(id) else {
        return Ok(None);
    };
    let q = DocumentQuery {
        documents: BlockDocumentFilter {
            id: Some(AnyIds {
                any_: Some(vec![uuid]),
            }),
            ..BlockDocumentFilter::any()
        },
        ..Default::default()
    };
    first(db, ws, &q, include_secrets).await
}

/// One document by block type slug and name (anonymous or not).
pub async fn find_by_name(
    db: &Database,
    ws: &str,
    slug: &str,
    name: &str,
    include_secrets: bool,
) -> StorageResult<Option<DocView>> {
    let q = DocumentQuery {
        documents: BlockDocumentFilter {
            name: Some(NameAnyLike {
                any_: Some(vec![name.to_string()]),
                like_: None,
            }),
            ..BlockDocumentFilter::any()
        },
        types: Some(BlockTypeFilter {
            name: None,
            slug: Some(AnyStrings {
                any_: Some(vec![slug.to_string()]),
            }),
        }),
        schemas: None,
    };
    first(db, ws, &q, include_secrets).await
}

/// Creates a document (with its references) and returns it as read without secrets.
pub async fn create(db: &Database, ws: &str, new: NewDocument) -> BlockResult<DocView> {
    let name = match &new.name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => format!("anonymous-{}", uuid::Uuid::new_v4()),
    };
    let (own, refs) = separate_refs(new.data.clone())?;
    let mut conn = db.session().await?;
    let view = db_run!(conn, |c| {
        c.transaction::<_, BlockError, _>(async |c| {
            let exists = block_documents::table
                .filter(block_documents::workspace_id.eq(ws))
                .filter(block_documents::block_type_id.eq(&new.block_type_id))
                .filter(block_documents::name.eq(&name))
                .select(block_documents::id)
                .first::<String>(c)
                .await
                .optional()?;
            if exists.is_some() {
                return Err(BlockError::Conflict("Block already exists".into()));
            }
            let Some(block_type) = c.type_by_id(ws, &new.block_type_id).await? else {
                return Err(BlockError::Integrity);
            };
            if c.schema_by_id(ws, &new.block_schema_id).await?.is_none() {
                return Err(BlockError::Integrity);
            }
            let t = now();
            let row = BlockDocumentRow {
                id: new_id(),
                workspace_id: ws.to_string(),
                created: t,
                updated: t,
                name: name.clone(),
                data: to_text(&own),
                is_anonymous: new.is_anonymous,
                block_type_name: Some(block_type.name),
                block_type_id: new.block_type_id.clone(),
                block_schema_id: new.block_schema_id.clone(),
            };
            diesel::insert_into(block_documents::table)
                .values(&row)
                .execute(c)
                .await
                .map_err(|e| match e {
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ) => BlockError::Conflict("Block already exists".into()),
                    other => other.into(),
                })?;
            for (key, child) in &refs {
                add_ref(c, ws, &row.id, key, child).await?;
            }
            let views = load_views(c, ws, vec![row], false).await?;
            views
                .into_iter()
                .next()
                .ok_or(BlockError::Storage(crate::storage::StorageError::NotFound))
        })
        .await
    })?;
    Ok(view)
}

/// Updates a document's data (merging into the stored data unless told not to), its schema
/// and its references. Posted-back masks of secrets keep the stored secrets.
pub async fn update(db: &Database, ws: &str, id: &str, upd: DocumentUpdate) -> BlockResult<()> {
    let mut conn = db.session().await?;
    db_run!(conn, |c| {
        c.transaction::<_, BlockError, _>(async |c| {
            let Some(current) = c.doc_by_id(ws, id).await? else {
                return Err(BlockError::NotFound("Block document not found".into()));
            };
            let Some(data) = upd.data.clone() else {
                return Ok(());
            };
            let mut stored = match json_text(&current.data, Value::Object(Map::new())) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            let schema_fields = c
                .schema_by_id(ws, &current.block_schema_id)
                .await?
                .map(|s| json_text(&s.fields, Value::Null))
                .unwrap_or(Value::Null);
            let data = restore_masked(&data, &stored, &secret_paths(&schema_fields));
            let merged = if upd.merge_existing_data {
                stored.extend(data);
                stored
            } else {
                data
            };
            let (own, new_refs) = separate_refs(merged)?;
            let target = block_documents::table
                .filter(block_documents::workspace_id.eq(ws))
                .filter(block_documents::id.eq(id));
            diesel::update(target)
                .set((
                    block_documents::data.eq(to_text(&own)),
                    block_documents::updated.eq(now()),
                ))
                .execute(c)
                .await?;
            if let Some(schema_id) = upd
                .block_schema_id
                .as_deref()
                .filter(|s| *s != current.block_schema_id)
            {
                let Some(proposed) = c.schema_by_id(ws, schema_id).await? else {
                    return Err(BlockError::Integrity);
                };
                if proposed.block_type_id != current.block_type_id {
                    return Err(BlockError::Invalid(
                        "Must migrate block document to a block schema of the same block type."
                            .into(),
                    ));
                }
                diesel::update(target)
                    .set(block_documents::block_schema_id.eq(schema_id))
                    .execute(c)
                    .await?;
            }
            let existing = c.doc_refs(ws, &[id.to_string()]).await?;
            let mut kept: HashSet<String> = HashSet::new();
            for (name, child) in &new_refs {
                let same = existing.iter().find(|r| {
                    &r.name == name
                        && &r.reference_block_document_id == child
                        && !kept.contains(&r.id)
                });
                match same {
                    Some(r) => {
                        kept.insert(r.id.clone());
                    }
                    None => add_ref(c, ws, id, name, child).await?,
                }
            }
            for r in existing.iter().filter(|r| !kept.contains(&r.id)) {
                c.delete_doc_ref(&r.id).await?;
            }
            Ok(())
        })
        .await
    })
}

/// Deletes a document (references to it go with it); false when no such document.
pub async fn delete(db: &Database, ws: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.session().await?;
    let n = db_run!(conn, |c| {
        diesel::delete(
            block_documents::table
                .filter(block_documents::workspace_id.eq(ws))
                .filter(block_documents::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_split_from_the_data() {
        let data = json!({"a": 1, "child": {"$ref": {"block_document_id": "6d1f6a1e-64a6-4d4f-9d0c-3f3d0c7a9b10"}}});
        let (own, refs) =
            separate_refs(data.as_object().cloned().unwrap_or_default()).expect("splits");
        assert_eq!(Value::Object(own), json!({"a": 1}));
        assert_eq!(
            refs,
            vec![(
                "child".to_string(),
                "6d1f6a1e-64a6-4d4f-9d0c-3f3d0c7a9b10".to_string()
            )]
        );
        let bad = json!({"x": {"$ref": {}}});
        assert!(matches!(
            separate_refs(bad.as_object().cloned().unwrap_or_default()),
            Err(BlockError::Invalid(m)) if m == "Received block reference without a block_document_id in key x"
        ));
    }
}
