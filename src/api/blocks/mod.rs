//! Blocks routes (`/block_types`, `/block_schemas`, `/block_documents`, `/block_capabilities`):
//! the shared wire shapes and helpers; one file per resource under `blocks/`. Every handler
//! first makes sure the workspace has the system block types (`storage::blocks::system`).
//! Secret values never reach a log line: handlers do not log bodies, and documents are masked
//! unless `include_secrets` is asked for.

mod block_documents;
mod block_schemas;
mod block_types;

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};

use super::common::present;
use crate::error::{ApiError, ApiResult, INTEGRITY_CONFLICT};
use crate::extract::Workspace;
use crate::state::AppState;
use crate::storage::blocks::documents::{DocNode, DocView};
use crate::storage::blocks::schemas::SchemaView;
use crate::storage::blocks::{system, BlockError, BlockTypeRow};
use crate::wire::{json_text, JsonText, Ts};

pub fn configure(cfg: &mut web::ServiceConfig) {
    block_types::configure(cfg);
    block_schemas::configure(cfg);
    block_documents::configure(cfg);
    cfg.route("/block_capabilities/", web::get().to(capabilities))
        .route("/block_capabilities", web::get().to(capabilities));
}

impl From<BlockError> for ApiError {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::NotFound(m) => ApiError::not_found(m),
            BlockError::Conflict(m) => ApiError::conflict(m),
            BlockError::Invalid(m) => ApiError::bad_request(m),
            BlockError::Forbidden(m) => ApiError::Detail(StatusCode::FORBIDDEN, m),
            BlockError::Integrity => ApiError::conflict(INTEGRITY_CONFLICT),
        }
    }
}

/// Registers the system block types in the request's workspace on its first blocks request.
pub(crate) async fn ready(state: &AppState, ws: &Workspace) -> ApiResult<()> {
    let db = &state.stores.orion;
    if system::registered(&mut db.read().await?, ws.id()).await? {
        return Ok(());
    }
    let ws = ws.id().clone();
    db.write(async move |c| system::ensure(c, &ws).await)
        .await?;
    Ok(())
}

/// `BlockType`.
#[derive(Serialize)]
pub struct BlockTypeOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    slug: &'a str,
    logo_url: Option<&'a str>,
    documentation_url: Option<&'a str>,
    description: Option<&'a str>,
    code_example: Option<&'a str>,
    is_protected: bool,
}

pub fn block_type_out(t: &BlockTypeRow) -> BlockTypeOut<'_> {
    BlockTypeOut {
        id: &t.id,
        created: Ts(&t.created),
        updated: Ts(&t.updated),
        name: &t.name,
        slug: &t.slug,
        logo_url: t.logo_url.as_deref(),
        documentation_url: t.documentation_url.as_deref(),
        description: t.description.as_deref(),
        code_example: t.code_example.as_deref(),
        is_protected: t.is_protected,
    }
}

/// `BlockSchema`, with its full fields (nested schemas' definitions included) and its type.
#[derive(Serialize)]
pub struct BlockSchemaOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    checksum: &'a str,
    fields: &'a Value,
    block_type_id: &'a str,
    block_type: Option<BlockTypeOut<'a>>,
    capabilities: JsonText<'a>,
    version: &'a str,
}

pub fn block_schema_out(s: &SchemaView) -> BlockSchemaOut<'_> {
    BlockSchemaOut {
        id: &s.row.id,
        created: Ts(&s.row.created),
        updated: Ts(&s.row.updated),
        checksum: &s.row.checksum,
        fields: &s.fields,
        block_type_id: &s.row.block_type_id,
        block_type: s.block_type.as_ref().map(block_type_out),
        capabilities: json_text(&s.row.capabilities, "[]"),
        version: &s.row.version,
    }
}

/// A nested document as `block_document_references` names it.
#[derive(Serialize)]
struct ReferenceOut<'a> {
    block_document: ReferencedOut<'a>,
}

#[derive(Serialize)]
struct ReferencedOut<'a> {
    id: &'a str,
    name: &'a str,
    block_type: Option<BlockTypeOut<'a>>,
    is_anonymous: bool,
    block_document_references: BTreeMap<&'a str, ReferenceOut<'a>>,
}

/// The data (with nested documents' data inline) and `block_document_references` of a node.
fn data_and_refs(node: &DocNode) -> (Map<String, Value>, BTreeMap<&str, ReferenceOut<'_>>) {
    let mut data = node.data.clone();
    let mut refs = BTreeMap::new();
    for (name, child) in &node.children {
        let (child_data, child_refs) = data_and_refs(child);
        data.insert(name.clone(), Value::Object(child_data));
        refs.insert(
            name.as_str(),
            ReferenceOut {
                block_document: ReferencedOut {
                    id: &child.row.id,
                    name: &child.row.name,
                    block_type: child.block_type.as_ref().map(block_type_out),
                    is_anonymous: child.row.is_anonymous,
                    block_document_references: child_refs,
                },
            },
        );
    }
    (data, refs)
}

/// `BlockDocument`: its data with nested documents inline, its schema and type, and the
/// nested documents it references.
#[derive(Serialize)]
pub struct BlockDocumentOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    data: Map<String, Value>,
    block_schema_id: &'a str,
    block_schema: Option<BlockSchemaOut<'a>>,
    block_type_id: &'a str,
    block_type_name: Option<&'a str>,
    block_type: Option<BlockTypeOut<'a>>,
    block_document_references: BTreeMap<&'a str, ReferenceOut<'a>>,
    is_anonymous: bool,
}

pub fn block_document_out(v: &DocView) -> BlockDocumentOut<'_> {
    let row = &v.node.row;
    let (data, refs) = data_and_refs(&v.node);
    BlockDocumentOut {
        id: &row.id,
        created: Ts(&row.created),
        updated: Ts(&row.updated),
        name: &row.name,
        data,
        block_schema_id: &row.block_schema_id,
        block_schema: v.schema.as_ref().map(block_schema_out),
        block_type_id: &row.block_type_id,
        block_type_name: row.block_type_name.as_deref(),
        block_type: v.node.block_type.as_ref().map(block_type_out),
        block_document_references: refs,
        is_anonymous: row.is_anonymous,
    }
}

/// A query parameter (the last occurrence), percent-decoded.
pub(crate) fn query_param(req: &HttpRequest, key: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .last()
}

/// `?include_secrets=`: pydantic's boolean words; anything else is a 422 naming the query.
pub(crate) fn include_secrets(req: &HttpRequest) -> ApiResult<bool> {
    match query_param(req, "include_secrets") {
        None => Ok(false),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" | "y" | "on" => Ok(true),
            "0" | "false" | "f" | "no" | "n" | "off" => Ok(false),
            _ => Err(ApiError::invalid(
                vec!["query".into(), "include_secrets".into()],
                "Input should be a valid boolean, unable to interpret input",
                "bool_parsing",
            )),
        },
    }
}

/// Parses a JSON body as `T` and keeps the raw value, so that the validation errors found
/// after parsing can echo the request body as Prefect's do.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> ApiResult<(T, Option<Value>)> {
    let value = crate::extract::json::parse::<T>(bytes)?;
    Ok((value, serde_json::from_slice(bytes).ok()))
}

/// Adds the request body to a validation error.
pub(crate) fn with_body(e: ApiError, raw: &Option<Value>) -> ApiError {
    match e {
        ApiError::Validation {
            loc,
            msg,
            kind,
            body: None,
        } => ApiError::Validation {
            loc,
            msg,
            kind,
            body: raw.clone().map(Box::new),
        },
        other => other,
    }
}

/// A required body field: absent is a 422 naming the field, as FastAPI reports it.
pub(crate) fn required<T>(field: &str, v: Option<T>) -> ApiResult<T> {
    v.ok_or_else(|| {
        ApiError::invalid(
            vec!["body".into(), field.into()],
            "Field required",
            "missing",
        )
    })
}

/// Prefect's `Name`: no `/ % & > <`, at least one character.
pub(crate) fn check_name(field: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() || name.chars().any(|c| "/%&><".contains(c)) {
        return Err(ApiError::invalid(
            vec!["body".into(), field.into()],
            "String should match pattern '^[^/%&><]+$'",
            "string_pattern_mismatch",
        ));
    }
    Ok(())
}

/// Lowercase letters, numbers and dashes only (block type slugs, block document names).
pub(crate) fn check_dashes(field: &str, what: &str, value: &str) -> ApiResult<()> {
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ApiError::invalid(
            vec!["body".into(), field.into()],
            format!(
                "Value error, {what} must only contain lowercase letters, numbers, and dashes."
            ),
            "value_error",
        ));
    }
    Ok(())
}

async fn capabilities(state: web::Data<AppState>, ws: Workspace) -> ApiResult<HttpResponse> {
    ready(&state, &ws).await?;
    let mut c = state.stores.orion.read().await?;
    let caps = crate::storage::blocks::schemas::capabilities(&mut c, ws.id()).await?;
    Ok(HttpResponse::Ok().json(caps))
}
