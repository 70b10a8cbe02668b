//! `/saved_searches`: the UI's named filter sets — upsert by name (PUT: 201 new, 200
//! replaced), read by id, list (by name), delete.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::common::to_text;
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathId};
use crate::extract::Workspace;
use crate::state::AppState;
use crate::storage::saved_searches::{self, SavedSearchRow};
use crate::wire::{json_text, JsonText, Ts};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/saved_searches/", web::put().to(create))
        .route("/saved_searches", web::put().to(create))
        .route("/saved_searches/filter", web::post().to(filter))
        .route("/saved_searches/{id}", web::get().to(read))
        .route("/saved_searches/{id}", web::delete().to(delete));
}

/// `SavedSearchFilter`: every key required; unknown keys are dropped, as Prefect does.
#[derive(Deserialize, Serialize)]
struct SearchFilter {
    object: String,
    property: String,
    #[serde(rename = "type")]
    filter_type: String,
    operation: String,
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedSearchCreate {
    name: String,
    #[serde(default)]
    filters: Vec<SearchFilter>,
}

/// `SavedSearch`.
#[derive(Serialize)]
pub struct SavedSearchOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    filters: JsonText<'a>,
}

impl<'a> From<&'a SavedSearchRow> for SavedSearchOut<'a> {
    fn from(r: &'a SavedSearchRow) -> Self {
        SavedSearchOut {
            id: &r.id,
            created: Ts(&r.created),
            updated: Ts(&r.updated),
            name: &r.name,
            filters: json_text(&r.filters, "[]"),
        }
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Saved search not found")
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<SavedSearchCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let now = crate::time::now().naive_utc();
    let row = SavedSearchRow {
        id: Uuid::new_v4().to_string(),
        workspace_id: ws.id().clone(),
        created: now,
        updated: now,
        name: b.name,
        filters: to_text(&b.filters),
    };
    let (stored, created) = state
        .stores
        .orion
        .write(async move |c| saved_searches::upsert(c, &row).await)
        .await?;
    let mut resp = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(resp.json(SavedSearchOut::from(&stored)))
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let row = saved_searches::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(SavedSearchOut::from(&row)))
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<Paging>,
) -> ApiResult<HttpResponse> {
    let page = body.into_inner().page(&state)?;
    let mut c = state.stores.orion.read().await?;
    let rows = saved_searches::list(&mut c, ws.id(), page).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(SavedSearchOut::from).collect::<Vec<_>>()))
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.0, id.0);
    let deleted = state
        .stores
        .orion
        .write(async move |c| saved_searches::delete(c, &ws, &id).await)
        .await?;
    if !deleted {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}
