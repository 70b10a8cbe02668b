//! Deployments, schedules, work pools, work queues and workers against a real server: every
//! route's status codes and bodies (the expected bodies were read off a prefect 3.9.1 reference
//! server), bad input, the worker poll (queue priorities, pool and queue concurrency limits,
//! paused pools and queues) and the scheduler, late-runs, foreman and cancellation-cleanup
//! services. Nothing answers 500. This file holds what the files below share.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::support::{call, create_flow, DeploymentBuilder, TestApp};

mod crud;
mod poll;
mod runs;
mod scheduled_runs;
mod schedules;
mod work_pools;
mod work_queues;

/// Names of the flow runs in a worker poll answer (`[{work_pool_id, work_queue_id, flow_run}]`).
fn polled(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| {
            v["flow_run"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn at(offset_seconds: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(offset_seconds)).to_rfc3339()
}

fn parse_ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}")))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// A run of deployment `dep` named `name`, SCHEDULED at now + `offset` seconds, in `queue`.
async fn scheduled_run(
    app: &TestApp,
    dep: &str,
    queue: Option<&str>,
    offset: i64,
    name: &str,
) -> Value {
    let mut body = json!({
        "name": name,
        "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": at(offset)}},
    });
    if let Some(q) = queue {
        body["work_queue_name"] = json!(q);
    }
    let (s, r) = call(
        app,
        "POST",
        &format!("/api/deployments/{dep}/create_flow_run"),
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    r
}

async fn poll_pool(app: &TestApp, pool: &str, body: Value) -> Value {
    let (s, r) = call(
        app,
        "POST",
        &format!("/api/work_pools/{pool}/get_scheduled_flow_runs"),
        Some(body),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    r
}

async fn runs_of(app: &TestApp, dep: &str) -> Value {
    let (s, r) = call(
        app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"flow_runs": {"deployment_id": {"any_": [dep]}}, "sort": "EXPECTED_START_TIME_ASC"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    r
}

fn auto_scheduled(runs: &Value) -> Vec<Value> {
    runs.as_array()
        .expect("list")
        .iter()
        .filter(|r| r["auto_scheduled"] == json!(true))
        .cloned()
        .collect()
}

/// Deployments "d" and "other" of a flow "etl", with neither pool nor schedule; answers their
/// ids.
async fn two_deployments(app: &TestApp) -> (String, String) {
    let flow_id = create_flow(app, "etl").await;
    let d = DeploymentBuilder::new("d")
        .flow_id(&flow_id)
        .create(app)
        .await;
    let other = DeploymentBuilder::new("other")
        .flow_id(&flow_id)
        .create(app)
        .await;
    let id = |d: &Value| d["id"].as_str().expect("id").to_string();
    (id(&d), id(&other))
}

/// A parameter schema: `n` an integer (required), `s` a string defaulting to "x".
fn param_schema() -> Value {
    json!({
        "title": "Parameters", "type": "object",
        "properties": {
            "n": {"title": "n", "position": 0, "type": "integer"},
            "s": {"title": "s", "position": 1, "type": "string", "default": "x"},
        },
        "required": ["n"],
    })
}
