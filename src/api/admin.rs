//! Small calls of API.md §7a: the server default result storage (`/admin/storage`), the
//! settings the client reads (`/admin/settings`), and collection views.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::json::Json;
use crate::extract::params::PathView;
use crate::extract::Workspace;
use crate::state::AppState;
use crate::storage::settings_kv;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/storage", web::get().to(read_storage))
        .route("/admin/storage", web::put().to(update_storage))
        .route("/admin/storage", web::delete().to(clear_storage))
        .route("/admin/settings", web::get().to(settings))
        .route("/collections/views/{view}", web::get().to(collection_view));
}

/// The workspace setting behind `/admin/storage`.
const STORAGE_KEY: &str = "default_result_storage_block_id";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageUpdate {
    default_result_storage_block_id: Option<Uuid>,
}

async fn read_storage(state: web::Data<AppState>, ws: Workspace) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let id = settings_kv::find(&mut c, ws.id(), STORAGE_KEY).await?;
    Ok(HttpResponse::Ok().json(json!({ "default_result_storage_block_id": id })))
}

async fn update_storage(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<StorageUpdate>,
) -> ApiResult<HttpResponse> {
    let id = body
        .into_inner()
        .default_result_storage_block_id
        .map(|u| u.to_string());
    let (ws, value) = (ws.0, id.clone());
    state
        .stores
        .orion
        .write(async move |c| settings_kv::upsert(c, &ws, STORAGE_KEY, value.as_deref()).await)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "default_result_storage_block_id": id })))
}

async fn clear_storage(state: web::Data<AppState>, ws: Workspace) -> ApiResult<HttpResponse> {
    let ws = ws.0;
    state
        .stores
        .orion
        .write(async move |c| settings_kv::upsert(c, &ws, STORAGE_KEY, None).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The settings the client inspects (it reads `server.analytics_enabled`).
async fn settings(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "server": {
            "analytics_enabled": false,
            "api": { "default_limit": state.settings.server.default_limit },
            "csrf_protection_enabled": false,
        },
        "ui_url": null,
        "api_url": null,
    }))
}

/// Orrery cannot reach the collection registry (no outbound network is assumed), so views are
/// unknown; the client only needs them for worker types it does not have installed.
async fn collection_view(view: PathView) -> ApiResult<HttpResponse> {
    Err(ApiError::not_found(format!(
        "View {} not found in registry",
        view.0
    )))
}
