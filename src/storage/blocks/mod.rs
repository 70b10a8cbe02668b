//! Blocks (orion): block types, block schemas (with the references between nested schemas),
//! block documents (with the references between nested documents), and the system block types
//! every workspace gets. All SQL of the blocks feature lives under this module; the pure rules
//! (checksums, schema definitions, secret masking) live beside it in `blocks/`.
//!
//! Tables are declared here rather than in `schema.rs`. Every row carries `workspace_id` and
//! every query filters on it. Document data is stored as compact JSON text; secret fields are
//! masked on the way out unless asked for, and never logged.

pub mod checksum;
pub mod definitions;
pub mod documents;
pub mod filters;
pub mod own;
pub mod queries;
pub mod schemas;
pub mod secrets;
pub mod system;
pub mod types;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{StorageError, StorageResult};

pub(crate) use crate::storage::schema;

use crate::ids::WorkspaceId;
use schema::{
    block_document_references, block_documents, block_schema_references, block_schemas, block_types,
};

/// The version of schemas created without one (Prefect's `DEFAULT_BLOCK_SCHEMA_VERSION`).
pub const DEFAULT_SCHEMA_VERSION: &str = "non-versioned";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = block_types)]
pub struct BlockTypeRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub slug: String,
    pub logo_url: Option<String>,
    pub documentation_url: Option<String>,
    pub description: Option<String>,
    pub code_example: Option<String>,
    pub is_protected: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = block_schemas)]
pub struct BlockSchemaRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub checksum: String,
    /// The fields as stored: without `block_schema_references` and without the definitions of
    /// nested blocks (both are rebuilt on read from the references).
    pub fields: String,
    pub capabilities: String,
    pub version: String,
    pub block_type_id: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = block_schema_references)]
pub struct BlockSchemaRefRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub parent_block_schema_id: String,
    pub reference_block_schema_id: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = block_documents)]
pub struct BlockDocumentRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    /// The document's own data, without the fields that reference other documents.
    pub data: String,
    pub is_anonymous: bool,
    pub block_type_name: Option<String>,
    pub block_type_id: String,
    pub block_schema_id: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = block_document_references)]
pub struct BlockDocumentRefRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub parent_block_document_id: String,
    pub reference_block_document_id: String,
}

/// Refusals of the blocks rules (beyond plain storage errors); the API maps each to the
/// reference server's status and message. They travel as [`StorageError::Blocks`], so a refusal
/// inside a transaction rolls it back like any storage error.
#[derive(Debug)]
pub enum BlockError {
    /// 404 with this detail.
    NotFound(String),
    /// 409 with this detail.
    Conflict(String),
    /// 400 with this detail.
    Invalid(String),
    /// 403 with this detail.
    Forbidden(String),
    /// 409 with Prefect's generic data-integrity message (a reference to a missing row).
    Integrity,
}

impl From<BlockError> for StorageError {
    fn from(e: BlockError) -> Self {
        StorageError::Blocks(e)
    }
}

/// The result of a blocks operation: a storage error or a refusal ([`StorageError::Blocks`]).
pub type BlockResult<T> = StorageResult<T>;

/// Parses a JSON text column (`default` if it is not JSON, which never happens for rows
/// Orrery wrote).
pub fn json_text(text: &str, default: serde_json::Value) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(default)
}

/// The current time as stored (microseconds, as both databases keep it).
pub fn now() -> NaiveDateTime {
    crate::time::now().naive_utc()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Compact JSON text of a value, for JSON columns.
pub fn to_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}
