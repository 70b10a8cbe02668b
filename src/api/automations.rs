//! `/automations`: what deployments need today — `prefect deploy` and `flow.serve()` clear a
//! deployment's own automations before (re)creating its triggers. Orrery stores no automations
//! yet (the automations issue adds them), so there is nothing owned to delete: 202 is the true
//! answer. Creating an automation is not offered yet and answers 404 like any unknown route.

use actix_web::HttpResponse;

use crate::extract::params::PathResourceId;

pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.route(
        "/automations/owned-by/{resource_id}",
        actix_web::web::delete().to(delete_owned),
    );
}

async fn delete_owned(_resource: PathResourceId) -> HttpResponse {
    HttpResponse::Accepted().finish()
}
