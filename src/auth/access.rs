//! Workspace access, in Prefect Cloud's shapes, under a workspace's URL
//! (`/api/accounts/{a}/workspaces/{w}/user_access/`, `bot_access/`, `team_access/`): who holds
//! which workspace role. The route table asks the `manage_workspace_*` scopes to change and the
//! `see_workspace_*` scopes to read. An access's id is its grantee's id.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::accounts::{caller, now, role_label, ts, write};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::Workspace;
use crate::identity::audit::{self, Change};
use crate::identity::{self, Principal, Role};
use crate::state::AppState;
use crate::storage::identities::{self, AccessRow, WorkspaceRow, SERVICE_ACCOUNT, TEAM, USER};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/user_access/", web::post().to(upsert_access))
        .route("/user_access", web::post().to(upsert_access))
        .route("/user_access/filter", web::post().to(filter_access))
        .route("/user_access/{id}", web::get().to(read_access))
        .route("/user_access/{id}", web::delete().to(delete_access))
        .route("/bot_access/", web::post().to(upsert_access))
        .route("/bot_access", web::post().to(upsert_access))
        .route("/bot_access/filter", web::post().to(filter_access))
        .route("/bot_access/{id}", web::get().to(read_access))
        .route("/bot_access/{id}", web::delete().to(delete_access))
        .route("/team_access/", web::put().to(upsert_access))
        .route("/team_access", web::put().to(upsert_access))
        .route("/team_access/filter", web::post().to(filter_access))
        .route("/team_access/{team_id}", web::delete().to(delete_access));
}

/// `user`, `service_account` or `team`, from the route's first segment.
fn kind_of(req: &HttpRequest) -> &'static str {
    let path = req.match_info().as_str();
    if path.contains("/bot_access") {
        SERVICE_ACCOUNT
    } else if path.contains("/team_access") {
        TEAM
    } else {
        USER
    }
}

fn id_field(kind: &str) -> &'static str {
    match kind {
        SERVICE_ACCOUNT => "bot_id",
        TEAM => "team_id",
        _ => "user_id",
    }
}

async fn workspace_row(state: &AppState, ws: &Workspace) -> ApiResult<WorkspaceRow> {
    let mut c = state.stores.nebula.read().await?;
    identities::workspace_by_id(&mut c, ws.id().as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("Workspace not found"))
}

/// An access row as Cloud shows it, with its grantee's names.
async fn access_json(
    state: &AppState,
    w: &WorkspaceRow,
    rows: &[AccessRow],
) -> ApiResult<Vec<Value>> {
    let mut c = state.stores.nebula.read().await?;
    let grants = rows
        .iter()
        .map(|r| (r.workspace_id.clone(), vec![r.role.clone()]))
        .collect();
    let custom = identities::custom_roles_in(&mut c, &grants).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (role_id, role_name) = role_label(&r.role, &custom);
        let mut v = json!({
            "id": r.actor_id,
            "created": ts(r.created),
            "updated": ts(r.created),
            "workspace_id": w.id,
            "workspace_role_id": role_id,
            "workspace_role_name": role_name,
        });
        match r.actor_kind.as_str() {
            USER => {
                let u = identities::user(&mut c, &w.account_id, &r.actor_id).await?;
                v["actor_id"] = json!(r.actor_id);
                v["user_id"] = json!(r.actor_id);
                v["email"] = json!(u.as_ref().map(|u| &u.email));
                v["first_name"] = json!(u.as_ref().map(|u| &u.name));
                v["last_name"] = json!("");
                v["handle"] =
                    json!(u
                        .as_ref()
                        .and_then(|u| u.email.split('@').next().map(str::to_string)));
            }
            SERVICE_ACCOUNT => {
                let b = identities::service_account(&mut c, &w.account_id, &r.actor_id).await?;
                v["actor_id"] = json!(r.actor_id);
                v["bot_id"] = json!(r.actor_id);
                v["bot_name"] = json!(b.map(|b| b.name));
            }
            _ => {
                let t = identities::team(&mut c, &w.account_id, &r.actor_id).await?;
                v["team_id"] = json!(r.actor_id);
                v["team_name"] = json!(t.map(|t| t.name));
            }
        }
        out.push(v);
    }
    Ok(out)
}

/// 403 unless the caller holds, in the workspace, every scope of each of `roles` (a built-in
/// role's name or a custom role's id): managing access never reaches beyond one's own.
async fn within_reach(
    state: &AppState,
    p: &Principal,
    w: &WorkspaceRow,
    roles: &[&String],
) -> ApiResult<()> {
    let held = p.roles.get(&w.id).copied().unwrap_or_default();
    let map = std::collections::BTreeMap::from([(
        w.id.clone(),
        roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
    )]);
    let mut c = state.stores.nebula.read().await?;
    let custom = identities::custom_roles_in(&mut c, &map).await?;
    drop(c);
    for r in roles {
        let needed = identity::scopes_of_grant(r, &custom);
        if needed.union(held) != held {
            return Err(ApiError::Detail(
                StatusCode::FORBIDDEN,
                "Forbidden: a grant may not give or replace more than your own role here".into(),
            ));
        }
    }
    Ok(())
}

/// A grant's role: a built-in role's id (or name) or a custom role of the account (its name
/// as stored: the built-in's lowercase name, or the custom role's id).
async fn role_to_store(
    state: &AppState,
    account_id: &str,
    text: &str,
    at: Vec<Value>,
) -> ApiResult<String> {
    let text = text.to_ascii_lowercase();
    if let Some(r) = Role::by_id_or_name(&text) {
        return Ok(r.as_str().to_string());
    }
    let mut c = state.stores.nebula.read().await?;
    match identities::workspace_role(&mut c, account_id, &text).await? {
        Some(r) => Ok(r.id),
        None => Err(ApiError::invalid(
            at,
            "No workspace role has this id",
            "value_error",
        )),
    }
}

/// The grantee `id` of `kind` in the account, if it exists.
async fn grantee_exists(
    state: &AppState,
    account_id: &str,
    kind: &str,
    id: &str,
) -> ApiResult<bool> {
    let mut c = state.stores.nebula.read().await?;
    Ok(match kind {
        USER => identities::user(&mut c, account_id, id).await?.is_some(),
        SERVICE_ACCOUNT => identities::service_account(&mut c, account_id, id)
            .await?
            .is_some(),
        _ => identities::team(&mut c, account_id, id).await?.is_some(),
    })
}

/// One grant or a list of them, as Cloud accepts.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Value>),
    One(Value),
}

async fn upsert_access(
    state: web::Data<AppState>,
    req: HttpRequest,
    ws: Workspace,
    body: Json<OneOrMany>,
) -> ApiResult<HttpResponse> {
    let kind = kind_of(&req);
    let w = workspace_row(&state, &ws).await?;
    let (items, many) = match body.into_inner() {
        OneOrMany::Many(v) => (v, true),
        OneOrMany::One(v) => (vec![v], false),
    };
    let field = id_field(kind);
    let mut grants: Vec<(String, String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |f: &str| -> Vec<Value> {
            let mut loc = vec![json!("body")];
            if many {
                loc.push(json!(i));
            }
            loc.push(json!(f));
            loc
        };
        let get = |f: &str| {
            item.get(f)
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
        };
        let Some(id) = get(field) else {
            return Err(ApiError::invalid(at(field), "Field required", "missing"));
        };
        let Some(role) = get("workspace_role_id") else {
            return Err(ApiError::invalid(
                at("workspace_role_id"),
                "Field required",
                "missing",
            ));
        };
        if !grantee_exists(&state, &w.account_id, kind, &id).await? {
            return Err(ApiError::invalid(
                at(field),
                "No member of the workspace's account has this id",
                "value_error",
            ));
        }
        let role = role_to_store(&state, &w.account_id, &role, at("workspace_role_id")).await?;
        grants.push((id, role));
    }
    // A grant gives no more than the granter holds, and replaces no grant that is more.
    if let Some(p) = caller(&req) {
        let existing: Vec<String> = {
            let mut c = state.stores.nebula.read().await?;
            identities::access_in(&mut c, &w.id, Some(kind))
                .await?
                .into_iter()
                .filter(|r| grants.iter().any(|(id, _)| *id == r.actor_id))
                .map(|r| r.role)
                .collect()
        };
        let roles: Vec<&String> = grants.iter().map(|(_, r)| r).chain(&existing).collect();
        within_reach(&state, &p, &w, &roles).await?;
    }
    let (ws_id, list) = (w.id.clone(), grants.clone());
    write(&state, "", async move |c| {
        c.transaction(async move |c| {
            for (id, role) in &list {
                identities::grant(c, &ws_id, kind, id, role, now()).await?;
            }
            Ok(())
        })
        .await
    })
    .await?;
    let changes: Vec<Change> = grants
        .iter()
        .map(|(id, role)| Change {
            kind: "workspace-access",
            id,
            name: kind,
            action: "granted",
            account_id: &w.account_id,
            workspace_id: Some(&w.id),
            payload: json!({"grantee_kind": kind, "role": role}),
        })
        .collect();
    audit::record(&state, caller(&req).as_ref(), &changes).await;
    let mut c = state.stores.nebula.read().await?;
    let all = identities::access_in(&mut c, &w.id, Some(kind)).await?;
    drop(c);
    let rows: Vec<AccessRow> = all
        .into_iter()
        .filter(|r| grants.iter().any(|(id, _)| *id == r.actor_id))
        .collect();
    let out = access_json(&state, &w, &rows).await?;
    Ok(if many {
        HttpResponse::Ok().json(out)
    } else {
        HttpResponse::Ok().json(out.into_iter().next().unwrap_or(Value::Null))
    })
}

#[derive(Deserialize, Default)]
struct AccessFilterBody {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

async fn filter_access(
    state: web::Data<AppState>,
    req: HttpRequest,
    ws: Workspace,
    body: JsonOrDefault<AccessFilterBody>,
) -> ApiResult<HttpResponse> {
    let kind = kind_of(&req);
    let w = workspace_row(&state, &ws).await?;
    let b = body.into_inner();
    let paging = super::accounts::Paging {
        limit: b.limit,
        offset: b.offset,
    };
    let mut c = state.stores.nebula.read().await?;
    let rows = identities::access_in(&mut c, &w.id, Some(kind)).await?;
    drop(c);
    let rows = paging.cut(rows)?;
    Ok(HttpResponse::Ok().json(access_json(&state, &w, &rows).await?))
}

fn path_id(req: &HttpRequest, name: &str) -> String {
    req.match_info()
        .get(name)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

async fn read_access(
    state: web::Data<AppState>,
    req: HttpRequest,
    ws: Workspace,
) -> ApiResult<HttpResponse> {
    let kind = kind_of(&req);
    let w = workspace_row(&state, &ws).await?;
    let id = path_id(&req, "id");
    let mut c = state.stores.nebula.read().await?;
    let rows: Vec<AccessRow> = identities::access_in(&mut c, &w.id, Some(kind))
        .await?
        .into_iter()
        .filter(|r| r.actor_id == id)
        .collect();
    drop(c);
    let out = access_json(&state, &w, &rows).await?;
    match out.into_iter().next() {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(ApiError::not_found("Workspace access not found")),
    }
}

async fn delete_access(
    state: web::Data<AppState>,
    req: HttpRequest,
    ws: Workspace,
) -> ApiResult<HttpResponse> {
    let kind = kind_of(&req);
    let w = workspace_row(&state, &ws).await?;
    let id = match kind {
        TEAM => path_id(&req, "team_id"),
        _ => path_id(&req, "id"),
    };
    if let Some(p) = caller(&req) {
        let mut c = state.stores.nebula.read().await?;
        let existing: Vec<String> = identities::access_in(&mut c, &w.id, Some(kind))
            .await?
            .into_iter()
            .filter(|r| r.actor_id == id)
            .map(|r| r.role)
            .collect();
        drop(c);
        within_reach(&state, &p, &w, &existing.iter().collect::<Vec<_>>()).await?;
    }
    let (ws_id, who) = (w.id.clone(), id.clone());
    let removed = write(&state, "", async move |c| {
        identities::revoke_access(c, &ws_id, kind, &who).await
    })
    .await?;
    if !removed {
        return Err(ApiError::not_found("Workspace access not found"));
    }
    audit::record(
        &state,
        caller(&req).as_ref(),
        &[Change {
            kind: "workspace-access",
            id: &id,
            name: kind,
            action: "revoked",
            account_id: &w.account_id,
            workspace_id: Some(&w.id),
            payload: json!({"grantee_kind": kind}),
        }],
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}
