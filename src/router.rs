//! Host-based routing. Requests for `server.api_host` get the API only; for `server.app_host`,
//! the UI only; any other host gets the single-host layout where `/api/...` is the API and the
//! rest is the UI. `--roles` decides whether the API and the UI are mounted at all (health and
//! readiness always are, for probes).

use actix_web::middleware::from_fn;
use actix_web::{guard, web, HttpResponse};

use crate::api;
use crate::error::ApiError;
use crate::state::AppState;

/// Registers every route of one HTTP worker's application.
pub fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<AppState>) {
    let roles = state.roles.clone();
    cfg.app_data(state.clone())
        .app_data(web::PayloadConfig::new(crate::extract::json::MAX_BODY))
        .app_data(web::JsonConfig::default().limit(crate::extract::json::MAX_BODY));
    if let Some(host) = state.settings.api_host() {
        cfg.service(
            web::scope("")
                .guard(guard::Host(host.to_ascii_lowercase()))
                .configure(|c| mount_api(c, roles.api))
                .default_service(web::to(not_found)),
        );
    }
    if let Some(host) = state.settings.app_host() {
        let ui = roles.ui;
        cfg.service(
            web::scope("")
                .guard(guard::Host(host.to_ascii_lowercase()))
                .configure(|c| {
                    if ui {
                        crate::ui::configure(c)
                    }
                })
                .default_service(web::to(not_found)),
        );
    }
    mount_api(cfg, roles.api);
    if roles.ui {
        crate::ui::configure(cfg);
    }
    cfg.default_service(web::to(not_found));
}

fn mount_api(cfg: &mut web::ServiceConfig, full: bool) {
    cfg.service(
        web::scope("/api")
            .wrap(from_fn(api::check_api_version))
            .configure(|c| {
                if full {
                    api::configure(c)
                } else {
                    api::root::configure(c)
                }
            })
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("Not Found"))
}
