//! Teams: create, filter, read, change, delete, and their members.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::identity::audit::{self, Change};
use crate::state::AppState;
use crate::storage::identities::{self, TeamRow, SERVICE_ACCOUNT, USER};

// ---- teams ----

pub(super) async fn team_json(state: &AppState, t: &TeamRow) -> ApiResult<Value> {
    let mut c = state.stores.nebula.read().await?;
    let member_ids = identities::team_members(&mut c, &t.id).await?;
    let mut memberships = Vec::new();
    for (kind, id) in member_ids {
        if let Some(actor) = identities::actor(&mut c, &kind, &id).await? {
            let email = (kind == USER).then(|| actor.name.clone());
            memberships.push(json!({
                "id": id,
                "handle": actor.name.split('@').next().unwrap_or(&actor.name),
                "name": actor.name,
                "email": email,
                "type": kind,
            }));
        }
    }
    let access = identities::access_of(&mut c, identities::TEAM, &t.id).await?;
    let custom = {
        let map = access
            .iter()
            .map(|r| (r.workspace_id.clone(), vec![r.role.clone()]))
            .collect();
        identities::custom_roles_in(&mut c, &map).await?
    };
    let mut workspaces = Vec::new();
    for r in access {
        let handle = identities::workspace(&mut c, &t.account_id, &r.workspace_id)
            .await?
            .map(|w| w.handle);
        let (role_id, role_name) = role_label(&r.role, &custom);
        workspaces.push(json!({
            "workspace_id": r.workspace_id,
            "workspace_handle": handle,
            "workspace_role_id": role_id,
            "workspace_role_name": role_name,
        }));
    }
    Ok(json!({
        "id": t.id,
        "created": ts(t.created),
        "updated": ts(t.updated),
        "account_id": t.account_id,
        "name": t.name,
        "description": t.description,
        "memberships": memberships,
        "workspaces": workspaces,
    }))
}

#[derive(Deserialize)]
pub(super) struct TeamBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

pub(super) async fn audit_team(
    state: &AppState,
    req: &HttpRequest,
    t: &TeamRow,
    action: &str,
    payload: Value,
) {
    audit::record(
        state,
        caller(req).as_ref(),
        &[Change {
            kind: "team",
            id: &t.id,
            name: &t.name,
            action,
            account_id: &t.account_id,
            workspace_id: None,
            payload,
        }],
    )
    .await;
}

pub(super) async fn create_team(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<TeamBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    let t = now();
    let row = TeamRow {
        id: Uuid::new_v4().to_string(),
        created: t,
        updated: t,
        account_id: a.id.clone(),
        name: valid_name(&b.name, "name")?,
        description: valid_description(b.description)?.unwrap_or_default(),
    };
    let saved = row.clone();
    write(
        &state,
        "A team with this name already exists",
        async move |c| identities::insert_team(c, &row).await,
    )
    .await?;
    audit_team(&state, &req, &saved, "created", Value::Null).await;
    Ok(HttpResponse::Created().json(team_json(&state, &saved).await?))
}

#[derive(Deserialize, Default)]
pub(super) struct TeamFilterBody {
    #[serde(default)]
    teams: Option<RoleFilter>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn filter_teams(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonOrDefault<TeamFilterBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    let f = b.teams.unwrap_or_default();
    let mut c = state.stores.nebula.read().await?;
    let teams = identities::list_teams(&mut c, &a.id).await?;
    drop(c);
    let teams: Vec<_> = teams
        .into_iter()
        .filter(|t| keep(&f.name, &t.name) && keep(&f.id, &t.id))
        .collect();
    let mut out = Vec::new();
    for t in b.paging.cut(teams)? {
        out.push(team_json(&state, &t).await?);
    }
    Ok(HttpResponse::Ok().json(out))
}

pub(super) async fn team(state: &AppState, account_id: &str, id: &str) -> ApiResult<TeamRow> {
    let mut c = state.stores.nebula.read().await?;
    identities::team(&mut c, account_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Team not found"))
}

pub(super) async fn read_team(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let t = team(&state, &a.id, &path_id(&req, "id")).await?;
    Ok(HttpResponse::Ok().json(team_json(&state, &t).await?))
}

pub(super) async fn update_team(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<TeamBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let mut t = team(&state, &a.id, &path_id(&req, "id")).await?;
    let b = body.into_inner();
    t.name = valid_name(&b.name, "name")?;
    t.description = valid_description(b.description)?.unwrap_or_default();
    t.updated = now();
    let row = t.clone();
    write(
        &state,
        "A team with this name already exists",
        async move |c| identities::update_team(c, &row).await,
    )
    .await?;
    audit_team(&state, &req, &t, "updated", Value::Null).await;
    Ok(HttpResponse::Ok().json(team_json(&state, &t).await?))
}

pub(super) async fn delete_team(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let t = team(&state, &a.id, &path_id(&req, "id")).await?;
    let (account_id, id) = (a.id.clone(), t.id.clone());
    write(&state, "", async move |c| {
        c.transaction(async move |c| identities::delete_team(c, &account_id, &id).await)
            .await
    })
    .await?;
    audit_team(&state, &req, &t, "deleted", Value::Null).await;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub(super) struct MembersBody {
    members: Vec<MemberRef>,
}

#[derive(Deserialize)]
pub(super) struct MemberRef {
    member_id: String,
    member_type: String,
}

pub(super) async fn add_team_members(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<MembersBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let t = team(&state, &a.id, &path_id(&req, "id")).await?;
    let mut adding: Vec<(&'static str, String)> = Vec::new();
    {
        let mut c = state.stores.nebula.read().await?;
        for (i, m) in body.0.members.iter().enumerate() {
            let id = m.member_id.to_ascii_lowercase();
            let found = match m.member_type.as_str() {
                "user" => identities::user(&mut c, &a.id, &id).await?.map(|_| USER),
                "service_account" | "bot" => identities::service_account(&mut c, &a.id, &id)
                    .await?
                    .map(|_| SERVICE_ACCOUNT),
                _ => {
                    return Err(ApiError::invalid(
                        vec![
                            "body".into(),
                            "members".into(),
                            i.into(),
                            "member_type".into(),
                        ],
                        "Input should be 'user' or 'service_account'",
                        "enum",
                    ))
                }
            };
            match found {
                Some(kind) => adding.push((kind, id)),
                None => {
                    return Err(ApiError::invalid(
                        vec![
                            "body".into(),
                            "members".into(),
                            i.into(),
                            "member_id".into(),
                        ],
                        "No member of the account has this id",
                        "value_error",
                    ))
                }
            }
        }
    }
    let (team_id, list) = (t.id.clone(), adding.clone());
    write(&state, "", async move |c| {
        c.transaction(async move |c| {
            for (kind, id) in &list {
                identities::add_team_member(c, &team_id, kind, id).await?;
            }
            Ok(())
        })
        .await
    })
    .await?;
    let ids: Vec<&String> = adding.iter().map(|(_, id)| id).collect();
    audit_team(&state, &req, &t, "members-added", json!({"members": ids})).await;
    Ok(HttpResponse::Ok().json(team_json(&state, &t).await?))
}

pub(super) async fn remove_team_member(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let t = team(&state, &a.id, &path_id(&req, "id")).await?;
    let actor = path_id(&req, "actor_id");
    let (team_id, who) = (t.id.clone(), actor.clone());
    let removed = write(&state, "", async move |c| {
        identities::remove_team_member(c, &team_id, &who).await
    })
    .await?;
    if !removed {
        return Err(ApiError::not_found("Team member not found"));
    }
    audit_team(&state, &req, &t, "member-removed", json!({"member": actor})).await;
    Ok(HttpResponse::NoContent().finish())
}
