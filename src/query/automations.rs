//! The filter and sorts of `/automations/filter|count` (Prefect's `AutomationFilter`).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::Operator;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AutomationIdFilter {
    pub any_: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AutomationNameFilter {
    pub any_: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AutomationCreatedFilter {
    #[serde(with = "crate::time::opt")]
    pub before_: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AutomationTagsFilter {
    pub operator: Operator,
    pub all_: Option<Vec<String>>,
    pub any_: Option<Vec<String>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AutomationFilter {
    pub operator: Operator,
    pub id: Option<AutomationIdFilter>,
    pub name: Option<AutomationNameFilter>,
    pub created: Option<AutomationCreatedFilter>,
    pub tags: Option<AutomationTagsFilter>,
}

/// `AutomationSort` (default `NAME_ASC`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AutomationSort {
    CreatedDesc,
    UpdatedDesc,
    #[default]
    NameAsc,
    NameDesc,
}
