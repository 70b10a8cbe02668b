//! The filter shapes of `/block_types/filter`, `/block_schemas/filter` and
//! `/block_documents/filter|count` (API.md §3.3) and their conditions as [`Where`] values. Unknown keys inside a filter are rejected (422), as Prefect's
//! filter models forbid extras.

use serde::Deserialize;
use uuid::Uuid;

use crate::col;
use crate::storage::filters::build::combine;
use crate::storage::filters::sql::Where;
use crate::storage::filters::{tag_pattern, Operator};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LikeFilter {
    pub like_: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnyStrings {
    pub any_: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnyIds {
    pub any_: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllStrings {
    pub all_: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EqBool {
    pub eq_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NameAnyLike {
    pub any_: Option<Vec<String>>,
    pub like_: Option<String>,
}

/// `BlockTypeFilter`: criteria are always ANDed (it has no operator).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockTypeFilter {
    pub name: Option<LikeFilter>,
    pub slug: Option<AnyStrings>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockSchemaFilter {
    pub operator: Operator,
    pub block_type_id: Option<AnyIds>,
    pub block_capabilities: Option<AllStrings>,
    pub id: Option<AnyIds>,
    pub version: Option<AnyStrings>,
}

/// `BlockDocumentFilter`. A missing `is_anonymous` means "not anonymous" (Prefect's default);
/// an explicit `null` means "either".
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockDocumentFilter {
    pub operator: Operator,
    pub id: Option<AnyIds>,
    pub is_anonymous: Option<EqBool>,
    pub block_type_id: Option<AnyIds>,
    pub name: Option<NameAnyLike>,
}

impl Default for BlockDocumentFilter {
    fn default() -> Self {
        BlockDocumentFilter {
            operator: Operator::And,
            id: None,
            is_anonymous: Some(EqBool { eq_: Some(false) }),
            block_type_id: None,
            name: None,
        }
    }
}

impl BlockDocumentFilter {
    /// Any document, anonymous or not (how reads by id and by name look documents up).
    pub fn any() -> Self {
        BlockDocumentFilter {
            is_anonymous: None,
            ..Default::default()
        }
    }
}

/// Sorts of `/block_documents/filter`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BlockDocumentSort {
    NameDesc,
    #[default]
    NameAsc,
    BlockTypeAndNameAsc,
}

/// Everything a block document query filters on.
#[derive(Debug, Clone, Default)]
pub struct DocumentQuery {
    pub documents: BlockDocumentFilter,
    pub types: Option<BlockTypeFilter>,
    pub schemas: Option<BlockSchemaFilter>,
}

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
    ws: &str,
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
pub fn block_documents_related(ws: &str, q: &DocumentQuery) -> Where {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_filters_exclude_anonymous_unless_told() {
        let f: BlockDocumentFilter = serde_json::from_str("{}").expect("parses");
        assert_eq!(f.is_anonymous.and_then(|a| a.eq_), Some(false));
        let f: BlockDocumentFilter =
            serde_json::from_str(r#"{"is_anonymous": null}"#).expect("parses");
        assert!(f.is_anonymous.is_none());
        assert!(serde_json::from_str::<BlockDocumentFilter>(r#"{"bogus": 1}"#).is_err());
    }
}
