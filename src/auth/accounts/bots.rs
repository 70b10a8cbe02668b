//! Service accounts ("bots"): create with a key, filter, read, change, delete, and rotate
//! their key with a grace period for the old one.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::identity::audit::{self, Change};
use crate::identity::{self, AccountRole};
use crate::state::AppState;
use crate::storage::identities::{self, ServiceAccountRow, SERVICE_ACCOUNT, USER};
use crate::storage::StorageError;

// ---- bots (service accounts) ----

/// A key for display: the key itself right after it was made, else a mask (only a hash is
/// kept, so the mask shows the prefix alone).
pub(crate) fn key_json(k: &KeyRow, plain: Option<&str>) -> Value {
    let mut v = json!({
        "id": k.id,
        "created": ts(k.created),
        "name": k.name,
        "expiration": k.expires.map(ts),
        "last_used": k.last_used.map(ts),
    });
    match plain {
        Some(key) => v["key"] = json!(key),
        None => {
            let prefix = if k.actor_kind == USER { "pnu_" } else { "pnb_" };
            v["masked_key"] = json!(format!("{prefix}********"));
        }
    }
    v
}

pub(super) fn bot_json(b: &ServiceAccountRow, key: Option<(&KeyRow, Option<&str>)>) -> Value {
    let role = AccountRole::parse(&b.account_role).unwrap_or(AccountRole::Member);
    json!({
        "id": b.id,
        "created": ts(b.created),
        "updated": ts(b.updated),
        "actor_id": b.id,
        "account_id": b.account_id,
        "name": b.name,
        "account_role_name": role.title(),
        "account_role_id": role.id(),
        "api_key": key.map(|(k, plain)| key_json(k, plain)),
    })
}

/// `api_key_expiration` of a body: absent or null → never.
pub(super) fn expiration(v: &Option<Value>, field: &str) -> ApiResult<Option<NaiveDateTime>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc).naive_utc()))
            .map_err(|_| {
                ApiError::invalid(
                    vec!["body".into(), field.into()],
                    "Input should be a valid datetime",
                    "datetime_parsing",
                )
            }),
        Some(_) => Err(ApiError::invalid(
            vec!["body".into(), field.into()],
            "Input should be a valid datetime",
            "datetime_type",
        )),
    }
}

/// Makes a key for an actor; the row and the key itself (shown once).
pub(crate) async fn mint(
    c: &mut crate::storage::Conn,
    kind: &str,
    actor_id: &str,
    name: &str,
    expires: Option<NaiveDateTime>,
) -> StorageResult<(KeyRow, String)> {
    let prefix = if kind == USER { "pnu_" } else { "pnb_" };
    let key = keys::generate(prefix).map_err(StorageError::Rejected)?;
    let secret = keys::secret_of(c).await?;
    let row = KeyRow {
        id: Uuid::new_v4().to_string(),
        created: now(),
        name: name.to_string(),
        actor_kind: kind.to_string(),
        actor_id: actor_id.to_string(),
        key_hash: keys::hash(&secret, &key),
        expires,
        last_used: None,
        revoked: None,
    };
    identities::insert_key(c, &row).await?;
    Ok((row, key))
}

#[derive(Deserialize)]
pub(super) struct BotCreate {
    name: String,
    #[serde(default)]
    api_key_expiration: Option<Value>,
    #[serde(default)]
    account_role_id: Option<String>,
}

pub(super) fn account_role_field(v: Option<&str>) -> ApiResult<AccountRole> {
    match v {
        None => Ok(AccountRole::Member),
        Some(id) => AccountRole::by_id_or_name(&id.to_ascii_lowercase()).ok_or_else(|| {
            ApiError::invalid(
                vec!["body".into(), "account_role_id".into()],
                "Not an account role",
                "value_error",
            )
        }),
    }
}

pub(super) async fn create_bot(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<BotCreate>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    let name = valid_name(&b.name, "name")?;
    let expires = expiration(&b.api_key_expiration, "api_key_expiration")?;
    let role = account_role_field(b.account_role_id.as_deref())?;
    if role == AccountRole::Owner
        && caller(&req).is_some_and(|p| p.account_role != AccountRole::Owner)
    {
        return Err(ApiError::Detail(
            StatusCode::FORBIDDEN,
            "Only an account owner may grant the owner role".into(),
        ));
    }
    let t = now();
    let row = ServiceAccountRow {
        id: Uuid::new_v4().to_string(),
        created: t,
        updated: t,
        account_id: a.id.clone(),
        name: name.clone(),
        account_role: role.as_str().to_string(),
    };
    let bot = row.clone();
    let (key_row, key) = write(
        &state,
        "A service account with this name already exists",
        async move |c| {
            c.transaction(async move |c| {
                identities::insert_service_account(c, &row).await?;
                mint(c, SERVICE_ACCOUNT, &row.id, &row.name, expires).await
            })
            .await
        },
    )
    .await?;
    audit::record(
        &state,
        caller(&req).as_ref(),
        &[
            Change {
                kind: "service-account",
                id: &bot.id,
                name: &bot.name,
                action: "created",
                account_id: &a.id,
                workspace_id: None,
                payload: json!({"account_role": bot.account_role}),
            },
            key_change(&key_row, &bot.name, &a.id, "created"),
        ],
    )
    .await;
    Ok(HttpResponse::Created().json(bot_json(&bot, Some((&key_row, Some(&key))))))
}

pub(crate) fn key_change<'a>(
    k: &'a KeyRow,
    owner: &'a str,
    account_id: &'a str,
    action: &'a str,
) -> Change<'a> {
    Change {
        kind: "api-key",
        id: &k.id,
        name: &k.name,
        action,
        account_id,
        workspace_id: None,
        payload: json!({
            "owner": owner,
            "owner_kind": k.actor_kind,
            "expiration": k.expires.map(ts),
        }),
    }
}

#[derive(Deserialize, Default)]
pub(super) struct BotFilterBody {
    #[serde(default)]
    service_accounts: Option<RoleFilter>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn bot_with_key(state: &AppState, b: &ServiceAccountRow) -> ApiResult<Value> {
    let mut c = state.stores.nebula.read().await?;
    let keys = identities::keys_of(&mut c, SERVICE_ACCOUNT, &b.id).await?;
    Ok(bot_json(b, keys.first().map(|k| (k, None))))
}

pub(super) async fn filter_bots(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonOrDefault<BotFilterBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = body.into_inner();
    let f = b.service_accounts.unwrap_or_default();
    let mut c = state.stores.nebula.read().await?;
    let bots = identities::list_service_accounts(&mut c, &a.id).await?;
    drop(c);
    let bots: Vec<_> = bots
        .into_iter()
        .filter(|s| keep(&f.name, &s.name) && keep(&f.id, &s.id))
        .collect();
    let mut out = Vec::new();
    for s in b.paging.cut(bots)? {
        out.push(bot_with_key(&state, &s).await?);
    }
    Ok(HttpResponse::Ok().json(out))
}

/// A service account with the owner role is changed (or its key rotated) only by an owner:
/// its key would make an admin an owner.
fn owner_only_for_owners(req: &HttpRequest, s: &ServiceAccountRow) -> ApiResult<()> {
    if s.account_role == "owner"
        && caller(req).is_some_and(|p| p.account_role != AccountRole::Owner)
    {
        return Err(ApiError::Detail(
            StatusCode::FORBIDDEN,
            "Only an account owner may change a service account with the owner role".into(),
        ));
    }
    Ok(())
}

pub(super) async fn bot(
    state: &AppState,
    account_id: &str,
    id: &str,
) -> ApiResult<ServiceAccountRow> {
    let mut c = state.stores.nebula.read().await?;
    identities::service_account(&mut c, account_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Service account not found"))
}

pub(super) async fn read_bot(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let b = bot(&state, &a.id, &path_id(&req, "id")).await?;
    Ok(HttpResponse::Ok().json(bot_with_key(&state, &b).await?))
}

#[derive(Deserialize)]
pub(super) struct BotUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    account_role_id: Option<String>,
}

pub(super) async fn update_bot(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<BotUpdate>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let s = bot(&state, &a.id, &path_id(&req, "id")).await?;
    owner_only_for_owners(&req, &s)?;
    let b = body.into_inner();
    let name = b
        .name
        .as_deref()
        .map(|n| valid_name(n, "name"))
        .transpose()?;
    let role = b
        .account_role_id
        .as_deref()
        .map(|r| account_role_field(Some(r)))
        .transpose()?;
    if role == Some(AccountRole::Owner)
        && caller(&req).is_some_and(|p| p.account_role != AccountRole::Owner)
    {
        return Err(ApiError::Detail(
            StatusCode::FORBIDDEN,
            "Only an account owner may grant the owner role".into(),
        ));
    }
    let id = s.id.clone();
    write(
        &state,
        "A service account with this name already exists",
        async move |c| {
            if let Some(n) = &name {
                identities::rename_service_account(c, &id, n, now()).await?;
            }
            if let Some(r) = role {
                identities::set_account_role(c, SERVICE_ACCOUNT, &id, r.as_str(), now()).await?;
            }
            Ok(())
        },
    )
    .await?;
    let s = bot(&state, &a.id, &s.id).await?;
    audit::record(
        &state,
        caller(&req).as_ref(),
        &[Change {
            kind: "service-account",
            id: &s.id,
            name: &s.name,
            action: "updated",
            account_id: &a.id,
            workspace_id: None,
            payload: json!({"account_role": s.account_role}),
        }],
    )
    .await;
    Ok(HttpResponse::Ok().json(bot_with_key(&state, &s).await?))
}

pub(super) async fn delete_bot(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let id = path_id(&req, "id");
    let m = member(&state, &a.id, &id).await?;
    if m.kind != SERVICE_ACCOUNT {
        return Err(ApiError::not_found("Service account not found"));
    }
    remove_member(&state, &req, &a.id, &m).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Cloud's limit on the old key's grace period (48 hours).
pub(super) const MAX_GRACE_SECONDS: i64 = 172_800;

#[derive(Deserialize, Default)]
pub(super) struct RotateBody {
    #[serde(default)]
    api_key_expiration: Option<Value>,
    #[serde(default)]
    old_key_expires_in_seconds: Option<i64>,
}

/// A new key for the service account; its live keys stop working now, or after
/// `old_key_expires_in_seconds` (at most 48 hours).
pub(super) async fn rotate_bot_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonOrDefault<RotateBody>,
) -> ApiResult<HttpResponse> {
    let a = account_of(&state, &req).await?;
    let s = bot(&state, &a.id, &path_id(&req, "id")).await?;
    owner_only_for_owners(&req, &s)?;
    let b = body.into_inner();
    let expires = expiration(&b.api_key_expiration, "api_key_expiration")?;
    let grace = match b.old_key_expires_in_seconds {
        None => None,
        Some(g) if (0..=MAX_GRACE_SECONDS).contains(&g) => Some(g),
        Some(_) => {
            return Err(ApiError::invalid(
                vec!["body".into(), "old_key_expires_in_seconds".into()],
                "Input should be between 0 and 172800",
                "value_error",
            ))
        }
    };
    let (id, name) = (s.id.clone(), s.name.clone());
    let t = now();
    let (new_key, key, old) = write(&state, "", async move |c| {
        c.transaction(async move |c| {
            let old = identities::keys_of(c, SERVICE_ACCOUNT, &id).await?;
            for k in &old {
                match grace {
                    Some(g) if g > 0 => {
                        let until = t + Duration::seconds(g);
                        let until = k.expires.map_or(until, |e| e.min(until));
                        identities::set_key_expiry(c, &k.id, Some(until)).await?;
                    }
                    _ => {
                        identities::revoke_key(c, &k.id, t).await?;
                    }
                }
            }
            let (row, key) = mint(c, SERVICE_ACCOUNT, &id, &name, expires).await?;
            Ok((row, key, old))
        })
        .await
    })
    .await?;
    // Cached verifications of the old keys are dropped, so the grace period (or the
    // revocation) is what counts, not the cache's lifetime.
    for k in &old {
        identity::forget_key_here(&state, &k.key_hash).await;
    }
    let mut changes = vec![key_change(&new_key, &s.name, &a.id, "created")];
    changes.extend(old.iter().map(|k| key_change(k, &s.name, &a.id, "rotated")));
    audit::record(&state, caller(&req).as_ref(), &changes).await;
    Ok(HttpResponse::Created().json(bot_json(&s, Some((&new_key, Some(&key))))))
}
