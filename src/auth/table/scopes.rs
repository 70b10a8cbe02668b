//! Which of Prefect Cloud's workspace scopes a workspace route needs, from its class and the
//! resource its first path segment names.

use crate::identity::Scope::{self, *};

/// The workspace scope (Prefect Cloud's names) a workspace route of class `class` and
/// `pattern` needs, by the resource its first path segment names; `None` for routes any role
/// of the workspace may use (the connectivity check, the CSRF token, the UI's schema check).
pub fn fine_scope(class: Scope, pattern: &str) -> Option<&'static str> {
    let mut segments = pattern.trim_start_matches('/').split('/');
    let mut first = segments.next().unwrap_or("");
    if first == "v2" || first == "ui" {
        first = segments.next().unwrap_or("");
    }
    if pattern == "/admin/version" {
        return None;
    }
    let workers = pattern.contains("/workers/");
    let resource = match first {
        "artifacts" => "artifacts",
        "automations" | "templates" | "webhooks" => "automations",
        "block_documents" | "block_schemas" | "block_types" | "block_capabilities" => "blocks",
        "collections" => "work_pools",
        "concurrency_limits" => "concurrency_limits",
        "deployments" => "deployments",
        "events" => "events",
        "flows" | "flow_runs" | "flow_run_states" | "logs" => "flows",
        "task_runs" | "task_run_states" | "task_workers" => "tasks",
        "saved_searches" => "saved_search",
        "variables" => "variables",
        "work_pools" if workers => "workers",
        "work_pools" => "work_pools",
        "work_queues" => "work_queues",
        "admin" => "workspace_settings",
        "user_access" => "workspace_users",
        "bot_access" => "workspace_service_accounts",
        "team_access" => "workspace_teams",
        _ => return None,
    };
    let name = match class {
        Public | Me => return None,
        Read => match resource {
            "saved_search" | "schemas" => return None,
            "tasks" => "see_flows",
            r => return static_name("see_", r),
        },
        Run => "run_deployments",
        Work => match resource {
            "flows" | "events" | "concurrency_limits" => "run_flows",
            "tasks" => "run_tasks",
            r => return static_name("write_", r),
        },
        Write | Manage => match resource {
            "tasks" => "manage_flows",
            r => return static_name("manage_", r),
        },
    };
    Some(name)
}

/// The catalogue's `{prefix}{resource}` scope.
fn static_name(prefix: &str, resource: &str) -> Option<&'static str> {
    crate::identity::WORKSPACE_SCOPES
        .iter()
        .copied()
        .find(|s| s.strip_prefix(prefix) == Some(resource))
}
