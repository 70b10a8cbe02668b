//! Block documents: unique by (block type, name) within a workspace. Fields of the data that
//! reference another document (`{"$ref": {"block_document_id": ...}}`) are stored as
//! references and come back inline, with `block_document_references`, as Prefect returns
//! them. Secret fields are masked unless secrets are asked for. Anonymous documents get a
//! generated name and are hidden from lists unless asked for.

use std::collections::{HashMap, HashSet};

mod write;

pub use write::{create, delete, update};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Map, Value};

use super::definitions::SchemaGraph;
use super::filters;
use super::queries::{doc_refs, docs_by_ids, schema_graph, types_by_ids, MAX_ROUNDS};
use super::schema::block_documents;
use super::schemas::{views, SchemaView};
use super::secrets::{mask, secret_paths};
use super::{json_text, BlockDocumentRefRow, BlockDocumentRow, BlockTypeRow};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::blocks::{
    AnyIds, AnyStrings, BlockDocumentFilter, BlockDocumentSort, BlockTypeFilter, DocumentQuery,
    NameAnyLike,
};
use crate::query::Page;
use crate::storage::{Conn, StorageResult};

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

/// Builds the views of `roots` (in their order): loads nested documents, their types and the
/// schemas, and masks secrets unless `include_secrets`.
async fn load_views(
    c: &mut Conn,
    ws: &WorkspaceId,
    roots: Vec<BlockDocumentRow>,
    include_secrets: bool,
) -> StorageResult<Vec<DocView>> {
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
        let found = doc_refs(c, ws, &frontier).await?;
        let missing: Vec<String> = found
            .iter()
            .map(|r| r.reference_block_document_id.clone())
            .filter(|id| !docs.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for row in docs_by_ids(c, ws, &missing).await? {
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
    let types: HashMap<String, BlockTypeRow> = types_by_ids(c, ws, &type_ids)
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
    let graph = schema_graph(c, ws, &schema_ids).await?;
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

/// Documents matching the query, sorted and paged, with their nested documents.
pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    q: &DocumentQuery,
    sort: BlockDocumentSort,
    page: Option<Page>,
    include_secrets: bool,
) -> StorageResult<Vec<DocView>> {
    let roots: Vec<BlockDocumentRow> = db_run!(c, |c| {
        let cond = filters::block_documents_related(ws, q);
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
        query.load(c).await
    })?;
    load_views(c, ws, roots, include_secrets).await
}

pub async fn count(c: &mut Conn, ws: &WorkspaceId, q: &DocumentQuery) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = filters::block_documents_related(ws, q);
        block_documents::table
            .filter(block_documents::workspace_id.eq(ws))
            .filter(cond)
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}

/// The first document matching `q` (by name).
async fn first(
    c: &mut Conn,
    ws: &WorkspaceId,
    q: &DocumentQuery,
    include_secrets: bool,
) -> StorageResult<Option<DocView>> {
    let one = Page {
        limit: 1,
        offset: 0,
    };
    let found = list(
        c,
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
    c: &mut Conn,
    ws: &WorkspaceId,
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
    first(c, ws, &q, include_secrets).await
}

/// One document by block type slug and name (anonymous or not).
pub async fn find_by_name(
    c: &mut Conn,
    ws: &WorkspaceId,
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
    first(c, ws, &q, include_secrets).await
}
