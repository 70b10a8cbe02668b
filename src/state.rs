//! The shared state of one process: settings, the three stores, the brokers, the roles this
//! process runs and its readiness. Request handlers and background loops take it; it knows
//! nothing of HTTP routing or of the composition root (`app`), which builds it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::broker::Brokers;
use crate::settings::Settings;
use crate::storage::{accounts, StorageResult, Stores};

/// Which parts of Orrery one process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub ui: bool,
    pub services: bool,
    pub events: bool,
}

impl Roles {
    pub fn all() -> Roles {
        Roles {
            api: true,
            ui: true,
            services: true,
            events: true,
        }
    }

    pub fn parse(text: &str) -> Result<Roles, String> {
        let mut roles = Roles {
            api: false,
            ui: false,
            services: false,
            events: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "api" => roles.api = true,
                "ui" => roles.ui = true,
                "services" => roles.services = true,
                "events" => roles.events = true,
                other => {
                    return Err(format!(
                        "--roles: unknown role `{other}` (expected api, ui, services, events)"
                    ))
                }
            }
        }
        if roles
            == (Roles {
                api: false,
                ui: false,
                services: false,
                events: false,
            })
        {
            return Err("--roles: name at least one of api, ui, services, events".into());
        }
        Ok(roles)
    }
}

/// Everything a request handler or background loop may use. No global statics.
/// A denied request, as counted until `identity::audit` writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Denial {
    /// The account the request was for (its audit log has it).
    pub scope: String,
    /// The workspace, for a workspace's route.
    pub workspace: Option<String>,
    /// `orrery.user.{id}` / `orrery.service-account.{id}`, or `orrery.anonymous`.
    pub who: String,
    pub status: u16,
    pub method: String,
    /// The route pattern or, for unknown routes, nothing (paths can carry anything).
    pub route: String,
    pub client: String,
}

/// Denials waiting to be written: groups with their counts, and how many overflowed.
#[derive(Debug, Default)]
pub struct DeniedLog {
    pub groups: BTreeMap<Denial, u64>,
    pub overflow: u64,
}

/// How long a process trusts that a workspace exists without asking nebula again; the
/// background deletion of a deleted workspace's rows waits longer than this.
pub const WORKSPACE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

pub struct AppState {
    pub settings: Arc<Settings>,
    pub stores: Stores,
    pub brokers: Brokers,
    pub roles: Roles,
    /// Events read by this process's distributor, fanned out to `/events/out` subscribers.
    pub live_events: tokio::sync::broadcast::Sender<Arc<crate::event_model::Envelope>>,
    /// Wakes the outbox relay when a transaction wrote events.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// This process's own short-lived copy of verified credentials, in front of a Redis cache
    /// role (`identity::verify`), so a warm check costs no round trip at all.
    pub local_cache: crate::broker::cache::Cache,
    /// The installation's API-key hashing secret, read from nebula once (`identity::keys`).
    pub key_secret: tokio::sync::OnceCell<Vec<u8>>,
    /// Denied requests counted until the next audit write (`identity::audit::denied`).
    pub denied: std::sync::Mutex<DeniedLog>,
    migrated: AtomicBool,
    /// Workspaces known to exist, and since when (an entry is trusted for
    /// [`WORKSPACE_TTL`], so a workspace deleted elsewhere stops resolving here soon after).
    known_workspaces: RwLock<HashMap<(String, String), std::time::Instant>>,
}

impl AppState {
    pub fn new(settings: Arc<Settings>, stores: Stores, brokers: Brokers, roles: Roles) -> Self {
        AppState {
            settings,
            stores,
            brokers,
            roles,
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            live_events: tokio::sync::broadcast::channel(4096).0,
            key_secret: tokio::sync::OnceCell::new(),
            local_cache: crate::broker::cache::Cache::memory(),
            denied: std::sync::Mutex::default(),
            migrated: AtomicBool::new(false),
            known_workspaces: RwLock::default(),
        }
    }

    pub fn mark_migrated(&self) {
        self.migrated.store(true, Ordering::SeqCst);
    }

    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::SeqCst)
    }

    /// Ok when migrations are done and every configured store and broker answers.
    pub async fn check_ready(&self) -> Result<Vec<(&'static str, &'static str)>, String> {
        if !self.is_migrated() {
            return Err("Database migrations are not finished".into());
        }
        if let Err(e) = self.stores.ping().await {
            tracing::warn!(error = %e, "database ping failed");
            return Err("Database is not available".into());
        }
        // Ready means the API can serve: it needs the databases, not Redis (writes never wait
        // on it), so an unreachable Redis role is reported degraded, not unready — a readiness
        // probe must not take every replica out of service during a Redis outage.
        let mut stores: Vec<(&'static str, &'static str)> = crate::storage::DbName::ALL
            .iter()
            .map(|n| (n.as_str(), "ok"))
            .collect();
        stores.extend(self.brokers.states().await);
        Ok(stores)
    }

    /// Whether workspace `workspace` of account `account` exists; positive answers are cached
    /// for [`WORKSPACE_TTL`]. Ask only once migrations are done.
    pub async fn workspace_exists(&self, account: &str, workspace: &str) -> StorageResult<bool> {
        let key = (account.to_string(), workspace.to_string());
        if self
            .known_workspaces
            .read()
            .map(|s| s.get(&key).is_some_and(|t| t.elapsed() < WORKSPACE_TTL))
            .unwrap_or(false)
        {
            return Ok(true);
        }
        let mut c = self.stores.nebula.read().await?;
        let found = accounts::find_workspace(&mut c, account, workspace)
            .await?
            .is_some();
        drop(c);
        if let Ok(mut s) = self.known_workspaces.write() {
            if found {
                s.insert(key, std::time::Instant::now());
            } else {
                s.remove(&key);
            }
        }
        Ok(found)
    }

    /// Forgets that a workspace exists (it was just deleted here).
    pub fn forget_workspace(&self, account: &str, workspace: &str) {
        if let Ok(mut s) = self.known_workspaces.write() {
            s.remove(&(account.to_string(), workspace.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Roles;

    #[test]
    fn roles_parse_and_reject_unknown_names() {
        assert_eq!(Roles::parse("api,ui,services,events"), Ok(Roles::all()));
        let only_api = Roles::parse("api").expect("valid");
        assert!(only_api.api && !only_api.ui && !only_api.services && !only_api.events);
        assert!(Roles::parse("api,bogus").is_err());
        assert!(Roles::parse("").is_err());
    }
}
