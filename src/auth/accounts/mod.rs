//! The account admin API, in Prefect Cloud's shapes (`/api/accounts/{account_id}/...`): the
//! account, its workspaces, custom workspace roles, account roles, memberships, service
//! accounts ("bots", with key rotation) and teams. The route table gives each route its account
//! permission; handlers check only what the table cannot (that the account exists, that a
//! referenced object is the account's). Every change is audited (`identity::audit`).
//!
//! Ids: a membership's id is its user's or service account's id, which is also its `actor_id`.

mod bots;
mod members;
mod roles;
mod teams;
mod workspaces;

pub(crate) use bots::*;
use members::*;
pub(crate) use roles::*;
use teams::*;
use workspaces::*;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::json::Json;
use crate::identity::audit::{self, Change};
use crate::identity::{keys, Principal};
use crate::state::AppState;
use crate::storage::identities::{self, KeyRow, Page};
use crate::storage::{StorageError, StorageResult};
use crate::wire::Ts;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts/{account_id}", web::get().to(read_account))
        .route("/accounts/{account_id}/", web::get().to(read_account))
        .route("/accounts/{account_id}", web::patch().to(update_account))
        .route(
            "/accounts/{account_id}/settings",
            web::get().to(account_settings),
        )
        .route(
            "/accounts/{account_id}/workspaces/",
            web::post().to(create_workspace),
        )
        .route(
            "/accounts/{account_id}/workspaces",
            web::post().to(create_workspace),
        )
        .route(
            "/accounts/{account_id}/workspaces/filter",
            web::post().to(filter_workspaces),
        )
        .route(
            "/accounts/{account_id}/workspaces/{id}",
            web::get().to(read_workspace),
        )
        .route(
            "/accounts/{account_id}/workspaces/{id}",
            web::patch().to(update_workspace),
        )
        .route(
            "/accounts/{account_id}/workspaces/{id}",
            web::delete().to(delete_workspace),
        )
        .route(
            "/accounts/{account_id}/workspace_roles/",
            web::post().to(create_role),
        )
        .route(
            "/accounts/{account_id}/workspace_roles",
            web::post().to(create_role),
        )
        .route(
            "/accounts/{account_id}/workspace_roles/filter",
            web::post().to(filter_roles),
        )
        .route(
            "/accounts/{account_id}/workspace_roles/{id}",
            web::get().to(read_role),
        )
        .route(
            "/accounts/{account_id}/workspace_roles/{id}",
            web::patch().to(update_role),
        )
        .route(
            "/accounts/{account_id}/workspace_roles/{id}",
            web::delete().to(delete_role),
        )
        .route(
            "/accounts/{account_id}/account_roles/filter",
            web::post().to(filter_account_roles),
        )
        .route(
            "/accounts/{account_id}/account_roles/{id}",
            web::get().to(read_account_role),
        )
        .route(
            "/accounts/{account_id}/account_memberships/filter",
            web::post().to(filter_memberships),
        )
        .route(
            "/accounts/{account_id}/account_memberships/{id}",
            web::get().to(read_membership),
        )
        .route(
            "/accounts/{account_id}/account_memberships/{id}",
            web::patch().to(update_membership),
        )
        .route(
            "/accounts/{account_id}/account_memberships/{id}",
            web::delete().to(delete_membership),
        )
        .route("/accounts/{account_id}/bots/", web::post().to(create_bot))
        .route("/accounts/{account_id}/bots", web::post().to(create_bot))
        .route(
            "/accounts/{account_id}/bots/filter",
            web::post().to(filter_bots),
        )
        .route("/accounts/{account_id}/bots/{id}", web::get().to(read_bot))
        .route(
            "/accounts/{account_id}/bots/{id}",
            web::patch().to(update_bot),
        )
        .route(
            "/accounts/{account_id}/bots/{id}",
            web::delete().to(delete_bot),
        )
        .route(
            "/accounts/{account_id}/bots/{id}/rotate_api_key",
            web::post().to(rotate_bot_key),
        )
        .route("/accounts/{account_id}/teams/", web::post().to(create_team))
        .route("/accounts/{account_id}/teams", web::post().to(create_team))
        .route(
            "/accounts/{account_id}/teams/filter",
            web::post().to(filter_teams),
        )
        .route(
            "/accounts/{account_id}/teams/{id}",
            web::get().to(read_team),
        )
        .route(
            "/accounts/{account_id}/teams/{id}",
            web::put().to(update_team),
        )
        .route(
            "/accounts/{account_id}/teams/{id}",
            web::delete().to(delete_team),
        )
        .route(
            "/accounts/{account_id}/teams/{id}/members",
            web::put().to(add_team_members),
        )
        .route(
            "/accounts/{account_id}/teams/{id}/members/{actor_id}",
            web::delete().to(remove_team_member),
        );
}

// ---- shared ----

pub(crate) fn caller(req: &HttpRequest) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

pub(crate) fn now() -> NaiveDateTime {
    crate::time::now_naive()
}

pub(crate) fn ts(t: NaiveDateTime) -> Value {
    json!(Ts(&t))
}

/// The account of the path (404 when there is none), lowercased.
async fn account_of(state: &AppState, req: &HttpRequest) -> ApiResult<identities::AccountRow> {
    let id = req
        .match_info()
        .get("account_id")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut c = state.stores.nebula.read().await?;
    identities::account(&mut c, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Account not found"))
}

/// The `{id}` of the path, lowercased.
fn path_id(req: &HttpRequest, name: &str) -> String {
    req.match_info()
        .get(name)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A nebula write whose uniqueness conflict answers 409 `conflict`.
pub(crate) async fn write<T, F>(state: &AppState, conflict: &str, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: for<'c> crate::storage::WriteFn<'c, T> + 'static,
{
    state.stores.nebula.write(f).await.map_err(|e| match e {
        StorageError::Conflict(_) => ApiError::conflict(conflict),
        other => other.into(),
    })
}

/// `{"<name>": {"any_": [...]}}` of a Cloud filter body.
#[derive(Deserialize, Default, Debug)]
pub(crate) struct AnyOf {
    #[serde(default)]
    pub any_: Option<Vec<String>>,
}

#[derive(Deserialize, Default, Debug)]
pub(crate) struct Paging {
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
}

impl Paging {
    pub fn page(&self) -> ApiResult<Page> {
        let limit = self.limit.unwrap_or(200);
        let offset = self.offset.unwrap_or(0);
        if !(0..=200).contains(&limit) {
            return Err(ApiError::invalid(
                vec!["body".into(), "limit".into()],
                "Input should be less than or equal to 200",
                "less_than_equal",
            ));
        }
        if offset < 0 {
            return Err(ApiError::invalid(
                vec!["body".into(), "offset".into()],
                "Input should be greater than or equal to 0",
                "greater_than_equal",
            ));
        }
        Ok(Page { limit, offset })
    }

    /// `rows` cut to this page.
    pub fn cut<T>(&self, rows: Vec<T>) -> ApiResult<Vec<T>> {
        let p = self.page()?;
        Ok(rows
            .into_iter()
            .skip(p.offset as usize)
            .take(p.limit as usize)
            .collect())
    }
}

fn keep(filter: &Option<AnyOf>, value: &str) -> bool {
    match filter.as_ref().and_then(|f| f.any_.as_ref()) {
        Some(any) => any.iter().any(|v| v == value),
        None => true,
    }
}

fn valid_handle(handle: &str, field: &str) -> ApiResult<()> {
    super::admin::is_handle(handle)
        .then_some(())
        .ok_or_else(|| {
            ApiError::invalid(
                vec!["body".into(), field.into()],
                "Handles are 1 to 64 lowercase letters, digits and dashes",
                "value_error",
            )
        })
}

/// A description of at most 2,000 characters (the field's own value when absent).
fn valid_description(d: Option<String>) -> ApiResult<Option<String>> {
    if d.as_ref().is_some_and(|d| d.chars().count() > 2_000) {
        return Err(ApiError::invalid(
            vec!["body".into(), "description".into()],
            "Descriptions are at most 2000 characters",
            "string_too_long",
        ));
    }
    Ok(d)
}

fn valid_name(name: &str, field: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid(
            vec!["body".into(), field.into()],
            "Names are 1 to 200 characters",
            "value_error",
        ));
    }
    Ok(name.to_string())
}

// ---- the account ----

fn account_json(a: &identities::AccountRow) -> Value {
    json!({
        "id": a.id,
        "created": ts(a.created),
        "updated": ts(a.updated),
        "name": a.name,
        "handle": a.handle,
        "location": null,
        "link": null,
        "image_location": null,
        "auth_expiration_seconds": null,
        "settings": settings_json(),
        "features": [],
        "plan_type": "SELF_HOSTED",
        "self_serve": false,
    })
}

fn settings_json() -> Value {
    json!({
        "allow_public_workspaces": false,
        "ai_log_summaries": false,
        "managed_execution": false,
        "enforce_ip_allowlist": false,
        "enforce_webhook_authentication": false,
        "self_healing_enabled": false,
        "enabled_feature_flags": [],
    })
}

async fn read_account(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    Ok(HttpResponse::Ok().json(account_json(&a)))
}

async fn account_settings(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    account_of(&state, &req).await?;
    Ok(HttpResponse::Ok().json(settings_json()))
}

#[derive(Deserialize)]
struct AccountUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    handle: Option<String>,
    // Cloud's profile fields Orrery has no use for: accepted when null.
    #[serde(default)]
    location: Option<Value>,
    #[serde(default)]
    link: Option<Value>,
    #[serde(default)]
    auth_expiration_seconds: Option<Value>,
}

async fn update_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<AccountUpdate>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    for (field, v) in [
        ("location", &b.location),
        ("link", &b.link),
        ("auth_expiration_seconds", &b.auth_expiration_seconds),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(
                vec!["body".into(), field.into()],
                "Orrery does not keep this account field",
                "value_error",
            ));
        }
    }
    let name = b
        .name
        .as_deref()
        .map(|n| valid_name(n, "name"))
        .transpose()?;
    if let Some(h) = &b.handle {
        valid_handle(h, "handle")?;
    }
    let id = a.id.clone();
    let handle = b.handle.clone();
    let t = now();
    write(
        &state,
        "An account with this handle already exists",
        async move |c| {
            identities::update_account(c, &id, name.as_deref(), handle.as_deref(), t).await
        },
    )
    .await?;
    let updated = account_of(&state, &req).await?;
    audit::record(
        &state,
        caller(&req).as_ref(),
        &[Change {
            kind: "account",
            id: &a.id,
            name: &updated.handle,
            action: "updated",
            account_id: &a.id,
            workspace_id: None,
            payload: json!({"name": updated.name, "handle": updated.handle}),
        }],
    )
    .await;
    Ok(HttpResponse::Ok().json(account_json(&updated)))
}
