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

/// `/api/accounts/{a}/workspaces/{w}/rest` → (`Some(w)`, `/rest`); any other path under `/api`
/// → (`None`, the path after `/api`).
fn split_path(path: &str) -> (Option<&str>, &str) {
    let rest = path.strip_prefix("/api").unwrap_or(path);
    let prefixed = rest.strip_prefix("/accounts/").and_then(|r| {
        let (account, r) = r.split_once('/')?;
        let r = r.strip_prefix("workspaces/")?;
        let (workspace, tail) = match r.find('/') {
            Some(i) => (&r[..i], &r[i..]),
            None => (r, ""),
        };
        (!account.is_empty() && !workspace.is_empty()).then_some((workspace, tail))
    });
    match prefixed {
        Some((ws, tail)) => (Some(ws), tail),
        None => (None, rest),
    }
}

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
    // The path as the router matches it (percent-decoded), so what is checked is what is served.
    let path = req.match_info().as_str().to_string();
    let (workspace, route) = split_path(&path);
    let Some((scope, socket)) = table::scope_for_path(req.method().as_str(), route) else {
        // No route of the table: nothing is served, whatever the credential.
        return Err(ApiError::not_found("Not Found").into());
    };
    if scope == Scope::Public {
        return next.call(req).await;
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|h| h.to_str().unwrap_or("\u{0}").to_string());
    let Some(header) = header else {
        if socket {
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
        let ws = workspace
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| DEFAULT_WORKSPACE_ID.to_string());
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

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn workspace_prefixes_split_off() {
        assert_eq!(
            split_path("/api/accounts/a1/workspaces/w1/flows/filter"),
            (Some("w1"), "/flows/filter")
        );
        assert_eq!(
            split_path("/api/accounts/a1/workspaces/w1"),
            (Some("w1"), "")
        );
        assert_eq!(split_path("/api/flows/"), (None, "/flows/"));
        assert_eq!(
            split_path("/api/accounts/a1/other/w1/x"),
            (None, "/accounts/a1/other/w1/x")
        );
        assert_eq!(
            split_path("/api/accounts//workspaces/w/x"),
            (None, "/accounts//workspaces/w/x")
        );
    }
}
