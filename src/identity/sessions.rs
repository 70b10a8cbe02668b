//! Browser sessions: a user signs in with email and password and gets a random token (the
//! `orrery_session` cookie) and a CSRF token that cookie-authenticated unsafe requests must echo.
//! Only the token's HMAC is stored (nebula `sessions`); a verified session is kept in the cache
//! role for `auth.cache_seconds` like an API key. Logging out, removing the user and changing
//! the password revoke sessions.

use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{keys, Principal};
use crate::state::AppState;
use crate::storage::identities::{self, SessionRow};
use crate::storage::StorageResult;

/// The session cookie's name.
pub const COOKIE: &str = "orrery_session";
/// Every session token starts with this.
const PREFIX: &str = "ors_";

/// A live session: who it is and the CSRF token of its unsafe requests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub principal: Principal,
    pub csrf_token: String,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    session: Option<Session>,
}

fn cache_key(hash: &str) -> String {
    format!("auth:session:{hash}")
}

/// How long a session lasts: `auth.session_hours`, between 1 hour and a year.
pub fn lifetime(state: &AppState) -> Duration {
    let hours = i64::try_from(state.settings.auth.session_hours).unwrap_or(i64::MAX);
    Duration::hours(hours.clamp(1, 24 * 366))
}

/// Starts a session for `principal` (a user): the token for the cookie and the session.
pub async fn start(state: &AppState, principal: Principal) -> StorageResult<(String, Session)> {
    let token = keys::generate(PREFIX).map_err(crate::storage::StorageError::Rejected)?;
    let csrf = keys::generate("").map_err(crate::storage::StorageError::Rejected)?;
    let secret = keys::installation_secret(state).await?;
    let now = Utc::now();
    let expires = now + lifetime(state);
    let row = SessionRow {
        token_hash: keys::hash(&secret, &token),
        user_id: principal.id.clone(),
        created: now.naive_utc(),
        expires: expires.naive_utc(),
        csrf_token: csrf.clone(),
        revoked: None,
    };
    state
        .stores
        .nebula
        .write(async move |c| identities::insert_session(c, &row).await)
        .await?;
    let principal = Principal {
        expires: Some(expires),
        ..principal
    };
    Ok((
        token,
        Session {
            principal,
            csrf_token: csrf,
        },
    ))
}

/// The live session of `token`, if any (cached for `auth.cache_seconds`, failures too).
pub async fn verify(state: &AppState, token: &str) -> StorageResult<Option<Session>> {
    if !token.starts_with(PREFIX) || !keys::made_with(token, PREFIX.len()) {
        return Ok(None);
    }
    let secret = keys::installation_secret(state).await?;
    let hash = keys::hash(&secret, token);
    let key = cache_key(&hash);
    let now = Utc::now();
    if let Ok(Some(bytes)) = state.brokers.cache.get(&key).await {
        if let Ok(c) = serde_json::from_slice::<Cached>(&bytes) {
            return Ok(c.session.filter(|s| s.principal.live(now)));
        }
    }
    let mut c = state.stores.nebula.read().await?;
    let found = match identities::live_session(&mut c, &hash, now.naive_utc()).await? {
        None => None,
        Some(row) => {
            let user = identities::user_by_id(&mut c, &row.user_id).await?;
            let parts = match user {
                Some(u) => identities::user_credential(&mut c, &u.email).await?,
                None => None,
            };
            parts.map(|(actor, roles, custom, _)| Session {
                principal: Principal::new(actor, roles, &custom, None, Some(row.expires.and_utc())),
                csrf_token: row.csrf_token,
            })
        }
    };
    drop(c);
    let ttl = std::time::Duration::from_secs(state.settings.auth.cache_seconds);
    if !ttl.is_zero() {
        let cached = Cached {
            session: found.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&cached) {
            if let Err(e) = state.brokers.cache.set(&key, &bytes, Some(ttl)).await {
                tracing::debug!(error = %e, "cannot cache a verified session");
            }
        }
    }
    Ok(found)
}

/// Ends the session of `token` (logout).
pub async fn end(state: &AppState, token: &str) -> StorageResult<()> {
    let secret = keys::installation_secret(state).await?;
    let hash = keys::hash(&secret, token);
    let h = hash.clone();
    let now = Utc::now().naive_utc();
    state
        .stores
        .nebula
        .write(async move |c| identities::revoke_session(c, &h, now).await)
        .await?;
    forget(state, &hash).await;
    Ok(())
}

/// Ends every session of `user_id` (a changed password, a removed user).
pub async fn end_all(state: &AppState, user_id: &str) -> StorageResult<()> {
    let id = user_id.to_string();
    let now = Utc::now().naive_utc();
    let hashes = state
        .stores
        .nebula
        .write(async move |c| identities::revoke_sessions_of(c, &id, now).await)
        .await?;
    for h in hashes {
        forget(state, &h).await;
    }
    Ok(())
}

async fn forget(state: &AppState, hash: &str) {
    if let Err(e) = state.brokers.cache.delete(&cache_key(hash)).await {
        tracing::warn!(error = %e, "cannot drop an ended session from the cache role");
    }
}
