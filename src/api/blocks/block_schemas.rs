//! `/block_schemas`: create (201, or 200 with the existing schema of the same checksum and
//! version), read by id and by checksum (`?version=`), filter (newest first), delete (403 for
//! schemas of protected types).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{block_schema_out, parse_body, query_param, ready, required, with_body};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::JsonOrDefault;
use crate::extract::json::RawBody;
use crate::extract::params::{Paging, PathChecksum, PathId};
use crate::extract::Workspace;
use crate::query::blocks::BlockSchemaFilter;
use crate::state::AppState;
use crate::storage::blocks::schemas::{self, NewBlockSchema};
use crate::storage::blocks::DEFAULT_SCHEMA_VERSION;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/block_schemas/", web::post().to(create))
        .route("/block_schemas", web::post().to(create))
        .route("/block_schemas/filter", web::post().to(filter))
        .route(
            "/block_schemas/checksum/{checksum}",
            web::get().to(read_by_checksum),
        )
        .route("/block_schemas/{id}", web::get().to(read))
        .route("/block_schemas/{id}", web::delete().to(delete));
}

fn default_version() -> String {
    DEFAULT_SCHEMA_VERSION.to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockSchemaCreate {
    #[serde(default)]
    fields: Map<String, Value>,
    #[serde(default)]
    block_type_id: Option<Uuid>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default = "default_version")]
    version: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListBody {
    block_schemas: Option<BlockSchemaFilter>,
    #[serde(flatten)]
    paging: Paging,
}

fn not_found() -> ApiError {
    ApiError::not_found("Block schema not found")
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    RawBody(bytes): RawBody,
) -> ApiResult<HttpResponse> {
    let (body, raw) = parse_body::<BlockSchemaCreate>(&bytes)?;
    let block_type_id =
        required("block_type_id", body.block_type_id).map_err(|e| with_body(e, &raw))?;
    ready(&state, &ws).await?;
    let new = NewBlockSchema {
        fields: Value::Object(body.fields),
        block_type_id: block_type_id.to_string(),
        capabilities: body.capabilities,
        version: body.version,
    };
    let ws = ws.id().clone();
    let (view, created) = state
        .stores
        .orion
        .write(async move |c| schemas::create(c, &ws, &new).await)
        .await?;
    let mut resp = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(resp.json(block_schema_out(&view)))
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    ready(&state, &ws).await?;
    let mut c = state.stores.orion.read().await?;
    let view = schemas::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(block_schema_out(&view)))
}

async fn read_by_checksum(
    state: web::Data<AppState>,
    ws: Workspace,
    checksum: PathChecksum,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    ready(&state, &ws).await?;
    let version = query_param(&req, "version");
    let mut c = state.stores.orion.read().await?;
    let view = schemas::find_by_checksum(&mut c, ws.id(), &checksum, version.as_deref())
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(block_schema_out(&view)))
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
    let views = schemas::list(&mut c, ws.id(), body.block_schemas.as_ref(), page).await?;
    Ok(HttpResponse::Ok().json(views.iter().map(block_schema_out).collect::<Vec<_>>()))
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    ready(&state, &ws).await?;
    let (ws, id) = (ws.id().clone(), id.to_string());
    state
        .stores
        .orion
        .write(async move |c| schemas::delete(c, &ws, &id).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
