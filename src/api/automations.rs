//! `/automations`: what clients and Prefect's UIs call before automations exist in Orrery.
//! `prefect deploy` and `flow.serve()` clear a deployment's own automations before (re)creating
//! its triggers; the UIs list automations and, on a deployment's page, those related to it.
//! Orrery stores no automations yet (the automations issue adds them) and none can be created
//! (`POST /automations/` answers 404 like any unknown route), so the true answers are: nothing
//! owned to delete (202), an empty list, a count of 0.

use actix_web::{web, HttpResponse};
use serde_json::{Map, Value};

use crate::extract::json::JsonOrDefault;
use crate::extract::params::PathResourceId;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/automations/owned-by/{resource_id}",
        web::delete().to(delete_owned),
    )
    .route(
        "/automations/related-to/{resource_id}",
        web::get().to(related_to),
    )
    .route("/automations/filter", web::post().to(filter))
    .route("/automations/count", web::post().to(count));
}

async fn delete_owned(_resource: PathResourceId) -> HttpResponse {
    HttpResponse::Accepted().finish()
}

/// `GET /automations/related-to/{resource_id}`: the automations whose triggers or actions
/// name the resource (none can exist yet).
async fn related_to(_resource: PathResourceId) -> HttpResponse {
    HttpResponse::Ok().json(Vec::<Value>::new())
}

/// `POST /automations/filter` (a body of sort, offset, limit and an automation filter).
async fn filter(_body: JsonOrDefault<Map<String, Value>>) -> HttpResponse {
    HttpResponse::Ok().json(Vec::<Value>::new())
}

/// `POST /automations/count`.
async fn count(_body: JsonOrDefault<Map<String, Value>>) -> HttpResponse {
    HttpResponse::Ok().json(0)
}
