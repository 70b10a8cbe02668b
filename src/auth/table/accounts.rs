//! The account routes' half of the route table: what each route under `/accounts/{id}` (other
//! than a workspace's URLs) needs, as Prefect Cloud's account permissions.

use super::matches;

/// Account routes, under `/accounts/{account_id}`: the account permission each needs (see
/// `AccountRole::may`). A caller outside the account gets 404.
pub const ACCOUNT_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "", "read:account"),
    ("GET", "/", "read:account"),
    ("PATCH", "", "update:account"),
    ("GET", "/settings", "read:account"),
    ("POST", "/workspaces/", "create:workspace"),
    ("POST", "/workspaces", "create:workspace"),
    ("POST", "/workspaces/filter", "read:workspace"),
    ("GET", "/workspaces/{id}", "read:workspace"),
    ("PATCH", "/workspaces/{id}", "administrate:workspace"),
    ("DELETE", "/workspaces/{id}", "delete:workspace"),
    ("POST", "/workspace_roles/", "create:workspace_role"),
    ("POST", "/workspace_roles", "create:workspace_role"),
    ("POST", "/workspace_roles/filter", "read:workspace_role"),
    ("GET", "/workspace_roles/{id}", "read:workspace_role"),
    ("PATCH", "/workspace_roles/{id}", "update:workspace_role"),
    ("DELETE", "/workspace_roles/{id}", "delete:workspace_role"),
    ("POST", "/account_roles/filter", "read:account_role"),
    ("GET", "/account_roles/{id}", "read:account_role"),
    (
        "POST",
        "/account_memberships/filter",
        "read:account_membership",
    ),
    (
        "GET",
        "/account_memberships/{id}",
        "read:account_membership",
    ),
    (
        "PATCH",
        "/account_memberships/{id}",
        "update:account_membership",
    ),
    (
        "DELETE",
        "/account_memberships/{id}",
        "delete:account_membership",
    ),
    ("POST", "/bots/", "create:bot"),
    ("POST", "/bots", "create:bot"),
    ("POST", "/bots/filter", "read:bot"),
    ("GET", "/bots/{id}", "read:bot"),
    ("PATCH", "/bots/{id}", "update:bot"),
    ("DELETE", "/bots/{id}", "delete:bot"),
    ("POST", "/bots/{id}/rotate_api_key", "update:bot"),
    ("POST", "/teams/", "create:team"),
    ("POST", "/teams", "create:team"),
    ("POST", "/teams/filter", "read:team"),
    ("GET", "/teams/{id}", "read:team"),
    ("PUT", "/teams/{id}", "update:team"),
    ("DELETE", "/teams/{id}", "delete:team"),
    ("PUT", "/teams/{id}/members", "update:team"),
    ("DELETE", "/teams/{id}/members/{actor_id}", "update:team"),
    // The account's own events: its audit log.
    ("POST", "/events/filter", "read:audit_event"),
    ("GET", "/events/filter/next", "read:audit_event"),
    ("POST", "/events/count-by/{countable}", "read:audit_event"),
];

/// The permission an account route of `method` for `path` (after `/accounts/{id}`) needs.
pub fn account_permission(method: &str, path: &str) -> Option<&'static str> {
    account_route(method, path).map(|(_, perm)| perm)
}

/// The account route (its pattern and permission) of `method` for `path`.
pub fn account_route(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
    ACCOUNT_ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && matches(p, path))
        .map(|(_, p, perm)| (*p, *perm))
}
