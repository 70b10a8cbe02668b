//! The filters of `/block_types/filter`, `/block_schemas/filter` and
//! `/block_documents/filter|count`. Unknown keys inside a filter are rejected (422), as
//! Prefect's filter models forbid extras.

use serde::Deserialize;
use uuid::Uuid;

use super::Operator;

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
