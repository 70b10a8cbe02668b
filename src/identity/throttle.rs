//! Password guesses are counted, per email and per client address, in the cache role: every
//! check of a password against its hash counts one before it runs and gives it back when the
//! password was right, so a count is the failures (and the checks under way) of the window.
//! Past `auth.login_attempts_per_email` or `_per_client` within `auth.login_window_seconds`, a
//! password is refused without being checked — on the login route, in Basic credentials and in
//! a socket's auth message alike. With the cache role unreachable nothing is counted (argon2id
//! still makes each guess slow).

use std::time::Duration;

use crate::state::AppState;

/// The counters one password check took.
pub struct Attempt {
    keys: Vec<String>,
    /// Whether a counter went past its limit.
    pub refused: bool,
}

fn keys(state: &AppState, email_hash: &str, client: Option<&str>) -> Vec<(String, i64)> {
    let auth = &state.settings.auth;
    let mut keys = vec![(
        format!("login:email:{email_hash}"),
        i64::try_from(auth.login_attempts_per_email).unwrap_or(i64::MAX),
    )];
    if let Some(c) = client.filter(|c| !c.is_empty()) {
        keys.push((
            format!("login:client:{c}"),
            i64::try_from(auth.login_attempts_per_client).unwrap_or(i64::MAX),
        ));
    }
    keys
}

fn window(state: &AppState) -> Duration {
    Duration::from_secs(state.settings.auth.login_window_seconds.max(1))
}

/// Whether a login for the email of `email_hash` from `client` would be refused now (the count
/// only; [`attempt`] takes one).
pub async fn refused(state: &AppState, email_hash: &str, client: Option<&str>) -> bool {
    for (key, limit) in keys(state, email_hash, client) {
        if state.brokers.cache.count(&key).await.unwrap_or(0) >= limit {
            return true;
        }
    }
    false
}

/// Counts one password check; `refused` when a counter is past its limit (then the check
/// must not run).
pub async fn attempt(state: &AppState, email_hash: &str, client: Option<&str>) -> Attempt {
    let mut refused = false;
    let mut taken = Vec::new();
    for (key, limit) in keys(state, email_hash, client) {
        match state.brokers.cache.incr(&key, 1, window(state)).await {
            Ok(n) => {
                refused |= n > limit;
                taken.push(key);
            }
            Err(e) => tracing::debug!(error = %e, "cannot count a password check"),
        }
    }
    Attempt {
        keys: taken,
        refused,
    }
}

/// Gives back what a right password's check took.
pub async fn succeeded(state: &AppState, attempt: Attempt) {
    for key in attempt.keys {
        if let Err(e) = state.brokers.cache.incr(&key, -1, window(state)).await {
            tracing::debug!(error = %e, "cannot give back a password check");
        }
    }
}
