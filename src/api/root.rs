//! Root routes: health, readiness, versions, hello and the CSRF token endpoint (§1.5–1.7 of
//! API.md). These answer before migrations finish; everything else waits for readiness.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{API_VERSION, PREFECT_VERSION};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/version", web::get().to(version))
        .route("/hello", web::get().to(hello))
        .route("/admin/version", web::get().to(admin_version))
        .route("/csrf-token", web::get().to(csrf_token));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(true)
}

/// 200 once migrations are done and every configured store and broker answers; 503 otherwise.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.check_ready().await {
        Ok(stores) => {
            let stores: serde_json::Map<String, serde_json::Value> = stores
                .into_iter()
                .map(|(name, state)| (name.to_string(), json!(state)))
                .collect();
            HttpResponse::Ok().json(json!({"message": "OK", "stores": stores}))
        }
        Err(reason) => {
            tracing::debug!(%reason, "not ready");
            HttpResponse::ServiceUnavailable().json(json!({ "message": reason }))
        }
    }
}

async fn version() -> HttpResponse {
    HttpResponse::Ok().json(API_VERSION)
}

async fn admin_version() -> HttpResponse {
    HttpResponse::Ok().json(PREFECT_VERSION)
}

async fn hello() -> HttpResponse {
    HttpResponse::Ok().json("👋")
}

#[derive(Deserialize)]
struct CsrfQuery {
    client: Option<String>,
}

/// CSRF protection is off (as on Prefect's default server): the client sees this 422 and stops
/// asking. The `client` parameter is still required, as Prefect requires it.
async fn csrf_token(query: web::Query<CsrfQuery>) -> ApiResult<HttpResponse> {
    if query.client.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            vec!["query".into(), "client".into()],
            "Field required",
            "missing",
        ));
    }
    Err(ApiError::unprocessable("CSRF protection is disabled."))
}
