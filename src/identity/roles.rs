//! Prefect Cloud's roles and the scopes routes declare (`auth::table`).

use serde::{Deserialize, Serialize};

/// What a route needs. Every route of the API declares one in the route table. Ordered from
/// the least to the most demanding (Run and Work are each held by roles the other is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Anyone, with or without a credential (health, readiness, version).
    Public,
    /// Any authenticated caller, about itself (`/me`).
    Me,
    /// Read a workspace's objects.
    Read,
    /// Start runs of deployments.
    Run,
    /// Execute work: poll pools, create and report flow and task runs, logs, events, artifacts,
    /// concurrency slots.
    Work,
    /// Create, change and delete a workspace's flows, deployments, pools, blocks, variables,
    /// limits and automations, and delete runs.
    Write,
    /// Manage who has access to the workspace.
    Manage,
}

/// A workspace role (Prefect Cloud's built-in ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Runner,
    Worker,
    Developer,
    Owner,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Runner,
        Role::Worker,
        Role::Developer,
        Role::Owner,
    ];

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Runner => "runner",
            Role::Worker => "worker",
            Role::Developer => "developer",
            Role::Owner => "owner",
        }
    }

    /// Viewer reads; runner also runs deployments; worker also executes work; developer does
    /// all of that and changes the workspace's objects; owner also manages access.
    pub fn allows(self, scope: Scope) -> bool {
        use Role::*;
        match scope {
            Scope::Public | Scope::Me | Scope::Read => true,
            Scope::Run => matches!(self, Runner | Developer | Owner),
            Scope::Work => matches!(self, Worker | Developer | Owner),
            Scope::Write => matches!(self, Developer | Owner),
            Scope::Manage => self == Owner,
        }
    }
}

/// An account role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    Member,
    Admin,
    Owner,
}

impl AccountRole {
    pub fn parse(name: &str) -> Option<AccountRole> {
        match name {
            "member" => Some(AccountRole::Member),
            "admin" => Some(AccountRole::Admin),
            "owner" => Some(AccountRole::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Member => "member",
            AccountRole::Admin => "admin",
            AccountRole::Owner => "owner",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_allows_what_prefect_cloud_documents() {
        let allowed = |r: Role| -> Vec<Scope> {
            [
                Scope::Read,
                Scope::Run,
                Scope::Work,
                Scope::Write,
                Scope::Manage,
            ]
            .into_iter()
            .filter(|s| r.allows(*s))
            .collect()
        };
        assert_eq!(allowed(Role::Viewer), [Scope::Read]);
        assert_eq!(allowed(Role::Runner), [Scope::Read, Scope::Run]);
        assert_eq!(allowed(Role::Worker), [Scope::Read, Scope::Work]);
        assert_eq!(
            allowed(Role::Developer),
            [Scope::Read, Scope::Run, Scope::Work, Scope::Write]
        );
        assert_eq!(allowed(Role::Owner).len(), 5);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
