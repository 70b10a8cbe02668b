//! Account memberships: the account's users and service accounts, their account roles, and
//! removing them.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::{json, Value};

use super::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::identity::audit::{self, Change};
use crate::identity::{self, AccountRole};
use crate::state::AppState;
use crate::storage::identities::{self, SERVICE_ACCOUNT, USER};

// ---- account roles and memberships ----

pub(super) fn account_role_json(r: AccountRole) -> Value {
    json!({
        "id": r.id(),
        "created": null,
        "updated": null,
        "account_id": null,
        "name": r.title(),
        "permissions": r.permissions(),
        "is_system_role": true,
    })
}

#[derive(Deserialize, Default)]
pub(super) struct AccountRoleFilterBody {
    #[serde(default)]
    account_roles: Option<RoleFilter>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn filter_account_roles(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonOrDefault<AccountRoleFilterBody>,
) -> ApiResult<HttpResponse> {
    account_of(&state, &req).await?;
    let b = body.into_inner();
    let f = b.account_roles.unwrap_or_default();
    let out: Vec<Value> = AccountRole::ALL
        .into_iter()
        .filter(|r| keep(&f.name, r.title()) && keep(&f.id, r.id()))
        .map(account_role_json)
        .collect();
    Ok(HttpResponse::Ok().json(b.paging.cut(out)?))
}

pub(super) async fn read_account_role(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    account_of(&state, &req).await?;
    let id = path_id(&req, "id");
    let r = AccountRole::ALL
        .into_iter()
        .find(|r| r.id() == id)
        .ok_or_else(|| ApiError::not_found("Account role not found"))?;
    Ok(HttpResponse::Ok().json(account_role_json(r)))
}

/// A member of the account: a user or a service account.
pub(super) struct Member {
    pub(super) kind: &'static str,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) email: Option<String>,
    pub(super) role: String,
    pub(super) created: NaiveDateTime,
    pub(super) updated: NaiveDateTime,
}

pub(super) async fn members(state: &AppState, account_id: &str) -> ApiResult<Vec<Member>> {
    let mut c = state.stores.nebula.read().await?;
    let users = identities::list_users(&mut c, account_id).await?;
    let bots = identities::list_service_accounts(&mut c, account_id).await?;
    let mut out: Vec<Member> = users
        .into_iter()
        .map(|u| Member {
            kind: USER,
            id: u.id,
            name: u.name,
            email: Some(u.email),
            role: u.account_role,
            created: u.created,
            updated: u.updated,
        })
        .collect();
    out.extend(bots.into_iter().map(|b| Member {
        kind: SERVICE_ACCOUNT,
        id: b.id,
        name: b.name,
        email: None,
        role: b.account_role,
        created: b.created,
        updated: b.updated,
    }));
    Ok(out)
}

pub(super) fn membership_json(m: &Member, account_id: &str) -> Value {
    let role = AccountRole::parse(&m.role).unwrap_or(AccountRole::Member);
    json!({
        "id": m.id,
        "created": ts(m.created),
        "updated": ts(m.updated),
        "account_id": account_id,
        "actor_id": m.id,
        "user_id": (m.kind == USER).then_some(&m.id),
        "bot_id": (m.kind == SERVICE_ACCOUNT).then_some(&m.id),
        "first_name": m.name,
        "last_name": "",
        "handle": m.email.as_deref().and_then(|e| e.split('@').next()).unwrap_or(&m.name),
        "email": m.email,
        "account_role_name": role.title(),
        "account_role_id": role.id(),
        "last_login": null,
        "active": true,
    })
}

#[derive(Deserialize, Default)]
pub(super) struct MembershipFilterBody {
    #[serde(default)]
    account_memberships: Option<MembershipFilter>,
    #[serde(default)]
    only_users: bool,
    #[serde(default)]
    only_bots: bool,
    #[serde(flatten)]
    paging: Paging,
}

#[derive(Deserialize, Default)]
pub(super) struct MembershipFilter {
    #[serde(default)]
    email: Option<AnyOf>,
}

pub(super) async fn filter_memberships(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonOrDefault<MembershipFilterBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    let f = b.account_memberships.unwrap_or_default();
    let emails: Option<Vec<String>> = f
        .email
        .and_then(|e| e.any_)
        .map(|v| v.iter().map(|e| e.trim().to_ascii_lowercase()).collect());
    let out: Vec<Value> = members(&state, &a.id)
        .await?
        .iter()
        .filter(|m| {
            (!b.only_users || m.kind == USER) && (!b.only_bots || m.kind == SERVICE_ACCOUNT)
        })
        .filter(|m| match &emails {
            Some(want) => m.email.as_ref().is_some_and(|e| want.contains(e)),
            None => true,
        })
        .map(|m| membership_json(m, &a.id))
        .collect();
    Ok(HttpResponse::Ok().json(b.paging.cut(out)?))
}

pub(super) async fn member(state: &AppState, account_id: &str, id: &str) -> ApiResult<Member> {
    members(state, account_id)
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| ApiError::not_found("Account membership not found"))
}

pub(super) async fn read_membership(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let m = member(&state, &a.id, &path_id(&req, "id")).await?;
    let mut c = state.stores.nebula.read().await?;
    let teams = identities::teams_of(&mut c, &m.id).await?;
    let mut body = membership_json(&m, &a.id);
    body["teams"] = teams
        .into_iter()
        .map(|(id, name)| json!({"id": id, "name": name}))
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
pub(super) struct MembershipUpdate {
    account_role_id: String,
}

/// Refuses what would leave the account without an owner.
pub(super) async fn keeps_an_owner(
    state: &AppState,
    account_id: &str,
    losing: &str,
) -> ApiResult<()> {
    let owners = members(state, account_id)
        .await?
        .into_iter()
        .filter(|m| m.role == "owner" && m.kind == USER)
        .filter(|m| m.id != losing)
        .count();
    if owners == 0 {
        return Err(ApiError::conflict("An account keeps at least one owner"));
    }
    Ok(())
}

pub(super) async fn update_membership(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<MembershipUpdate>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let m = member(&state, &a.id, &path_id(&req, "id")).await?;
    let role = AccountRole::by_id_or_name(&body.0.account_role_id.to_ascii_lowercase())
        .ok_or_else(|| {
            ApiError::invalid(
                vec!["body".into(), "account_role_id".into()],
                "Not an account role",
                "value_error",
            )
        })?;
    // Only an owner makes owners, or changes one.
    let by = caller(&req);
    if (role == AccountRole::Owner || m.role == "owner")
        && by
            .as_ref()
            .is_some_and(|p| p.account_role != AccountRole::Owner)
    {
        return Err(ApiError::Detail(
            StatusCode::FORBIDDEN,
            "Only an account owner may grant or change the owner role".into(),
        ));
    }
    if m.role == "owner" && role != AccountRole::Owner {
        keeps_an_owner(&state, &a.id, &m.id).await?;
    }
    let (kind, id) = (m.kind, m.id.clone());
    write(&state, "", async move |c| {
        identities::set_account_role(c, kind, &id, role.as_str(), now()).await
    })
    .await?;
    audit::record(
        &state,
        by.as_ref(),
        &[Change {
            kind: "account-membership",
            id: &m.id,
            name: m.email.as_deref().unwrap_or(&m.name),
            action: "updated",
            account_id: &a.id,
            workspace_id: None,
            payload: json!({"account_role": role.as_str(), "previous": m.role}),
        }],
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a member, its keys (dropped from the cache too), grants and team memberships.
pub(super) async fn remove_member(
    state: &AppState,
    req: &HttpRequest,
    account_id: &str,
    m: &Member,
) -> ApiResult<()> {
    if m.role == "owner" {
        if caller(req).is_some_and(|p| p.account_role != AccountRole::Owner) {
            return Err(ApiError::Detail(
                StatusCode::FORBIDDEN,
                "Only an account owner may remove an owner".into(),
            ));
        }
        keeps_an_owner(state, account_id, &m.id).await?;
    }
    if m.kind == USER {
        // Its browser sessions end now, on every replica (their cached copies too).
        crate::identity::sessions::end_all(state, &m.id).await?;
    }
    let (kind, id) = (m.kind, m.id.clone());
    let hashes = write(state, "", async move |c| {
        c.transaction(async move |c| identities::delete_member(c, kind, &id).await)
            .await
    })
    .await?;
    for h in &hashes {
        identity::forget_key_here(state, h).await;
    }
    let kind = if m.kind == USER {
        "user"
    } else {
        "service-account"
    };
    audit::record(
        state,
        caller(req).as_ref(),
        &[Change {
            kind,
            id: &m.id,
            name: m.email.as_deref().unwrap_or(&m.name),
            action: "removed",
            account_id,
            workspace_id: None,
            payload: json!({"keys_revoked": hashes.len()}),
        }],
    )
    .await;
    Ok(())
}

pub(super) async fn delete_membership(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let m = member(&state, &a.id, &path_id(&req, "id")).await?;
    remove_member(&state, &req, &a.id, &m).await?;
    Ok(HttpResponse::NoContent().finish())
}
