//! `[auth]`: whether requests need a credential, and how long a verified one is trusted
//! without asking the database again.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No credential needed: every request acts as the owner of the default workspace.
    Open,
    /// Every route but health, readiness and version needs an API key or a user's password.
    Required,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Seconds a verified credential is kept in the cache role; a revoked key or a changed role
    /// takes effect on every replica within this time.
    pub cache_seconds: u64,
    /// Hours a browser session lasts after its login.
    pub session_hours: u64,
    /// Failed logins allowed per email, and per client address, in `login_window_seconds`.
    pub login_attempts_per_email: u64,
    pub login_attempts_per_client: u64,
    pub login_window_seconds: u64,
}

impl AuthSettings {
    pub fn required(&self) -> bool {
        self.mode == AuthMode::Required
    }
}
