//! Deployments, schedules, work pools, work queues and workers against a real server: every
//! route's status codes and bodies (the expected bodies were read off a prefect 3.9.1 reference
//! server), bad input, the worker poll (queue priorities, pool and queue concurrency limits,
//! paused pools and queues) and the scheduler, late-runs, foreman and cancellation-cleanup
//! services. Nothing answers 500.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::support::{call, TestApp};

/// Sends `body` as raw bytes (for malformed JSON).
async fn raw(app: &TestApp, path: &str, body: &'static str) -> (u16, Value) {
    crate::support::raw(app, "POST", path, body).await
}

fn detail(msg: &str) -> Value {
    json!({ "detail": msg })
}

fn err_type(body: &Value) -> Value {
    body["exception_detail"][0]["type"].clone()
}

fn err_loc(body: &Value) -> Value {
    body["exception_detail"][0]["loc"].clone()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

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

/// Calls `f` until `ok` holds for its value, for at most `secs` seconds.
async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F, ok: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Value>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = f().await;
        if ok(&v) {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}; last value: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_pool(app: &TestApp, name: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "type": "process"});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let (s, p) = call(app, "POST", "/api/work_pools/", Some(body)).await;
    assert_eq!(s, 201, "{p}");
    p
}

async fn create_queue(app: &TestApp, pool: &str, body: Value) -> Value {
    let (s, q) = call(
        app,
        "POST",
        &format!("/api/work_pools/{pool}/queues"),
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{q}");
    q
}

async fn create_flow(app: &TestApp, name: &str) -> String {
    let (s, f) = call(app, "POST", "/api/flows/", Some(json!({ "name": name }))).await;
    assert!(s == 201 || s == 200, "{s} {f}");
    f["id"].as_str().expect("id").to_string()
}

async fn create_deployment(app: &TestApp, body: Value) -> Value {
    let (s, d) = call(app, "POST", "/api/deployments/", Some(body)).await;
    assert_eq!(s, 201, "{d}");
    d
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

async fn set_state(app: &TestApp, run: &Value, state: Value, force: bool) {
    let id = run["id"].as_str().expect("run id");
    let (s, r) = call(
        app,
        "POST",
        &format!("/api/flow_runs/{id}/set_state"),
        Some(json!({"state": state, "force": force})),
    )
    .await;
    assert_eq!((s, &r["status"]), (201, &json!("ACCEPT")), "{r}");
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

// ------------------------------------------------------------------------------ work pools

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_pools_create_read_update_delete() {
    let app = TestApp::start().await;
    let p = create_pool(&app, "p", json!({})).await;
    assert_eq!(p["name"], "p");
    assert_eq!(p["type"], "process");
    assert_eq!(p["status"], "NOT_READY");
    assert_eq!(p["is_paused"], false);
    assert_eq!(p["concurrency_limit"], Value::Null);
    assert_eq!(p["description"], Value::Null);
    assert_eq!(p["base_job_template"], json!({}));
    let default_queue = p["default_queue_id"].as_str().expect("default queue id");

    // Every pool has a queue named "default" with priority 1.
    let (s, q) = call(&app, "GET", "/api/work_pools/p/queues/default", None).await;
    assert_eq!(s, 200, "{q}");
    assert_eq!(q["id"], default_queue);
    assert_eq!(q["priority"], 1);
    assert_eq!(q["description"], "The work pool's default queue.");
    assert_eq!(q["work_pool_name"], "p");
    assert_eq!(q["work_pool_id"], p["id"]);

    let (s, read) = call(&app, "GET", "/api/work_pools/p", None).await;
    assert_eq!((s, &read["id"]), (200, &p["id"]));

    // The type defaults to "prefect-agent".
    let (s, agent) = call(
        &app,
        "POST",
        "/api/work_pools/",
        Some(json!({"name": "agentless"})),
    )
    .await;
    assert_eq!((s, &agent["type"]), (201, &json!("prefect-agent")));

    // PATCH: description and concurrency limit; pausing shows PAUSED, unpausing NOT_READY again.
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"description": "d", "concurrency_limit": 3})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, read) = call(&app, "GET", "/api/work_pools/p", None).await;
    assert_eq!(
        (&read["description"], &read["concurrency_limit"]),
        (&json!("d"), &json!(3))
    );
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"is_paused": true})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, read) = call(&app, "GET", "/api/work_pools/p", None).await;
    assert_eq!(
        (&read["is_paused"], &read["status"]),
        (&json!(true), &json!("PAUSED"))
    );
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"is_paused": false, "concurrency_limit": null})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, read) = call(&app, "GET", "/api/work_pools/p", None).await;
    assert_eq!(read["status"], "NOT_READY");
    assert_eq!(
        read["concurrency_limit"],
        Value::Null,
        "an explicit null clears the limit"
    );
    assert_eq!(
        read["description"], "d",
        "fields left out of a PATCH are kept"
    );

    // Filter and count.
    let (s, list) = call(
        &app,
        "POST",
        "/api/work_pools/filter",
        Some(json!({"work_pools": {"name": {"any_": ["p"]}}})),
    )
    .await;
    assert_eq!((s, names(&list)), (200, vec!["p".to_string()]));
    let (s, list) = call(&app, "POST", "/api/work_pools/filter", None).await;
    assert_eq!((s, names(&list).len()), (200, 2));
    let (s, list) = call(
        &app,
        "POST",
        "/api/work_pools/filter",
        Some(json!({"work_pools": {"type": {"any_": ["kubernetes"]}}})),
    )
    .await;
    assert_eq!((s, list), (200, json!([])));
    let (s, n) = call(
        &app,
        "POST",
        "/api/work_pools/count",
        Some(json!({"work_pools": {"name": {"any_": ["p"]}}})),
    )
    .await;
    assert_eq!((s, n), (200, json!(1)));
    let (s, n) = call(&app, "POST", "/api/work_pools/count", None).await;
    assert_eq!((s, n), (200, json!(2)));

    // DELETE: 204, then 404; the pool's queues go with it.
    let (s, _) = call(&app, "DELETE", "/api/work_pools/p", None).await;
    assert_eq!(s, 204);
    assert_eq!(
        call(&app, "DELETE", "/api/work_pools/p", None).await,
        (404, detail("Work pool \"p\" not found."))
    );
    let (s, _) = call(
        &app,
        "GET",
        &format!("/api/work_queues/{default_queue}"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_pool_errors_match_prefect() {
    let app = TestApp::start().await;
    create_pool(&app, "p", json!({})).await;
    let not_found = || (404, detail("Work pool \"nope\" not found."));
    assert_eq!(
        call(&app, "GET", "/api/work_pools/nope", None).await,
        not_found()
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            "/api/work_pools/nope",
            Some(json!({"description": "x"}))
        )
        .await,
        not_found()
    );
    assert_eq!(
        call(&app, "DELETE", "/api/work_pools/nope", None).await,
        not_found()
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/nope/queues",
            Some(json!({"name": "q"}))
        )
        .await,
        not_found()
    );
    assert_eq!(
        call(&app, "POST", "/api/work_pools/nope/queues/filter", None).await,
        not_found()
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/nope/workers/heartbeat",
            Some(json!({"name": "w"}))
        )
        .await,
        not_found()
    );
    assert_eq!(
        call(&app, "POST", "/api/work_pools/nope/workers/filter", None).await,
        not_found()
    );
    assert_eq!(
        call(&app, "DELETE", "/api/work_pools/nope/workers/w", None).await,
        not_found()
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/nope/get_scheduled_flow_runs",
            Some(json!({}))
        )
        .await,
        not_found()
    );
    // A queue of a missing pool is reported as a missing queue.
    assert_eq!(
        call(&app, "GET", "/api/work_pools/nope/queues/q", None).await,
        (404, detail("Work pool queue 'nope/q' not found."))
    );

    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/",
            Some(json!({"name": "p", "type": "process"}))
        )
        .await,
        (409, detail("A work pool with this name already exists."))
    );
    for reserved in ["prefect-x", "Prefect pool"] {
        assert_eq!(
            call(
                &app,
                "POST",
                "/api/work_pools/",
                Some(json!({ "name": reserved }))
            )
            .await,
            (
                403,
                detail("Work pools starting with 'Prefect' are reserved for internal use.")
            )
        );
    }
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/",
        Some(json!({"type": "process"})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("missing")), "{e}");
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/",
        Some(json!({"name": "x", "bogus": 1})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "bogus"]), json!("extra_forbidden"))
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/",
        Some(json!({"name": "x", "concurrency_limit": -1})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (
            422,
            json!(["body", "concurrency_limit"]),
            json!("greater_than_equal")
        )
    );
    let (s, e) = raw(&app, "/api/work_pools/", "{\"name\": ").await;
    assert_eq!((s, err_type(&e)), (422, json!("json_invalid")));

    // PATCH validates like create: no unknown fields (the name is not updatable), limit >= 0.
    let (s, e) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("extra_forbidden")));
    let (s, e) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"concurrency_limit": -2})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (
            422,
            json!(["body", "concurrency_limit"]),
            json!("greater_than_equal")
        ),
        "{e}"
    );
    let (_, p) = call(&app, "GET", "/api/work_pools/p", None).await;
    assert_eq!(
        p["concurrency_limit"],
        Value::Null,
        "a rejected PATCH changes nothing"
    );

    let over = (
        422,
        detail("Invalid limit: must be less than or equal to 200."),
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/filter",
            Some(json!({"limit": 201}))
        )
        .await,
        over
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/p/queues/filter",
            Some(json!({"limit": 201}))
        )
        .await,
        over
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/p/workers/filter",
            Some(json!({"limit": 201}))
        )
        .await,
        over
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/p/get_scheduled_flow_runs",
            Some(json!({"limit": 201}))
        )
        .await,
        over
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/p/get_scheduled_flow_runs",
            Some(json!({"limit": -1}))
        )
        .await,
        (
            422,
            detail("Invalid limit: must be greater than or equal to 0.")
        )
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/p/get_scheduled_flow_runs",
        Some(json!({"scheduled_before": "soon"})),
    )
    .await;
    assert_eq!((s, err_loc(&e)), (422, json!(["body", "scheduled_before"])));
    // Names: not empty (nor only blanks or quotes), none of / % & > <; the type is a string.
    let (s, e) = call(&app, "POST", "/api/work_pools/", Some(json!({"name": ""}))).await;
    assert_eq!((s, err_loc(&e)), (422, json!(["body", "name"])), "{e}");
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/",
        Some(json!({"name": " '' "})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "name"]), json!("value_error")),
        "{e}"
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/",
        Some(json!({"name": "typeless", "type": null})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "type"]), json!("string_type")),
        "{e}"
    );
    for bad in ["a/b", "50%", "a&b", "a>b"] {
        let (s, e) = call(
            &app,
            "POST",
            "/api/work_pools/",
            Some(json!({ "name": bad })),
        )
        .await;
        assert_eq!(
            (s, err_loc(&e), err_type(&e)),
            (
                422,
                json!(["body", "name"]),
                json!("string_pattern_mismatch")
            ),
            "pool name {bad:?}: {e}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_pool_and_queue_bodies_carry_active_slots_and_storage_configuration() {
    let app = TestApp::start().await;
    let p = create_pool(&app, "p", json!({})).await;
    assert_eq!(p["active_slots"], Value::Null, "{p}");
    assert_eq!(
        p["storage_configuration"],
        json!({"bundle_upload_step": null, "bundle_execution_step": null, "default_result_storage_block_id": null})
    );
    let q = create_queue(
        &app,
        "p",
        json!({"name": "limited", "concurrency_limit": 2}),
    )
    .await;
    assert_eq!(
        q["active_slots"], 0,
        "a queue with a limit reports its active slots: {q}"
    );
    let (_, q) = call(&app, "GET", "/api/work_pools/p/queues/default", None).await;
    assert!(
        q.as_object().expect("queue").contains_key("active_slots"),
        "{q}"
    );
    assert_eq!(q["active_slots"], Value::Null);
    let (_, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"concurrency_limit": 3})),
    )
    .await;
    let (_, p) = call(&app, "GET", "/api/work_pools/p", None).await;
    assert_eq!(
        p["active_slots"], 0,
        "a pool with a limit reports its active slots: {p}"
    );
    app.stop().await;
}

// ------------------------------------------------------------------------------ work queues

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_queues_crud_priorities_and_errors() {
    let app = TestApp::start().await;
    create_pool(&app, "p", json!({})).await;
    let q1 = create_queue(
        &app,
        "p",
        json!({"name": "q1", "priority": 5, "concurrency_limit": 2, "description": "first"}),
    )
    .await;
    assert_eq!(q1["name"], "q1");
    assert_eq!(q1["priority"], 5);
    assert_eq!(q1["concurrency_limit"], 2);
    assert_eq!(q1["description"], "first");
    assert_eq!(q1["is_paused"], false);
    assert_eq!(q1["status"], "NOT_READY");
    assert_eq!(q1["last_polled"], Value::Null);
    assert_eq!(q1["work_pool_name"], "p");

    // Without a priority a queue takes the first free one (here 2: default has 1, q1 has 5).
    let q2 = create_queue(&app, "p", json!({"name": "q2"})).await;
    assert_eq!(q2["priority"], 2, "{q2}");
    let q3 = create_queue(&app, "p", json!({"name": "q3"})).await;
    assert_eq!(q3["priority"], 3, "{q3}");
    let q4 = create_queue(&app, "p", json!({"name": "q4"})).await;
    assert_eq!(q4["priority"], 4, "{q4}");
    let q6 = create_queue(&app, "p", json!({"name": "q6"})).await;
    assert_eq!(q6["priority"], 6, "{q6}");

    // An explicit priority that is taken pushes the others down: priorities stay unique.
    create_queue(&app, "p", json!({"name": "urgent", "priority": 1})).await;
    let (s, list) = call(&app, "POST", "/api/work_pools/p/queues/filter", None).await;
    assert_eq!(s, 200);
    let order: Vec<(String, i64)> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap_or_default().to_string(),
                q["priority"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = [
        ("urgent", 1),
        ("default", 2),
        ("q2", 3),
        ("q3", 4),
        ("q4", 5),
        ("q1", 6),
        ("q6", 7),
    ]
    .iter()
    .map(|(n, p)| (n.to_string(), *p))
    .collect();
    assert_eq!(order, expected);
    // The same on PATCH.
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p/queues/q6",
        Some(json!({"priority": 2})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, list) = call(&app, "POST", "/api/work_pools/p/queues/filter", None).await;
    assert_eq!(
        names(&list),
        ["urgent", "q6", "default", "q2", "q3", "q4", "q1"]
    );

    let (s, list) = call(
        &app,
        "POST",
        "/api/work_pools/p/queues/filter",
        Some(json!({"work_queues": {"name": {"any_": ["q2"]}}})),
    )
    .await;
    assert_eq!((s, names(&list)), (200, vec!["q2".to_string()]));
    let (s, list) = call(
        &app,
        "POST",
        "/api/work_pools/p/queues/filter",
        Some(json!({"limit": 2, "offset": 1})),
    )
    .await;
    assert_eq!(
        (s, names(&list)),
        (200, vec!["q6".to_string(), "default".to_string()])
    );

    // Read, update (incl. rename), pause.
    let (s, read) = call(&app, "GET", "/api/work_pools/p/queues/q1", None).await;
    assert_eq!((s, &read["id"]), (200, &q1["id"]));
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p/queues/q2",
        Some(json!({"is_paused": true, "concurrency_limit": 1, "description": "two"})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, read) = call(&app, "GET", "/api/work_pools/p/queues/q2", None).await;
    assert_eq!(
        (
            &read["is_paused"],
            &read["status"],
            &read["concurrency_limit"]
        ),
        (&json!(true), &json!("PAUSED"), &json!(1))
    );
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p/queues/q2",
        Some(json!({"name": "q2b", "concurrency_limit": null})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, read) = call(&app, "GET", "/api/work_pools/p/queues/q2b", None).await;
    assert_eq!(
        (s, &read["id"], &read["concurrency_limit"]),
        (200, &q2["id"], &Value::Null)
    );
    assert_eq!(
        call(&app, "GET", "/api/work_pools/p/queues/q2", None).await,
        (404, detail("Work pool queue 'p/q2' not found."))
    );

    // Errors.
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/p/queues",
        Some(json!({"name": "q1"})),
    )
    .await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("A work queue with this name already exists"),
        "{e}"
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/p/queues",
        Some(json!({"name": "z", "priority": 0})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "priority"]), json!("greater_than")),
        "{e}"
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/p/queues",
        Some(json!({"name": "z", "concurrency_limit": -1})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (
            422,
            json!(["body", "concurrency_limit"]),
            json!("greater_than_equal")
        ),
        "{e}"
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/p/queues",
        Some(json!({"name": "a/b"})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (
            422,
            json!(["body", "name"]),
            json!("string_pattern_mismatch")
        ),
        "{e}"
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/p/queues",
        Some(json!({"name": "z", "bogus": true})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("extra_forbidden")));
    let (s, e) = call(&app, "POST", "/api/work_pools/p/queues", Some(json!({}))).await;
    assert_eq!((s, err_type(&e)), (422, json!("missing")));
    let (s, e) = call(
        &app,
        "PATCH",
        "/api/work_pools/p/queues/q1",
        Some(json!({"priority": 0})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("greater_than")), "{e}");
    let (s, e) = call(
        &app,
        "PATCH",
        "/api/work_pools/p/queues/q1",
        Some(json!({"concurrency_limit": -3})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("greater_than_equal")), "{e}");
    let missing = || (404, detail("Work pool queue 'p/nope' not found."));
    assert_eq!(
        call(&app, "GET", "/api/work_pools/p/queues/nope", None).await,
        missing()
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            "/api/work_pools/p/queues/nope",
            Some(json!({"priority": 3}))
        )
        .await,
        missing()
    );
    assert_eq!(
        call(&app, "DELETE", "/api/work_pools/p/queues/nope", None).await,
        missing()
    );

    let (s, _) = call(&app, "DELETE", "/api/work_pools/p/queues/q2b", None).await;
    assert_eq!(s, 204);
    assert_eq!(
        call(&app, "DELETE", "/api/work_pools/p/queues/q2b", None).await,
        (404, detail("Work pool queue 'p/q2b' not found."))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deployments_naming_a_missing_queue_share_it() {
    let app = TestApp::start().await;
    create_pool(&app, "p", json!({})).await;
    let flow_id = create_flow(&app, "f").await;
    // Each request finds the queue missing and creates it; the ones that lose the race get the
    // winner's queue, not a 409. Both ways a queue is named: in a pool, and (legacy) queue only.
    for (pool, queue) in [(Some("p"), "fresh"), (None, "legacy")] {
        let creates = (0..12).map(|i| {
            let mut body = json!({"name": format!("{queue}-{i}"), "flow_id": flow_id,
                "work_queue_name": queue});
            if let Some(p) = pool {
                body["work_pool_name"] = json!(p);
            }
            let app = &app;
            async move { call(app, "POST", "/api/deployments/", Some(body)).await }
        });
        let answers = futures_util::future::join_all(creates).await;
        let queue_ids: std::collections::HashSet<String> = answers
            .iter()
            .map(|(s, d)| {
                assert_eq!(*s, 201, "{d}");
                d["work_queue_id"].as_str().expect("queue id").to_string()
            })
            .collect();
        assert_eq!(queue_ids.len(), 1, "{queue}: {queue_ids:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queues_by_id_live_in_the_default_agent_pool() {
    let app = TestApp::start().await;
    let (s, q) = call(
        &app,
        "POST",
        "/api/work_queues/",
        Some(json!({"name": "legacy"})),
    )
    .await;
    assert_eq!(s, 201, "{q}");
    assert_eq!(q["work_pool_name"], "default-agent-pool");
    assert_eq!(
        q["priority"], 2,
        "the agent pool's own default queue has priority 1"
    );
    let id = q["id"].as_str().expect("id").to_string();
    let (s, pool) = call(&app, "GET", "/api/work_pools/default-agent-pool", None).await;
    assert_eq!((s, &pool["type"]), (200, &json!("prefect-agent")));

    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_queues/",
            Some(json!({"name": "legacy"}))
        )
        .await,
        (409, detail("A work queue with this name already exists."))
    );
    // The body is WorkQueueCreate: no work_pool_name.
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_queues/",
        Some(json!({"name": "x", "work_pool_name": "default-agent-pool"})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (
            422,
            json!(["body", "work_pool_name"]),
            json!("extra_forbidden")
        ),
        "{e}"
    );

    let (s, read) = call(&app, "GET", &format!("/api/work_queues/{id}"), None).await;
    assert_eq!((s, &read["name"]), (200, &json!("legacy")));
    let (s, read) = call(&app, "GET", "/api/work_queues/name/legacy", None).await;
    assert_eq!((s, &read["id"]), (200, &json!(id)));
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/work_queues/{id}"),
        Some(json!({"concurrency_limit": 4, "is_paused": true})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, read) = call(&app, "GET", &format!("/api/work_queues/{id}"), None).await;
    assert_eq!(
        (&read["concurrency_limit"], &read["status"]),
        (&json!(4), &json!("PAUSED"))
    );

    let (s, st) = call(&app, "GET", &format!("/api/work_queues/{id}/status"), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        st,
        json!({"healthy": false, "late_runs_count": 0, "last_polled": null,
               "health_check_policy": {"maximum_late_runs": 0, "maximum_seconds_since_last_polled": 60}})
    );
    let (s, runs) = call(
        &app,
        "POST",
        &format!("/api/work_queues/{id}/get_runs"),
        Some(json!({})),
    )
    .await;
    assert_eq!((s, runs), (200, json!([])));
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/api/work_queues/{id}/get_runs"),
            Some(json!({"limit": 500}))
        )
        .await,
        (
            422,
            detail("Invalid limit: must be less than or equal to 200.")
        )
    );
    let (s, list) = call(
        &app,
        "POST",
        "/api/work_queues/filter",
        Some(json!({"work_queues": {"name": {"any_": ["legacy"]}}})),
    )
    .await;
    assert_eq!((s, names(&list)), (200, vec!["legacy".to_string()]));

    // Unknown ids: each route has its own wording in Prefect.
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        call(&app, "GET", &format!("/api/work_queues/{unknown}"), None).await,
        (404, detail("work queue not found"))
    );
    assert_eq!(
        call(&app, "GET", "/api/work_queues/name/nope", None).await,
        (404, detail("work queue not found"))
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("/api/work_queues/{unknown}"),
            Some(json!({"priority": 3}))
        )
        .await,
        (404, detail(&format!("Work Queue {unknown} not found")))
    );
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/api/work_queues/{unknown}/status"),
            None
        )
        .await,
        (
            404,
            json!({"exception_message": format!("Work queue with id {unknown} not found")})
        )
    );
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/api/work_queues/{unknown}/get_runs"),
            Some(json!({}))
        )
        .await,
        (
            404,
            json!({"exception_message": format!("Work queue with id {unknown} not found.")})
        )
    );
    assert_eq!(
        call(&app, "GET", "/api/work_queues/not-a-uuid", None).await,
        (404, detail("Not Found"))
    );

    let (s, _) = call(&app, "DELETE", &format!("/api/work_queues/{id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(
        call(&app, "DELETE", &format!("/api/work_queues/{id}"), None).await,
        (404, detail("work queue not found"))
    );
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("/api/work_queues/{id}"),
        Some(json!({"concurrency_limit": -4})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("greater_than_equal")), "{e}");
    app.stop().await;
}

// ------------------------------------------------------------------------------ workers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_register_workers_and_the_foreman_marks_them_offline() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__FOREMAN_INTERVAL_MS", "200")
        .start()
        .await;
    create_pool(&app, "p", json!({})).await;
    // The client also sends Cloud-only keys (return_id, metadata); OSS ignores them.
    let (s, _) = call(
        &app,
        "POST",
        "/api/work_pools/p/workers/heartbeat",
        Some(json!({"name": "w1", "heartbeat_interval_seconds": 1, "return_id": true, "metadata": {"a": 1}})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &app,
        "POST",
        "/api/work_pools/p/workers/heartbeat",
        Some(json!({"name": "w2", "heartbeat_interval_seconds": 600})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &app,
        "POST",
        "/api/work_pools/p/workers/heartbeat",
        Some(json!({"name": "w2", "heartbeat_interval_seconds": 600})),
    )
    .await;
    assert_eq!(s, 204, "a second heartbeat updates the same worker");

    let (s, workers) = call(&app, "POST", "/api/work_pools/p/workers/filter", None).await;
    assert_eq!(s, 200);
    let mut listed = names(&workers);
    listed.sort();
    assert_eq!(listed, ["w1", "w2"]);
    let w1 = workers
        .as_array()
        .expect("list")
        .iter()
        .find(|w| w["name"] == "w1")
        .cloned()
        .expect("w1");
    assert_eq!(w1["status"], "ONLINE");
    assert_eq!(w1["heartbeat_interval_seconds"], 1);
    assert!(w1["last_heartbeat_time"].is_string(), "{w1}");
    let (_, pool) = call(&app, "GET", "/api/work_pools/p", None).await;
    assert_eq!(pool["status"], "READY", "a heartbeat makes the pool READY");
    assert_eq!(w1["work_pool_id"], pool["id"]);

    // w1 stops (interval 1 s): OFFLINE after 3 missed heartbeats; w2 stays ONLINE.
    let offline = wait_for(
        "w1 to go OFFLINE",
        20,
        || async {
            call(
                &app,
                "POST",
                "/api/work_pools/p/workers/filter",
                Some(json!({"workers": {"status": {"any_": ["OFFLINE"]}}})),
            )
            .await
            .1
        },
        |v| names(v) == ["w1"],
    )
    .await;
    assert_eq!(offline[0]["status"], "OFFLINE");
    let (_, online) = call(
        &app,
        "POST",
        "/api/work_pools/p/workers/filter",
        Some(json!({"workers": {"status": {"any_": ["ONLINE"]}}})),
    )
    .await;
    assert_eq!(names(&online), ["w2"]);

    // Without any online worker the pool is NOT_READY again.
    let (s, _) = call(&app, "DELETE", "/api/work_pools/p/workers/w2", None).await;
    assert_eq!(s, 204);
    wait_for(
        "the pool to become NOT_READY",
        20,
        || async { call(&app, "GET", "/api/work_pools/p", None).await.1 },
        |p| p["status"] == "NOT_READY",
    )
    .await;
    // A new heartbeat brings both back.
    let (s, _) = call(
        &app,
        "POST",
        "/api/work_pools/p/workers/heartbeat",
        Some(json!({"name": "w1", "heartbeat_interval_seconds": 30})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, w) = call(&app, "POST", "/api/work_pools/p/workers/filter", None).await;
    assert_eq!(
        (names(&w), &w[0]["status"]),
        (vec!["w1".to_string()], &json!("ONLINE"))
    );
    assert_eq!(
        call(&app, "GET", "/api/work_pools/p", None).await.1["status"],
        "READY"
    );

    // Errors.
    assert_eq!(
        call(&app, "DELETE", "/api/work_pools/p/workers/w2", None).await,
        (404, detail("Worker not found."))
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/p/workers/heartbeat",
        Some(json!({})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("missing")), "{e}");
    let (s, e) = call(
        &app,
        "POST",
        "/api/work_pools/p/workers/heartbeat",
        Some(json!({"name": "w", "heartbeat_interval_seconds": "x"})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e)),
        (422, json!(["body", "heartbeat_interval_seconds"])),
        "{e}"
    );
    let (s, e) = raw(&app, "/api/work_pools/p/workers/heartbeat", "{").await;
    assert_eq!((s, err_type(&e)), (422, json!("json_invalid")));
    app.stop().await;
}

// ------------------------------------------------------------------------------ deployments

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_upsert_read_filter_update_delete() {
    let app = TestApp::start().await;
    let p = create_pool(&app, "p", json!({})).await;
    let flow_id = create_flow(&app, "etl").await;
    let body = json!({
        "name": "d1", "flow_id": flow_id, "work_pool_name": "p", "parameters": {"n": 1},
        "parameter_openapi_schema": param_schema(), "enforce_parameter_schema": true,
        "schedules": [{"schedule": {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}, "active": true}],
        "tags": ["t1"], "path": ".", "entrypoint": "flow.py:etl", "job_variables": {},
        "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": "/tmp"}}],
        "version_info": {"type": "prefect:simple", "version": "1"},
    });
    let d = create_deployment(&app, body.clone()).await;
    let id = d["id"].as_str().expect("id").to_string();
    assert_eq!(d["name"], "d1");
    assert_eq!(d["flow_id"], flow_id);
    assert_eq!(d["work_pool_name"], "p");
    assert_eq!(d["work_queue_name"], "default", "the pool's default queue");
    assert_eq!(d["work_queue_id"], p["default_queue_id"]);
    assert_eq!(d["status"], "NOT_READY");
    assert_eq!(d["paused"], false);
    assert_eq!(d["parameters"], json!({"n": 1}));
    assert_eq!(d["labels"], json!({"prefect.flow.id": flow_id}));
    assert_eq!(d["pull_steps"], body["pull_steps"]);
    assert_eq!(d["last_polled"], Value::Null);
    let schedules = d["schedules"].as_array().expect("schedules");
    assert_eq!(schedules.len(), 1);
    assert!(schedules[0]["id"].is_string());
    assert_eq!(schedules[0]["deployment_id"], json!(id));
    assert_eq!(schedules[0]["schedule"]["interval"], 3600.0);
    assert_eq!(schedules[0]["schedule"]["timezone"], "UTC");
    assert_eq!(
        parse_ts(&schedules[0]["schedule"]["anchor_date"]),
        parse_ts(&json!("2026-01-01T00:00:00Z"))
    );
    assert_eq!(schedules[0]["active"], true);
    assert_eq!(schedules[0]["max_scheduled_runs"], Value::Null);
    assert_eq!(schedules[0]["parameters"], json!({}));
    assert_eq!(schedules[0]["slug"], Value::Null);

    // Same flow + name: 200 with the same id (upsert); the schedules are replaced.
    let mut again = body.clone();
    again["description"] = json!("again");
    again["schedules"] =
        json!([{"schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}, "slug": "morning"}]);
    let (s, d2) = call(&app, "POST", "/api/deployments/", Some(again)).await;
    assert_eq!(s, 200, "{d2}");
    assert_eq!(d2["id"], json!(id));
    assert_eq!(d2["description"], "again");
    assert_eq!(d2["schedules"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        d2["schedules"][0]["schedule"],
        json!({"cron": "0 9 * * *", "timezone": "Europe/Paris", "day_or": true})
    );
    assert_eq!(d2["schedules"][0]["slug"], "morning");

    // Reads.
    let (s, r) = call(&app, "GET", &format!("/api/deployments/{id}"), None).await;
    assert_eq!((s, &r["id"]), (200, &json!(id)));
    let (s, r) = call(&app, "GET", "/api/deployments/name/etl/d1", None).await;
    assert_eq!((s, &r["id"]), (200, &json!(id)));

    for path in [
        "/api/deployments/name/etl/nope",
        "/api/deployments/name/nope/d1",
        "/api/deployments/not-a-uuid",
    ] {
        assert_eq!(call(&app, "GET", path, None).await.0, 404, "{path}");
    }

    // A deployment without a pool; another naming a queue the pool lacks (the queue is created).
    let bare = create_deployment(&app, json!({"name": "bare", "flow_id": flow_id})).await;
    assert_eq!(
        (
            &bare["work_pool_name"],
            &bare["work_queue_name"],
            &bare["work_queue_id"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let newq = create_deployment(
        &app,
        json!({"name": "d3", "flow_id": flow_id, "work_pool_name": "p", "work_queue_name": "newq"}),
    )
    .await;
    assert_eq!(newq["work_queue_name"], "newq");
    let (s, q) = call(&app, "GET", "/api/work_pools/p/queues/newq", None).await;
    assert_eq!((s, &q["id"]), (200, &newq["work_queue_id"]));

    // Filter, count, paginate.
    let (s, list) = call(
        &app,
        "POST",
        "/api/deployments/filter",
        Some(json!({"deployments": {"name": {"any_": ["d1"]}}})),
    )
    .await;
    assert_eq!((s, names(&list)), (200, vec!["d1".to_string()]));
    let (s, list) = call(
        &app,
        "POST",
        "/api/deployments/filter",
        Some(json!({"work_pools": {"name": {"any_": ["p"]}}, "sort": "NAME_ASC"})),
    )
    .await;
    assert_eq!(
        (s, names(&list)),
        (200, vec!["d1".to_string(), "d3".to_string()])
    );
    let (s, n) = call(
        &app,
        "POST",
        "/api/deployments/count",
        Some(json!({"flows": {"name": {"any_": ["etl"]}}})),
    )
    .await;
    assert_eq!((s, n), (200, json!(3)));
    let (s, page) = call(
        &app,
        "POST",
        "/api/deployments/paginate",
        Some(json!({"limit": 1, "sort": "NAME_ASC"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            &page["count"],
            &page["pages"],
            &page["page"],
            &page["limit"]
        ),
        (&json!(3), &json!(3), &json!(1), &json!(1))
    );
    assert_eq!(names(&page["results"]), ["bare"]);
    let (s, page) = call(
        &app,
        "POST",
        "/api/deployments/paginate",
        Some(json!({"limit": 1, "page": 2, "sort": "NAME_ASC", "flows": {"name": {"any_": ["etl"]}}})),
    )
    .await;
    assert_eq!(
        (s, &page["count"], &page["page"]),
        (200, &json!(3), &json!(2))
    );
    assert_eq!(names(&page["results"]), ["d1"]);
    let (s, list) = call(
        &app,
        "POST",
        "/api/deployments/filter",
        Some(json!({"sort": "NAME_DESC", "offset": 1})),
    )
    .await;
    assert_eq!(
        (s, names(&list)),
        (200, vec!["d1".to_string(), "bare".to_string()])
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/deployments/filter",
            Some(json!({"limit": 201}))
        )
        .await,
        (
            422,
            detail("Invalid limit: must be less than or equal to 200.")
        )
    );

    // PATCH.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"description": "patched", "tags": ["t2"], "parameters": {"n": 2}})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, r) = call(&app, "GET", &format!("/api/deployments/{id}"), None).await;
    assert_eq!(
        (&r["description"], &r["tags"], &r["parameters"]),
        (&json!("patched"), &json!(["t2"]), &json!({"n": 2}))
    );
    assert_eq!(
        r["schedules"].as_array().map(Vec::len),
        Some(1),
        "a PATCH without schedules keeps them"
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("/api/deployments/{}", uuid::Uuid::new_v4()),
            Some(json!({"description": "x"}))
        )
        .await,
        (404, detail("Deployment not found."))
    );
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "name"]), json!("extra_forbidden"))
    );

    // Deleting the pool detaches its deployments.
    let (s, _) = call(&app, "DELETE", "/api/work_pools/p", None).await;
    assert_eq!(s, 204);
    let (_, r) = call(&app, "GET", &format!("/api/deployments/{id}"), None).await;
    assert_eq!(
        (
            &r["work_pool_name"],
            &r["work_queue_name"],
            &r["work_queue_id"]
        ),
        (&Value::Null, &Value::Null, &Value::Null),
        "{r}"
    );

    let (s, _) = call(&app, "DELETE", &format!("/api/deployments/{id}"), None).await;
    assert_eq!(s, 204);
    // The reference's wording (no full stop on these routes, one on PATCH and the schedules).
    let nf = || (404, detail("Deployment not found"));
    assert_eq!(
        call(&app, "GET", "/api/deployments/name/etl/nope", None).await,
        nf()
    );
    assert_eq!(
        call(&app, "GET", "/api/deployments/name/nope/d1", None).await,
        nf()
    );
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/api/deployments/{}", uuid::Uuid::new_v4()),
            None
        )
        .await,
        nf()
    );
    assert_eq!(
        call(&app, "GET", "/api/deployments/not-a-uuid", None).await,
        (404, detail("Not Found"))
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/deployments/{id}"), None).await,
        nf()
    );
    assert_eq!(
        call(&app, "GET", &format!("/api/deployments/{id}"), None).await,
        nf()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_create_rejects_bad_input_like_prefect() {
    let app = TestApp::start().await;
    create_pool(&app, "p", json!({})).await;
    let flow_id = create_flow(&app, "etl").await;
    let with = |extra: Value| {
        let mut b = json!({"name": "d", "flow_id": flow_id});
        if let (Value::Object(b), Value::Object(e)) = (&mut b, extra) {
            b.extend(e);
        }
        b
    };
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/deployments/",
            Some(with(json!({"work_pool_name": "nope"})))
        )
        .await,
        (404, detail("Work pool \"nope\" not found."))
    );
    assert_eq!(
        call(&app, "POST", "/api/deployments/", Some(with(json!({"flow_id": uuid::Uuid::new_v4()})))).await,
        (
            409,
            detail("Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.")
        )
    );
    let bad_schedules = [
        json!({"cron": "not a cron"}),
        json!({"cron": "61 * * * *"}),
        json!({"cron": "0 8 * *"}),
        json!({"interval": 0}),
        json!({"interval": -5}),
        json!({"cron": "* * * * *", "timezone": "Mars/Olympus"}),
        json!({"rrule": "FREQ=SOMETIMES"}),
        json!({"every": 5}),
    ];
    for sched in bad_schedules {
        let (s, e) = call(
            &app,
            "POST",
            "/api/deployments/",
            Some(with(json!({"schedules": [{"schedule": sched}]}))),
        )
        .await;
        assert_eq!(s, 422, "schedule {sched} -> {e}");
        assert_eq!(e["exception_message"], "Invalid request received.");
        let loc = err_loc(&e);
        assert_eq!(
            loc.as_array().map(|l| l[..4].to_vec()),
            Some(vec![
                json!("body"),
                json!("schedules"),
                json!(0),
                json!("schedule")
            ]),
            "{e}"
        );
    }
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(json!({"name": "d"})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("missing")));
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(with(json!({"bogus": 1}))),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "bogus"]), json!("extra_forbidden"))
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(with(json!({"flow_id": "nope"}))),
    )
    .await;
    assert_eq!((s, err_loc(&e)), (422, json!(["body", "flow_id"])), "{e}");
    let (s, e) = raw(&app, "/api/deployments/", "{\"name\": \"d\",").await;
    assert_eq!((s, err_type(&e)), (422, json!("json_invalid")));
    // Nothing was created by any of these.
    let (_, n) = call(&app, "POST", "/api/deployments/count", None).await;
    assert_eq!(n, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_numbers_out_of_range_are_422_and_huge_schedules_do_not_panic() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "etl").await;
    let gt0 = |e: &Value| (err_loc(e), err_type(e));
    // Prefect's PositiveInteger limits (answers read off the reference server).
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(json!({"name": "d", "flow_id": flow_id, "concurrency_limit": 0})),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (json!(["body", "concurrency_limit"]), json!("greater_than"))
        )
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(json!({"name": "d", "flow_id": flow_id,
            "schedules": [{"schedule": {"interval": 60}, "max_scheduled_runs": -1}]})),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (
                json!(["body", "schedules", 0, "max_scheduled_runs"]),
                json!("greater_than")
            )
        )
    );
    // An interval beyond i64 microseconds and a whole-day one beyond chrono's calendar: one run
    // at the anchor, no overflow.
    for (name, interval) in [("huge", json!(1e13)), ("days", json!(8_640_000_000_000u64))] {
        let d = create_deployment(
            &app,
            json!({"name": name, "flow_id": flow_id,
                "schedules": [{"schedule": {"interval": interval, "anchor_date": at(86_400)}}]}),
        )
        .await;
        let id = d["id"].as_str().expect("id");
        let (s, r) = call(
            &app,
            "POST",
            &format!("/api/deployments/{id}/schedule"),
            Some(json!({})),
        )
        .await;
        assert_eq!((s, r), (200, Value::Null));
        let runs = runs_of(&app, id).await;
        assert_eq!(auto_scheduled(&runs).len(), 1, "{name}: {runs}");
    }
    let d = create_deployment(
        &app,
        json!({"name": "ok", "flow_id": flow_id, "schedules": [{"schedule": {"interval": 3600}}]}),
    )
    .await;
    let id = d["id"].as_str().expect("id");
    let schedule = format!("/api/deployments/{id}/schedule");
    for min_time in [1e20, -1e20] {
        let (s, e) = call(
            &app,
            "POST",
            &schedule,
            Some(json!({ "min_time": min_time })),
        )
        .await;
        assert_eq!(
            (s, err_loc(&e), err_type(&e)),
            (
                422,
                json!(["body", "min_time"]),
                json!("time_delta_parsing")
            )
        );
    }
    // The runs of one call are built in memory, so their count is bounded.
    for field in ["min_runs", "max_runs"] {
        let (s, e) = call(&app, "POST", &schedule, Some(json!({ field: 100_000_000 }))).await;
        assert_eq!(
            (s, err_loc(&e), err_type(&e)),
            (422, json!(["body", field]), json!("less_than_equal"))
        );
    }
    // Like the reference: an unknown deployment schedules nothing (200, null), after the body
    // has been checked.
    let unknown = format!("/api/deployments/{}/schedule", uuid::Uuid::new_v4());
    assert_eq!(
        call(&app, "POST", &unknown, Some(json!({}))).await,
        (200, Value::Null)
    );
    let (s, e) = call(
        &app,
        "POST",
        &unknown,
        Some(json!({"max_runs": 100_000_000})),
    )
    .await;
    assert_eq!((s, err_loc(&e)), (422, json!(["body", "max_runs"])));
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"concurrency_limit": 0})),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (json!(["body", "concurrency_limit"]), json!("greater_than"))
        )
    );
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"concurrency_limit": null})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, e) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/schedules"),
        Some(json!([{"schedule": {"interval": 60}, "max_scheduled_runs": 0}])),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (
                json!(["body", 0, "max_scheduled_runs"]),
                json!("greater_than")
            )
        )
    );
    // A failing schedules replacement (duplicate slugs) keeps the old schedules.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"schedules": [
            {"schedule": {"interval": 60}, "slug": "a"},
            {"schedule": {"interval": 120}, "slug": "a"}
        ]})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, kept) = call(
        &app,
        "GET",
        &format!("/api/deployments/{id}/schedules"),
        None,
    )
    .await;
    assert_eq!((s, &kept), (200, &json!([d["schedules"][0]])));
    let sid = d["schedules"][0]["id"].as_str().expect("schedule id");
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}/schedules/{sid}"),
        Some(json!({"max_scheduled_runs": 0})),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (json!(["body", "max_scheduled_runs"]), json!("greater_than"))
        )
    );
    // Pages start at 1; a page past every row is empty, not an overflow.
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/paginate",
        Some(json!({"page": 0})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "page"]), json!("greater_than_equal"))
    );
    let (s, page) = call(
        &app,
        "POST",
        "/api/deployments/paginate",
        Some(json!({"page": i64::MAX, "limit": 2})),
    )
    .await;
    assert_eq!(
        (s, &page["count"], &page["results"]),
        (200, &json!(3), &json!([]))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_defaults_match_prefect() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "etl").await;
    // What the reference server fills in when the client leaves fields out.
    let d = create_deployment(&app, json!({"name": "bare", "flow_id": flow_id})).await;
    assert_eq!(d["pull_steps"], json!([]), "{d}");
    assert_eq!(d["parameter_openapi_schema"], json!({}), "{d}");
    assert_eq!(d["job_variables"], json!({}));
    assert_eq!(d["parameters"], json!({}));
    assert_eq!(d["tags"], json!([]));
    assert_eq!(d["schedules"], json!([]));
    assert_eq!(d["enforce_parameter_schema"], true);
    assert_eq!(d["concurrency_limit"], Value::Null);
    assert_eq!(d["global_concurrency_limit"], Value::Null);
    // Only a queue name: the queue is created in the default agent pool.
    let legacy = create_deployment(
        &app,
        json!({"name": "legacy", "flow_id": flow_id, "work_queue_name": "legacyq"}),
    )
    .await;
    assert_eq!(legacy["work_queue_name"], "legacyq");
    assert_eq!(legacy["work_pool_name"], "default-agent-pool", "{legacy}");
    let (s, q) = call(
        &app,
        "GET",
        "/api/work_pools/default-agent-pool/queues/legacyq",
        None,
    )
    .await;
    assert_eq!((s, &q["id"]), (200, &legacy["work_queue_id"]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_schedules_crud() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "etl").await;
    let d = create_deployment(
        &app,
        json!({"name": "d", "flow_id": flow_id, "schedules": [{"schedule": {"interval": 3600}}]}),
    )
    .await;
    let id = d["id"].as_str().expect("id").to_string();
    let base = format!("/api/deployments/{id}/schedules");

    let (s, list) = call(&app, "GET", &base, None).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["schedule"]["interval"], 3600.0);

    let (s, created) = call(
        &app,
        "POST",
        &base,
        Some(json!([{"schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}, "active": false, "slug": "morning", "parameters": {"n": 3}, "max_scheduled_runs": 5}])),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created.as_array().map(Vec::len), Some(1));
    let c = &created[0];
    assert!(c["id"].is_string());
    assert_eq!(c["deployment_id"], json!(id));
    assert_eq!(
        c["schedule"],
        json!({"cron": "0 9 * * *", "timezone": "Europe/Paris", "day_or": true})
    );
    assert_eq!(
        (
            &c["active"],
            &c["slug"],
            &c["parameters"],
            &c["max_scheduled_runs"]
        ),
        (
            &json!(false),
            &json!("morning"),
            &json!({"n": 3}),
            &json!(5)
        )
    );
    let sid = c["id"].as_str().expect("schedule id").to_string();
    let (_, list) = call(&app, "GET", &base, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));

    // Slugs are unique per deployment.
    let (s, e) = call(
        &app,
        "POST",
        &base,
        Some(json!([{"schedule": {"cron": "0 10 * * *"}, "slug": "morning"}])),
    )
    .await;
    // The reference says this on PostgreSQL; on SQLite its generic integrity message.
    assert_eq!(s, 409, "{e}");
    assert!(
        e == detail("Schedule slugs must be unique within a deployment.")
            || e == detail("Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details."),
        "{e}"
    );
    let (_, list) = call(&app, "GET", &base, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "nothing was added");
    let (s, e) = call(
        &app,
        "POST",
        &base,
        Some(json!([{"schedule": {"cron": "61 * * * *"}}])),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    let bad_cron_loc = err_loc(&e);
    let (s, e) = call(
        &app,
        "POST",
        &base,
        Some(json!({"schedule": {"cron": "0 9 * * *"}})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e)),
        (422, json!(["body"])),
        "the body is a list: {e}"
    );

    // PATCH one schedule.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("{base}/{sid}"),
        Some(json!({"active": true, "schedule": {"cron": "0 8 * * *", "timezone": "UTC"}})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, list) = call(&app, "GET", &base, None).await;
    let patched = list
        .as_array()
        .expect("list")
        .iter()
        .find(|x| x["id"] == json!(sid))
        .cloned()
        .expect("patched schedule");
    assert_eq!(
        (
            &patched["active"],
            &patched["schedule"]["cron"],
            &patched["slug"]
        ),
        (&json!(true), &json!("0 8 * * *"), &json!("morning"))
    );
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("{base}/{sid}"),
        Some(json!({"schedule": {"cron": "0 8 * *"}})),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        err_loc(&e).as_array().map(|l| l[..2].to_vec()),
        Some(vec![json!("body"), json!("schedule")]),
        "{e}"
    );
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("{base}/{sid}"),
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("extra_forbidden")));

    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("{base}/{unknown}"),
            Some(json!({"active": false}))
        )
        .await,
        (404, detail("Schedule not found."))
    );
    let (s, _) = call(&app, "DELETE", &format!("{base}/{sid}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(
        call(&app, "DELETE", &format!("{base}/{sid}"), None).await,
        (404, detail("Schedule not found."))
    );
    let (_, list) = call(&app, "GET", &base, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    let other = format!("/api/deployments/{unknown}/schedules");
    let dnf = || (404, detail("Deployment not found."));
    assert_eq!(call(&app, "GET", &other, None).await, dnf());
    assert_eq!(
        call(
            &app,
            "POST",
            &other,
            Some(json!([{"schedule": {"interval": 60}}]))
        )
        .await,
        dnf()
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("{other}/{sid}"),
            Some(json!({"active": false}))
        )
        .await,
        dnf()
    );
    assert_eq!(
        call(&app, "DELETE", &format!("{other}/{sid}"), None).await,
        dnf()
    );
    // The body is the list itself: the error's location starts at its index.
    assert_eq!(
        bad_cron_loc.as_array().map(|l| l[..3].to_vec()),
        Some(vec![json!("body"), json!(0), json!("schedule")]),
        "{bad_cron_loc}"
    );
    app.stop().await;
}

// ------------------------------------------------------------------------------ create_flow_run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_flow_run_from_deployment() {
    let app = TestApp::start().await;
    let pool = create_pool(&app, "p", json!({})).await;
    create_queue(&app, "p", json!({"name": "q1"})).await;
    let flow_id = create_flow(&app, "etl").await;
    let d = create_deployment(
        &app,
        json!({"name": "d", "flow_id": flow_id, "work_pool_name": "p", "parameters": {"n": 1},
               "parameter_openapi_schema": param_schema(), "tags": ["dep-tag"], "job_variables": {"env": {"A": "1"}}}),
    )
    .await;
    let id = d["id"].as_str().expect("id").to_string();
    let path = format!("/api/deployments/{id}/create_flow_run");

    // Defaults: SCHEDULED now, the deployment's parameters, tags, queue and pool.
    let (s, r) = call(&app, "POST", &path, Some(json!({}))).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["deployment_id"], json!(id));
    assert_eq!(r["flow_id"], json!(flow_id));
    assert_eq!(r["parameters"], json!({"n": 1}));
    assert_eq!(r["state_type"], "SCHEDULED");
    assert_eq!(r["state"]["name"], "Scheduled");
    assert_eq!(r["tags"], json!(["dep-tag"]));
    assert_eq!(r["work_queue_name"], "default");
    assert_eq!(r["work_queue_id"], pool["default_queue_id"]);
    assert_eq!(r["work_pool_name"], "p");
    assert_eq!(r["work_pool_id"], pool["id"]);
    assert_eq!(r["auto_scheduled"], false);
    assert_eq!(
        r["labels"],
        json!({"prefect.flow.id": flow_id, "prefect.deployment.id": id})
    );
    assert!(
        (parse_ts(&r["next_scheduled_start_time"]) - Utc::now())
            .num_seconds()
            .abs()
            < 30
    );

    // Parameters are merged over the deployment's; an idempotency key makes it 201 then 200.
    let (s, first) = call(
        &app,
        "POST",
        &path,
        Some(json!({"parameters": {"n": 41}, "idempotency_key": "k1", "tags": ["run-tag"]})),
    )
    .await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["parameters"], json!({"n": 41}));
    assert_eq!(first["idempotency_key"], "k1");
    assert_eq!(first["tags"], json!(["dep-tag", "run-tag"]));
    let (s, second) = call(
        &app,
        "POST",
        &path,
        Some(json!({"parameters": {"n": 42}, "idempotency_key": "k1"})),
    )
    .await;
    assert_eq!((s, &second["id"]), (200, &first["id"]));
    assert_eq!(
        second["parameters"],
        json!({"n": 41}),
        "the existing run is returned unchanged"
    );

    // Parameters failing the deployment's schema: 409 with the reference server's wording.
    assert_eq!(
        call(&app, "POST", &path, Some(json!({"parameters": {"n": "abc"}}))).await,
        (409, detail("Error creating flow run: Validation failed for field 'n'. Failure reason: 'abc' is not of type 'integer'"))
    );
    // ... unless the run turns enforcement off.
    let (s, r) = call(
        &app,
        "POST",
        &path,
        Some(json!({"parameters": {"n": "abc"}, "enforce_parameter_schema": false})),
    )
    .await;
    assert_eq!((s, &r["parameters"]), (201, &json!({"n": "abc"})));

    // Another queue of the pool; an unknown queue name is created in the deployment's pool.
    let (s, r) = call(&app, "POST", &path, Some(json!({"work_queue_name": "q1"}))).await;
    assert_eq!(
        (s, &r["work_queue_name"], &r["work_pool_name"]),
        (201, &json!("q1"), &json!("p")),
        "{r}"
    );
    let (s, r) = call(
        &app,
        "POST",
        &path,
        Some(json!({"work_queue_name": "brand-new"})),
    )
    .await;
    assert_eq!(
        (s, &r["work_queue_name"]),
        (201, &json!("brand-new")),
        "{r}"
    );
    let (s, q) = call(&app, "GET", "/api/work_pools/p/queues/brand-new", None).await;
    assert_eq!((s, &q["id"]), (200, &r["work_queue_id"]));

    // An explicit state: a run scheduled in the past.
    let (s, r) = call(
        &app,
        "POST",
        &path,
        Some(json!({"name": "old", "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2020-01-01T00:00:00Z"}}})),
    )
    .await;
    assert_eq!((s, &r["name"]), (201, &json!("old")));
    let old = parse_ts(&json!("2020-01-01T00:00:00Z"));
    assert_eq!(parse_ts(&r["next_scheduled_start_time"]), old);
    assert_eq!(parse_ts(&r["expected_start_time"]), old);

    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/deployments/{}/create_flow_run", uuid::Uuid::new_v4()),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, e) = call(&app, "POST", &path, Some(json!({"bogus": 1}))).await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "bogus"]), json!("extra_forbidden"))
    );

    // A deployment without a pool can't put a run in a named queue.
    let bare = create_deployment(&app, json!({"name": "bare", "flow_id": flow_id})).await;
    let bare_id = bare["id"].as_str().expect("id");
    let (s, e) = call(
        &app,
        "POST",
        &format!("/api/deployments/{bare_id}/create_flow_run"),
        Some(json!({"work_queue_name": "q1"})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        e["detail"],
        format!("Cannot create flow run in work queue q1 because deployment {bare_id} is not associated with a work pool. Please remove work_pool_name and try again.")
    );
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/api/deployments/{}/create_flow_run", uuid::Uuid::new_v4()),
            Some(json!({}))
        )
        .await,
        (404, detail("Deployment not found"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_flow_run_bulk_reports_each_run() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "etl").await;
    let d = create_deployment(&app, json!({"name": "d", "flow_id": flow_id, "parameters": {"n": 1}, "parameter_openapi_schema": param_schema()})).await;
    let path = format!(
        "/api/deployments/{}/create_flow_run/bulk",
        d["id"].as_str().expect("id")
    );
    let (s, r) = call(
        &app,
        "POST",
        &path,
        Some(json!([{"name": "x1"}, {"name": "x2", "parameters": {"n": "bad"}}])),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let results = r["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{{results: [...]}} expected: {r}"));
    assert_eq!(results.len(), 2);
    assert_eq!(
        (&results[0]["status"], &results[0]["error"]),
        (&json!("CREATED"), &Value::Null)
    );
    assert!(results[0]["flow_run_id"].is_string());
    assert_eq!(results[1]["status"], "FAILED");
    assert_eq!(results[1]["flow_run_id"], Value::Null);
    assert_eq!(
        results[1]["error"],
        "Parameter validation failed: Validation failed for field 'n'. Failure reason: 'bad' is not of type 'integer'"
    );
    assert_eq!(
        call(&app, "POST", &path, Some(json!([]))).await,
        (200, json!({"results": []}))
    );
    app.stop().await;
}

// ------------------------------------------------------------------------------ polling

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_poll_returns_due_runs_and_marks_the_deployment_ready() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "etl").await;
    let d = create_deployment(&app, json!({"name": "d", "flow_id": flow_id})).await;
    let other = create_deployment(&app, json!({"name": "other", "flow_id": flow_id})).await;
    let id = d["id"].as_str().expect("id").to_string();
    scheduled_run(&app, &id, None, -20, "late").await;
    scheduled_run(&app, &id, None, -40, "later").await;
    scheduled_run(&app, &id, None, 5, "soon").await;
    scheduled_run(&app, &id, None, 3600, "next-hour").await;
    scheduled_run(
        &app,
        other["id"].as_str().expect("id"),
        None,
        -10,
        "not-mine",
    )
    .await;
    let running = scheduled_run(&app, &id, None, -30, "running").await;
    set_state(&app, &running, json!({"type": "RUNNING"}), false).await;

    // The runner sends str(datetime): a space instead of "T".
    let before = (Utc::now() + chrono::Duration::seconds(10))
        .format("%Y-%m-%d %H:%M:%S%.6f+00:00")
        .to_string();
    let (s, runs) = call(
        &app,
        "POST",
        "/api/deployments/get_scheduled_flow_runs",
        Some(json!({"deployment_ids": [id], "scheduled_before": before})),
    )
    .await;
    assert_eq!(s, 200, "{runs}");
    assert_eq!(
        names(&runs),
        ["later", "late", "soon"],
        "SCHEDULED runs due by scheduled_before, oldest first"
    );
    assert_eq!(runs[0]["state"]["type"], "SCHEDULED");
    assert_eq!(runs[0]["deployment_id"], json!(id));
    let (s, runs) = call(
        &app,
        "POST",
        "/api/deployments/get_scheduled_flow_runs",
        Some(json!({"deployment_ids": [id], "scheduled_before": before, "limit": 1})),
    )
    .await;
    assert_eq!((s, names(&runs)), (200, vec!["later".to_string()]));

    // The poll marks the deployment READY and sets last_polled.
    let (_, read) = call(&app, "GET", &format!("/api/deployments/{id}"), None).await;
    assert_eq!(read["status"], "READY");
    assert!(
        (parse_ts(&read["last_polled"]) - Utc::now())
            .num_seconds()
            .abs()
            < 30,
        "{read}"
    );
    let (_, read) = call(
        &app,
        "GET",
        &format!("/api/deployments/{}", other["id"].as_str().expect("id")),
        None,
    )
    .await;
    assert_eq!(
        read["status"], "NOT_READY",
        "only polled deployments become READY"
    );

    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/get_scheduled_flow_runs",
        Some(json!({})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("missing")));
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/get_scheduled_flow_runs",
        Some(json!({"deployment_ids": ["x"]})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e)),
        (422, json!(["body", "deployment_ids", 0]))
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/deployments/get_scheduled_flow_runs",
            Some(json!({"deployment_ids": [id], "limit": 201}))
        )
        .await,
        (
            422,
            detail("Invalid limit: must be less than or equal to 200.")
        )
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_poll_honours_queue_priority_limits_and_pauses() {
    let app = TestApp::start().await;
    let pool = create_pool(&app, "p", json!({})).await;
    create_queue(&app, "p", json!({"name": "urgent", "priority": 1})).await; // default becomes 2
    create_queue(&app, "p", json!({"name": "bulk", "concurrency_limit": 1})).await; // 3
    let flow_id = create_flow(&app, "etl").await;
    let d = create_deployment(
        &app,
        json!({"name": "d", "flow_id": flow_id, "work_pool_name": "p"}),
    )
    .await;
    let id = d["id"].as_str().expect("id").to_string();
    let b1 = scheduled_run(&app, &id, Some("bulk"), -300, "b1").await;
    scheduled_run(&app, &id, Some("bulk"), -290, "b2").await;
    scheduled_run(&app, &id, Some("default"), -200, "df").await;
    scheduled_run(&app, &id, Some("urgent"), -100, "u1").await;
    scheduled_run(&app, &id, Some("urgent"), 3600, "u-next-hour").await;

    let before = json!({"scheduled_before": at(10)});
    // Queue priority first, then time; bulk's limit of 1 lets one of its runs through.
    let runs = poll_pool(&app, "p", before.clone()).await;
    assert_eq!(polled(&runs), ["u1", "df", "b1"]);
    let first = &runs[0];
    assert_eq!(first["work_pool_id"], pool["id"]);
    let (_, urgent) = call(&app, "GET", "/api/work_pools/p/queues/urgent", None).await;
    assert_eq!(first["work_queue_id"], urgent["id"]);
    let fr = first["flow_run"].as_object().expect("flow_run");
    assert!(
        !fr.contains_key("work_pool_id") && !fr.contains_key("work_pool_name"),
        "core FlowRun: {first}"
    );
    assert_eq!(fr["state"]["type"], "SCHEDULED");
    assert_eq!(fr["work_queue_name"], "urgent");

    assert_eq!(
        polled(&poll_pool(&app, "p", json!({"scheduled_before": at(10), "limit": 2})).await),
        ["u1", "df"]
    );
    assert_eq!(
        polled(
            &poll_pool(
                &app,
                "p",
                json!({"scheduled_before": at(10), "work_queue_names": ["bulk", "default"]})
            )
            .await
        ),
        ["df", "b1"]
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/work_pools/p/get_scheduled_flow_runs",
            Some(json!({"work_queue_names": ["nope"]}))
        )
        .await,
        (404, detail("Work pool queue 'p/nope' not found."))
    );
    // scheduled_after, and no scheduled_before at all (every scheduled run, future ones too).
    assert_eq!(
        polled(
            &poll_pool(
                &app,
                "p",
                json!({"scheduled_before": at(10), "scheduled_after": at(-250)})
            )
            .await
        ),
        ["u1", "df"]
    );

    // The poll marks the queues READY (and their deployments).
    let (_, q) = call(&app, "GET", "/api/work_pools/p/queues/bulk", None).await;
    assert_eq!(q["status"], "READY");
    assert!(q["last_polled"].is_string());
    assert_eq!(
        call(&app, "GET", &format!("/api/deployments/{id}"), None)
            .await
            .1["status"],
        "READY"
    );

    // A pool limit of 2 counts across queues, in priority order.
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"concurrency_limit": 2})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        polled(&poll_pool(&app, "p", before.clone()).await),
        ["u1", "df"]
    );
    // A PENDING run in bulk uses bulk's only slot and one of the pool's.
    set_state(&app, &b1, json!({"type": "PENDING"}), false).await;
    assert_eq!(polled(&poll_pool(&app, "p", before.clone()).await), ["u1"]);
    let (_, bulk_while_pending) = call(&app, "GET", "/api/work_pools/p/queues/bulk", None).await;
    // RUNNING counts; CANCELLING does not (the reference counts PENDING and RUNNING only).
    set_state(&app, &b1, json!({"type": "RUNNING"}), false).await;
    assert_eq!(polled(&poll_pool(&app, "p", before.clone()).await), ["u1"]);
    set_state(&app, &b1, json!({"type": "CANCELLING"}), true).await;
    assert_eq!(
        polled(&poll_pool(&app, "p", before.clone()).await),
        ["u1", "df"]
    );

    // Lift the pool limit; b2 is next in bulk now that b1 left the SCHEDULED state.
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"concurrency_limit": null})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        polled(&poll_pool(&app, "p", before.clone()).await),
        ["u1", "df", "b2"]
    );
    // Paused queues and pools give nothing.
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p/queues/urgent",
        Some(json!({"is_paused": true})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        polled(&poll_pool(&app, "p", before.clone()).await),
        ["df", "b2"]
    );
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"is_paused": true})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(poll_pool(&app, "p", before.clone()).await, json!([]));
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p",
        Some(json!({"is_paused": false})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        polled(&poll_pool(&app, "p", before.clone()).await),
        ["df", "b2"]
    );

    // The by-id queue route polls one queue (the reference may list a run twice here).
    let (_, dq) = call(&app, "GET", "/api/work_pools/p/queues/default", None).await;
    let (s, runs) = call(
        &app,
        "POST",
        &format!(
            "/api/work_queues/{}/get_runs",
            dq["id"].as_str().expect("id")
        ),
        Some(json!({"scheduled_before": at(10)})),
    )
    .await;
    let mut got = names(&runs);
    got.dedup();
    assert_eq!((s, got), (200, vec!["df".to_string()]));

    // Without scheduled_before every SCHEDULED run is due, future ones too.
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/work_pools/p/queues/urgent",
        Some(json!({"is_paused": false})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        polled(&poll_pool(&app, "p", json!({})).await),
        ["u1", "u-next-hour", "df", "b2"]
    );
    assert_eq!(
        bulk_while_pending["active_slots"], 1,
        "{bulk_while_pending}"
    );
    app.stop().await;
}

// ------------------------------------------------------------------------------ services

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_creates_runs_and_pause_removes_them() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "300")
        .setting("ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS", "200")
        .start()
        .await;
    create_pool(&app, "p", json!({})).await;
    let flow_id = create_flow(&app, "etl").await;
    let anchor = "2026-01-01T00:00:00Z";
    let created_at = Utc::now();
    let d = create_deployment(
        &app,
        json!({"name": "d", "flow_id": flow_id, "work_pool_name": "p", "parameters": {"a": 1, "b": 1}, "tags": ["t"],
               "schedules": [{"schedule": {"interval": 600, "anchor_date": anchor, "timezone": "UTC"}, "parameters": {"b": 2}, "slug": "every10"}]}),
    )
    .await;
    let id = d["id"].as_str().expect("id").to_string();
    let sched_id = d["schedules"][0]["id"]
        .as_str()
        .expect("schedule id")
        .to_string();
    let manual = scheduled_run(&app, &id, None, 7200, "manual").await;

    // Every 10 minutes: at least 3 runs and at least an hour ahead — 7 runs, the last one at or
    // past now + 1 h (the reference stops after the first date that satisfies both minimums).
    wait_for(
        "the scheduler to create runs",
        30,
        || async { runs_of(&app, &id).await },
        |r| auto_scheduled(r).len() >= 7,
    )
    .await;
    let runs = runs_of(&app, &id).await;
    let auto = auto_scheduled(&runs);
    // Checked at the end: exactly 7 (see below); the rest of the test works with what was created.
    let count = auto.len();
    assert!(count >= 6, "{runs}");
    let first = parse_ts(&auto[0]["next_scheduled_start_time"]);
    let last = parse_ts(&auto[count - 1]["next_scheduled_start_time"]);
    assert!(
        first >= created_at && first <= Utc::now() + chrono::Duration::seconds(600),
        "{first}"
    );
    for r in &auto {
        let t = parse_ts(&r["next_scheduled_start_time"]);
        assert_eq!(t.timestamp() % 600, 0, "aligned on the anchor: {t}");
        assert_eq!(
            r["parameters"],
            json!({"a": 1, "b": 2}),
            "schedule parameters override the deployment's"
        );
        assert_eq!(r["state_type"], "SCHEDULED");
        assert_eq!(r["state_name"], "Scheduled");
        assert_eq!(r["work_queue_name"], "default");
        assert_eq!(r["work_pool_name"], "p");
        assert_eq!(r["tags"], json!(["auto-scheduled", "t"]));
        assert_eq!(
            r["created_by"],
            json!({"id": sched_id, "type": "SCHEDULE", "display_value": "every10"})
        );
        assert_eq!(r["expected_start_time"], r["next_scheduled_start_time"]);
        let key = format!(
            "scheduled {id} {sched_id} {}",
            t.format("%Y-%m-%d %H:%M:%S+00:00")
        );
        assert_eq!(r["idempotency_key"], json!(key));
    }
    let (_, state) = call(
        &app,
        "GET",
        &format!(
            "/api/flow_run_states/{}",
            auto[0]["state_id"].as_str().expect("state id")
        ),
        None,
    )
    .await;
    assert_eq!(state["message"], "Flow run scheduled");

    // More passes do not duplicate them.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), count);

    // Pausing deletes the future auto-scheduled runs (not the manual one); nothing new appears.
    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/pause_deployment"),
        None,
    )
    .await;
    assert_eq!((s, body), (200, Value::Null));
    let (_, read) = call(&app, "GET", &format!("/api/deployments/{id}"), None).await;
    assert_eq!(read["paused"], true);
    assert_eq!(
        read["schedules"][0]["active"], true,
        "pausing the deployment leaves schedules active"
    );
    let runs = runs_of(&app, &id).await;
    assert_eq!(auto_scheduled(&runs).len(), 0, "{runs}");
    assert_eq!(names(&runs), ["manual"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        auto_scheduled(&runs_of(&app, &id).await).len(),
        0,
        "a paused deployment gets no runs"
    );

    // Resuming brings them back.
    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/resume_deployment"),
        None,
    )
    .await;
    assert_eq!((s, body), (200, Value::Null));
    wait_for(
        "runs after resume",
        30,
        || async { runs_of(&app, &id).await },
        |r| auto_scheduled(r).len() == count,
    )
    .await;

    // PATCH paused=true does the same as pause_deployment.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"paused": true})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), 0);
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"paused": false})),
    )
    .await;
    assert_eq!(s, 204);
    wait_for(
        "runs after unpausing",
        30,
        || async { runs_of(&app, &id).await },
        |r| auto_scheduled(r).len() == count,
    )
    .await;

    // An inactive schedule gets no runs; turning it off removes its future runs.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}/schedules/{sched_id}"),
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), 0);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), 0);
    assert_eq!(manual["state_type"], "SCHEDULED");

    for bad in ["pause_deployment", "resume_deployment"] {
        assert_eq!(
            call(
                &app,
                "POST",
                &format!("/api/deployments/{}/{bad}", uuid::Uuid::new_v4()),
                None
            )
            .await,
            (404, detail("Deployment not found"))
        );
    }
    // Every 10 minutes: at least 3 runs and at least an hour ahead. The reference stops after
    // the first date that satisfies both minimums, so that date (at or past now + 1 h) is
    // included: 7 runs.
    assert!(
        last >= created_at + chrono::Duration::seconds(3600),
        "{last}"
    );
    assert_eq!(count, 7, "runs created by the scheduler");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_route_and_cron_runs() {
    // Services off: only the /schedule route creates runs here.
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "0")
        .setting("ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS", "0")
        .start()
        .await;
    let flow_id = create_flow(&app, "etl").await;
    let d = create_deployment(
        &app,
        json!({"name": "d", "flow_id": flow_id, "paused": true,
               "schedules": [{"schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}}]}),
    )
    .await;
    let id = d["id"].as_str().expect("id").to_string();
    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/schedule"),
        Some(json!({"min_runs": 2, "max_runs": 2})),
    )
    .await;
    assert_eq!((s, body), (200, Value::Null));
    let runs = runs_of(&app, &id).await;
    let auto = auto_scheduled(&runs);
    assert_eq!(
        auto.len(),
        2,
        "the route schedules even a paused deployment: {runs}"
    );
    for r in &auto {
        let local =
            parse_ts(&r["next_scheduled_start_time"]).with_timezone(&chrono_tz::Europe::Paris);
        assert_eq!(local.timestamp_subsec_micros(), 0, "on the second: {local}");
        assert_eq!(
            local.format("%H:%M:%S").to_string(),
            "09:00:00",
            "09:00 in Paris: {local}"
        );
        assert_eq!(
            r["created_by"]["display_value"], "CronSchedule",
            "no slug: the schedule's class name"
        );
    }
    // Idempotent: the same dates are not created twice.
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/schedule"),
        Some(json!({"min_runs": 2, "max_runs": 2})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_scheduled_runs_are_marked_late() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__LATE_RUNS_INTERVAL_MS", "200")
        .start()
        .await;
    create_pool(&app, "p", json!({})).await;
    let flow_id = create_flow(&app, "etl").await;
    let d = create_deployment(
        &app,
        json!({"name": "d", "flow_id": flow_id, "work_pool_name": "p"}),
    )
    .await;
    let id = d["id"].as_str().expect("id").to_string();
    let overdue = scheduled_run(&app, &id, None, -60, "overdue").await;
    let recent = scheduled_run(&app, &id, None, -2, "recent").await;
    let rid = overdue["id"].as_str().expect("id").to_string();
    let late = wait_for(
        "the overdue run to be marked Late",
        20,
        || async {
            call(&app, "GET", &format!("/api/flow_runs/{rid}"), None)
                .await
                .1
        },
        |r| r["state_name"] == "Late",
    )
    .await;
    assert_eq!(late["state_type"], "SCHEDULED");
    let (_, r) = call(
        &app,
        "GET",
        &format!("/api/flow_runs/{}", recent["id"].as_str().expect("id")),
        None,
    )
    .await;
    assert_eq!(r["state_name"], "Scheduled", "15 s of grace");
    // Late runs are still handed to workers.
    assert_eq!(
        polled(&poll_pool(&app, "p", json!({"scheduled_before": at(5)})).await),
        ["overdue", "recent"]
    );
    let (_, st) = call(
        &app,
        "GET",
        &format!(
            "/api/work_queues/{}/status",
            d["work_queue_id"].as_str().expect("queue id")
        ),
        None,
    )
    .await;
    assert_eq!(st["late_runs_count"], 1);
    assert_eq!(st["healthy"], false);
    // The Late state keeps the run's scheduled time.
    assert_eq!(
        late["state"]["state_details"]["scheduled_time"],
        overdue["state"]["state_details"]["scheduled_time"]
    );
    app.stop().await;
}

/// A scheduled run whose idempotency key was taken after the scheduler looked (another
/// scheduler's insert) is skipped, and the rest of its batch still goes in (on PostgreSQL the
/// plain INSERT fails on the taken key and the batch is inserted again skipping it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_whose_key_was_taken_meanwhile_are_skipped() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "0")
        .setting("ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS", "0")
        .start()
        .await;
    let flow_id = create_flow(&app, "etl").await;
    let d = create_deployment(
        &app,
        json!({"name": "d", "flow_id": flow_id,
               "schedules": [{"schedule": {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z"}}]}),
    )
    .await;
    let id = d["id"].as_str().expect("id").to_string();
    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/schedule"),
        Some(json!({"min_runs": 3, "max_runs": 3})),
    )
    .await;
    assert_eq!((s, body), (200, Value::Null));
    let before = auto_scheduled(&runs_of(&app, &id).await);
    assert_eq!(before.len(), 3);
    let state = app.app_state();
    let db = &state.stores.orion;
    let ws = orrery::storage::accounts::DEFAULT_WORKSPACE_ID;
    let mut c = db.read().await.expect("connection");
    let (first, _) =
        orrery::storage::flow_runs::find(&mut c, ws, before[0]["id"].as_str().expect("id"))
            .await
            .expect("read")
            .expect("the run");
    drop(c);
    // Two runs with taken keys between two new ones.
    let mut rows = Vec::new();
    for (i, key) in ["new 1", "", "", "new 2"].iter().enumerate() {
        let mut r = first.clone();
        r.id = uuid::Uuid::new_v4().to_string();
        r.state_id = Some(r.id.clone());
        r.name = format!("copy-{i}");
        r.idempotency_key = if key.is_empty() {
            before[i]["idempotency_key"].as_str().map(str::to_string)
        } else {
            Some(format!(
                "{}{key}",
                first.idempotency_key.clone().expect("key")
            ))
        };
        rows.push(r);
    }
    let n = db
        .write_bulk(async move |c| {
            orrery::storage::deployments::insert_scheduled_runs(c, rows).await
        })
        .await
        .expect("the batch goes in");
    assert_eq!(n, 2);
    let after = auto_scheduled(&runs_of(&app, &id).await);
    let mut names: Vec<&str> = after.iter().filter_map(|r| r["name"].as_str()).collect();
    names.retain(|n| n.starts_with("copy-"));
    names.sort();
    assert_eq!(names, ["copy-0", "copy-3"]);
    assert_eq!(after.len(), 5);
    app.stop().await;
}

/// Workers racing to take a scheduled run whose state has no row yet: one PENDING is accepted,
/// and the history holds the SCHEDULED state once and that PENDING (PostgreSQL's one-statement
/// path, and the transaction path of a deployment with a concurrency limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_transitions_of_a_scheduled_run_write_its_state_once() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "300")
        .start()
        .await;
    create_pool(&app, "p", json!({})).await;
    let flow_id = create_flow(&app, "etl").await;
    let schedules =
        json!([{"schedule": {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z"}}]);
    for (name, limit) in [("free", Value::Null), ("limited", json!(50))] {
        let d = create_deployment(
            &app,
            json!({"name": name, "flow_id": flow_id, "work_pool_name": "p",
                   "concurrency_limit": limit, "schedules": schedules}),
        )
        .await;
        let dep = d["id"].as_str().expect("id").to_string();
        let runs = wait_for(
            "the scheduler to create runs",
            30,
            || async { runs_of(&app, &dep).await },
            |r| auto_scheduled(r).len() >= 3,
        )
        .await;
        let run = auto_scheduled(&runs)[0].clone();
        let rid = run["id"].as_str().expect("run id").to_string();
        let path = format!("/api/flow_runs/{rid}/set_state");
        let body = json!({"state": {"type": "PENDING"}, "force": false});
        let answers = futures_util::future::join_all(
            (0..8).map(|_| call(&app, "POST", &path, Some(body.clone()))),
        )
        .await;
        // One wins (201); each loser is told the run moved on (200, not an error).
        assert!(
            answers.iter().all(|(s, _)| *s == 200 || *s == 201),
            "{name}: {answers:?}"
        );
        let accepted = answers
            .iter()
            .filter(|(_, r)| r["status"] == "ACCEPT")
            .count();
        assert_eq!(accepted, 1, "{name}: {answers:?}");
        let (_, h) = call(
            &app,
            "GET",
            &format!("/api/flow_run_states/?flow_run_id={rid}"),
            None,
        )
        .await;
        let types: Vec<&str> = h
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|s| s["type"].as_str())
            .collect();
        assert_eq!(types, ["SCHEDULED", "PENDING"], "{name}: {h}");
        assert_eq!(h[0], run["state"], "{name}");
    }
    app.stop().await;
}

/// The scheduler writes no state row for its runs: the single read, a list, a poll, the state by
/// id and the history all show the same SCHEDULED state, and the first transition writes it into
/// the history (through PostgreSQL's one-statement path, and through the transaction path that a
/// deployment with a concurrency limit takes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_runs_first_state_reads_the_same_everywhere_and_stays_in_the_history() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "300")
        .start()
        .await;
    create_pool(&app, "p", json!({})).await;
    let flow_id = create_flow(&app, "etl").await;
    let schedules = json!([{"schedule": {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}}]);
    for (name, limit) in [("free", Value::Null), ("limited", json!(5))] {
        let d = create_deployment(
            &app,
            json!({"name": name, "flow_id": flow_id, "work_pool_name": "p",
                   "concurrency_limit": limit, "schedules": schedules}),
        )
        .await;
        let dep = d["id"].as_str().expect("id").to_string();
        let runs = wait_for(
            "the scheduler to create runs",
            30,
            || async { runs_of(&app, &dep).await },
            |r| auto_scheduled(r).len() >= 3,
        )
        .await;
        let run = auto_scheduled(&runs)[0].clone();
        let rid = run["id"].as_str().expect("run id").to_string();
        let state = run["state"].clone();
        assert_eq!(state["type"], "SCHEDULED", "{run}");
        assert_eq!(state["name"], "Scheduled");
        assert_eq!(state["message"], "Flow run scheduled");
        assert_eq!(state["id"], run["state_id"]);
        assert_eq!(state["timestamp"], run["state"]["timestamp"]);
        assert_eq!(
            state["state_details"]["scheduled_time"],
            run["next_scheduled_start_time"]
        );
        assert_eq!(state["state_details"]["flow_run_id"], json!(rid));
        // Every detail is there, with the defaults a stored state has.
        let manual = scheduled_run(&app, &dep, None, 7200, &format!("manual-{name}")).await;
        let keys = |v: &Value| {
            let mut k: Vec<String> = v["state_details"]
                .as_object()
                .expect("details")
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&state), keys(&manual["state"]));
        assert_eq!(state["state_details"]["deferred"], json!(false));
        assert_eq!(state["state_details"]["pause_reschedule"], json!(false));

        let (s, one) = call(&app, "GET", &format!("/api/flow_runs/{rid}"), None).await;
        assert_eq!((s, &one["state"]), (200, &state));
        let sid = state["id"].as_str().expect("state id");
        let (s, by_id) = call(&app, "GET", &format!("/api/flow_run_states/{sid}"), None).await;
        assert_eq!((s, &by_id), (200, &state));
        let history = format!("/api/flow_run_states/?flow_run_id={rid}");
        assert_eq!(
            call(&app, "GET", &history, None).await,
            (200, json!([state]))
        );
        let polled_run = poll_pool(&app, "p", json!({"scheduled_before": at(100_000)}))
            .await
            .as_array()
            .expect("list")
            .iter()
            .find(|e| e["flow_run"]["id"] == json!(rid))
            .cloned()
            .expect("the run is handed out");
        assert_eq!(polled_run["flow_run"]["state"], state);

        // The first transition keeps the SCHEDULED state in the history.
        set_state(&app, &run, json!({"type": "PENDING"}), false).await;
        let (s, h) = call(&app, "GET", &history, None).await;
        assert_eq!(s, 200);
        let h = h.as_array().expect("list").clone();
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h[0], state);
        assert_eq!(h[1]["type"], "PENDING");
        let (_, now) = call(&app, "GET", &format!("/api/flow_runs/{rid}"), None).await;
        assert_eq!(now["state"], h[1]);
        let (s, by_id) = call(&app, "GET", &format!("/api/flow_run_states/{sid}"), None).await;
        assert_eq!((s, &by_id), (200, &state));
        // An unknown state id is still 404, also one that is a run's id with a stored state.
        let (s, _) = call(&app, "GET", &format!("/api/flow_run_states/{rid}x"), None).await;
        assert_ne!(s, 200);
        let mid = manual["id"].as_str().expect("id");
        let (s, body) = call(&app, "GET", &format!("/api/flow_run_states/{mid}"), None).await;
        assert_eq!(s, 404, "{body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_parent_cancels_its_subflows_and_task_runs() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__CANCELLATION_CLEANUP_INTERVAL_MS", "200")
        .start()
        .await;
    let flow_id = create_flow(&app, "parent").await;
    let (s, parent) = call(
        &app,
        "POST",
        "/api/flow_runs/",
        Some(json!({"flow_id": flow_id, "state": {"type": "RUNNING"}})),
    )
    .await;
    assert_eq!(s, 201, "{parent}");
    let pid = parent["id"].as_str().expect("id").to_string();
    let (s, task) = call(
        &app,
        "POST",
        "/api/task_runs/",
        Some(json!({"flow_run_id": pid, "task_key": "child-call", "dynamic_key": "0", "state": {"type": "RUNNING"}})),
    )
    .await;
    assert_eq!(s, 201, "{task}");
    let tid = task["id"].as_str().expect("id").to_string();
    let (s, child) = call(
        &app,
        "POST",
        "/api/flow_runs/",
        Some(json!({"flow_id": flow_id, "parent_task_run_id": tid, "state": {"type": "RUNNING"}})),
    )
    .await;
    assert_eq!(s, 201, "{child}");
    let cid = child["id"].as_str().expect("id").to_string();

    set_state(&app, &parent, json!({"type": "CANCELLED"}), true).await;
    // A subflow without a deployment goes straight to CANCELLED (one with a deployment would be
    // CANCELLING, for its worker to kill).
    let child = wait_for(
        "the subflow to be cancelled",
        20,
        || async {
            call(&app, "GET", &format!("/api/flow_runs/{cid}"), None)
                .await
                .1
        },
        |r| r["state_type"] == "CANCELLED",
    )
    .await;
    assert_eq!(
        child["state"]["message"],
        "The parent flow run was cancelled."
    );
    let task = wait_for(
        "the parent's unfinished task run to be cancelled",
        20,
        || async {
            call(&app, "GET", &format!("/api/task_runs/{tid}"), None)
                .await
                .1
        },
        |r| r["state_type"] == "CANCELLED",
    )
    .await;
    assert_eq!(
        task["state"]["message"],
        "The parent flow run was cancelled."
    );
    app.stop().await;
}

// ------------------------------------------------------------------------------ related filters

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_flow_and_deployment_filters_know_deployments_pools_and_queues() {
    let app = TestApp::start().await;
    create_pool(&app, "p", json!({})).await;
    create_pool(&app, "other", json!({})).await;
    create_queue(&app, "p", json!({"name": "side"})).await;
    let with_dep = create_flow(&app, "with-dep").await;
    let no_dep = create_flow(&app, "no-dep").await;
    let d = create_deployment(
        &app,
        json!({"name": "d", "flow_id": with_dep, "work_pool_name": "p"}),
    )
    .await;
    create_deployment(
        &app,
        json!({"name": "elsewhere", "flow_id": with_dep, "work_pool_name": "other"}),
    )
    .await;
    let id = d["id"].as_str().expect("id").to_string();
    scheduled_run(&app, &id, None, 0, "in-default").await;
    scheduled_run(&app, &id, Some("side"), 0, "in-side").await;
    let (s, _) = call(
        &app,
        "POST",
        "/api/flow_runs/",
        Some(json!({"flow_id": no_dep, "name": "adhoc"})),
    )
    .await;
    assert_eq!(s, 201);

    let filter = |body: Value| {
        let app = &app;
        async move {
            let (s, r) = call(app, "POST", "/api/flow_runs/filter", Some(body)).await;
            assert_eq!(s, 200, "{r}");
            let mut n = names(&r);
            n.sort();
            n
        }
    };
    let both = vec!["in-default".to_string(), "in-side".to_string()];
    assert_eq!(
        filter(json!({"deployments": {"id": {"any_": [id]}}})).await,
        both
    );
    assert_eq!(
        filter(json!({"deployments": {"name": {"any_": ["d"]}}})).await,
        both
    );
    assert_eq!(
        filter(json!({"work_pools": {"name": {"any_": ["p"]}}})).await,
        both
    );
    assert_eq!(
        filter(json!({"work_pools": {"name": {"any_": ["other"]}}})).await,
        Vec::<String>::new()
    );
    assert_eq!(
        filter(json!({"work_pool_queues": {"name": {"any_": ["side"]}}})).await,
        vec!["in-side".to_string()]
    );
    let (s, n) = call(
        &app,
        "POST",
        "/api/flow_runs/count",
        Some(json!({"deployments": {"id": {"any_": [id]}}})),
    )
    .await;
    assert_eq!((s, n), (200, json!(2)));

    let (s, flows) = call(
        &app,
        "POST",
        "/api/flows/filter",
        Some(json!({"flows": {"deployment": {"is_null_": false}}})),
    )
    .await;
    assert_eq!((s, names(&flows)), (200, vec!["with-dep".to_string()]));
    let (s, flows) = call(
        &app,
        "POST",
        "/api/flows/filter",
        Some(json!({"flows": {"deployment": {"is_null_": true}}})),
    )
    .await;
    assert_eq!((s, names(&flows)), (200, vec!["no-dep".to_string()]));
    let (s, flows) = call(
        &app,
        "POST",
        "/api/flows/filter",
        Some(json!({"work_pools": {"name": {"any_": ["p"]}}})),
    )
    .await;
    assert_eq!((s, names(&flows)), (200, vec!["with-dep".to_string()]));

    let (s, deps) = call(
        &app,
        "POST",
        "/api/deployments/filter",
        Some(json!({"work_pools": {"name": {"any_": ["p"]}}})),
    )
    .await;
    assert_eq!((s, names(&deps)), (200, vec!["d".to_string()]));
    let (s, deps) = call(
        &app,
        "POST",
        "/api/deployments/filter",
        Some(json!({"work_pool_queues": {"name": {"any_": ["default"]}}, "work_pools": {"name": {"any_": ["other"]}}})),
    )
    .await;
    assert_eq!((s, names(&deps)), (200, vec!["elsewhere".to_string()]));
    let (s, n) = call(
        &app,
        "POST",
        "/api/deployments/count",
        Some(json!({"work_pools": {"name": {"any_": ["p"]}}})),
    )
    .await;
    assert_eq!((s, n), (200, json!(1)));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_run_lateness_averages_over_matching_runs() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "etl").await;
    let d = create_deployment(&app, json!({"name": "d", "flow_id": flow_id})).await;
    let other = create_deployment(&app, json!({"name": "other", "flow_id": flow_id})).await;
    let id = d["id"].as_str().expect("id").to_string();
    let other_id = other["id"].as_str().expect("id").to_string();
    // Overdue by 100 s, and one not due yet (0): an average of about 50 s.
    scheduled_run(&app, &id, None, -100, "overdue").await;
    scheduled_run(&app, &id, None, 600, "future").await;
    // A run forced to COMPLETED gets its start time then (as on the reference server): it
    // counts as started 1000 s late.
    let done = scheduled_run(&app, &other_id, None, -1000, "done").await;
    set_state(&app, &done, json!({"type": "COMPLETED"}), true).await;
    let lateness = |body: Value| {
        let app = &app;
        async move {
            let (s, v) = call(app, "POST", "/api/flow_runs/lateness", Some(body)).await;
            assert_eq!(s, 200, "{v}");
            v
        }
    };
    let v = lateness(json!({"deployments": {"id": {"any_": [id]}}})).await;
    let avg = v.as_f64().unwrap_or_else(|| panic!("a number: {v}"));
    assert!((49.0..60.0).contains(&avg), "{avg}");
    let v = lateness(json!({"deployments": {"id": {"any_": [other_id]}}})).await;
    let started_late = v.as_f64().unwrap_or_else(|| panic!("a number: {v}"));
    assert!((999.0..1010.0).contains(&started_late), "{started_late}");
    let v = lateness(json!({"flow_runs": {"name": {"any_": ["nope"]}}})).await;
    assert_eq!(v, Value::Null, "no matching run");
    let v = lateness(json!({})).await;
    let all = v.as_f64().unwrap_or_else(|| panic!("a number: {v}"));
    assert!((366.0..375.0).contains(&all), "{all}");
    app.stop().await;
}
