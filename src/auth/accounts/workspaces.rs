//! Workspaces of an account: create, filter, read, change, and delete (at once in nebula, its
//! rows in the background).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::identity::audit::{self, Change};
use crate::identity::AccountRole;
use crate::state::AppState;
use crate::storage::identities::{self, WorkspaceRow};

// ---- workspaces ----

pub(super) fn workspace_json(w: &WorkspaceRow) -> Value {
    json!({
        "id": w.id,
        "created": ts(w.created),
        "updated": ts(w.updated),
        "account_id": w.account_id,
        "name": w.name,
        "handle": w.handle,
        "description": w.description,
        "default_workspace_role_id": null,
        "is_public": false,
    })
}

#[derive(Deserialize)]
pub(super) struct WorkspaceCreate {
    name: String,
    handle: String,
    #[serde(default)]
    description: Option<String>,
}

pub(super) async fn create_workspace(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<WorkspaceCreate>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    let name = valid_name(&b.name, "name")?;
    valid_handle(&b.handle, "handle")?;
    let id = Uuid::new_v4().to_string();
    let (ws_id, account_id, handle) = (id.clone(), a.id.clone(), b.handle.clone());
    let description = valid_description(b.description)?.unwrap_or_default();
    let t = now();
    write(
        &state,
        "A workspace with this handle already exists",
        async move |c| {
            identities::insert_workspace(c, &ws_id, &account_id, &handle, &name, t).await?;
            identities::update_workspace(c, &ws_id, None, None, Some(&description), t).await
        },
    )
    .await?;
    let mut c = state.stores.nebula.read().await?;
    let w = identities::workspace(&mut c, &a.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Workspace not found"))?;
    drop(c);
    audit::record(
        &state,
        caller(&req).as_ref(),
        &[Change {
            kind: "workspace",
            id: &w.id,
            name: &w.handle,
            action: "created",
            account_id: &a.id,
            workspace_id: Some(&w.id),
            payload: json!({"name": w.name, "handle": w.handle}),
        }],
    )
    .await;
    Ok(HttpResponse::Created().json(workspace_json(&w)))
}

#[derive(Deserialize, Default)]
pub(super) struct WorkspaceFilterBody {
    #[serde(default)]
    workspaces: Option<WorkspaceFilter>,
    #[serde(flatten)]
    paging: Paging,
}

#[derive(Deserialize, Default)]
pub(super) struct WorkspaceFilter {
    #[serde(default)]
    id: Option<AnyOf>,
    #[serde(default)]
    handle: Option<AnyOf>,
    #[serde(default)]
    name: Option<AnyOf>,
}

/// The workspace ids a caller that is only a member may see (`None`: every one).
pub(super) fn visible(req: &HttpRequest) -> Option<Vec<String>> {
    let p = caller(req)?;
    match p.account_role {
        AccountRole::Owner | AccountRole::Admin => None,
        AccountRole::Member => Some(
            p.roles
                .iter()
                .filter(|(_, held)| !held.is_empty())
                .map(|(ws, _)| ws.clone())
                .collect(),
        ),
    }
}

pub(super) async fn filter_workspaces(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonOrDefault<WorkspaceFilterBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    let page = b.paging.page()?;
    let f = b.workspaces.unwrap_or_default();
    let handles = f.handle.as_ref().and_then(|h| h.any_.clone());
    let mut ids = visible(&req);
    if let Some(want) = f.id.as_ref().and_then(|i| i.any_.clone()) {
        let want: Vec<String> = want.iter().map(|s| s.to_ascii_lowercase()).collect();
        ids = Some(match ids {
            Some(v) => v.into_iter().filter(|i| want.contains(i)).collect(),
            None => want,
        });
    }
    let mut c = state.stores.nebula.read().await?;
    let rows = identities::list_workspaces(&mut c, &a.id, handles.as_deref(), ids.as_deref(), page)
        .await?;
    let out: Vec<Value> = rows
        .iter()
        .filter(|w| keep(&f.name, &w.name))
        .map(workspace_json)
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Workspace `{id}` of the path's account, if the caller may see it (404 otherwise).
pub(super) async fn workspace_in(
    state: &AppState,
    req: &HttpRequest,
    account_id: &str,
) -> ApiResult<WorkspaceRow> {
    let id = path_id(req, "id");
    if visible(req).is_some_and(|v| !v.contains(&id)) {
        return Err(ApiError::not_found("Workspace not found"));
    }
    let mut c = state.stores.nebula.read().await?;
    identities::workspace(&mut c, account_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Workspace not found"))
}

pub(super) async fn read_workspace(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let w = workspace_in(&state, &req, &a.id).await?;
    Ok(HttpResponse::Ok().json(workspace_json(&w)))
}

#[derive(Deserialize)]
pub(super) struct WorkspaceUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    handle: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    default_workspace_role_id: Option<Value>,
}

pub(super) async fn update_workspace(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<WorkspaceUpdate>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let w = workspace_in(&state, &req, &a.id).await?;
    let b = body.into_inner();
    if b.default_workspace_role_id
        .as_ref()
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::invalid(
            vec!["body".into(), "default_workspace_role_id".into()],
            "Orrery grants workspace roles explicitly; there is no default role",
            "value_error",
        ));
    }
    let name = b
        .name
        .as_deref()
        .map(|n| valid_name(n, "name"))
        .transpose()?;
    if let Some(h) = &b.handle {
        valid_handle(h, "handle")?;
    }
    let (id, handle, description) = (
        w.id.clone(),
        b.handle.clone(),
        valid_description(b.description.clone())?,
    );
    write(
        &state,
        "A workspace with this handle already exists",
        async move |c| {
            identities::update_workspace(
                c,
                &id,
                name.as_deref(),
                handle.as_deref(),
                description.as_deref(),
                now(),
            )
            .await
        },
    )
    .await?;
    let w = workspace_in(&state, &req, &a.id).await?;
    audit::record(
        &state,
        caller(&req).as_ref(),
        &[Change {
            kind: "workspace",
            id: &w.id,
            name: &w.handle,
            action: "updated",
            account_id: &a.id,
            workspace_id: Some(&w.id),
            payload: json!({"name": w.name, "handle": w.handle, "description": w.description}),
        }],
    )
    .await;
    Ok(HttpResponse::Ok().json(workspace_json(&w)))
}

/// Removes the workspace at once (it stops resolving within seconds on every replica) and
/// leaves its runs, logs, events and the rest to the background deletion
/// (`services::workspace_deletion`).
pub(super) async fn delete_workspace(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let w = workspace_in(&state, &req, &a.id).await?;
    if w.id == crate::storage::accounts::DEFAULT_WORKSPACE_ID {
        return Err(ApiError::conflict(
            "The default workspace cannot be deleted: plain /api URLs resolve to it",
        ));
    }
    let (account_id, id) = (a.id.clone(), w.id.clone());
    let gone = write(&state, "", async move |c| {
        c.transaction(async move |c| identities::delete_workspace(c, &account_id, &id, now()).await)
            .await
    })
    .await?;
    if !gone {
        return Err(ApiError::not_found("Workspace not found"));
    }
    state.forget_workspace(&a.id, &w.id);
    audit::record(
        &state,
        caller(&req).as_ref(),
        &[Change {
            kind: "workspace",
            id: &w.id,
            name: &w.handle,
            action: "deleted",
            account_id: &a.id,
            workspace_id: None,
            payload: json!({"name": w.name, "handle": w.handle}),
        }],
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}
