//! The orion API: Prefect-compatible REST routes, mounted at `/api` (the default workspace) and at
//! `/api/accounts/{account_id}/workspaces/{workspace_id}` (that workspace). Handlers are thin:
//! extract, call storage or orchestration, map to a DTO. One resource per file.

pub mod admin;
pub mod artifacts;
pub mod automation_actions;
pub mod automations;
pub mod blocks;
pub mod collections;
pub mod common;
pub mod concurrency_limits_v1;
pub mod concurrency_limits_v2;
pub mod deployments;
pub mod event_queries;
pub mod events;
pub mod flow_run_input;
pub mod flow_runs;
pub mod flows;
pub mod graph;
pub mod history;
pub mod logs;
pub mod root;
pub mod run_lists;
pub mod saved_searches;
pub mod task_runs;
pub mod ui;
pub mod variables;
pub mod webhooks;
pub mod work_pools;
pub mod work_queues;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, Error};

use crate::error::ApiError;

pub use crate::version::{API_VERSION, PREFECT_VERSION};

/// The oldest `X-PREFECT-API-VERSION` accepted.
const MINIMUM_API_VERSION: (u64, u64, u64) = (0, 8, 0);

/// Registers every API route on `cfg` twice: plainly and under the workspace prefix, with the
/// workspace routes of `more` (the router's: workspace access) beside them.
pub fn configure(cfg: &mut web::ServiceConfig, more: fn(&mut web::ServiceConfig)) {
    cfg.service(
        web::scope("/accounts/{account_id}/workspaces/{workspace_id}")
            .wrap(from_fn(crate::extract::workspace::resolve))
            .configure(|c| routes(c, more)),
    );
    routes(cfg, more);
}

fn routes(cfg: &mut web::ServiceConfig, more: fn(&mut web::ServiceConfig)) {
    root::configure(cfg);
    cfg.service(
        web::scope("")
            .wrap(from_fn(ready_gate))
            .configure(resources)
            .configure(more),
    );
}

/// The orion resources; they answer only once the databases are migrated.
fn resources(cfg: &mut web::ServiceConfig) {
    admin::configure(cfg);
    collections::configure(cfg);
    flows::configure(cfg);
    concurrency_limits_v2::configure(cfg);
    flow_runs::configure(cfg);
    task_runs::configure(cfg);
    work_pools::configure(cfg);
    deployments::configure(cfg);
    work_queues::configure(cfg);
    automations::configure(cfg);
    logs::configure(cfg);
    events::configure(cfg);
    event_queries::configure(cfg);
    artifacts::configure(cfg);
    concurrency_limits_v1::configure(cfg);
    flow_run_input::configure(cfg);
    saved_searches::configure(cfg);
    variables::configure(cfg);
    webhooks::configure(cfg);
    blocks::configure(cfg);
    ui::configure(cfg);
}

/// 503 (which the client retries) while migrations are still running.
async fn ready_gate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let migrated = req
        .app_data::<web::Data<crate::state::AppState>>()
        .is_some_and(|s| s.is_migrated());
    if !migrated {
        return Err(ApiError::Unavailable("migrations are not finished".into()).into());
    }
    next.call(req).await
}

/// Rejects a malformed or too old `X-PREFECT-API-VERSION` header with 400, as Prefect does; a
/// missing header is accepted.
pub async fn check_api_version(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(value) = req.headers().get("x-prefect-api-version") {
        let text = value.to_str().unwrap_or("");
        match parse_version(text) {
            None => {
                return Err(ApiError::bad_request(format!(
                    "Invalid X-PREFECT-API-VERSION header format.Expected header in format 'x.y.z' but received {text}"
                ))
                .into())
            }
            Some(v) if v < MINIMUM_API_VERSION => {
                let (a, b, c) = MINIMUM_API_VERSION;
                return Err(ApiError::bad_request(format!(
                    "The request specified API version {text} but this server requires version {a}.{b}.{c} or higher."
                ))
                .into());
            }
            Some(_) => {}
        }
    }
    next.call(req).await
}

fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.trim().split('.');
    let v = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn api_versions_parse_as_three_integers() {
        assert_eq!(parse_version("0.8.4"), Some((0, 8, 4)));
        assert_eq!(parse_version("1.2"), None);
        assert_eq!(parse_version("1.2.3.4"), None);
        assert_eq!(parse_version("a.b.c"), None);
        assert!(parse_version("0.7.9") < Some((0, 8, 0)));
    }
}
