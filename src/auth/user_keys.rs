//! Users' API keys, `/api/users/{id}/api_keys`: a user's own, or (for an account owner, or an
//! admin for members) another member's of the account. Listing shows masked keys; a new key is
//! shown once.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::accounts::{caller, key_change, key_json, mint, now, write};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::Json;
use crate::identity::audit;
use crate::identity::{self, AccountRole};
use crate::state::AppState;
use crate::storage::identities::{self, USER};

/// Registers the caller's API key routes (`/users/{id}/api_keys`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{id}/api_keys", web::get().to(list_user_keys))
        .route("/users/{id}/api_keys", web::post().to(create_user_key))
        .route("/users/{id}/api_keys/", web::post().to(create_user_key))
        .route(
            "/users/{id}/api_keys/{key_id}",
            web::get().to(read_user_key),
        )
        .route(
            "/users/{id}/api_keys/{key_id}",
            web::delete().to(delete_user_key),
        );
}

fn path_id(req: &HttpRequest, name: &str) -> String {
    req.match_info()
        .get(name)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The user of the path, if the caller may manage its keys: itself, or an owner or admin of
/// its account (anyone in `auth.mode = "open"`). Others get 404.
async fn key_owner(state: &AppState, req: &HttpRequest) -> ApiResult<identities::UserRow> {
    let id = path_id(req, "id");
    let mut c = state.stores.nebula.read().await?;
    let user = identities::user_by_id(&mut c, &id).await?;
    // An admin reaches members only: a key of an owner or another admin would be more than
    // the admin holds.
    let allowed = match (caller(req), &user) {
        (_, None) => false,
        (None, Some(_)) => !state.settings.auth.required(),
        (Some(p), Some(u)) => {
            (p.kind == USER && p.id == u.id)
                || (p.account_id == u.account_id
                    && match p.account_role {
                        AccountRole::Owner => true,
                        AccountRole::Admin => u.account_role == "member",
                        AccountRole::Member => false,
                    })
        }
    };
    match user {
        Some(u) if allowed => Ok(u),
        _ => Err(ApiError::not_found("User not found")),
    }
}

async fn list_user_keys(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let u = key_owner(&state, &req).await?;
    let name =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("name").cloned());
    let mut c = state.stores.nebula.read().await?;
    let keys = identities::keys_of(&mut c, USER, &u.id).await?;
    let out: Vec<Value> = keys
        .iter()
        .filter(|k| name.as_ref().is_none_or(|n| *n == k.name))
        .map(|k| key_json(k, None))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
struct KeyCreate {
    name: String,
    #[serde(default)]
    expiration: Option<DateTime<Utc>>,
}

/// Most live API keys a user keeps.
const MAX_KEYS: usize = 100;

async fn create_user_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<KeyCreate>,
) -> ApiResult<HttpResponse> {
    let u = key_owner(&state, &req).await?;
    let b = body.into_inner();
    let name = b.name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid(
            vec!["body".into(), "name".into()],
            "Names are 1 to 200 characters",
            "value_error",
        ));
    }
    let expires = b.expiration.map(|e| e.naive_utc());
    if expires.is_some_and(|e| e <= now()) {
        return Err(ApiError::invalid(
            vec!["body".into(), "expiration".into()],
            "The expiration is in the past",
            "value_error",
        ));
    }
    let uid = u.id.clone();
    let (row, key) = write(&state, "", async move |c| {
        if identities::keys_of(c, USER, &uid).await?.len() >= MAX_KEYS {
            return Err(crate::storage::StorageError::Rejected(format!(
                "A user keeps at most {MAX_KEYS} live API keys; delete one first"
            )));
        }
        mint(c, USER, &uid, &name, expires).await
    })
    .await?;
    audit::record(
        &state,
        caller(&req).as_ref(),
        &[key_change(&row, &u.email, &u.account_id, "created")],
    )
    .await;
    Ok(HttpResponse::Created().json(key_json(&row, Some(&key))))
}

async fn user_key(
    state: &AppState,
    req: &HttpRequest,
) -> ApiResult<(identities::UserRow, identities::KeyRow)> {
    let u = key_owner(state, req).await?;
    let key_id = path_id(req, "key_id");
    let mut c = state.stores.nebula.read().await?;
    let k = identities::keys_of(&mut c, USER, &u.id)
        .await?
        .into_iter()
        .find(|k| k.id == key_id)
        .ok_or_else(|| ApiError::not_found("API key not found"))?;
    Ok((u, k))
}

async fn read_user_key(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let (_, k) = user_key(&state, &req).await?;
    Ok(HttpResponse::Ok().json(key_json(&k, None)))
}

async fn delete_user_key(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let (u, k) = user_key(&state, &req).await?;
    let id = k.id.clone();
    write(&state, "", async move |c| {
        identities::revoke_key(c, &id, now()).await
    })
    .await?;
    identity::forget_key_here(&state, &k.key_hash).await;
    audit::record(
        &state,
        caller(&req).as_ref(),
        &[key_change(&k, &u.email, &u.account_id, "revoked")],
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}
