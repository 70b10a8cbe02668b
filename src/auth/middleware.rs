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
use crate::identity::{self, audit, sessions, Presented, Scope};
use crate::state::AppState;
use crate::state::Denial;
use crate::storage::accounts::{DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID};

/// `/api/accounts/{a}/workspaces/{w}/rest` → (`Some(w)`, `/rest`); any other path under `/api`
/// → (`None`, the path after `/api`).
fn split_path(path: &str) -> (Option<(&str, &str)>, &str) {
    let rest = path.strip_prefix("/api").unwrap_or(path);
    let prefixed = rest.strip_prefix("/accounts/").and_then(|r| {
        let (account, r) = r.split_once('/')?;
        let r = r.strip_prefix("workspaces/")?;
        let (workspace, tail) = match r.find('/') {
            Some(i) => (&r[..i], &r[i..]),
            None => (r, ""),
        };
        (!account.is_empty() && !workspace.is_empty()).then_some((account, workspace, tail))
    });
    match prefixed {
        Some((account, ws, tail)) => (Some((account, ws)), tail),
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
    let method = req.method().as_str().to_string();
    let (workspace, route) = split_path(&path);
    // Account routes (`/accounts/{id}/...` other than a workspace's URLs) need an account
    // permission; the rest, a workspace scope.
    let account_route = account_route(&method, &path);
    let need = match account_route {
        Some(_) => None,
        None => match table::need_for_path(&method, route) {
            Some(n) => Some(n),
            // No route of the table: nothing is served, whatever the credential.
            None => return Err(ApiError::not_found("Not Found").into()),
        },
    };
    let (scope, socket) = need.map_or((Scope::Me, false), |n| (n.class, n.socket));
    if scope == Scope::Public {
        return next.call(req).await;
    }
    let ws = workspace
        .map(|(_, w)| w.to_ascii_lowercase())
        .unwrap_or_else(|| DEFAULT_WORKSPACE_ID.to_string());
    // What a denial is recorded under (identity::audit): where, which route, from where.
    // Without a credential a denial is recorded in the default account's log (the URL's
    // account and workspace are the caller's words, not facts); with one, in the caller's
    // account, with the workspace when the URL names one by a UUID.
    let denial = |who: Option<&identity::Principal>, status: u16| Denial {
        scope: who.map_or_else(|| DEFAULT_ACCOUNT_ID.to_string(), |p| p.account_id.clone()),
        workspace: who
            .and(account_route.is_none().then_some(&ws))
            .filter(|w| uuid::Uuid::parse_str(w).is_ok())
            .cloned(),
        who: who.map_or_else(
            || "orrery.anonymous".to_string(),
            |p| {
                let kind = if p.kind == "user" {
                    "user"
                } else {
                    "service-account"
                };
                format!("orrery.{kind}.{}", p.id)
            },
        ),
        status,
        method: method.clone(),
        route: match (&account_route, need) {
            (Some((_, p, _)), _) => format!("/accounts/{{account_id}}{p}"),
            (None, Some(n)) => n.pattern.to_string(),
            (None, None) => String::new(),
        },
        client: req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
    };
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|h| h.to_str().unwrap_or("\u{0}").to_string());
    let cookie = super::session::read_cookie(req.headers(), sessions::COOKIE);
    let mut principal = match (header, cookie) {
        (Some(header), _) => {
            let basic = identity::decode_basic(&header);
            let presented = match &basic {
                Some(pair) => Some(Presented::from_pair(pair)),
                None => Presented::parse(&header),
            };
            let Some(presented) = presented else {
                audit::denied(&state, denial(None, 401));
                return Err(unauthorized("Invalid authentication credentials"));
            };
            let client = req.peer_addr().map(|a| a.ip().to_string());
            let Some(principal) = identity::verify_from(&state, presented, client.as_deref())
                .await
                .map_err(ApiError::from)?
            else {
                audit::denied(&state, denial(None, 401));
                return Err(unauthorized("Invalid authentication credentials"));
            };
            principal
        }
        // A browser's session cookie, when there is no Authorization header.
        (None, Some(token)) => {
            let Some(session) = sessions::verify(&state, &token)
                .await
                .map_err(ApiError::from)?
            else {
                audit::denied(&state, denial(None, 401));
                return Err(unauthorized("Session expired or ended; sign in again"));
            };
            // Unsafe requests made with the cookie echo the session's CSRF token; any request
            // made with it from a page (an Origin header: fetches, websocket upgrades) comes from
            // a page of this installation.
            let safe = matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
            let echoed = ["x-csrf-token", "prefect-csrf-token"]
                .iter()
                .find_map(|h| req.headers().get(*h))
                .and_then(|v| v.to_str().ok());
            let csrf_ok = echoed.is_some_and(|e| same_bytes(e, &session.csrf_token));
            if (!safe && !csrf_ok) || !origin_allowed(&req, &state) {
                audit::denied(&state, denial(Some(&session.principal), 403));
                return Err(forbidden("Missing or wrong CSRF token"));
            }
            let principal = session.principal.clone();
            req.extensions_mut().insert(session);
            principal
        }
        (None, None) => {
            if socket {
                // The socket's handler takes the credential from its first message.
                return next.call(req).await;
            }
            audit::denied(&state, denial(None, 401));
            return Err(unauthorized("Not authenticated"));
        }
    };
    if let Some((account, _, permission)) = &account_route {
        if principal.account_id != *account {
            audit::denied(&state, denial(Some(&principal), 404));
            return Err(ApiError::not_found("Account not found").into());
        }
        if !principal.may_in_account(account, permission) {
            audit::denied(&state, denial(Some(&principal), 403));
            return Err(forbidden(&format!(
                "Forbidden: your account role does not allow {permission}"
            )));
        }
    } else if scope != Scope::Me {
        // An account's owners and admins own each of its workspaces, those made after their
        // credential was verified too (the workspace's resolution checks it is the account's).
        let url_account = workspace
            .map(|(a, _)| a.to_ascii_lowercase())
            .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_string());
        principal.own_if_account_wide(&url_account, &ws);
        if !principal.sees(&ws) {
            audit::denied(&state, denial(Some(&principal), 404));
            return Err(ApiError::not_found("Workspace not found").into());
        }
        let allowed = need
            .and_then(|n| n.scope)
            .is_none_or(|fine| principal.may(&ws, fine));
        if !allowed {
            audit::denied(&state, denial(Some(&principal), 403));
            return Err(forbidden(
                "Forbidden: your role in this workspace does not allow this request",
            ));
        }
    }
    req.extensions_mut().insert(principal);
    next.call(req).await
}

/// `/api/accounts/{a}/<rest>` where `<rest>` is an account route: (the account id, lowercased,
/// the route's pattern and the permission it needs).
fn account_route(method: &str, path: &str) -> Option<(String, &'static str, &'static str)> {
    let rest = path.strip_prefix("/api/accounts/")?;
    let (account, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if account.is_empty() {
        return None;
    }
    table::account_route(method, tail)
        .map(|(pattern, p)| (account.to_ascii_lowercase(), pattern, p))
}

use crate::identity::keys::same_bytes;

/// A cookie-authenticated request's `Origin`, when it has one, is this host, the app host or
/// an origin `server.cors_origins` lets in.
fn origin_allowed(req: &ServiceRequest, state: &AppState) -> bool {
    let Some(origin) = req
        .headers()
        .get(actix_web::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host_of = |o: &str| {
        o.split_once("://")
            .map_or(o, |(_, h)| h)
            .trim_end_matches('/')
            .to_ascii_lowercase()
    };
    let origin_host = host_of(origin);
    let bare = |h: &str| h.split(':').next().unwrap_or(h).to_string();
    let server = &state.settings.server;
    let own = req.connection_info().host().to_ascii_lowercase();
    origin_host == own
        || (!server.app_host.trim().is_empty()
            && bare(&origin_host) == server.app_host.trim().to_ascii_lowercase())
        || server
            .cors_origins
            .split(',')
            .map(str::trim)
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

fn forbidden(detail: &str) -> Error {
    ApiError::Detail(actix_web::http::StatusCode::FORBIDDEN, detail.into()).into()
}

fn unauthorized(detail: &str) -> Error {
    ApiError::Detail(actix_web::http::StatusCode::UNAUTHORIZED, detail.into()).into()
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn account_routes_are_told_from_workspace_urls() {
        use super::account_route;
        assert_eq!(
            account_route("POST", "/api/accounts/A1/bots/"),
            Some(("a1".to_string(), "/bots/", "create:bot"))
        );
        assert_eq!(
            account_route("GET", "/api/accounts/a1/workspaces/w1"),
            Some(("a1".to_string(), "/workspaces/{id}", "read:workspace"))
        );
        assert_eq!(
            account_route("POST", "/api/accounts/a1/workspaces/w1/flows/filter"),
            None
        );
        assert_eq!(account_route("GET", "/api/flows/x"), None);
    }

    #[test]
    fn workspace_prefixes_split_off() {
        assert_eq!(
            split_path("/api/accounts/a1/workspaces/w1/flows/filter"),
            (Some(("a1", "w1")), "/flows/filter")
        );
        assert_eq!(
            split_path("/api/accounts/a1/workspaces/w1"),
            (Some(("a1", "w1")), "")
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
