//! Identity (nebula): who a credential is and what it may do. API keys (`pnu_` for users,
//! `pnb_` for service accounts) are random, stored only as an HMAC-SHA-256 under the
//! installation's secret; passwords are argon2id. A verified credential is kept in the cache
//! role for `auth.cache_seconds`, so a warm check costs no database query, and a revoked key
//! stops working on every replica within that time. With the cache empty or unreachable, the
//! database answers (slower), and nothing else fails.

pub mod audit;
pub mod keys;
mod roles;
pub mod sessions;
pub mod throttle;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use roles::{
    class_of, AccountRole, Role, Scope, ScopeSet, ACCOUNT_PERMISSIONS, WORKSPACE_SCOPES,
};

use crate::state::AppState;
use crate::storage::identities::{self, Actor, Credential, WorkspaceRoleRow};
use crate::storage::StorageResult;

/// An authenticated caller: its actor and the roles it holds per workspace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Principal {
    /// The key used (absent for a password).
    pub key_id: Option<String>,
    /// `user` or `service_account`.
    pub kind: String,
    pub id: String,
    /// A user's email, a service account's name.
    pub name: String,
    pub account_id: String,
    pub account_role: AccountRole,
    /// Workspace id → the workspace scopes held there (the union of the roles granted).
    pub roles: BTreeMap<String, ScopeSet>,
    pub expires: Option<DateTime<Utc>>,
}

impl Principal {
    fn new(
        actor: Actor,
        roles: BTreeMap<String, Vec<String>>,
        custom: &[WorkspaceRoleRow],
        key_id: Option<String>,
        expires: Option<DateTime<Utc>>,
    ) -> Principal {
        Principal {
            key_id,
            kind: actor.kind,
            id: actor.id,
            name: actor.name,
            account_id: actor.account_id,
            account_role: AccountRole::parse(&actor.account_role).unwrap_or(AccountRole::Member),
            roles: roles
                .into_iter()
                .map(|(ws, names)| {
                    let held = names
                        .iter()
                        .map(|r| scopes_of_grant(r, custom))
                        .fold(ScopeSet::default(), ScopeSet::union);
                    (ws, held)
                })
                .collect(),
            expires,
        }
    }

    fn from_credential(c: Credential) -> Principal {
        let expires = c.expires.map(|e| e.and_utc());
        Principal::new(c.actor, c.roles, &c.custom, Some(c.key_id), expires)
    }

    /// Whether the caller holds a role in workspace `ws`.
    pub fn sees(&self, ws: &str) -> bool {
        self.roles.get(ws).is_some_and(|r| !r.is_empty())
    }

    /// Whether the roles the caller holds in `ws` grant workspace scope `scope`.
    pub fn may(&self, ws: &str, scope: &str) -> bool {
        self.roles.get(ws).is_some_and(|held| held.contains(scope))
    }

    /// As an owner or admin of account `account_id`, holds every scope of its workspace `ws`
    /// (the caller checks `ws` is the account's).
    pub fn own_if_account_wide(&mut self, account_id: &str, ws: &str) {
        if self.account_id == account_id
            && matches!(self.account_role, AccountRole::Owner | AccountRole::Admin)
        {
            let held = self.roles.entry(ws.to_string()).or_default();
            *held = held.union(Role::Owner.scopes());
        }
    }

    /// Whether the caller holds every scope of workspace `ws` (as its owners do).
    pub fn owns(&self, ws: &str) -> bool {
        let all = Role::Owner.scopes();
        self.roles
            .get(ws)
            .is_some_and(|held| held.union(all) == *held)
    }

    /// Whether the caller's account role in account `account_id` grants `permission`.
    pub fn may_in_account(&self, account_id: &str, permission: &str) -> bool {
        self.account_id == account_id && self.account_role.may(permission)
    }

    fn live(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// The scopes a grant of `role` gives: a built-in role's, or a custom role's own scopes with
/// those of the role it inherits. An unknown role (deleted since) gives none.
pub fn scopes_of_grant(role: &str, custom: &[WorkspaceRoleRow]) -> ScopeSet {
    if let Some(r) = Role::parse(role) {
        return r.scopes();
    }
    custom
        .iter()
        .find(|c| c.id == role)
        .map(custom_scopes)
        .unwrap_or_default()
}

/// A custom role's scopes, with those of the role it inherits.
pub fn custom_scopes(row: &WorkspaceRoleRow) -> ScopeSet {
    let own: Vec<String> = serde_json::from_str(&row.scopes).unwrap_or_default();
    let own = ScopeSet::of(own.iter().map(String::as_str)).unwrap_or_default();
    let inherited = row
        .inherited_role
        .as_deref()
        .and_then(Role::parse)
        .map(Role::scopes)
        .unwrap_or_default();
    own.union(inherited)
}

/// What a request presented.
pub enum Presented<'a> {
    /// An API key (`Bearer <key>`, or the password part of Basic credentials).
    Key(&'a str),
    /// A user's email and password (Basic credentials that are not a key).
    Password { email: &'a str, password: &'a str },
}

impl<'a> Presented<'a> {
    /// Reads an `Authorization` header value, or the token of a websocket `auth` message (the
    /// client sends its auth string there: `user:password`, or a bare key).
    pub fn parse(header_or_token: &'a str) -> Option<Presented<'a>> {
        let text = header_or_token.trim();
        if let Some(rest) = strip_prefix_ignore_case(text, "bearer ") {
            return Some(Presented::Key(rest.trim()));
        }
        if strip_prefix_ignore_case(text, "basic ").is_some() {
            return None; // decoded by the caller: see `parse_basic`
        }
        Some(Presented::from_pair(text))
    }

    /// `user:password` text: a key in the password part wins, else email and password.
    pub fn from_pair(text: &'a str) -> Presented<'a> {
        match text.split_once(':') {
            Some((_, key)) if keys::looks_like_key(key) => Presented::Key(key),
            Some((email, password)) => Presented::Password { email, password },
            None => Presented::Key(text),
        }
    }
}

fn strip_prefix_ignore_case<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Decodes the credentials of a `Basic ...` header value (`None` when it is not Basic or not
/// valid base64 UTF-8).
pub fn decode_basic(header: &str) -> Option<String> {
    let b64 = strip_prefix_ignore_case(header.trim(), "basic ")?;
    keys::base64_decode(b64.trim()).and_then(|b| String::from_utf8(b).ok())
}

/// How long a process keeps its own copy of a verification in front of a Redis cache role.
const LOCAL_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// What the cache role keeps for a credential: who it is, or that it is not valid.
#[derive(Serialize, Deserialize)]
struct Cached {
    principal: Option<Principal>,
}

/// Who `presented` is, or `None` when it is not a valid credential. Both answers are cached
/// for `auth.cache_seconds`, so a guess costs the database one query per guess at most.
pub async fn verify(
    state: &AppState,
    presented: Presented<'_>,
) -> StorageResult<Option<Principal>> {
    verify_from(state, presented, None).await
}

/// The cache key of a verified password (to forget it when the password changes).
pub fn password_cache_key(secret: &[u8], email: &str, password: &str) -> String {
    format!(
        "auth:pw:{}",
        keys::hash(
            secret,
            &format!("{}\u{0}{password}", email.trim().to_ascii_lowercase())
        )
    )
}

/// Longest email address (RFC 5321's path limit); longer ones are no one's.
const MAX_EMAIL: usize = 320;

/// [`verify`] for a request from `client` (its address): password checks are throttled per
/// email and per client address ([`throttle`]).
pub async fn verify_from(
    state: &AppState,
    presented: Presented<'_>,
    client: Option<&str>,
) -> StorageResult<Option<Principal>> {
    let secret = keys::installation_secret(state).await?;
    let presented = match presented {
        Presented::Password { email, password } => {
            Owned::Password(email.trim().to_ascii_lowercase(), password.to_string())
        }
        Presented::Key(k) => Owned::Key(k.to_string()),
    };
    if let Owned::Password(email, _) = &presented {
        if email.len() > MAX_EMAIL {
            return Ok(None);
        }
    }
    let cache_key = match &presented {
        Owned::Key(k) => format!("auth:key:{}", keys::hash(&secret, k)),
        Owned::Password(email, password) => password_cache_key(&secret, email, password),
    };
    let now = Utc::now();
    // With Redis as the cache role, this process keeps its own copy for a second in front of
    // it (a revocation reaches other replicas within that second more).
    let local = (!state.brokers.cache.is_memory()).then_some(&state.local_cache);
    if let Some(Ok(Some(bytes))) = match local {
        Some(l) => Some(l.get(&cache_key).await),
        None => None,
    } {
        if let Ok(cached) = serde_json::from_slice::<Cached>(&bytes) {
            return Ok(cached.principal.filter(|p| p.live(now)));
        }
    }
    match state.brokers.cache.get(&cache_key).await {
        Ok(Some(bytes)) => {
            if let Ok(cached) = serde_json::from_slice::<Cached>(&bytes) {
                if let Some(l) = local {
                    let _ = l.set(&cache_key, &bytes, Some(LOCAL_TTL)).await;
                }
                return Ok(cached.principal.filter(|p| p.live(now)));
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(error = %e, "cache role unavailable; verifying from the database")
        }
    }
    let found = match presented {
        Owned::Key(k) => {
            if !keys::looks_like_key(&k) {
                None
            } else {
                let hash = keys::hash(&secret, &k);
                let mut c = state.stores.nebula.read().await?;
                let cred = identities::credential(&mut c, &hash, now.naive_utc()).await?;
                drop(c);
                if let Some(cred) = &cred {
                    // Last use, to the minute the cache allows; a failure costs only that.
                    let id = cred.key_id.clone();
                    let at = now.naive_utc();
                    let touched = state
                        .stores
                        .nebula
                        .write(async move |c| identities::touch_key(c, &id, at).await)
                        .await;
                    if let Err(e) = touched {
                        tracing::debug!(error = %e, "cannot record an API key's last use");
                    }
                }
                cred.map(Principal::from_credential)
            }
        }
        Owned::Password(email, password) => {
            // Counted before the check, given back when the password is right.
            let attempt = throttle::attempt(state, &keys::hash(&secret, &email), client).await;
            if attempt.refused {
                return Ok(None);
            }
            let mut c = state.stores.nebula.read().await?;
            let user = identities::user_credential(&mut c, &email).await?;
            drop(c);
            // argon2id takes tens of milliseconds: off the request threads. An unknown user is
            // checked against a stand-in hash, so the time taken does not tell who exists.
            let phc = user.as_ref().and_then(|(_, _, _, phc)| phc.clone());
            let matched = tokio::task::spawn_blocking(move || match phc {
                Some(phc) => keys::password_matches(&password, &phc),
                None => {
                    keys::password_matches(&password, keys::STAND_IN_HASH);
                    false
                }
            })
            .await
            .unwrap_or(false);
            match user {
                Some((actor, roles, custom, _)) if matched => {
                    throttle::succeeded(state, attempt).await;
                    Some(Principal::new(actor, roles, &custom, None, None))
                }
                _ => None,
            }
        }
    };
    let ttl = std::time::Duration::from_secs(state.settings.auth.cache_seconds);
    if !ttl.is_zero() {
        let cached = Cached {
            principal: found.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&cached) {
            if let Err(e) = state.brokers.cache.set(&cache_key, &bytes, Some(ttl)).await {
                tracing::debug!(error = %e, "cannot cache a verified credential");
            }
            if let Some(l) = local {
                let _ = l.set(&cache_key, &bytes, Some(ttl.min(LOCAL_TTL))).await;
            }
        }
    }
    Ok(found.filter(|p| p.live(now)))
}

/// A credential as presented, owned (an email lowercased, as users are stored).
enum Owned {
    Key(String),
    Password(String, String),
}

/// Forgets the cached verification of the key whose hash is `key_hash`: with Redis as the cache
/// role every replica stops accepting it within a second (its own copy's lifetime); an
/// in-memory cache role in another process forgets it within `auth.cache_seconds`.
pub async fn forget_key(cache: &crate::broker::cache::Cache, key_hash: &str) {
    if let Err(e) = cache.delete(&format!("auth:key:{key_hash}")).await {
        tracing::warn!(error = %e, "cannot drop a revoked key from the cache role");
    }
}

/// [`forget_key`] in this process's cache role and in its own copy in front of it.
pub async fn forget_key_here(state: &AppState, key_hash: &str) {
    forget_key(&state.brokers.cache, key_hash).await;
    forget_key(&state.local_cache, key_hash).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_from_headers_and_socket_tokens() {
        assert!(matches!(
            Presented::parse("Bearer pnu_abc"),
            Some(Presented::Key("pnu_abc"))
        ));
        assert!(matches!(
            Presented::parse("bearer  pnu_abc "),
            Some(Presented::Key("pnu_abc"))
        ));
        assert!(Presented::parse("Basic eDp5").is_none());
        let key = format!("pnu_{}", "a".repeat(36));
        assert!(matches!(
            Presented::from_pair(&format!("anything:{key}")),
            Presented::Key(k) if k == key
        ));
        assert!(matches!(
            Presented::from_pair("me@example.com:secret:with:colons"),
            Presented::Password {
                email: "me@example.com",
                password: "secret:with:colons"
            }
        ));
        assert_eq!(decode_basic("Basic eDp5").as_deref(), Some("x:y"));
        assert_eq!(decode_basic("Basic !!!"), None);
        assert_eq!(decode_basic("Bearer eDp5"), None);
    }

    #[test]
    fn a_principal_may_what_its_roles_allow_where_it_holds_them() {
        let p = Principal {
            key_id: None,
            kind: "user".into(),
            id: "u".into(),
            name: "u@example.com".into(),
            account_id: "a".into(),
            account_role: AccountRole::Member,
            roles: BTreeMap::from([(
                "w1".to_string(),
                Role::Viewer.scopes().union(Role::Runner.scopes()),
            )]),
            expires: None,
        };
        assert!(p.sees("w1") && !p.sees("w2"));
        assert!(p.may("w1", "see_flows") && p.may("w1", "run_deployments"));
        assert!(!p.may("w1", "manage_flows") && !p.may("w2", "see_flows"));
        let now = chrono::Utc::now().naive_utc();
        let custom = WorkspaceRoleRow {
            id: "r1".into(),
            created: now,
            updated: now,
            account_id: "a".into(),
            name: "blocks keeper".into(),
            description: String::new(),
            scopes: r#"["manage_blocks"]"#.into(),
            inherited_role: Some("viewer".into()),
        };
        let held = scopes_of_grant("r1", &[custom]);
        assert!(held.contains("manage_blocks") && held.contains("see_flows"));
        assert!(!held.contains("manage_flows"));
        assert!(scopes_of_grant("gone", &[]).is_empty());
    }
}
