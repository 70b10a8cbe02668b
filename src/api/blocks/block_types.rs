//! `/block_types`: create (409 on a taken slug, 403 on names starting with "Prefect"), read by
//! id and by slug, filter, update, delete (403 for protected types), the documents of a type
//! (all, or one by name), and `install_system_block_types`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{
    block_document_out, block_type_out, check_dashes, check_name, include_secrets, parse_body,
    present, ready, required, with_body,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::RawBody;
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathBlockDocumentName, PathId, PathSlug};
use crate::extract::Workspace;
use crate::query::blocks::{
    AnyIds, BlockDocumentFilter, BlockDocumentSort, BlockSchemaFilter, BlockTypeFilter,
    DocumentQuery,
};
use crate::state::AppState;
use crate::storage::blocks::types::{BlockTypeChanges, NewBlockType};
use crate::storage::blocks::{documents, system, types};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/block_types/", web::post().to(create))
        .route("/block_types", web::post().to(create))
        .route("/block_types/filter", web::post().to(filter))
        .route(
            "/block_types/install_system_block_types",
            web::post().to(install_system),
        )
        .route("/block_types/slug/{slug}", web::get().to(read_by_slug))
        .route(
            "/block_types/slug/{slug}/block_documents",
            web::get().to(documents_of_type),
        )
        .route(
            "/block_types/slug/{slug}/block_documents/name/{block_document_name}",
            web::get().to(document_by_name),
        )
        .route("/block_types/{id}", web::get().to(read))
        .route("/block_types/{id}", web::patch().to(update))
        .route("/block_types/{id}", web::delete().to(delete));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockTypeCreate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    logo_url: Option<String>,
    #[serde(default)]
    documentation_url: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    code_example: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockTypeUpdate {
    #[serde(default, deserialize_with = "present")]
    logo_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    documentation_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    code_example: Option<Option<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListBody {
    block_types: Option<BlockTypeFilter>,
    block_schemas: Option<BlockSchemaFilter>,
    #[serde(flatten)]
    paging: Paging,
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    RawBody(bytes): RawBody,
) -> ApiResult<HttpResponse> {
    let (body, raw) = parse_body::<BlockTypeCreate>(&bytes)?;
    let checked = (|| {
        let name = required("name", body.name)?;
        let slug = required("slug", body.slug)?;
        check_name("name", &name)?;
        check_dashes("slug", "Block type slug", &slug)?;
        Ok::<_, ApiError>((name, slug))
    })();
    let (name, slug) = checked.map_err(|e| with_body(e, &raw))?;
    ready(&state, &ws).await?;
    if name.to_lowercase().starts_with("prefect") {
        return Err(ApiError::Detail(
            StatusCode::FORBIDDEN,
            "Block type names beginning with 'Prefect' are reserved.".into(),
        ));
    }
    let new = NewBlockType {
        name,
        slug,
        logo_url: body.logo_url,
        documentation_url: body.documentation_url,
        description: body.description,
        code_example: body.code_example,
    };
    let ws = ws.id().clone();
    let row = state
        .stores
        .orion
        .write(async move |c| types::insert(c, &ws, &new).await)
        .await?;
    Ok(HttpResponse::Created().json(block_type_out(&row)))
}

fn type_not_found() -> ApiError {
    ApiError::not_found("Block type not found")
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    ready(&state, &ws).await?;
    let mut c = state.stores.orion.read().await?;
    let row = types::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(type_not_found)?;
    Ok(HttpResponse::Ok().json(block_type_out(&row)))
}

async fn read_by_slug(
    state: web::Data<AppState>,
    ws: Workspace,
    slug: PathSlug,
) -> ApiResult<HttpResponse> {
    ready(&state, &ws).await?;
    let mut c = state.stores.orion.read().await?;
    let row = types::find_by_slug(&mut c, ws.id(), &slug)
        .await?
        .ok_or_else(type_not_found)?;
    Ok(HttpResponse::Ok().json(block_type_out(&row)))
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
    let rows = types::list(
        &mut c,
        ws.id(),
        body.block_types.as_ref(),
        body.block_schemas.as_ref(),
        page,
    )
    .await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(block_type_out).collect::<Vec<_>>()))
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<BlockTypeUpdate>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    ready(&state, &ws).await?;
    let changes = BlockTypeChanges {
        logo_url: body.logo_url,
        documentation_url: body.documentation_url,
        description: body.description,
        code_example: body.code_example,
    };
    let (ws, id) = (ws.id().clone(), id.to_string());
    let updated = state
        .stores
        .orion
        .write(async move |c| types::update(c, &ws, &id, &changes).await)
        .await?;
    if !updated {
        return Err(type_not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    ready(&state, &ws).await?;
    let (ws, id) = (ws.id().clone(), id.to_string());
    state
        .stores
        .orion
        .write(async move |c| types::delete(c, &ws, &id).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn documents_of_type(
    state: web::Data<AppState>,
    ws: Workspace,
    slug: PathSlug,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let secrets = include_secrets(&req)?;
    ready(&state, &ws).await?;
    let mut c = state.stores.orion.read().await?;
    let block_type = types::find_by_slug(&mut c, ws.id(), &slug)
        .await?
        .ok_or_else(type_not_found)?;
    let q = DocumentQuery {
        documents: BlockDocumentFilter {
            block_type_id: Some(AnyIds {
                any_: uuid::Uuid::parse_str(&block_type.id).ok().map(|u| vec![u]),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let docs = documents::list(
        &mut c,
        ws.id(),
        &q,
        BlockDocumentSort::NameAsc,
        None,
        secrets,
    )
    .await?;
    Ok(HttpResponse::Ok().json(docs.iter().map(block_document_out).collect::<Vec<_>>()))
}

async fn document_by_name(
    state: web::Data<AppState>,
    ws: Workspace,
    slug: PathSlug,
    name: PathBlockDocumentName,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let secrets = include_secrets(&req)?;
    ready(&state, &ws).await?;
    let mut c = state.stores.orion.read().await?;
    let doc = documents::find_by_name(&mut c, ws.id(), &slug, &name, secrets)
        .await?
        .ok_or_else(|| ApiError::not_found("Block document not found"))?;
    Ok(HttpResponse::Ok().json(block_document_out(&doc)))
}

async fn install_system(state: web::Data<AppState>, ws: Workspace) -> ApiResult<HttpResponse> {
    ready(&state, &ws).await?;
    let ws = ws.id().clone();
    state
        .stores
        .orion
        .write(async move |c| system::register(c, &ws, true).await)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::Value::Null))
}
