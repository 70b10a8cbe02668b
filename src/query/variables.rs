//! The filter and sorts of `/variables/filter|count`.

use serde::Deserialize;
use uuid::Uuid;

use super::Operator;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VariableIdFilter {
    pub any_: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VariableNameFilter {
    pub any_: Option<Vec<String>>,
    pub like_: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VariableTagsFilter {
    pub operator: Operator,
    pub all_: Option<Vec<String>>,
    pub is_null_: Option<bool>,
}

/// `VariableFilter` (API.md §3.3).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VariableFilter {
    pub operator: Operator,
    pub id: Option<VariableIdFilter>,
    pub name: Option<VariableNameFilter>,
    pub tags: Option<VariableTagsFilter>,
}

/// `VariableSort` (default `NAME_ASC`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VariableSort {
    CreatedDesc,
    UpdatedDesc,
    NameDesc,
    #[default]
    NameAsc,
}
