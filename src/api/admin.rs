//! Small calls of API.md §7a: the server default result storage (`/admin/storage`), the
//! settings the client reads (`/admin/settings`), and collection views.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::json::Json;
use crate::extract::Workspace;
use crate::state::AppState;
use crate::storage::settings_kv;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/storage", web::get().to(read_storage))
        .route("/admin/storage", web::put().to(update_storage))
        .route("/admin/storage", web::delete().to(clear_storage))
        .route("/admin/settings", web::get().to(settings));
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

/// Prefect 3.9.1's settings with their defaults (`GET /api/admin/settings` of a reference server
/// started with no configuration; paths under its home written as `~/.prefect`): the shape the
/// client and Prefect's UIs read. [`settings`] puts Orrery's own values where it has them.
const PREFECT_SETTINGS: &str = include_str!("../../config/prefect-settings.json");

/// Sets the value at `path` of `v` (each step an existing object).
fn put(v: &mut Value, path: &[&str], value: Value) {
    let Some((last, steps)) = path.split_last() else {
        return;
    };
    let mut at = v;
    for step in steps {
        match at.get_mut(*step) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(obj) = at.as_object_mut() {
        obj.insert((*last).to_string(), value);
    }
}

/// `GET /admin/settings`: the reference's whole shape, with what Orrery serves in it — the API
/// and UI URLs of this request's host, the listener, the list limit, the database pool and
/// migration settings, whether the UI is served, CORS origins.
async fn settings(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut v: Value = serde_json::from_str(PREFECT_SETTINGS).unwrap_or_else(|_| json!({}));
    let s = &state.settings;
    let api_url = crate::extract::api_url(&req, &state);
    let ui_url = api_url.trim_end_matches("/api").to_string();
    let (host, port) = match s.server.bind.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse::<u16>().map_or(Value::Null, Value::from),
        ),
        None => (s.server.bind.clone(), Value::Null),
    };
    let cors = match s.server.cors_origins.trim() {
        "" => Value::Null,
        origins => Value::from(origins),
    };
    for (path, value) in [
        (&["server", "api", "host"][..], Value::from(host)),
        (&["server", "api", "port"], port),
        (
            &["server", "api", "default_limit"],
            json!(s.server.default_limit),
        ),
        (&["server", "api", "csrf_protection_enabled"], json!(false)),
        (&["server", "api", "cors_allowed_origins"], cors),
        (&["server", "analytics_enabled"], json!(false)),
        (
            &["server", "database", "migrate_on_start"],
            json!(s.database.migrate_on_start),
        ),
        (
            &["server", "database", "sqlalchemy", "pool_size"],
            json!(s.database.pool_size),
        ),
        (&["server", "ui", "enabled"], json!(state.roles.ui)),
        (&["server", "ui", "api_url"], json!(api_url)),
        (&["server", "ui", "serve_base"], json!("/")),
        (
            &["server", "ui", "static_directory"],
            match s.ui.dir.trim() {
                "" => Value::Null,
                dir => json!(dir),
            },
        ),
        (&["ui_url"], json!(ui_url)),
    ] {
        put(&mut v, path, value);
    }
    HttpResponse::Ok().json(v)
}
