//! The filters and sorts of `/artifacts/filter|count` and `/artifacts/latest/filter|count`.

use serde::Deserialize;
use uuid::Uuid;

use super::{Operator, Related};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AnyIdFilter {
    pub any_: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct KeyFilter {
    pub any_: Option<Vec<String>>,
    pub like_: Option<String>,
    pub exists_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TypeFilter {
    pub any_: Option<Vec<String>>,
    pub not_any_: Option<Vec<String>>,
}

/// `ArtifactFilter`, and `ArtifactCollectionFilter` (which adds `latest_id`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ArtifactFilter {
    pub operator: Operator,
    pub id: Option<AnyIdFilter>,
    pub latest_id: Option<AnyIdFilter>,
    pub key: Option<KeyFilter>,
    pub flow_run_id: Option<AnyIdFilter>,
    pub task_run_id: Option<AnyIdFilter>,
    #[serde(rename = "type")]
    pub artifact_type: Option<TypeFilter>,
}

/// `ArtifactSort` and `ArtifactCollectionSort` (default `ID_DESC`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArtifactSort {
    CreatedDesc,
    UpdatedDesc,
    #[default]
    IdDesc,
    KeyDesc,
    KeyAsc,
}

/// A list query: the artifact filter plus the related-object filters.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub artifacts: ArtifactFilter,
    pub related: Related,
}
