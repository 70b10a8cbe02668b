//! The block filters of [`crate::query::blocks`] (`/block_types/filter`, `/block_schemas/filter`,
//! `/block_documents/filter|count`) as [`Where`] conditions.

use uuid::Uuid;

use crate::col;
use crate::ids::WorkspaceId;
use crate::query::blocks::{
    AllStrings, AnyIds, AnyStrings, BlockSchemaFilter, BlockTypeFilter, DocumentQuery, EqBool,
    LikeFilter,
};
use crate::storage::filters::build::combine;
use crate::storage::filters::sql::Where;
use crate::storage::filters::tag_pattern;

fn like_pattern(s: &str) -> String {
    format!("%{}%", s.to_lowercase())
}

fn uuids(v: &[Uuid]) -> Vec<String> {
    v.iter().map(|u| u.to_string()).collect()
}

/// Block types matching the type filter.
pub fn block_type(f: &BlockTypeFilter) -> Where {
    let mut c = Vec::new();
    if let Some(LikeFilter { like_: Some(l) }) = &f.name {
        if !l.is_empty() {
            c.push(Where::ilike(
                col!(block_types::name),
                like_pattern(l),
                false,
            ));
        }
    }
    if let Some(AnyStrings { any_: Some(v) }) = &f.slug {
        c.push(Where::is_in(col!(block_types::slug), v.clone()));
    }
    Where::all(c)
}

/// Block schemas matching the schema filter (every capability asked for).
pub fn block_schema(f: &BlockSchemaFilter) -> Where {
    let mut c = Vec::new();
    if let Some(AnyIds { any_: Some(v) }) = &f.block_type_id {
        c.push(Where::is_in(col!(block_schemas::block_type_id), uuids(v)));
    }
    if let Some(AllStrings { all_: Some(all) }) = &f.block_capabilities {
        let caps = all
            .iter()
            .map(|cap| Where::like(col!(block_schemas::capabilities), tag_pattern(cap)))
            .collect();
        c.push(Where::all(caps));
    }
    if let Some(AnyIds { any_: Some(v) }) = &f.id {
        c.push(Where::is_in(col!(block_schemas::id), uuids(v)));
    }
    if let Some(AnyStrings { any_: Some(v) }) = &f.version {
        c.push(Where::is_in(col!(block_schemas::version), v.clone()));
    }
    combine(f.operator, c)
}

/// Block types matching the type filter that have a schema matching the schema filter.
pub fn block_types_related(
    ws: &WorkspaceId,
    t: Option<&BlockTypeFilter>,
    s: Option<&BlockSchemaFilter>,
) -> Where {
    let mut c = Vec::new();
    if let Some(t) = t {
        c.push(block_type(t));
    }
    if let Some(s) = s {
        c.push(Where::in_select(
            col!(block_types::id),
            col!(block_schemas::block_type_id),
            Where::all(vec![
                Where::eq(col!(block_schemas::workspace_id), ws),
                block_schema(s),
            ]),
        ));
    }
    Where::all(c)
}

/// Documents matching the document filter, of a matching type, with a matching schema.
pub fn block_documents_related(ws: &WorkspaceId, q: &DocumentQuery) -> Where {
    let f = &q.documents;
    let mut own = Vec::new();
    if let Some(AnyIds { any_: Some(v) }) = &f.id {
        own.push(Where::is_in(col!(block_documents::id), uuids(v)));
    }
    if let Some(EqBool { eq_: Some(b) }) = &f.is_anonymous {
        own.push(Where::eq(col!(block_documents::is_anonymous), *b));
    }
    if let Some(AnyIds { any_: Some(v) }) = &f.block_type_id {
        own.push(Where::is_in(col!(block_documents::block_type_id), uuids(v)));
    }
    if let Some(n) = &f.name {
        if let Some(v) = &n.any_ {
            own.push(Where::is_in(col!(block_documents::name), v.clone()));
        }
        if let Some(l) = n.like_.as_deref().filter(|l| !l.is_empty()) {
            own.push(Where::ilike(
                col!(block_documents::name),
                like_pattern(l),
                false,
            ));
        }
    }
    let mut c = vec![combine(f.operator, own)];
    if let Some(t) = &q.types {
        c.push(Where::in_select(
            col!(block_documents::block_type_id),
            col!(block_types::id),
            Where::all(vec![
                Where::eq(col!(block_types::workspace_id), ws),
                block_type(t),
            ]),
        ));
    }
    if let Some(s) = &q.schemas {
        c.push(Where::in_select(
            col!(block_documents::block_schema_id),
            col!(block_schemas::id),
            Where::all(vec![
                Where::eq(col!(block_schemas::workspace_id), ws),
                block_schema(s),
            ]),
        ));
    }
    Where::all(c)
}
