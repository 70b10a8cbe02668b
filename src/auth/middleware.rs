//! The authentication middleware of the `/api` scope. In `auth.mode = "open"` it does nothing.
//! In `"required"` it finds the route's scope in [`table`](super::table), lets public routes
//! through, verifies the credential (`Authorization: Bearer <key>`, or `Basic` of
//! `anything:<key>` or `email:password`), and then: no or bad credential → 401; a workspace the
//! caller holds no role in → 404 (its existence does not leak); a role without the scope → 403.
//! The verified [`Principal`] is left in the request's extensions.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};

use super::table;
use crate::error::ApiError;
use crate::identity::{self, Presented, Scope};
use crate::state::AppState;
use crate::storage::accounts::DEFAULT_WORKSPACE_ID;

/// The prefix of workspace-scoped routes, as their patterns start.
const WORKSPACE_PREFIX: &str = "/accounts/{account_id}/workspaces/{workspace_id}";

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ApiError::Internal("application state missing".into()).into());
    };
    if !state.settings.auth.required() {
        return next.call(req).await;
    }
    // An unknown route goes on to its 404.
    let Some(pattern) = req.match_pattern() else {
        return next.call(req).await;
    };
    let route = pattern.strip_prefix("/api").unwrap_or(&pattern);
    let (route, prefixed) = match route.strip_prefix(WORKSPACE_PREFIX) {
        Some(rest) => (rest, true),
        None => (route, false),
    };
    let Some(scope) = table::scope_of(req.method().as_str(), route) else {
        tracing::error!(method = %req.method(), route, "route has no scope in the route table");
        return Err(ApiError::Internal("this route declares no scope".into()).into());
    };
    if scope == Scope::Public {
        return next.call(req).await;
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|h| h.to_str().unwrap_or("\u{0}").to_string());
    let Some(header) = header else {
        if table::SOCKETS.contains(&route) {
            // The socket's handler takes the credential from its first message.
            return next.call(req).await;
        }
        return Err(unauthorized("Not authenticated"));
    };
    let basic = identity::decode_basic(&header);
    let presented = match &basic {
        Some(pair) => Some(Presented::from_pair(pair)),
        None => Presented::parse(&header),
    };
    let Some(presented) = presented else {
        return Err(unauthorized("Invalid authentication credentials"));
    };
    let principal = identity::verify(&state, presented)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| unauthorized("Invalid authentication credentials"))?;
    if scope != Scope::Me {
        let ws = if prefixed {
            // /api/accounts/{a}/workspaces/{w}/...: the fifth segment.
            req.path()
                .split('/')
                .nth(5)
                .unwrap_or_default()
                .to_ascii_lowercase()
        } else {
            DEFAULT_WORKSPACE_ID.to_string()
        };
        if !principal.sees(&ws) {
            return Err(ApiError::not_found("Workspace not found").into());
        }
        if !principal.may(&ws, scope) {
            return Err(ApiError::Detail(
                actix_web::http::StatusCode::FORBIDDEN,
                "Forbidden: your role in this workspace does not allow this request".into(),
            )
            .into());
        }
    }
    req.extensions_mut().insert(principal);
    next.call(req).await
}

fn unauthorized(detail: &str) -> Error {
    ApiError::Detail(actix_web::http::StatusCode::UNAUTHORIZED, detail.into()).into()
}
