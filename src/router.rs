//! Host-based routing. Requests for `server.api_host` get the API only; for `server.app_host`,
//! the UI only (its `/api/...` answers 404 JSON: the page calls the API host, never its own);
//! any other host gets the single-host layout where `/api/...` is the API and the rest is the
//! UI. Host names match without regard to case or port. `--roles` decides whether the API and
//! the UI are mounted at all (health and readiness always are, for probes). Browsers on the app
//! host (and `server.cors_origins`) may call the API: [`cors`].

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::{from_fn, Next};
use actix_web::{guard, web, Error, HttpResponse};

use crate::api;
use crate::error::ApiError;
use crate::settings::host_name;
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
                .guard(host_guard(host))
                .configure(|c| mount_api(c, roles.api))
                .default_service(web::to(not_found)),
        );
    }
    if let Some(host) = state.settings.app_host() {
        let ui = roles.ui;
        cfg.service(
            web::scope("")
                .guard(host_guard(host))
                .service(web::scope("/api").default_service(web::to(not_found)))
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

/// The request's host name (from `Host`, or the URI of an HTTP/2 request).
fn request_host(head: &actix_web::dev::RequestHead) -> Option<&str> {
    head.headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| head.uri.authority().map(|a| a.as_str()))
        .map(host_name)
}

/// Matches requests for `host`, whatever the case of the name or the port.
fn host_guard(host: &str) -> impl guard::Guard {
    let host = host_name(host).to_ascii_lowercase();
    guard::fn_guard(move |ctx| {
        request_host(ctx.head()).is_some_and(|h| h.eq_ignore_ascii_case(&host))
    })
}

/// CORS: a request from an origin [`Settings::cors_allows`](crate::settings::Settings::cors_allows)
/// gets `Access-Control-Allow-Origin` (the origin itself), and its preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) 204 with the methods and headers it asked for. Other origins
/// get no CORS headers, so the browser keeps their pages out.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let allowed = match (&origin, req.app_data::<web::Data<AppState>>()) {
        (Some(o), Some(state)) => state.settings.cors_allows(o),
        _ => false,
    };
    let Some(origin) = origin.filter(|_| allowed) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let origin = HeaderValue::from_str(&origin).ok();
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let asked_headers = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned();
        let mut resp = HttpResponse::NoContent();
        if let Some(o) = origin {
            resp.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, o));
        }
        resp.insert_header((
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .insert_header((header::VARY, "Origin"));
        if let Some(h) = asked_headers {
            resp.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, h));
        }
        let (req, _) = req.into_parts();
        return Ok(ServiceResponse::new(req, resp.finish()).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    if let Some(o) = origin {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(res.map_into_left_body())
}

fn mount_api(cfg: &mut web::ServiceConfig, full: bool) {
    cfg.service(
        web::scope("/api")
            .wrap(from_fn(api::check_api_version))
            .wrap(from_fn(crate::auth::middleware::authenticate))
            .configure(|c| {
                if full {
                    crate::auth::me::configure(c);
                    crate::auth::user_keys::configure(c);
                    crate::auth::session::configure(c);
                    api::webhooks::configure_receiver(c);
                    // Account routes before the workspace scope, whose prefix would take
                    // `/accounts/{a}/workspaces/filter` and `/accounts/{a}/workspaces/{w}`.
                    crate::auth::accounts::configure(c);
                    crate::api::event_queries::configure_account(c);
                    api::configure(c, crate::auth::access::configure)
                } else {
                    api::root::configure(c)
                }
            })
            .default_service(web::to(not_found)),
    );
    if full {
        // Incoming webhooks' public URLs, at the API host's root as Prefect Cloud's are (and
        // under `/api`, through the scope above).
        cfg.configure(api::webhooks::configure_receiver);
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("Not Found"))
}
