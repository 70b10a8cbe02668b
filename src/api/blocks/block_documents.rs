//! `/block_documents`: create (409 when the type already has a document of that name; an
//! anonymous document gets a generated name), read by id (`?include_secrets=`), filter, count,
//! update (merging into the stored data unless `merge_existing_data` is false) and delete.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    block_document_out, check_dashes, check_name, include_secrets, parse_body, ready, required,
    with_body,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::RawBody;
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathId};
use crate::extract::Workspace;
use crate::query::blocks::{
    BlockDocumentFilter, BlockDocumentSort, BlockSchemaFilter, BlockTypeFilter, DocumentQuery,
};
use crate::state::AppState;
use crate::storage::blocks::documents::{self, DocumentUpdate, NewDocument};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/block_documents/", web::post().to(create))
        .route("/block_documents", web::post().to(create))
        .route("/block_documents/filter", web::post().to(filter))
        .route("/block_documents/count", web::post().to(count))
        .route("/block_documents/{id}", web::get().to(read))
        .route("/block_documents/{id}", web::patch().to(update))
        .route("/block_documents/{id}", web::delete().to(delete));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockDocumentCreate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    data: Map<String, Value>,
    #[serde(default)]
    block_schema_id: Option<Uuid>,
    #[serde(default)]
    block_type_id: Option<Uuid>,
    #[serde(default)]
    is_anonymous: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockDocumentUpdate {
    #[serde(default)]
    block_schema_id: Option<Uuid>,
    /// A present `data` must be an object (`null` is a 422, as for Prefect's `Dict` field).
    #[serde(default, deserialize_with = "super::present")]
    data: Option<Map<String, Value>>,
    #[serde(default = "yes")]
    merge_existing_data: bool,
}

fn yes() -> bool {
    true
}

/// The body of `/block_documents/filter` and `/count`. The document filter defaults to
/// "not anonymous" when it is absent or null, as Prefect's does.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ListBody {
    block_documents: Option<BlockDocumentFilter>,
    block_types: Option<BlockTypeFilter>,
    block_schemas: Option<BlockSchemaFilter>,
    include_secrets: Option<bool>,
    sort: Option<BlockDocumentSort>,
    #[serde(flatten)]
    paging: Paging,
}

impl ListBody {
    fn query(&self) -> DocumentQuery {
        DocumentQuery {
            documents: self.block_documents.clone().unwrap_or_default(),
            types: self.block_types.clone(),
            schemas: self.block_schemas.clone(),
        }
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Block document not found")
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    RawBody(bytes): RawBody,
) -> ApiResult<HttpResponse> {
    let (body, raw) = parse_body::<BlockDocumentCreate>(&bytes)?;
    let checked = (|| {
        if !body.is_anonymous && body.name.as_deref().unwrap_or("").is_empty() {
            return Err(ApiError::invalid(
                vec!["body".into()],
                "Value error, Names must be provided for block documents.",
                "value_error",
            ));
        }
        if let Some(name) = &body.name {
            check_name("name", name)?;
            check_dashes("name", "Block document name", name)?;
        }
        let schema = required("block_schema_id", body.block_schema_id)?;
        let block_type = required("block_type_id", body.block_type_id)?;
        Ok((schema, block_type))
    })();
    let (block_schema_id, block_type_id) = checked.map_err(|e| with_body(e, &raw))?;
    ready(&state, &ws).await?;
    let new = NewDocument {
        name: body.name,
        data: body.data,
        block_schema_id: block_schema_id.to_string(),
        block_type_id: block_type_id.to_string(),
        is_anonymous: body.is_anonymous,
    };
    let ws = ws.id().clone();
    let view = state
        .stores
        .orion
        .write(async move |c| documents::create(c, &ws, &new).await)
        .await?;
    Ok(HttpResponse::Created().json(block_document_out(&view)))
}

async fn read(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let secrets = include_secrets(&req)?;
    ready(&state, &ws).await?;
    let mut c = state.stores.orion.read().await?;
    let view = documents::find(&mut c, ws.id(), &id, secrets)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(block_document_out(&view)))
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<ListBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let page = body.paging.page(&state)?;
    ready(&state, &ws).await?;
    let mut c = state.stores.orion.read().await?;
    let views = documents::list(
        &mut c,
        ws.id(),
        &body.query(),
        body.sort.unwrap_or_default(),
        Some(page),
        body.include_secrets.unwrap_or(false),
    )
    .await?;
    Ok(HttpResponse::Ok().json(views.iter().map(block_document_out).collect::<Vec<_>>()))
}

async fn count(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<ListBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    ready(&state, &ws).await?;
    let mut c = state.stores.orion.read().await?;
    let n = documents::count(&mut c, ws.id(), &body.query()).await?;
    Ok(HttpResponse::Ok().json(n))
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<BlockDocumentUpdate>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    ready(&state, &ws).await?;
    // With merging, only a posted `data` changes anything; without, an absent `data` is `{}`.
    let data = if body.merge_existing_data {
        body.data
    } else {
        Some(body.data.unwrap_or_default())
    };
    let upd = DocumentUpdate {
        block_schema_id: body.block_schema_id.map(|u| u.to_string()),
        data,
        merge_existing_data: body.merge_existing_data,
    };
    let (ws, id) = (ws.id().clone(), id.to_string());
    state
        .stores
        .orion
        .write(async move |c| documents::update(c, &ws, &id, &upd).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    ready(&state, &ws).await?;
    let (ws, id) = (ws.id().clone(), id.to_string());
    let deleted = state
        .stores
        .orion
        .write(async move |c| documents::delete(c, &ws, &id).await)
        .await?;
    if !deleted {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}
