//! The caller's own routes, in Prefect Cloud's shapes: `/me`, `/me/workspaces` (what `prefect
//! cloud login` validates a key with and picks the workspace from) and `/me/accounts`. In
//! `auth.mode = "open"` the caller is the owner of everything, so every workspace is listed.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::json;

use crate::error::ApiResult;
use crate::identity::{AccountRole, Principal};
use crate::state::AppState;
use crate::storage::identities::{self, WorkspaceListing};

pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in ["/me", "/me/"] {
        cfg.route(path, web::get().to(me));
    }
    for path in ["/me/workspaces", "/me/workspaces/"] {
        cfg.route(path, web::get().to(my_workspaces));
    }
    for path in ["/me/accounts", "/me/accounts/"] {
        cfg.route(path, web::get().to(my_accounts));
    }
}

fn principal(req: &HttpRequest) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

/// 401 in `auth.mode = "required"` when no credential was verified (the middleware lets none
/// through; this keeps these routes closed if that ever changed).
fn closed(state: &AppState, req: &HttpRequest) -> ApiResult<()> {
    if state.settings.auth.required() && principal(req).is_none() {
        return Err(crate::error::ApiError::Detail(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "Not authenticated".into(),
        ));
    }
    Ok(())
}

async fn me(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    closed(&state, &req)?;
    Ok(match principal(&req) {
        Some(p) => HttpResponse::Ok().json(json!({
            "id": p.id,
            "actor_type": p.kind,
            "name": p.name,
            "email": (p.kind == identities::USER).then_some(&p.name),
            "account_id": p.account_id,
            "account_role": p.account_role.as_str(),
        })),
        None => HttpResponse::Ok().json(json!({
            "id": null,
            "actor_type": "anonymous",
            "name": "anonymous",
            "email": null,
            "account_id": crate::storage::accounts::DEFAULT_ACCOUNT_ID,
            "account_role": "owner",
        })),
    })
}

/// The workspaces the caller holds a role in (all of them in open mode).
async fn listings(state: &AppState, req: &HttpRequest) -> ApiResult<Vec<WorkspaceListing>> {
    closed(state, req)?;
    let mut c = state.stores.nebula.read().await?;
    let rows = match principal(req) {
        Some(p) => {
            let ids: Vec<String> = p
                .roles
                .iter()
                .filter(|(_, r)| !r.is_empty())
                .map(|(ws, _)| ws.clone())
                .collect();
            if matches!(p.account_role, AccountRole::Owner | AccountRole::Admin) {
                // Every workspace of the account, those made since the key was verified too.
                identities::workspace_listings(&mut c, None)
                    .await?
                    .into_iter()
                    .filter(|w| w.account_id == p.account_id || ids.contains(&w.workspace_id))
                    .collect()
            } else {
                identities::workspace_listings(&mut c, Some(&ids)).await?
            }
        }
        None => identities::workspace_listings(&mut c, None).await?,
    };
    Ok(rows)
}

async fn my_workspaces(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let rows: Vec<_> = listings(&state, &req)
        .await?
        .into_iter()
        .map(|w| {
            json!({
                "account_id": w.account_id,
                "account_name": w.account_name,
                "account_handle": w.account_handle,
                "workspace_id": w.workspace_id,
                "workspace_name": w.workspace_name,
                "workspace_description": w.workspace_description,
                "workspace_handle": w.workspace_handle,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}

async fn my_accounts(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let mut accounts: Vec<serde_json::Value> = Vec::new();
    for w in listings(&state, &req).await? {
        if !accounts.iter().any(|a| a["account_id"] == w.account_id) {
            accounts.push(json!({
                "account_id": w.account_id,
                "account_name": w.account_name,
                "account_handle": w.account_handle,
            }));
        }
    }
    Ok(HttpResponse::Ok().json(accounts))
}
