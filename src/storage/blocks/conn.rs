//! The connection-level queries of the blocks feature, written once and implemented for both
//! backends' connections (so they can be called inside transactions and from generic code).

use std::collections::HashSet;
use std::future::Future;

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

/// How many levels of nested schemas or documents are followed at most.
pub const MAX_ROUNDS: usize = 64;

pub trait BlockConn: Send {
    /// The schemas `ids`, every schema they reference (transitively) and their block types.
    fn schema_graph(
        &mut self,
        ws: &str,
        ids: &[String],
    ) -> impl Future<Output = QueryResult<SchemaGraph>> + Send;
    /// The newest schema with `checksum` (and `version`, when given).
    fn newest_schema(
        &mut self,
        ws: &str,
        checksum: &str,
        version: Option<&str>,
    ) -> impl Future<Output = QueryResult<Option<BlockSchemaRow>>> + Send;
    fn schema_by_id(
        &mut self,
        ws: &str,
        id: &str,
    ) -> impl Future<Output = QueryResult<Option<BlockSchemaRow>>> + Send;
    fn insert_schema(
        &mut self,
        row: &BlockSchemaRow,
    ) -> impl Future<Output = QueryResult<()>> + Send;
    /// Records that `parent` nests `child` under `name` (once).
    fn link_schema(
        &mut self,
        ws: &str,
        parent: &str,
        child: &str,
        name: &str,
    ) -> impl Future<Output = QueryResult<()>> + Send;
    fn type_by_slug(
        &mut self,
        ws: &str,
        slug: &str,
    ) -> impl Future<Output = QueryResult<Option<BlockTypeRow>>> + Send;
    fn type_by_id(
        &mut self,
        ws: &str,
        id: &str,
    ) -> impl Future<Output = QueryResult<Option<BlockTypeRow>>> + Send;
    fn types_by_ids(
        &mut self,
        ws: &str,
        ids: &[String],
    ) -> impl Future<Output = QueryResult<Vec<BlockTypeRow>>> + Send;
    fn doc_by_id(
        &mut self,
        ws: &str,
        id: &str,
    ) -> impl Future<Output = QueryResult<Option<BlockDocumentRow>>> + Send;
    fn docs_by_ids(
        &mut self,
        ws: &str,
        ids: &[String],
    ) -> impl Future<Output = QueryResult<Vec<BlockDocumentRow>>> + Send;
    /// References whose parent is one of `parents`, oldest first.
    fn doc_refs(
        &mut self,
        ws: &str,
        parents: &[String],
    ) -> impl Future<Output = QueryResult<Vec<BlockDocumentRefRow>>> + Send;
    fn insert_doc_ref(
        &mut self,
        ws: &str,
        parent: &str,
        child: &str,
        name: &str,
    ) -> impl Future<Output = QueryResult<()>> + Send;
    fn delete_doc_ref(&mut self, id: &str) -> impl Future<Output = QueryResult<()>> + Send;
}

macro_rules! impl_block_conn {
    ($conn:ty) => {
        impl BlockConn for $conn {
            async fn schema_graph(&mut self, ws: &str, ids: &[String]) -> QueryResult<SchemaGraph> {
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
                        let rows: Vec<BlockSchemaRow> = block_schemas::table
                            .filter(block_schemas::workspace_id.eq(ws))
                            .filter(block_schemas::id.eq_any(&missing))
                            .select(BlockSchemaRow::as_select())
                            .load(self)
                            .await?;
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
                    let refs: Vec<BlockSchemaRefRow> = block_schema_references::table
                        .filter(block_schema_references::workspace_id.eq(ws))
                        .filter(block_schema_references::parent_block_schema_id.eq_any(&parents))
                        .order((
                            block_schema_references::created.asc(),
                            block_schema_references::id.asc(),
                        ))
                        .select(BlockSchemaRefRow::as_select())
                        .load(self)
                        .await?;
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
                let types = self.types_by_ids(ws, &type_ids).await?;
                graph.types = types.into_iter().map(|t| (t.id.clone(), t)).collect();
                Ok(graph)
            }

            async fn newest_schema(
                &mut self,
                ws: &str,
                checksum: &str,
                version: Option<&str>,
            ) -> QueryResult<Option<BlockSchemaRow>> {
                let mut q = block_schemas::table
                    .filter(block_schemas::workspace_id.eq(ws))
                    .filter(block_schemas::checksum.eq(checksum))
                    .into_boxed();
                if let Some(v) = version {
                    q = q.filter(block_schemas::version.eq(v));
                }
                q.order((block_schemas::created.desc(), block_schemas::id.desc()))
                    .select(BlockSchemaRow::as_select())
                    .first(self)
                    .await
                    .optional()
            }

            async fn schema_by_id(
                &mut self,
                ws: &str,
                id: &str,
            ) -> QueryResult<Option<BlockSchemaRow>> {
                block_schemas::table
                    .filter(block_schemas::workspace_id.eq(ws))
                    .filter(block_schemas::id.eq(id))
                    .select(BlockSchemaRow::as_select())
                    .first(self)
                    .await
                    .optional()
            }

            async fn insert_schema(&mut self, row: &BlockSchemaRow) -> QueryResult<()> {
                diesel::insert_into(block_schemas::table)
                    .values(row)
                    .execute(self)
                    .await
                    .map(|_| ())
            }

            async fn link_schema(
                &mut self,
                ws: &str,
                parent: &str,
                child: &str,
                name: &str,
            ) -> QueryResult<()> {
                let exists = block_schema_references::table
                    .filter(block_schema_references::workspace_id.eq(ws))
                    .filter(block_schema_references::parent_block_schema_id.eq(parent))
                    .filter(block_schema_references::reference_block_schema_id.eq(child))
                    .filter(block_schema_references::name.eq(name))
                    .select(block_schema_references::id)
                    .first::<String>(self)
                    .await
                    .optional()?;
                if exists.is_some() {
                    return Ok(());
                }
                let t = now();
                diesel::insert_into(block_schema_references::table)
                    .values(BlockSchemaRefRow {
                        id: new_id(),
                        workspace_id: ws.to_string(),
                        created: t,
                        updated: t,
                        name: name.to_string(),
                        parent_block_schema_id: parent.to_string(),
                        reference_block_schema_id: child.to_string(),
                    })
                    .execute(self)
                    .await
                    .map(|_| ())
            }

            async fn type_by_slug(
                &mut self,
                ws: &str,
                slug: &str,
            ) -> QueryResult<Option<BlockTypeRow>> {
                block_types::table
                    .filter(block_types::workspace_id.eq(ws))
                    .filter(block_types::slug.eq(slug))
                    .select(BlockTypeRow::as_select())
                    .first(self)
                    .await
                    .optional()
            }

            async fn type_by_id(
                &mut self,
                ws: &str,
                id: &str,
            ) -> QueryResult<Option<BlockTypeRow>> {
                let found = self.types_by_ids(ws, &[id.to_string()]).await?;
                Ok(found.into_iter().next())
            }

            async fn types_by_ids(
                &mut self,
                ws: &str,
                ids: &[String],
            ) -> QueryResult<Vec<BlockTypeRow>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                block_types::table
                    .filter(block_types::workspace_id.eq(ws))
                    .filter(block_types::id.eq_any(ids))
                    .select(BlockTypeRow::as_select())
                    .load(self)
                    .await
            }

            async fn doc_by_id(
                &mut self,
                ws: &str,
                id: &str,
            ) -> QueryResult<Option<BlockDocumentRow>> {
                let found = self.docs_by_ids(ws, &[id.to_string()]).await?;
                Ok(found.into_iter().next())
            }

            async fn docs_by_ids(
                &mut self,
                ws: &str,
                ids: &[String],
            ) -> QueryResult<Vec<BlockDocumentRow>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                block_documents::table
                    .filter(block_documents::workspace_id.eq(ws))
                    .filter(block_documents::id.eq_any(ids))
                    .select(BlockDocumentRow::as_select())
                    .load(self)
                    .await
            }

            async fn doc_refs(
                &mut self,
                ws: &str,
                parents: &[String],
            ) -> QueryResult<Vec<BlockDocumentRefRow>> {
                if parents.is_empty() {
                    return Ok(Vec::new());
                }
                block_document_references::table
                    .filter(block_document_references::workspace_id.eq(ws))
                    .filter(block_document_references::parent_block_document_id.eq_any(parents))
                    .order((
                        block_document_references::created.asc(),
                        block_document_references::id.asc(),
                    ))
                    .select(BlockDocumentRefRow::as_select())
                    .load(self)
                    .await
            }

            async fn insert_doc_ref(
                &mut self,
                ws: &str,
                parent: &str,
                child: &str,
                name: &str,
            ) -> QueryResult<()> {
                let t = now();
                diesel::insert_into(block_document_references::table)
                    .values(BlockDocumentRefRow {
                        id: new_id(),
                        workspace_id: ws.to_string(),
                        created: t,
                        updated: t,
                        name: name.to_string(),
                        parent_block_document_id: parent.to_string(),
                        reference_block_document_id: child.to_string(),
                    })
                    .execute(self)
                    .await
                    .map(|_| ())
            }

            async fn delete_doc_ref(&mut self, id: &str) -> QueryResult<()> {
                diesel::delete(
                    block_document_references::table.filter(block_document_references::id.eq(id)),
                )
                .execute(self)
                .await
                .map(|_| ())
            }
        }
    };
}

impl_block_conn!(diesel_async::AsyncPgConnection);
impl_block_conn!(crate::storage::SqliteConn);
