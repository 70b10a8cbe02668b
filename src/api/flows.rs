//! `/flows`: create (idempotent by name), read by id and by name, filter, count, paginate,
//! update, delete and bulk delete.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{page_of, paginated, to_text};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::Paging;
use crate::extract::params::{PathId, PathName};
use crate::extract::Workspace;
use crate::ids::kind::Flow;
use crate::ids::FlowId;
use crate::query::{FlowSort, Related};
use crate::state::AppState;
use crate::storage::flows;
use crate::storage::rows::FlowRow;
use crate::wire::{json_text, JsonText, Ts};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/flows/", web::post().to(create))
        .route("/flows", web::post().to(create))
        .route("/flows/filter", web::post().to(filter))
        .route("/flows/count", web::post().to(count))
        .route("/flows/paginate", web::post().to(paginate))
        .route("/flows/bulk_delete", web::post().to(bulk_delete))
        .route("/flows/name/{name}", web::get().to(read_by_name))
        .route("/flows/{id}", web::get().to(read))
        .route("/flows/{id}", web::patch().to(update))
        .route("/flows/{id}", web::delete().to(delete));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowCreate {
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowUpdate {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FlowListBody {
    #[serde(flatten)]
    related: Related,
    sort: Option<FlowSort>,
    #[serde(flatten)]
    paging: Paging,
    page: Option<i64>,
}

/// `Flow`.
#[derive(Serialize)]
pub struct FlowOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    tags: JsonText<'a>,
    labels: JsonText<'a>,
}

impl<'a> From<&'a FlowRow> for FlowOut<'a> {
    fn from(f: &'a FlowRow) -> Self {
        FlowOut {
            id: &f.id,
            created: Ts(&f.created),
            updated: Ts(&f.updated),
            name: &f.name,
            tags: json_text(&f.tags, "[]"),
            labels: json_text(&f.labels, "{}"),
        }
    }
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<FlowCreate>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid(
            vec!["body".into(), "name".into()],
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    let labels = body.labels.unwrap_or_default();
    let (ws, tags, labels) = (ws.0, to_text(&body.tags), to_text(&labels));
    let (flow, created) = state
        .stores
        .orion
        .write(async move |c| flows::insert_or_get(c, &ws, &body.name, &tags, &labels).await)
        .await?;
    let mut resp = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(resp.json(FlowOut::from(&flow)))
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let id: FlowId = id.typed();
    let mut c = state.stores.orion.read().await?;
    let flow = flows::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow not found"))?;
    Ok(HttpResponse::Ok().json(FlowOut::from(&flow)))
}

async fn read_by_name(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let flow = flows::find_by_name(&mut c, ws.id(), &name)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow not found"))?;
    Ok(HttpResponse::Ok().json(FlowOut::from(&flow)))
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<FlowListBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let page = body.paging.page(&state)?;
    let mut c = state.stores.orion.read().await?;
    let rows = flows::list(
        &mut c,
        ws.id(),
        &body.related,
        body.sort.unwrap_or_default(),
        page,
    )
    .await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(FlowOut::from).collect::<Vec<_>>()))
}

async fn count(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<FlowListBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let mut c = state.stores.orion.read().await?;
    let n = flows::count(&mut c, ws.id(), &body.related).await?;
    Ok(HttpResponse::Ok().json(n))
}

async fn paginate(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<FlowListBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let limit = crate::extract::params::limit(&state, body.paging.limit)?;
    let (page_no, page) = page_of(body.page, limit)?;
    let mut c = state.stores.orion.read().await?;
    let rows = flows::list(
        &mut c,
        ws.id(),
        &body.related,
        body.sort.unwrap_or_default(),
        page,
    )
    .await?;
    let n = flows::count(&mut c, ws.id(), &body.related).await?;
    let results = rows.iter().map(FlowOut::from).collect();
    Ok(HttpResponse::Ok().json(paginated(results, n, limit, page_no)))
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<FlowUpdate>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.0, id.typed::<Flow>());
    let found = match body.into_inner().tags {
        Some(tags) => {
            let tags = to_text(&tags);
            state
                .stores
                .orion
                .write(async move |c| flows::update_tags(c, &ws, &id, &tags).await)
                .await?
        }
        None => {
            let mut c = state.stores.orion.read().await?;
            flows::find(&mut c, &ws, &id).await?.is_some()
        }
    };
    if !found {
        return Err(ApiError::not_found("Flow not found"));
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.0, id.typed::<Flow>());
    let deleted = state
        .stores
        .orion
        .write(async move |c| flows::delete(c, &ws, &id).await)
        .await?;
    if !deleted {
        return Err(ApiError::not_found("Flow not found"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BulkDeleteBody {
    flows: Option<crate::query::FlowFilter>,
    limit: Option<i64>,
}

async fn bulk_delete(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<BulkDeleteBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let limit = crate::extract::params::limit(&state, body.limit)?;
    let related = Related {
        flows: body.flows,
        ..Default::default()
    };
    let ws = ws.0;
    let ids = state
        .stores
        .orion
        .transaction(async move |c| flows::bulk_delete(c, &ws, &related, limit).await)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "deleted": ids })))
}
