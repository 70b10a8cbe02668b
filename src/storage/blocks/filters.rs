//! The filter shapes of `/block_types/filter`, `/block_schemas/filter` and
//! `/block_documents/filter|count` (API.md §3.3) and their SQL conditions, written once and
//! expanded for both backends. Unknown keys inside a filter are rejected (422), as Prefect's
//! filter models forbid extras.

use diesel::prelude::*;
use serde::Deserialize;
use uuid::Uuid;

use super::schema::{block_documents, block_schemas, block_types};
use crate::storage::filters::{combine, lower, tag_pattern, Cond, Operator};

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

/// Condition builders per backend.
pub trait BlockFilterSql: diesel::backend::Backend + Sized + 'static {
    fn block_type(f: &BlockTypeFilter) -> Cond<block_types::table, Self>;
    fn block_schema(f: &BlockSchemaFilter) -> Cond<block_schemas::table, Self>;
    /// Block types matching the type filter that have a schema matching the schema filter.
    fn block_types_related(
        ws: &str,
        t: Option<&BlockTypeFilter>,
        s: Option<&BlockSchemaFilter>,
    ) -> Cond<block_types::table, Self>;
    /// Documents matching the document filter, of a matching type, with a matching schema.
    fn block_documents_related(ws: &str, q: &DocumentQuery) -> Cond<block_documents::table, Self>;
}

macro_rules! impl_block_filter_sql {
    ($db:ty) => {
        impl BlockFilterSql for $db {
            fn block_type(f: &BlockTypeFilter) -> Cond<block_types::table, Self> {
                let mut c: Vec<Cond<block_types::table, $db>> = Vec::new();
                if let Some(LikeFilter { like_: Some(l) }) = &f.name {
                    if !l.is_empty() {
                        c.push(Box::new(lower(block_types::name).like(like_pattern(l))));
                    }
                }
                if let Some(AnyStrings { any_: Some(v) }) = &f.slug {
                    c.push(Box::new(block_types::slug.eq_any(v.clone())));
                }
                combine!($db, block_types::table, Operator::And, c)
            }

            fn block_schema(f: &BlockSchemaFilter) -> Cond<block_schemas::table, Self> {
                let mut c: Vec<Cond<block_schemas::table, $db>> = Vec::new();
                if let Some(AnyIds { any_: Some(v) }) = &f.block_type_id {
                    c.push(Box::new(block_schemas::block_type_id.eq_any(uuids(v))));
                }
                if let Some(AllStrings { all_: Some(all) }) = &f.block_capabilities {
                    if !all.is_empty() {
                        let caps: Vec<Cond<block_schemas::table, $db>> = all
                            .iter()
                            .map(|cap| {
                                Box::new(
                                    block_schemas::capabilities
                                        .like(tag_pattern(cap))
                                        .escape('\\'),
                                ) as Cond<block_schemas::table, $db>
                            })
                            .collect();
                        c.push(combine!($db, block_schemas::table, Operator::And, caps));
                    }
                }
                if let Some(AnyIds { any_: Some(v) }) = &f.id {
                    c.push(Box::new(block_schemas::id.eq_any(uuids(v))));
                }
                if let Some(AnyStrings { any_: Some(v) }) = &f.version {
                    c.push(Box::new(block_schemas::version.eq_any(v.clone())));
                }
                combine!($db, block_schemas::table, f.operator, c)
            }

            fn block_types_related(
                ws: &str,
                t: Option<&BlockTypeFilter>,
                s: Option<&BlockSchemaFilter>,
            ) -> Cond<block_types::table, Self> {
                let mut c: Vec<Cond<block_types::table, $db>> = Vec::new();
                if let Some(t) = t {
                    c.push(<$db as BlockFilterSql>::block_type(t));
                }
                if let Some(s) = s {
                    let sub = block_schemas::table
                        .filter(block_schemas::workspace_id.eq(ws.to_string()))
                        .filter(<$db as BlockFilterSql>::block_schema(s))
                        .select(block_schemas::block_type_id)
                        .into_boxed::<$db>();
                    c.push(Box::new(block_types::id.eq_any(sub)));
                }
                combine!($db, block_types::table, Operator::And, c)
            }

            fn block_documents_related(
                ws: &str,
                q: &DocumentQuery,
            ) -> Cond<block_documents::table, Self> {
                let f = &q.documents;
                let mut own: Vec<Cond<block_documents::table, $db>> = Vec::new();
                if let Some(AnyIds { any_: Some(v) }) = &f.id {
                    own.push(Box::new(block_documents::id.eq_any(uuids(v))));
                }
                if let Some(EqBool { eq_: Some(b) }) = &f.is_anonymous {
                    own.push(Box::new(block_documents::is_anonymous.eq(*b)));
                }
                if let Some(AnyIds { any_: Some(v) }) = &f.block_type_id {
                    own.push(Box::new(block_documents::block_type_id.eq_any(uuids(v))));
                }
                if let Some(n) = &f.name {
                    if let Some(v) = &n.any_ {
                        own.push(Box::new(block_documents::name.eq_any(v.clone())));
                    }
                    if let Some(l) = n.like_.as_deref().filter(|l| !l.is_empty()) {
                        own.push(Box::new(lower(block_documents::name).like(like_pattern(l))));
                    }
                }
                let mut c: Vec<Cond<block_documents::table, $db>> =
                    vec![combine!($db, block_documents::table, f.operator, own)];
                if let Some(t) = &q.types {
                    let sub = block_types::table
                        .filter(block_types::workspace_id.eq(ws.to_string()))
                        .filter(<$db as BlockFilterSql>::block_type(t))
                        .select(block_types::id)
                        .into_boxed::<$db>();
                    c.push(Box::new(block_documents::block_type_id.eq_any(sub)));
                }
                if let Some(s) = &q.schemas {
                    let sub = block_schemas::table
                        .filter(block_schemas::workspace_id.eq(ws.to_string()))
                        .filter(<$db as BlockFilterSql>::block_schema(s))
                        .select(block_schemas::id)
                        .into_boxed::<$db>();
                    c.push(Box::new(block_documents::block_schema_id.eq_any(sub)));
                }
                combine!($db, block_documents::table, Operator::And, c)
            }
        }
    };
}

impl_block_filter_sql!(diesel::pg::Pg);
impl_block_filter_sql!(diesel::sqlite::Sqlite);

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
