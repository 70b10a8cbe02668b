//! Workspace roles (the built-in ones and the account's custom roles) and account roles.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::identity::audit::{self, Change};
use crate::identity::{Role, ScopeSet};
use crate::state::AppState;
use crate::storage::identities::{self, WorkspaceRoleRow};
use crate::storage::StorageError;

// ---- workspace roles ----

pub(super) fn builtin_role_json(r: Role) -> Value {
    json!({
        "id": r.id(),
        "created": null,
        "updated": null,
        "account_id": null,
        "name": r.title(),
        "description": r.description(),
        "scopes": r.scopes().names(),
        "permissions": [],
        "inherited_role_id": null,
    })
}

pub(super) fn role_json(r: &WorkspaceRoleRow) -> Value {
    let own: Vec<String> = serde_json::from_str(&r.scopes).unwrap_or_default();
    json!({
        "id": r.id,
        "created": ts(r.created),
        "updated": ts(r.updated),
        "account_id": r.account_id,
        "name": r.name,
        "description": r.description,
        "scopes": own,
        "permissions": [],
        "inherited_role_id": r.inherited_role.as_deref().and_then(Role::parse).map(Role::id),
    })
}

/// The name a grant of `role` (a built-in name or a custom role's id) shows, and its id.
pub(crate) fn role_label(role: &str, custom: &[WorkspaceRoleRow]) -> (String, String) {
    match Role::parse(role) {
        Some(r) => (r.id().to_string(), r.title().to_string()),
        None => match custom.iter().find(|c| c.id == role) {
            Some(c) => (c.id.clone(), c.name.clone()),
            None => (role.to_string(), String::new()),
        },
    }
}

#[derive(Deserialize)]
pub(super) struct RoleBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    inherited_role_id: Option<String>,
}

/// Checks scopes and the inherited role: (scopes as JSON, the inherited built-in's name).
pub(super) fn role_fields(
    scopes: &[String],
    inherited: Option<&str>,
) -> ApiResult<(String, Option<String>)> {
    if let Err(e) = ScopeSet::of(scopes.iter().map(String::as_str)) {
        return Err(ApiError::invalid(
            vec!["body".into(), "scopes".into()],
            e,
            "value_error",
        ));
    }
    let inherited = match inherited {
        None => None,
        Some(id) => match Role::by_id_or_name(&id.to_ascii_lowercase()) {
            Some(r) => Some(r.as_str().to_string()),
            None => {
                return Err(ApiError::invalid(
                    vec!["body".into(), "inherited_role_id".into()],
                    "A custom role inherits one of the built-in roles",
                    "value_error",
                ))
            }
        },
    };
    let mut sorted = scopes.to_vec();
    sorted.sort();
    sorted.dedup();
    Ok((
        serde_json::to_string(&sorted).unwrap_or_else(|_| "[]".into()),
        inherited,
    ))
}

pub(super) async fn create_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<RoleBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    let name = valid_name(b.name.as_deref().unwrap_or(""), "name")?;
    if Role::ALL
        .iter()
        .any(|r| r.title().eq_ignore_ascii_case(&name))
    {
        return Err(ApiError::conflict("A built-in role has this name"));
    }
    let (scopes, inherited) = role_fields(
        &b.scopes.unwrap_or_default(),
        b.inherited_role_id.as_deref(),
    )?;
    let t = now();
    let row = WorkspaceRoleRow {
        id: Uuid::new_v4().to_string(),
        created: t,
        updated: t,
        account_id: a.id.clone(),
        name,
        description: valid_description(b.description)?.unwrap_or_default(),
        scopes,
        inherited_role: inherited,
    };
    let saved = row.clone();
    write(
        &state,
        "A workspace role with this name already exists",
        async move |c| identities::insert_workspace_role(c, &row).await,
    )
    .await?;
    audit_role(&state, &req, &saved, "created").await;
    Ok(HttpResponse::Created().json(role_json(&saved)))
}

pub(super) async fn audit_role(
    state: &AppState,
    req: &HttpRequest,
    r: &WorkspaceRoleRow,
    action: &str,
) {
    audit::record(
        state,
        caller(req).as_ref(),
        &[Change {
            kind: "workspace-role",
            id: &r.id,
            name: &r.name,
            action,
            account_id: &r.account_id,
            workspace_id: None,
            payload: json!({
                "scopes": serde_json::from_str::<Value>(&r.scopes).unwrap_or(Value::Null),
                "inherited_role": r.inherited_role,
            }),
        }],
    )
    .await;
}

#[derive(Deserialize, Default)]
pub(super) struct RoleFilterBody {
    #[serde(default)]
    workspace_roles: Option<RoleFilter>,
    #[serde(flatten)]
    paging: Paging,
}

#[derive(Deserialize, Default)]
pub(super) struct RoleFilter {
    #[serde(default)]
    pub(super) name: Option<AnyOf>,
    #[serde(default)]
    pub(super) id: Option<AnyOf>,
}

pub(super) async fn filter_roles(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonOrDefault<RoleFilterBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    let f = b.workspace_roles.unwrap_or_default();
    let mut c = state.stores.nebula.read().await?;
    let custom = identities::list_workspace_roles(&mut c, &a.id).await?;
    drop(c);
    let mut out: Vec<Value> = Role::ALL
        .into_iter()
        .rev()
        .filter(|r| keep(&f.name, r.title()) && keep(&f.id, r.id()))
        .map(builtin_role_json)
        .collect();
    out.extend(
        custom
            .iter()
            .filter(|r| keep(&f.name, &r.name) && keep(&f.id, &r.id))
            .map(role_json),
    );
    Ok(HttpResponse::Ok().json(b.paging.cut(out)?))
}

pub(super) async fn custom_role(
    state: &AppState,
    account_id: &str,
    id: &str,
) -> ApiResult<WorkspaceRoleRow> {
    let mut c = state.stores.nebula.read().await?;
    identities::workspace_role(&mut c, account_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Workspace role not found"))
}

pub(super) async fn read_role(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let id = path_id(&req, "id");
    if let Some(r) = Role::ALL.into_iter().find(|r| r.id() == id) {
        return Ok(HttpResponse::Ok().json(builtin_role_json(r)));
    }
    let r = custom_role(&state, &a.id, &id).await?;
    Ok(HttpResponse::Ok().json(role_json(&r)))
}

pub(super) fn builtin_is_fixed(id: &str) -> ApiResult<()> {
    if Role::ALL.iter().any(|r| r.id() == id) {
        return Err(ApiError::Detail(
            StatusCode::FORBIDDEN,
            "Built-in roles cannot be changed".into(),
        ));
    }
    Ok(())
}

pub(super) async fn update_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<RoleBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let id = path_id(&req, "id");
    builtin_is_fixed(&id)?;
    let mut r = custom_role(&state, &a.id, &id).await?;
    let b = body.into_inner();
    if let Some(n) = &b.name {
        r.name = valid_name(n, "name")?;
    }
    if let Some(d) = valid_description(b.description)? {
        r.description = d;
    }
    let current: Vec<String> = serde_json::from_str(&r.scopes).unwrap_or_default();
    let inherited_id = match &b.inherited_role_id {
        Some(i) => Some(i.clone()),
        None => r.inherited_role.clone(),
    };
    let (scopes, inherited) = role_fields(
        b.scopes.as_deref().unwrap_or(&current),
        inherited_id.as_deref(),
    )?;
    r.scopes = scopes;
    r.inherited_role = inherited;
    r.updated = now();
    let row = r.clone();
    write(
        &state,
        "A workspace role with this name already exists",
        async move |c| identities::update_workspace_role(c, &row).await,
    )
    .await?;
    // Credentials holding the role are re-read within `auth.cache_seconds`.
    audit_role(&state, &req, &r, "updated").await;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn delete_role(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let id = path_id(&req, "id");
    builtin_is_fixed(&id)?;
    let r = custom_role(&state, &a.id, &id).await?;
    let (account_id, rid) = (a.id.clone(), r.id.clone());
    let removed = write(&state, "", async move |c| {
        c.transaction(async move |c| {
            if identities::role_grants(c, &rid).await? > 0 {
                return Err(StorageError::Rejected(
                    "The role is granted in a workspace; revoke those grants first".into(),
                ));
            }
            identities::delete_workspace_role(c, &account_id, &rid).await
        })
        .await
    })
    .await
    .map_err(|e| match e {
        ApiError::Detail(StatusCode::UNPROCESSABLE_ENTITY, m) => ApiError::conflict(m),
        other => other,
    })?;
    if !removed {
        return Err(ApiError::not_found("Workspace role not found"));
    }
    audit_role(&state, &req, &r, "deleted").await;
    Ok(HttpResponse::NoContent().finish())
}
