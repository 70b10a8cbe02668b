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

/// Prefect Cloud's workspace scopes: what a custom role is made of. Each route needs one of
/// them (`auth::table::fine_scope`); a built-in role holds every scope of the classes it allows.
pub const WORKSPACE_SCOPES: &[&str] = &[
    "manage_acls",
    "manage_artifacts",
    "manage_assets",
    "manage_automations",
    "manage_blocks",
    "manage_concurrency_limits",
    "manage_deployments",
    "manage_event_publications",
    "manage_event_subscriptions",
    "manage_events",
    "manage_flows",
    "manage_incidents",
    "manage_notifications",
    "manage_saved_search",
    "manage_tags",
    "manage_variables",
    "manage_webhooks",
    "manage_work_pools",
    "manage_work_queues",
    "manage_workers",
    "manage_workspace_service_accounts",
    "manage_workspace_settings",
    "manage_workspace_teams",
    "manage_workspace_users",
    "run_deployments",
    "run_flows",
    "run_tasks",
    "see_artifacts",
    "see_assets",
    "see_automations",
    "see_blocks",
    "see_concurrency_limits",
    "see_deployments",
    "see_event_publications",
    "see_event_subscriptions",
    "see_events",
    "see_flows",
    "see_incidents",
    "see_notifications",
    "see_secret_blocks",
    "see_tags",
    "see_variables",
    "see_webhooks",
    "see_work_pools",
    "see_work_queues",
    "see_workers",
    "see_workspace_service_accounts",
    "see_workspace_settings",
    "see_workspace_users",
    "write_artifacts",
    "write_assets",
    "write_deployments",
    "write_incidents",
    "write_notifications",
    "write_variables",
    "write_work_pools",
    "write_work_queues",
    "write_workers",
    "write_workspace_settings",
];

/// The class of a workspace scope: `see_*` read, `run_deployments` run, `run_flows`,
/// `run_tasks` and `write_*` work (what executing flows and workers do), access management
/// (`manage_workspace_*`, `manage_acls`) manage, any other `manage_*` write.
pub fn class_of(scope: &str) -> Scope {
    if scope.starts_with("see_") {
        Scope::Read
    } else if scope == "run_deployments" {
        Scope::Run
    } else if scope.starts_with("run_") || scope.starts_with("write_") {
        Scope::Work
    } else if scope.starts_with("manage_workspace_") || scope == "manage_acls" {
        Scope::Manage
    } else {
        Scope::Write
    }
}

/// A set of [`WORKSPACE_SCOPES`], one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScopeSet(pub [u64; 2]);

impl ScopeSet {
    fn bit(name: &str) -> Option<usize> {
        WORKSPACE_SCOPES.iter().position(|s| *s == name)
    }

    /// The set of `names`; `Err` names the first that is not a workspace scope.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<ScopeSet, String> {
        let mut set = ScopeSet::default();
        for n in names {
            let i = ScopeSet::bit(n).ok_or_else(|| format!("unknown scope: {n}"))?;
            set.0[i / 64] |= 1 << (i % 64);
        }
        Ok(set)
    }

    pub fn union(self, other: ScopeSet) -> ScopeSet {
        ScopeSet([self.0[0] | other.0[0], self.0[1] | other.0[1]])
    }

    pub fn is_empty(self) -> bool {
        self.0 == [0, 0]
    }

    pub fn contains(self, name: &str) -> bool {
        ScopeSet::bit(name).is_some_and(|i| self.0[i / 64] & (1 << (i % 64)) != 0)
    }

    pub fn names(self) -> Vec<&'static str> {
        WORKSPACE_SCOPES
            .iter()
            .copied()
            .filter(|n| self.contains(n))
            .collect()
    }
}

impl Role {
    /// Every workspace scope of the classes this role allows.
    pub fn scopes(self) -> ScopeSet {
        let names = WORKSPACE_SCOPES
            .iter()
            .copied()
            .filter(|n| self.allows(class_of(n)));
        ScopeSet::of(names).unwrap_or_default()
    }

    /// The fixed id each account lists the built-in role under (`account_id` null, as Cloud).
    pub fn id(self) -> &'static str {
        match self {
            Role::Owner => "00000000-0000-4000-9000-000000000001",
            Role::Developer => "00000000-0000-4000-9000-000000000002",
            Role::Runner => "00000000-0000-4000-9000-000000000003",
            Role::Viewer => "00000000-0000-4000-9000-000000000004",
            Role::Worker => "00000000-0000-4000-9000-000000000005",
        }
    }

    /// Cloud's display name (`Owner`, ...).
    pub fn title(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Runner => "Runner",
            Role::Worker => "Worker",
            Role::Developer => "Developer",
            Role::Owner => "Owner",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Role::Viewer => "Reads the workspace's objects.",
            Role::Runner => "Viewer, and runs deployments.",
            Role::Worker => "Viewer, and what workers and running flows need: polling pools, reporting runs, logs, events and artifacts.",
            Role::Developer => "Runner and worker, and creates, changes and deletes flows, deployments, work pools, blocks, variables, limits and automations.",
            Role::Owner => "Developer, and manages who has access to the workspace.",
        }
    }

    /// The built-in role whose id or lowercase name is `text`.
    pub fn by_id_or_name(text: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.id() == text || r.as_str() == text)
    }
}

/// Prefect Cloud's account permissions.
pub const ACCOUNT_PERMISSIONS: &[&str] = &[
    "add:account_member",
    "administrate:workspace",
    "create:account_role",
    "create:audit_event",
    "create:bot",
    "create:team",
    "create:workspace",
    "create:workspace_role",
    "delete:account",
    "delete:account_membership",
    "delete:bot",
    "delete:team",
    "delete:workspace",
    "delete:workspace_role",
    "read:account",
    "read:account_membership",
    "read:account_role",
    "read:audit_event",
    "read:bot",
    "read:team",
    "read:workspace",
    "read:workspace_role",
    "update:account",
    "update:account_membership",
    "update:bot",
    "update:team",
    "update:workspace_role",
];

/// An account role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    Member,
    Admin,
    Owner,
}

impl AccountRole {
    pub const ALL: [AccountRole; 3] = [AccountRole::Owner, AccountRole::Admin, AccountRole::Member];

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

    pub fn title(self) -> &'static str {
        match self {
            AccountRole::Member => "Member",
            AccountRole::Admin => "Admin",
            AccountRole::Owner => "Owner",
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            AccountRole::Owner => "00000000-0000-4000-a000-000000000001",
            AccountRole::Admin => "00000000-0000-4000-a000-000000000002",
            AccountRole::Member => "00000000-0000-4000-a000-000000000003",
        }
    }

    /// The account role whose id or lowercase name is `text`.
    pub fn by_id_or_name(text: &str) -> Option<AccountRole> {
        AccountRole::ALL
            .into_iter()
            .find(|r| r.id() == text || r.as_str() == text)
    }

    /// Owner: everything. Admin: everything but deleting the account. Member: reading the
    /// account, its members, roles, teams, service accounts and workspaces.
    pub fn may(self, permission: &str) -> bool {
        match self {
            AccountRole::Owner => true,
            AccountRole::Admin => permission != "delete:account",
            AccountRole::Member => {
                permission.starts_with("read:") && permission != "read:audit_event"
            }
        }
    }

    pub fn permissions(self) -> Vec<&'static str> {
        ACCOUNT_PERMISSIONS
            .iter()
            .copied()
            .filter(|p| self.may(p))
            .collect()
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

    #[test]
    fn built_in_roles_hold_the_scopes_of_their_classes() {
        let viewer = Role::Viewer.scopes();
        assert!(viewer.contains("see_flows") && !viewer.contains("run_deployments"));
        let worker = Role::Worker.scopes();
        assert!(worker.contains("write_workers") && worker.contains("run_flows"));
        assert!(!worker.contains("run_deployments") && !worker.contains("manage_flows"));
        let developer = Role::Developer.scopes();
        assert!(
            developer.contains("manage_blocks") && !developer.contains("manage_workspace_users")
        );
        assert_eq!(Role::Owner.scopes().names().len(), WORKSPACE_SCOPES.len());
        let custom = ScopeSet::of(["see_flows", "manage_blocks"]).expect("known");
        assert_eq!(custom.names(), ["manage_blocks", "see_flows"]);
        assert!(ScopeSet::of(["see_everything"]).is_err());
        assert_eq!(Role::by_id_or_name(Role::Runner.id()), Some(Role::Runner));
        assert!(AccountRole::Member.may("read:workspace"));
        assert!(!AccountRole::Member.may("create:workspace"));
        assert!(
            AccountRole::Admin.may("create:workspace") && !AccountRole::Admin.may("delete:account")
        );
    }
}
