//! The route table: the scope every API route needs, in one place. The authentication
//! middleware matches a request's path (as the router sees it: percent-decoded, without the
//! `/api` and workspace prefixes) against these patterns itself, so it never depends on how
//! actix's resource map treats host guards or methods; a path no route of the table matches is
//! refused in `auth.mode = "required"`, and a test checks that every route registered under
//! `src/api` (and `auth`'s own) is listed.

use crate::identity::Scope::{self, *};

mod accounts;
mod scopes;
pub use accounts::{account_permission, account_route, ACCOUNT_ROUTES};
pub use scopes::fine_scope;

/// (method, route pattern, scope).
pub const ROUTES: &[(&str, &str, Scope)] = &[
    // auth's own routes
    ("GET", "/me", Me),
    ("GET", "/me/", Me),
    ("GET", "/me/workspaces", Me),
    ("GET", "/me/workspaces/", Me),
    ("GET", "/me/accounts", Me),
    ("GET", "/me/accounts/", Me),
    ("POST", "/auth/login", Public),
    ("POST", "/auth/logout", Me),
    ("GET", "/auth/session", Me),
    ("POST", "/me/password", Me),
    ("GET", "/users/{id}/api_keys", Me),
    ("POST", "/users/{id}/api_keys", Me),
    ("POST", "/users/{id}/api_keys/", Me),
    ("GET", "/users/{id}/api_keys/{key_id}", Me),
    ("DELETE", "/users/{id}/api_keys/{key_id}", Me),
    // the orion API
    ("GET", "/admin/storage", Read),
    ("PUT", "/admin/storage", Manage),
    ("DELETE", "/admin/storage", Manage),
    ("GET", "/admin/settings", Read),
    ("POST", "/artifacts/", Work),
    ("POST", "/artifacts", Work),
    ("POST", "/artifacts/filter", Read),
    ("POST", "/artifacts/count", Read),
    ("POST", "/artifacts/latest/filter", Read),
    ("POST", "/artifacts/latest/count", Read),
    ("GET", "/artifacts/{key}/latest", Read),
    ("GET", "/artifacts/{id}", Read),
    ("PATCH", "/artifacts/{id}", Work),
    ("DELETE", "/artifacts/{id}", Write),
    ("POST", "/webhooks/", Write),
    ("POST", "/webhooks", Write),
    ("POST", "/webhooks/filter", Read),
    ("GET", "/webhooks/{id}", Read),
    ("PUT", "/webhooks/{id}", Write),
    ("PATCH", "/webhooks/{id}", Write),
    ("DELETE", "/webhooks/{id}", Write),
    ("POST", "/webhooks/{id}/rotate", Write),
    // An incoming webhook's public URL: its slug is the credential (or, with a service
    // account, the account's key, checked by the receiver).
    ("GET", "/hooks/{slug}", Public),
    ("HEAD", "/hooks/{slug}", Public),
    ("POST", "/hooks/{slug}", Public),
    ("PUT", "/hooks/{slug}", Public),
    ("PATCH", "/hooks/{slug}", Public),
    ("DELETE", "/hooks/{slug}", Public),
    ("POST", "/automations/", Write),
    ("POST", "/automations", Write),
    ("GET", "/automations/{id}", Read),
    ("PUT", "/automations/{id}", Write),
    ("PATCH", "/automations/{id}", Write),
    ("DELETE", "/automations/{id}", Write),
    ("POST", "/automations/templates/validate", Read),
    ("POST", "/templates/validate", Read),
    ("DELETE", "/automations/owned-by/{resource_id}", Write),
    ("GET", "/automations/related-to/{resource_id}", Read),
    ("POST", "/automations/filter", Read),
    ("POST", "/automations/count", Read),
    ("POST", "/block_documents/", Write),
    ("POST", "/block_documents", Write),
    ("POST", "/block_documents/filter", Read),
    ("POST", "/block_documents/count", Read),
    ("GET", "/block_documents/{id}", Read),
    ("PATCH", "/block_documents/{id}", Write),
    ("DELETE", "/block_documents/{id}", Write),
    ("POST", "/block_schemas/", Write),
    ("POST", "/block_schemas", Write),
    ("POST", "/block_schemas/filter", Read),
    ("GET", "/block_schemas/checksum/{checksum}", Read),
    ("GET", "/block_schemas/{id}", Read),
    ("DELETE", "/block_schemas/{id}", Write),
    ("POST", "/block_types/", Write),
    ("POST", "/block_types", Write),
    ("POST", "/block_types/filter", Read),
    ("POST", "/block_types/install_system_block_types", Write),
    ("GET", "/block_types/slug/{slug}", Read),
    ("GET", "/block_types/slug/{slug}/block_documents", Read),
    (
        "GET",
        "/block_types/slug/{slug}/block_documents/name/{block_document_name}",
        Read,
    ),
    ("GET", "/block_types/{id}", Read),
    ("PATCH", "/block_types/{id}", Write),
    ("DELETE", "/block_types/{id}", Write),
    ("GET", "/block_capabilities/", Read),
    ("GET", "/block_capabilities", Read),
    ("GET", "/collections/views/{view}", Read),
    ("GET", "/collections/work_pool_types", Read),
    ("POST", "/concurrency_limits/", Write),
    ("POST", "/concurrency_limits", Write),
    ("POST", "/concurrency_limits/filter", Read),
    ("POST", "/concurrency_limits/increment", Work),
    ("POST", "/concurrency_limits/decrement", Work),
    ("GET", "/concurrency_limits/tag/{tag}", Read),
    ("DELETE", "/concurrency_limits/tag/{tag}", Write),
    ("POST", "/concurrency_limits/tag/{tag}/reset", Write),
    ("GET", "/concurrency_limits/{id}", Read),
    ("DELETE", "/concurrency_limits/{id}", Write),
    ("POST", "/v2/concurrency_limits/", Write),
    ("POST", "/v2/concurrency_limits", Write),
    ("POST", "/v2/concurrency_limits/filter", Read),
    ("POST", "/v2/concurrency_limits/increment", Work),
    ("POST", "/v2/concurrency_limits/increment-with-lease", Work),
    ("POST", "/v2/concurrency_limits/decrement", Work),
    ("POST", "/v2/concurrency_limits/decrement-with-lease", Work),
    (
        "POST",
        "/v2/concurrency_limits/leases/{lease_id}/renew",
        Work,
    ),
    ("GET", "/v2/concurrency_limits/{id_or_name}", Read),
    ("PATCH", "/v2/concurrency_limits/{id_or_name}", Write),
    ("DELETE", "/v2/concurrency_limits/{id_or_name}", Write),
    ("POST", "/deployments/", Write),
    ("POST", "/deployments", Write),
    ("POST", "/deployments/filter", Read),
    ("POST", "/deployments/count", Read),
    ("POST", "/deployments/paginate", Read),
    ("POST", "/deployments/get_scheduled_flow_runs", Work),
    ("POST", "/deployments/bulk_delete", Write),
    (
        "GET",
        "/deployments/name/{flow_name}/{deployment_name}",
        Read,
    ),
    ("GET", "/deployments/{id}", Read),
    ("PATCH", "/deployments/{id}", Write),
    ("DELETE", "/deployments/{id}", Write),
    ("POST", "/deployments/{id}/pause_deployment", Write),
    ("POST", "/deployments/{id}/resume_deployment", Write),
    ("POST", "/deployments/{id}/create_flow_run", Run),
    ("POST", "/deployments/{id}/create_flow_run/bulk", Run),
    ("GET", "/deployments/{id}/work_queue_check", Read),
    ("POST", "/deployments/{id}/schedule", Write),
    ("GET", "/deployments/{id}/schedules", Read),
    ("POST", "/deployments/{id}/schedules", Write),
    ("PATCH", "/deployments/{id}/schedules/{schedule_id}", Write),
    ("DELETE", "/deployments/{id}/schedules/{schedule_id}", Write),
    ("GET", "/events/in", Work),
    ("GET", "/events/out", Read),
    ("POST", "/events", Work),
    ("POST", "/events/", Work),
    ("POST", "/events/filter", Read),
    ("GET", "/events/filter/next", Read),
    ("POST", "/events/count-by/{countable}", Read),
    ("POST", "/flow_runs/{id}/input", Work),
    ("POST", "/flow_runs/{id}/input/filter", Read),
    ("GET", "/flow_runs/{id}/input/{key}", Read),
    ("DELETE", "/flow_runs/{id}/input/{key}", Work),
    ("POST", "/flow_runs/{id}/resume", Work),
    ("POST", "/flow_runs/", Work),
    ("POST", "/flow_runs", Work),
    ("POST", "/flow_runs/filter", Read),
    ("POST", "/flow_runs/count", Read),
    ("POST", "/flow_runs/paginate", Read),
    ("POST", "/flow_runs/history", Read),
    ("POST", "/flow_runs/lateness", Read),
    ("POST", "/flow_runs/bulk_delete", Write),
    ("POST", "/flow_runs/bulk_set_state", Write),
    ("GET", "/flow_runs/{id}", Read),
    ("PATCH", "/flow_runs/{id}", Work),
    ("DELETE", "/flow_runs/{id}", Write),
    ("PATCH", "/flow_runs/{id}/labels", Work),
    ("POST", "/flow_runs/{id}/set_state", Work),
    ("GET", "/flow_runs/{id}/graph", Read),
    ("GET", "/flow_runs/{id}/graph-v2", Read),
    ("GET", "/flow_run_states/", Read),
    ("GET", "/flow_run_states", Read),
    ("GET", "/flow_run_states/{id}", Read),
    ("POST", "/flows/", Work),
    ("POST", "/flows", Work),
    ("POST", "/flows/filter", Read),
    ("POST", "/flows/count", Read),
    ("POST", "/flows/paginate", Read),
    ("POST", "/flows/bulk_delete", Write),
    ("GET", "/flows/name/{name}", Read),
    ("GET", "/flows/{id}", Read),
    ("PATCH", "/flows/{id}", Write),
    ("DELETE", "/flows/{id}", Write),
    ("POST", "/logs/", Work),
    ("POST", "/logs", Work),
    ("POST", "/logs/filter", Read),
    ("GET", "/health", Public),
    ("GET", "/ready", Public),
    ("GET", "/version", Public),
    ("GET", "/hello", Read),
    ("GET", "/admin/version", Read),
    ("GET", "/csrf-token", Read),
    ("PUT", "/saved_searches/", Write),
    ("PUT", "/saved_searches", Write),
    ("POST", "/saved_searches/filter", Read),
    ("GET", "/saved_searches/{id}", Read),
    ("DELETE", "/saved_searches/{id}", Write),
    ("POST", "/task_runs/", Work),
    ("POST", "/task_runs", Work),
    ("POST", "/task_runs/filter", Read),
    ("POST", "/task_runs/count", Read),
    ("POST", "/task_runs/paginate", Read),
    ("POST", "/task_runs/history", Read),
    ("GET", "/task_runs/{id}", Read),
    ("PATCH", "/task_runs/{id}", Work),
    ("DELETE", "/task_runs/{id}", Write),
    ("POST", "/task_runs/{id}/set_state", Work),
    ("GET", "/task_run_states/", Read),
    ("GET", "/task_run_states", Read),
    ("GET", "/task_run_states/{id}", Read),
    ("POST", "/task_workers/filter", Read),
    ("POST", "/ui/flows/count-deployments", Read),
    ("POST", "/ui/flows/next-runs", Read),
    ("POST", "/ui/flow_runs/history", Read),
    ("POST", "/ui/flow_runs/count-task-runs", Read),
    ("POST", "/ui/schemas/validate", Read),
    ("POST", "/ui/task_runs/count", Read),
    ("POST", "/ui/task_runs/dashboard/counts", Read),
    ("GET", "/ui/task_runs/{id}", Read),
    ("POST", "/variables/", Write),
    ("POST", "/variables", Write),
    ("POST", "/variables/filter", Read),
    ("POST", "/variables/count", Read),
    ("GET", "/variables/name/{name}", Read),
    ("PATCH", "/variables/name/{name}", Write),
    ("DELETE", "/variables/name/{name}", Write),
    ("GET", "/variables/{id}", Read),
    ("PATCH", "/variables/{id}", Write),
    ("DELETE", "/variables/{id}", Write),
    ("POST", "/work_pools/", Work),
    ("POST", "/work_pools", Work),
    ("POST", "/work_pools/filter", Read),
    ("POST", "/work_pools/count", Read),
    ("GET", "/work_pools/{name}", Read),
    ("PATCH", "/work_pools/{name}", Write),
    ("DELETE", "/work_pools/{name}", Write),
    (
        "POST",
        "/work_pools/{work_pool_name}/get_scheduled_flow_runs",
        Work,
    ),
    ("POST", "/work_pools/{work_pool_name}/queues", Write),
    ("POST", "/work_pools/{work_pool_name}/queues/", Write),
    ("POST", "/work_pools/{work_pool_name}/queues/filter", Read),
    ("GET", "/work_pools/{work_pool_name}/queues/{name}", Read),
    ("PATCH", "/work_pools/{work_pool_name}/queues/{name}", Write),
    (
        "DELETE",
        "/work_pools/{work_pool_name}/queues/{name}",
        Write,
    ),
    (
        "POST",
        "/work_pools/{work_pool_name}/workers/heartbeat",
        Work,
    ),
    ("POST", "/work_pools/{work_pool_name}/workers/filter", Read),
    (
        "DELETE",
        "/work_pools/{work_pool_name}/workers/{name}",
        Write,
    ),
    ("POST", "/work_queues/", Write),
    ("POST", "/work_queues", Write),
    ("POST", "/work_queues/filter", Read),
    ("GET", "/work_queues/name/{name}", Read),
    ("GET", "/work_queues/{id}", Read),
    ("PATCH", "/work_queues/{id}", Write),
    ("DELETE", "/work_queues/{id}", Write),
    ("POST", "/work_queues/{id}/get_runs", Work),
    ("GET", "/work_queues/{id}/status", Read),
    // workspace access (Prefect Cloud's admin API, under a workspace's URL)
    ("POST", "/user_access/", Manage),
    ("POST", "/user_access", Manage),
    ("POST", "/user_access/filter", Read),
    ("GET", "/user_access/{id}", Read),
    ("DELETE", "/user_access/{id}", Manage),
    ("POST", "/bot_access/", Manage),
    ("POST", "/bot_access", Manage),
    ("POST", "/bot_access/filter", Read),
    ("GET", "/bot_access/{id}", Read),
    ("DELETE", "/bot_access/{id}", Manage),
    ("PUT", "/team_access/", Manage),
    ("PUT", "/team_access", Manage),
    ("POST", "/team_access/filter", Manage),
    ("DELETE", "/team_access/{team_id}", Manage),
];

/// Websocket routes: a request without credentials is let through to authenticate with the
/// socket's first `{"type": "auth", "token": ...}` message, as the client in server mode does.
pub const SOCKETS: &[&str] = &["/events/in", "/events/out", "/logs/out"];

/// What a workspace route needs: its class, the workspace scope (see [`fine_scope`]) and
/// whether it is a socket route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub pattern: &'static str,
    pub class: Scope,
    pub scope: Option<&'static str>,
    pub socket: bool,
}

/// What a request of `method` for `path` needs: of the table's routes of that method whose
/// pattern matches the path (a `{param}` matches one non-empty segment, as the router's do),
/// the strictest. `None` when none matches.
pub fn need_for_path(method: &str, path: &str) -> Option<Need> {
    ROUTES
        .iter()
        .filter(|(m, p, _)| *m == method && matches(p, path))
        .max_by_key(|(_, _, s)| *s)
        .map(|(_, p, s)| Need {
            pattern: p,
            class: *s,
            scope: fine_scope(*s, p),
            socket: SOCKETS.contains(p),
        })
}

/// The class a request of `method` for `path` needs, and whether it is a socket route.
pub fn scope_for_path(method: &str, path: &str) -> Option<(Scope, bool)> {
    need_for_path(method, path).map(|n| (n.class, n.socket))
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), Some(h)) if w.starts_with('{') && w.ends_with('}') => {
                if h.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_each_route_once() {
        let mut seen = std::collections::HashSet::new();
        for (m, p, _) in ROUTES {
            assert!(seen.insert((m, p)), "{m} {p} is listed twice");
        }
        assert_eq!(scope_for_path("POST", "/nonsense"), None);
    }

    #[test]
    fn every_workspace_route_needs_a_catalogued_scope_of_its_class() {
        for (m, p, class) in ROUTES {
            let fine = fine_scope(*class, p);
            match class {
                Public | Me => assert_eq!(fine, None, "{m} {p}"),
                _ => {
                    if let Some(f) = fine {
                        assert_eq!(crate::identity::class_of(f), *class, "{m} {p} needs {f}");
                    }
                }
            }
        }
        // Only the connectivity check, the CSRF token, saved searches and the UI's schema
        // check are open to any role of the workspace.
        let open: Vec<_> = ROUTES
            .iter()
            .filter(|(_, p, c)| !matches!(c, Public | Me) && fine_scope(*c, p).is_none())
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect();
        assert!(
            open.iter().all(|r| r.contains("hello")
                || r.contains("/admin/version")
                || r.contains("csrf")
                || r.contains("saved_searches")
                || r.contains("schemas")),
            "{open:?}"
        );
        assert_eq!(
            fine_scope(Write, "/block_documents/{id}"),
            Some("manage_blocks")
        );
        assert_eq!(
            fine_scope(Work, "/work_pools/{work_pool_name}/workers/heartbeat"),
            Some("write_workers")
        );
        assert_eq!(
            account_permission("POST", "/bots/abc/rotate_api_key"),
            Some("update:bot")
        );
        // What the sockets' auth messages are checked for (events::websocket).
        assert_eq!(
            need_for_path("GET", "/events/in").and_then(|n| n.scope),
            Some("run_flows")
        );
        assert_eq!(
            need_for_path("GET", "/events/out").and_then(|n| n.scope),
            Some("see_events")
        );
        assert_eq!(account_permission("POST", "/nothing"), None);
    }

    #[test]
    fn paths_match_patterns_segment_by_segment() {
        assert_eq!(scope_for_path("GET", "/health"), Some((Public, false)));
        assert_eq!(scope_for_path("POST", "/flows/filter"), Some((Read, false)));
        assert_eq!(scope_for_path("POST", "/flows/"), Some((Work, false)));
        assert_eq!(scope_for_path("DELETE", "/flows/abc"), Some((Write, false)));
        // A pool named "filter": the GET route of pools, not POST /work_pools/filter.
        assert_eq!(
            scope_for_path("GET", "/work_pools/filter"),
            Some((Read, false))
        );
        assert_eq!(scope_for_path("GET", "/events/out"), Some((Read, true)));
        assert_eq!(scope_for_path("DELETE", "/flows/"), None);
        assert_eq!(scope_for_path("DELETE", "/flows//"), None);
        assert_eq!(scope_for_path("HEAD", "/health"), None);
        assert_eq!(scope_for_path("GET", "/flows/a/b/c"), None);
    }
}
