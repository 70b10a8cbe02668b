//! Signing in from a browser: `POST /api/auth/login` with an email and password sets the
//! `orrery_session` cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) and returns the CSRF token
//! unsafe requests made with the cookie must send back (`X-CSRF-Token` or Prefect's
//! `Prefect-Csrf-Token` header; the middleware checks it). `GET /api/auth/session` tells the UI
//! who is signed in, `POST /api/auth/logout` ends the session, `POST /api/me/password` changes the
//! password and ends every session of the user.
//!
//! Failed logins are counted in the cache role per email and per client address; past
//! `auth.login_attempts_per_email` / `_per_client` within `auth.login_window_seconds` a login
//! answers 429 until the window ends. Every login, failed login, throttled login and logout is
//! audited.

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::accounts::{caller, now, write};
use crate::error::{ApiError, ApiResult};
use crate::identity::audit::{self, By, Change};
use crate::identity::sessions::{self, Session, COOKIE};
use crate::identity::{self, keys, throttle, Presented, Principal};
use crate::state::AppState;
use crate::state::Denial;
use crate::storage::accounts::DEFAULT_ACCOUNT_ID;
use crate::storage::identities;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/login", web::post().to(login))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/session", web::get().to(session))
        .route("/me/password", web::post().to(change_password));
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

fn client(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

/// The `Set-Cookie` value for the session cookie (tokens are base-62: nothing to escape).
fn cookie(req: &HttpRequest, value: &str, max_age: i64) -> (&'static str, String) {
    let secure = if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    (
        "Set-Cookie",
        format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"),
    )
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn read_cookie(headers: &actix_web::http::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

fn session_json(s: &Session) -> serde_json::Value {
    let p = &s.principal;
    json!({
        "user": {
            "id": p.id,
            "email": p.name,
            "account_id": p.account_id,
            "account_role": p.account_role.as_str(),
        },
        "csrf_token": s.csrf_token,
        "expires": p.expires,
    })
}

/// The login's audit change about `email` (the user's id when it is one).
async fn audit_login(
    state: &AppState,
    by: &By<'_>,
    email: &str,
    user: Option<(&str, &str)>,
    action: &str,
    client: &str,
) {
    let (id, account) = user.unwrap_or(("unknown", DEFAULT_ACCOUNT_ID));
    let change = Change {
        kind: "user",
        id,
        name: email,
        action,
        account_id: account,
        workspace_id: None,
        payload: json!({"client": client}),
    };
    match audit::write(&state.stores, by, &[change]).await {
        Ok(()) => state.outbox_wake.notify_one(),
        Err(e) => tracing::warn!(error = %e, "could not write a login's audit event"),
    }
}

/// Parses a body that carries a password: a 422 names the field but never echoes the body
/// (Prefect's errors do echo it elsewhere).
fn secret_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    crate::extract::json::parse::<T>(bytes).map_err(|e| match e {
        ApiError::Validation { loc, msg, kind, .. } => ApiError::Validation {
            loc,
            msg,
            kind,
            body: None,
        },
        other => other,
    })
}

/// A login must come as JSON from a page of this installation: a cross-site form (which can
/// post `text/plain` that happens to parse as JSON) would sign the victim in as someone else.
fn same_site_json(req: &HttpRequest) -> ApiResult<()> {
    let json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Err(ApiError::Detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "A login is sent as application/json".into(),
        ));
    }
    let cross = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    if cross {
        return Err(ApiError::Detail(
            StatusCode::FORBIDDEN,
            "A login comes from a page of this installation".into(),
        ));
    }
    Ok(())
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    same_site_json(&req)?;
    let b: Login = secret_body(&body)?;
    let email = b.email.trim().to_ascii_lowercase();
    if email.len() > 320 {
        return Err(ApiError::invalid(
            vec!["body".into(), "email".into()],
            "An email address has at most 320 characters",
            "string_too_long",
        ));
    }
    let from = client(&req);
    let secret = keys::installation_secret(&state).await?;
    if throttle::refused(&state, &keys::hash(&secret, &email), Some(&from)).await {
        // Counted with the other denials (one audit event per client and window, not one per
        // refused guess).
        audit::denied(
            &state,
            Denial {
                scope: DEFAULT_ACCOUNT_ID.to_string(),
                workspace: None,
                who: "orrery.anonymous".into(),
                status: 429,
                method: "POST".into(),
                route: "/auth/login".into(),
                client: from.clone(),
            },
        );
        let window = state.settings.auth.login_window_seconds.max(1);
        return Ok(HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
            .insert_header(("Retry-After", window.to_string()))
            .json(json!({"detail": "Too many failed logins; try again later"})));
    }
    let known = {
        let mut c = state.stores.nebula.read().await?;
        identities::user_by_email(&mut c, &email).await?
    };
    let user = known
        .as_ref()
        .map(|u| (u.id.as_str(), u.account_id.as_str()));
    // Each failure here cost an argon2id check (and counts towards the throttle), so one audit
    // event per failure is bounded by what the throttle lets through.
    let verified = identity::verify_from(
        &state,
        Presented::Password {
            email: &email,
            password: &b.password,
        },
        Some(&from),
    )
    .await?;
    let Some(principal) = verified.filter(|p| p.kind == identities::USER) else {
        audit_login(&state, &By::Anonymous, &email, user, "login-failed", &from).await;
        return Err(ApiError::Detail(
            StatusCode::UNAUTHORIZED,
            "Invalid email or password".into(),
        ));
    };
    let (token, s) = sessions::start(&state, principal).await?;
    audit_login(
        &state,
        &By::Principal(&s.principal),
        &email,
        user,
        "logged-in",
        &from,
    )
    .await;
    Ok(HttpResponse::Ok()
        .insert_header(cookie(
            &req,
            &token,
            sessions::lifetime(&state).num_seconds(),
        ))
        .json(session_json(&s)))
}

/// The session the request's cookie names (the middleware verified it in required mode).
fn current(req: &HttpRequest) -> Option<Session> {
    req.extensions().get::<Session>().cloned()
}

async fn session(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    // In open mode the middleware verifies nothing: the cookie is read here.
    let s = match current(&req) {
        Some(s) => Some(s),
        None => match read_cookie(req.headers(), COOKIE) {
            Some(token) => sessions::verify(&state, &token).await?,
            None => None,
        },
    };
    match s {
        Some(s) => Ok(HttpResponse::Ok().json(session_json(&s))),
        None => Err(ApiError::Detail(
            StatusCode::UNAUTHORIZED,
            "Not signed in".into(),
        )),
    }
}

async fn logout(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    if let Some(token) = read_cookie(req.headers(), COOKIE) {
        let ended = sessions::verify(&state, &token).await?;
        sessions::end(&state, &token).await?;
        if let Some(s) = ended {
            let p = &s.principal;
            audit_login(
                &state,
                &By::Principal(p),
                &p.name,
                Some((&p.id, &p.account_id)),
                "logged-out",
                &client(&req),
            )
            .await;
        }
    }
    Ok(HttpResponse::NoContent()
        .insert_header(cookie(&req, "", 0))
        .finish())
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password (it must know the current one) and ends its sessions.
async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let Some(p): Option<Principal> = caller(&req).filter(|p| p.kind == identities::USER) else {
        return Err(ApiError::Detail(
            StatusCode::UNAUTHORIZED,
            "Sign in as a user to change its password".into(),
        ));
    };
    let b: PasswordChange = secret_body(&body)?;
    if b.new_password.chars().count() < 8 {
        return Err(ApiError::invalid(
            vec!["body".into(), "new_password".into()],
            "A password needs at least 8 characters",
            "string_too_short",
        ));
    }
    let ok = identity::verify(
        &state,
        Presented::Password {
            email: &p.name,
            password: &b.current_password,
        },
    )
    .await?
    .is_some_and(|v| v.id == p.id);
    if !ok {
        return Err(ApiError::Detail(
            StatusCode::FORBIDDEN,
            "The current password does not match".into(),
        ));
    }
    // The old password's cached verification goes too, here and in the cache role.
    let secret = keys::installation_secret(&state).await?;
    let old = identity::password_cache_key(&secret, &p.name, &b.current_password);
    for cache in [&state.brokers.cache, &state.local_cache] {
        if let Err(e) = cache.delete(&old).await {
            tracing::warn!(error = %e, "cannot drop an old password's verification");
        }
    }
    let new = b.new_password;
    let hash = tokio::task::spawn_blocking(move || keys::hash_password(&new))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)?;
    let id = p.id.clone();
    write(&state, "", async move |c| {
        identities::set_password(c, &id, &hash, now()).await
    })
    .await?;
    sessions::end_all(&state, &p.id).await?;
    audit::record(
        &state,
        Some(&p),
        &[Change {
            kind: "user",
            id: &p.id,
            name: &p.name,
            action: "password-changed",
            account_id: &p.account_id,
            workspace_id: None,
            payload: serde_json::Value::Null,
        }],
    )
    .await;
    Ok(HttpResponse::NoContent()
        .insert_header(cookie(&req, "", 0))
        .finish())
}
