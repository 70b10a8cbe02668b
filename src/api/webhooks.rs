//! Incoming webhooks, Prefect Cloud's (no open-source server has them): `/webhooks/` to create
//! (201), read, replace (PUT, 204), enable or disable (PATCH, 204), delete, list (`/filter`) and
//! rotate the URL (`/{id}/rotate`); and the public receiver, `/hooks/{slug}` (also under `/api`),
//! that turns any request into an event of the webhook's workspace through its Jinja template —
//! the request's `body` (JSON and forms parsed, text as it came), `headers` (lower-case names),
//! `method` and `query` — answering 204, or 400 with the reason (also reported as a
//! `prefect-cloud.webhook.failed` event to the workspace). A webhook with a service account
//! accepts only requests that carry one of that account's API keys.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::events::automations::templates;
use crate::events::Event;
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathId};
use crate::extract::Workspace;
use crate::state::AppState;
use crate::storage::webhooks::{self as store, WebhookRow};
use crate::wire::Ts;

/// Characters of a webhook's slug (Prefect Cloud's are 22).
const SLUG_CHARS: usize = 22;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/", web::post().to(create))
        .route("/webhooks", web::post().to(create))
        .route("/webhooks/filter", web::post().to(filter))
        .route("/webhooks/{id}", web::get().to(read))
        .route("/webhooks/{id}", web::put().to(replace))
        .route("/webhooks/{id}", web::patch().to(patch))
        .route("/webhooks/{id}", web::delete().to(delete))
        .route("/webhooks/{id}/rotate", web::post().to(rotate));
}

/// The public receiver, outside any workspace's URL.
pub fn configure_receiver(cfg: &mut web::ServiceConfig) {
    cfg.route("/hooks/{slug}", web::get().to(receive))
        .route("/hooks/{slug}", web::head().to(receive))
        .route("/hooks/{slug}", web::post().to(receive))
        .route("/hooks/{slug}", web::put().to(receive))
        .route("/hooks/{slug}", web::patch().to(receive))
        .route("/hooks/{slug}", web::delete().to(receive));
}

fn not_found() -> ApiError {
    ApiError::not_found("Webhook not found")
}

#[derive(Serialize)]
struct WebhookOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    description: &'a str,
    enabled: bool,
    template: &'a str,
    slug: &'a str,
    service_account_id: Option<&'a str>,
    workspace: &'a str,
}

fn out(r: &WebhookRow) -> WebhookOut<'_> {
    WebhookOut {
        id: &r.id,
        created: Ts(&r.created),
        updated: Ts(&r.updated),
        name: &r.name,
        description: &r.description,
        enabled: r.enabled,
        template: &r.template,
        slug: &r.slug,
        service_account_id: r.service_account_id.as_deref(),
        workspace: r.workspace_id.as_str(),
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct WebhookIn {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    enabled: bool,
    template: String,
    #[serde(default)]
    service_account_id: Option<uuid::Uuid>,
}

fn checked(b: &WebhookIn) -> ApiResult<()> {
    if b.name.trim().is_empty() {
        return Err(ApiError::invalid(
            vec!["body".into(), "name".into()],
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    templates::validate(&b.template).map_err(|e| {
        ApiError::invalid(
            vec!["body".into(), "template".into()],
            format!("Value error, Invalid template: {e}"),
            "value_error",
        )
    })
}

fn slug() -> ApiResult<String> {
    let mut s = crate::identity::keys::generate("").map_err(ApiError::Internal)?;
    s.truncate(SLUG_CHARS);
    Ok(s)
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<WebhookIn>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    checked(&b)?;
    let now = crate::time::now_naive();
    let row = WebhookRow {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: ws.id().clone(),
        created: now,
        updated: now,
        name: b.name,
        description: b.description,
        enabled: b.enabled,
        template: b.template,
        slug: slug()?,
        service_account_id: b.service_account_id.map(|u| u.to_string()),
    };
    let written = row.clone();
    state
        .stores
        .orion
        .write(async move |c| store::insert(c, &written).await)
        .await?;
    Ok(HttpResponse::Created().json(out(&row)))
}

async fn find(state: &AppState, ws: &Workspace, id: &PathId) -> ApiResult<WebhookRow> {
    let mut c = state.stores.orion.read().await?;
    store::find(&mut c, ws.id(), id)
        .await?
        .ok_or_else(not_found)
}

async fn save(state: &AppState, mut row: WebhookRow) -> ApiResult<WebhookRow> {
    row.updated = crate::time::now_naive();
    let written = row.clone();
    let found = state
        .stores
        .orion
        .write(async move |c| store::update(c, &written).await)
        .await?;
    if !found {
        return Err(not_found());
    }
    Ok(row)
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(out(&find(&state, &ws, &id).await?)))
}

async fn replace(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<WebhookIn>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    checked(&b)?;
    let mut row = find(&state, &ws, &id).await?;
    row.name = b.name;
    row.description = b.description;
    row.enabled = b.enabled;
    row.template = b.template;
    row.service_account_id = b.service_account_id.map(|u| u.to_string());
    save(&state, row).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    template: Option<String>,
}

async fn patch(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<WebhookPatch>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let mut row = find(&state, &ws, &id).await?;
    let whole = WebhookIn {
        name: b.name.unwrap_or(row.name.clone()),
        description: b.description.unwrap_or(row.description.clone()),
        enabled: b.enabled.unwrap_or(row.enabled),
        template: b.template.unwrap_or(row.template.clone()),
        service_account_id: None,
    };
    checked(&whole)?;
    row.name = whole.name;
    row.description = whole.description;
    row.enabled = whole.enabled;
    row.template = whole.template;
    save(&state, row).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let (w, key) = (ws.id().clone(), id.to_string());
    let found = state
        .stores
        .orion
        .write(async move |c| store::delete(c, &w, &key).await)
        .await?;
    if !found {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let mut row = find(&state, &ws, &id).await?;
    row.slug = slug()?;
    let row = save(&state, row).await?;
    Ok(HttpResponse::Ok().json(out(&row)))
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<Paging>,
) -> ApiResult<HttpResponse> {
    let page = body.into_inner().page(&state)?;
    let mut c = state.stores.orion.read().await?;
    let rows = store::list(&mut c, ws.id(), page.limit, page.offset).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(out).collect::<Vec<_>>()))
}

/// What a template sees of a request.
fn request_context(req: &HttpRequest, body: &[u8]) -> Result<Value, String> {
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect();
    let kind = headers
        .get("content-type")
        .map(String::as_str)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(body).to_string();
    let parsed = if body.is_empty() {
        Value::String(String::new())
    } else if kind.starts_with("application/json") || kind.ends_with("+json") {
        serde_json::from_slice(body)
            .map_err(|e| format!("The request body is not valid JSON: {e}"))?
    } else if kind.starts_with("application/x-www-form-urlencoded") {
        Value::Object(
            url::form_urlencoded::parse(body)
                .into_owned()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    } else {
        Value::String(text.clone())
    };
    Ok(json!({
        "body": parsed,
        "raw_body": text,
        "headers": headers,
        "method": req.method().as_str(),
        "query": query,
    }))
}

/// The event a request makes: the rendered template, with the id and time filled in when the
/// template leaves them out, and the webhook as a related resource.
fn event_of(hook: &WebhookRow, ctx: &Value) -> Result<Event, String> {
    let text = templates::render(&hook.template, ctx)
        .map_err(|e| format!("The template could not be rendered: {e}"))?;
    let mut v: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("The template must produce a JSON object".into()),
        Err(e) => return Err(format!("The template did not produce valid JSON: {e}")),
    };
    v.entry("id").or_insert_with(|| json!(uuid::Uuid::new_v4()));
    v.entry("occurred")
        .or_insert_with(|| json!(crate::time::now()));
    let related = v.entry("related").or_insert_with(|| json!([]));
    if let Value::Array(r) = related {
        r.push(json!({
            "prefect.resource.id": format!("prefect-cloud.webhook.{}", hook.id),
            "prefect.resource.name": hook.name,
            "prefect.resource.role": "webhook",
        }));
    }
    let event: Event = serde_json::from_value(Value::Object(v))
        .map_err(|e| format!("The template's event is not valid: {e}"))?;
    event.validate()?;
    Ok(event)
}

/// Reports a request the webhook could not turn into an event, to its workspace.
async fn failed(state: &AppState, hook: &WebhookRow, reason: &str, ctx: &Value) {
    let event = Event {
        occurred: crate::time::now(),
        event: "prefect-cloud.webhook.failed".into(),
        resource: [
            (
                "prefect.resource.id".to_string(),
                format!("prefect-cloud.webhook.{}", hook.id),
            ),
            ("prefect.resource.name".to_string(), hook.name.clone()),
        ]
        .into_iter()
        .collect(),
        related: Vec::new(),
        payload: Map::from_iter([
            ("reason".to_string(), json!(reason)),
            ("method".to_string(), ctx["method"].clone()),
            ("headers".to_string(), ctx["headers"].clone()),
            ("body".to_string(), ctx["raw_body"].clone()),
        ]),
        id: uuid::Uuid::now_v7(),
        follows: None,
    };
    crate::runs::events::emit(state, &hook.workspace_id, vec![event]).await;
}

/// Whether the request carries an API key of the webhook's service account.
async fn authorized(state: &AppState, req: &HttpRequest, account: &str) -> ApiResult<bool> {
    let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(false);
    };
    let Some(presented) = crate::identity::Presented::parse(header.to_str().unwrap_or_default())
    else {
        return Ok(false);
    };
    let client = req.peer_addr().map(|a| a.ip().to_string());
    let who = crate::identity::verify_from(state, presented, client.as_deref()).await?;
    Ok(who.is_some_and(|p| p.kind != "user" && p.id == account))
}

async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    slug: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let hook = store::by_slug(&mut c, &slug).await?;
    drop(c);
    let Some(hook) = hook.filter(|h| h.enabled) else {
        return Err(ApiError::not_found("Not Found"));
    };
    if let Some(account) = &hook.service_account_id {
        if !authorized(&state, &req, account).await? {
            return Err(ApiError::Detail(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "Invalid authentication credentials".into(),
            ));
        }
    }
    let ctx = match request_context(&req, &body) {
        Ok(ctx) => ctx,
        Err(reason) => {
            let bare = json!({"method": req.method().as_str(), "headers": {}, "raw_body": String::from_utf8_lossy(&body)});
            failed(&state, &hook, &reason, &bare).await;
            return Err(ApiError::bad_request(reason));
        }
    };
    let event = match event_of(&hook, &ctx) {
        Ok(e) => e,
        Err(reason) => {
            failed(&state, &hook, &reason, &ctx).await;
            return Err(ApiError::bad_request(reason));
        }
    };
    crate::events::ingest(&state, &hook.workspace_id, vec![event]).await?;
    Ok(HttpResponse::NoContent().finish())
}
