//! `/automations` (API.md §2, Automations): create (201), read, replace (PUT, 204), pause and
//! resume (PATCH `{"enabled"}`, 204), delete (204), filter, count, the automations related to a
//! resource and the deletion of those a resource owns (202, what `prefect deploy` and
//! `flow.serve()` do before re-creating a deployment's triggers), and `/templates/validate`.
//! Each change emits `prefect.automation.created|updated|deleted` with the automation as
//! payload, as the 3.9.1 server does.

use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::events::automations::model::{Action, AutomationIn, Trigger};
use crate::events::automations::templates;
use crate::events::Event;
use crate::extract::json::{parse, Json, JsonOrDefault};
use crate::extract::params::{Paging, PathId, PathResourceId};
use crate::extract::Workspace;
use crate::ids::WorkspaceId;
use crate::query::automations::{AutomationFilter, AutomationSort};
use crate::state::AppState;
use crate::storage::automations::{self as store, AutomationRow};
use crate::wire::Ts;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/automations/", web::post().to(create))
        .route("/automations", web::post().to(create))
        .route(
            "/automations/owned-by/{resource_id}",
            web::delete().to(delete_owned),
        )
        .route(
            "/automations/related-to/{resource_id}",
            web::get().to(related_to),
        )
        .route("/automations/filter", web::post().to(filter))
        .route("/automations/count", web::post().to(count))
        .route(
            "/automations/templates/validate",
            web::post().to(validate_template),
        )
        .route("/templates/validate", web::post().to(validate_template))
        .route("/automations/{id}", web::get().to(read))
        .route("/automations/{id}", web::put().to(replace))
        .route("/automations/{id}", web::patch().to(patch))
        .route("/automations/{id}", web::delete().to(delete));
}

fn not_found() -> ApiError {
    ApiError::not_found("Automation not found")
}

/// `Automation`, as stored.
#[derive(Serialize)]
pub struct AutomationOut<'a> {
    name: &'a str,
    description: &'a str,
    enabled: bool,
    tags: Value,
    trigger: Value,
    actions: Value,
    actions_on_trigger: Value,
    actions_on_resolve: Value,
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
}

fn json_of(text: &str, empty: Value) -> Value {
    serde_json::from_str(text).unwrap_or(empty)
}

impl<'a> From<&'a AutomationRow> for AutomationOut<'a> {
    fn from(r: &'a AutomationRow) -> Self {
        AutomationOut {
            name: &r.name,
            description: &r.description,
            enabled: r.enabled,
            tags: json_of(&r.tags, json!([])),
            trigger: json_of(&r.trigger, json!({})),
            actions: json_of(&r.actions, json!([])),
            actions_on_trigger: json_of(&r.actions_on_trigger, json!([])),
            actions_on_resolve: json_of(&r.actions_on_resolve, json!([])),
            id: &r.id,
            created: Ts(&r.created),
            updated: Ts(&r.updated),
        }
    }
}

/// A client's automation, parsed and checked (422 with the field's path otherwise), with new
/// trigger ids.
fn checked(body: &[u8]) -> ApiResult<AutomationIn> {
    let mut a: AutomationIn = parse(body)?;
    a.check()
        .map_err(|p| ApiError::invalid(p.loc, p.msg, "value_error"))?;
    a.trigger.reset_ids();
    Ok(a)
}

fn text<T: Serialize>(v: &T) -> ApiResult<String> {
    serde_json::to_string(v).map_err(|e| ApiError::Internal(e.to_string()))
}

fn row_of(
    ws: &WorkspaceId,
    id: String,
    a: &AutomationIn,
    created: NaiveDateTime,
    updated: NaiveDateTime,
) -> ApiResult<AutomationRow> {
    let actions = |list: &Vec<Action>| text(list);
    Ok(AutomationRow {
        id,
        workspace_id: ws.clone(),
        created,
        updated,
        name: a.name.clone(),
        description: a.description.clone(),
        enabled: a.enabled,
        tags: text(&a.tags)?,
        trigger: text::<Trigger>(&a.trigger)?,
        actions: actions(&a.actions)?,
        actions_on_trigger: actions(&a.actions_on_trigger)?,
        actions_on_resolve: actions(&a.actions_on_resolve)?,
    })
}

/// `prefect.automation.{action}` about `row`, its payload the automation.
fn lifecycle(row: &AutomationRow, action: &str) -> Event {
    let payload = match serde_json::to_value(AutomationOut::from(row)) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Event {
        occurred: crate::time::now(),
        event: format!("prefect.automation.{action}"),
        resource: [
            (
                "prefect.resource.id".to_string(),
                format!("prefect.automation.{}", row.id),
            ),
            ("prefect.resource.name".to_string(), row.name.clone()),
        ]
        .into_iter()
        .collect(),
        related: Vec::new(),
        payload,
        id: uuid::Uuid::now_v7(),
        follows: None,
    }
}

async fn emit(state: &AppState, ws: &WorkspaceId, rows: &[AutomationRow], action: &str) {
    let events = rows.iter().map(|r| lifecycle(r, action)).collect();
    crate::runs::events::emit(state, ws, events).await;
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let a = checked(&body)?;
    let now = crate::time::now_naive();
    let row = row_of(ws.id(), uuid::Uuid::new_v4().to_string(), &a, now, now)?;
    let mut related: Vec<(String, bool)> = a
        .action_resources()
        .into_iter()
        .map(|r| (r, false))
        .collect();
    if let Some(owner) = a.owner_resource.as_ref().filter(|o| !o.is_empty()) {
        related.retain(|(r, _)| r != owner);
        related.push((owner.clone(), true));
    }
    let saved = row.clone();
    state
        .stores
        .orion
        .transaction(async move |c| store::insert(c, &saved, &related).await)
        .await?;
    emit(&state, ws.id(), std::slice::from_ref(&row), "created").await;
    Ok(HttpResponse::Created().json(AutomationOut::from(&row)))
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let row = store::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(AutomationOut::from(&row)))
}

async fn replace(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let a = checked(&body)?;
    if a.owner_resource.is_some() {
        return Err(ApiError::invalid(
            vec!["body".into(), "owner_resource".into()],
            "Extra inputs are not permitted",
            "extra_forbidden",
        ));
    }
    let mut c = state.stores.orion.read().await?;
    let old = store::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(not_found)?;
    drop(c);
    let row = row_of(ws.id(), old.id, &a, old.created, crate::time::now_naive())?;
    let resources = a.action_resources();
    let saved = row.clone();
    let found = state
        .stores
        .orion
        .transaction(async move |c| store::replace(c, &saved, &resources).await)
        .await?;
    if !found {
        return Err(not_found());
    }
    emit(&state, ws.id(), std::slice::from_ref(&row), "updated").await;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialUpdate {
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

async fn patch(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<PartialUpdate>,
) -> ApiResult<HttpResponse> {
    set_enabled(&state, ws.id(), &id, body.into_inner().enabled).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Turns automation `id` on or off (`prefect.automation.updated`); 404 when there is none.
pub(crate) async fn set_enabled(
    state: &AppState,
    ws: &WorkspaceId,
    id: &str,
    enabled: bool,
) -> ApiResult<()> {
    let (w, key) = (ws.clone(), id.to_string());
    let now = crate::time::now_naive();
    let found = state
        .stores
        .orion
        .write(async move |c| store::set_enabled(c, &w, &key, enabled, now).await)
        .await?;
    if !found {
        return Err(not_found());
    }
    let mut c = state.stores.orion.read().await?;
    if let Some(row) = store::find(&mut c, ws, id).await? {
        drop(c);
        emit(state, ws, &[row], "updated").await;
    }
    Ok(())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let (w, key) = (ws.id().clone(), id.to_string());
    let deleted = state
        .stores
        .orion
        .transaction(async move |c| store::delete(c, &w, &key).await)
        .await?
        .ok_or_else(not_found)?;
    emit(&state, ws.id(), &[deleted], "deleted").await;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListBody {
    sort: Option<AutomationSort>,
    automations: Option<AutomationFilter>,
    #[serde(flatten)]
    paging: Paging,
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<ListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let page = b.paging.page(&state)?;
    let mut c = state.stores.orion.read().await?;
    let rows = store::list(
        &mut c,
        ws.id(),
        &b.automations.unwrap_or_default(),
        b.sort.unwrap_or_default(),
        page,
    )
    .await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(AutomationOut::from).collect::<Vec<_>>()))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CountBody {
    automations: Option<AutomationFilter>,
}

async fn count(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<CountBody>,
) -> ApiResult<HttpResponse> {
    let f = body.into_inner().automations.unwrap_or_default();
    let mut c = state.stores.orion.read().await?;
    Ok(HttpResponse::Ok().json(store::count(&mut c, ws.id(), &f).await?))
}

/// `GET /automations/related-to/{resource_id}`: automations owned by the resource or whose
/// actions run it.
async fn related_to(
    state: web::Data<AppState>,
    ws: Workspace,
    resource: PathResourceId,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let rows = store::related_to(&mut c, ws.id(), &resource, false).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(AutomationOut::from).collect::<Vec<_>>()))
}

/// `DELETE /automations/owned-by/{resource_id}` (202): the automations the resource owns that
/// were created before this request.
async fn delete_owned(
    state: web::Data<AppState>,
    ws: Workspace,
    resource: PathResourceId,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let owned = store::related_to(&mut c, ws.id(), &resource, true).await?;
    drop(c);
    let cutoff = crate::time::now_naive();
    let mut deleted = Vec::new();
    for row in owned.into_iter().filter(|r| r.created <= cutoff) {
        let (w, key) = (ws.id().clone(), row.id.clone());
        if let Some(d) = state
            .stores
            .orion
            .transaction(async move |c| store::delete(c, &w, &key).await)
            .await?
        {
            deleted.push(d);
        }
    }
    emit(&state, ws.id(), &deleted, "deleted").await;
    Ok(HttpResponse::Accepted().finish())
}

/// `POST /templates/validate`: a JSON string; 204 when it parses, else 422
/// `{"error": {"line", "message", "source"}}`.
async fn validate_template(body: web::Bytes) -> ApiResult<HttpResponse> {
    let text: String = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        parse(&body)?
    };
    Ok(match templates::validate(&text) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => HttpResponse::UnprocessableEntity().json(json!({
            "error": {"line": e.line, "message": e.message, "source": text}
        })),
    })
}
