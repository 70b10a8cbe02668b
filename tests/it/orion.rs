//! The orion core routes against a real server: flows, flow runs, set_state, states, task runs,
//! logs, events and the task-run recorder, concurrency leases — status codes and bodies,
//! including bad input. Nothing answers 500.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{call, TestApp};

async fn raw(app: &TestApp, path: &str, body: &'static str) -> (u16, Value) {
    crate::support::raw(app, "POST", path, body).await
}

async fn flow(app: &TestApp, name: &str) -> String {
    let (s, f) = call(app, "POST", "/api/flows/", Some(json!({"name": name}))).await;
    assert!(s == 201 || s == 200, "{s} {f}");
    f["id"].as_str().expect("id").to_string()
}

async fn flow_run(app: &TestApp, flow_id: &str, extra: Value) -> Value {
    let mut body = json!({"flow_id": flow_id, "state": {"type": "PENDING"}});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let (s, r) = call(app, "POST", "/api/flow_runs/", Some(body)).await;
    assert_eq!(s, 201, "{r}");
    r
}

async fn set_state(app: &TestApp, run: &str, state: Value) -> (u16, Value) {
    call(
        app,
        "POST",
        &format!("/api/flow_runs/{run}/set_state"),
        Some(json!({ "state": state })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_are_idempotent_by_name_and_validated() {
    let app = TestApp::start().await;
    let (s, a) = call(
        &app,
        "POST",
        "/api/flows/",
        Some(json!({"name": "etl", "tags": ["x"]})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(a["tags"], json!(["x"]));
    let (s, b) = call(&app, "POST", "/api/flows/", Some(json!({"name": "etl"}))).await;
    assert_eq!((s, &b["id"]), (200, &a["id"]));
    let id = a["id"].as_str().expect("id");
    assert_eq!(
        call(&app, "GET", &format!("/api/flows/{id}"), None).await.1["name"],
        "etl"
    );
    assert_eq!(
        call(&app, "GET", "/api/flows/name/etl", None).await.1["id"],
        a["id"]
    );
    assert_eq!(
        call(&app, "GET", "/api/flows/name/nope", None).await,
        (404, json!({"detail": "Flow not found"}))
    );
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        call(&app, "GET", &format!("/api/flows/{unknown}"), None).await,
        (404, json!({"detail": "Flow not found"}))
    );
    assert_eq!(
        call(&app, "GET", "/api/flows/not-a-uuid", None).await,
        (404, json!({"detail": "Not Found"}))
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/flows/",
        Some(json!({"name": "x", "bogus": 1})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(e["exception_detail"][0]["type"], "extra_forbidden");
    let (s, e) = call(&app, "POST", "/api/flows/", Some(json!({"tags": []}))).await;
    assert_eq!(
        (s, &e["exception_detail"][0]["type"]),
        (422, &json!("missing"))
    );
    let (s, e) = raw(&app, "/api/flows/", "{\"name\": ").await;
    assert_eq!(s, 422);
    assert_eq!(e["exception_detail"][0]["type"], "json_invalid");
    assert_eq!(e["request_body"], "{\"name\": ");
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("/api/flows/{id}"),
            Some(json!({"tags": ["y"]}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&app, "GET", &format!("/api/flows/{id}"), None).await.1["tags"],
        json!(["y"])
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("/api/flows/{unknown}"),
            Some(json!({"tags": []}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&app, "POST", "/api/flows/count", None).await,
        (200, json!(1))
    );
    let (s, page) = call(
        &app,
        "POST",
        "/api/flows/paginate",
        Some(json!({"limit": 1})),
    )
    .await;
    assert_eq!(
        (s, &page["count"], &page["pages"], &page["page"]),
        (200, &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/flows/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/flows/{id}"), None)
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_limits_are_capped() {
    let app = TestApp::start().await;
    for path in [
        "/api/flows/filter",
        "/api/flow_runs/filter",
        "/api/task_runs/filter",
        "/api/logs/filter",
    ] {
        let (s, body) = call(&app, "POST", path, Some(json!({"limit": 201}))).await;
        assert_eq!(
            (s, body),
            (
                422,
                json!({"detail": "Invalid limit: must be less than or equal to 200."})
            ),
            "{path}"
        );
        let (s, body) = call(&app, "POST", path, Some(json!({"limit": -1}))).await;
        assert_eq!(
            (s, body),
            (
                422,
                json!({"detail": "Invalid limit: must be greater than or equal to 0."})
            ),
            "{path}"
        );
        assert_eq!(
            call(
                &app,
                "POST",
                path,
                Some(json!({"limit": null, "offset": null}))
            )
            .await
            .0,
            200,
            "{path}"
        );
    }
    let (s, e) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"sort": "SIDEWAYS"})),
    )
    .await;
    assert_eq!(
        (s, &e["exception_detail"][0]["loc"]),
        (422, &json!(["body", "sort"]))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_run_lifecycle_records_states_and_times() {
    let app = TestApp::start().await;
    let f = flow(&app, "lifecycle").await;
    let run = flow_run(
        &app,
        &f,
        json!({"tags": ["nightly"], "parameters": {"n": 3}}),
    )
    .await;
    let id = run["id"].as_str().expect("id").to_string();
    let name = run["name"].as_str().expect("name");
    assert!(name.split('-').count() >= 2, "generated name {name}");
    assert_eq!(run["state_type"], "PENDING");
    assert_eq!(run["labels"]["prefect.flow.id"], json!(f));
    assert_eq!(run["expected_start_time"], run["state"]["timestamp"]);
    assert_eq!(run["state"]["state_details"]["flow_run_id"], json!(id));
    let (s, r) = set_state(&app, &id, json!({"type": "RUNNING"})).await;
    assert_eq!(
        (s, &r["status"], &r["details"]),
        (201, &json!("ACCEPT"), &json!({"type": "accept_details"}))
    );
    let (s, r) = set_state(&app, &id, json!({"type": "PENDING"})).await;
    assert_eq!((s, &r["status"]), (200, &json!("ABORT")));
    assert_eq!(
        r["details"]["reason"],
        "This run is in a RUNNING state and cannot transition to a PENDING state."
    );
    assert_eq!(
        r["state"]["type"], "RUNNING",
        "ABORT answers with the current state"
    );
    let (s, r) = set_state(&app, &id, json!({"type": "COMPLETED"})).await;
    assert_eq!((s, &r["status"]), (201, &json!("ACCEPT")));
    let (_, done) = call(&app, "GET", &format!("/api/flow_runs/{id}"), None).await;
    assert_eq!(done["state_type"], "COMPLETED");
    assert_eq!(done["run_count"], 1);
    assert!(done["start_time"].is_string() && done["end_time"].is_string());
    assert!(done["total_run_time"].as_f64().expect("seconds") >= 0.0);
    let (s, states) = call(
        &app,
        "GET",
        &format!("/api/flow_run_states/?flow_run_id={id}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let types: Vec<&str> = states
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["type"].as_str())
        .collect();
    assert_eq!(types, ["PENDING", "RUNNING", "COMPLETED"]);
    let sid = states[1]["id"].as_str().expect("id");
    assert_eq!(
        call(&app, "GET", &format!("/api/flow_run_states/{sid}"), None)
            .await
            .1["type"],
        "RUNNING"
    );
    assert_eq!(
        call(&app, "GET", "/api/flow_run_states/", None).await.0,
        422
    );
    let (s, r) = set_state(&app, &id, json!({"type": "CANCELLING"})).await;
    assert_eq!((s, &r["status"]), (200, &json!("ABORT")));
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        set_state(&app, &unknown.to_string(), json!({"type": "RUNNING"})).await,
        (404, json!({"detail": "Flow run not found"}))
    );
    let (s, e) = set_state(&app, &id, json!({"type": "RUNNING", "bogus": 1})).await;
    assert_eq!(
        (s, &e["exception_detail"][0]["type"]),
        (422, &json!("extra_forbidden"))
    );
    let (s, e) = set_state(&app, &id, json!({"type": "SIDEWAYS"})).await;
    assert_eq!(s, 422, "{e}");
    let forced = call(
        &app,
        "POST",
        &format!("/api/flow_runs/{id}/set_state"),
        Some(json!({"state": {"type": "RUNNING"}, "force": true})),
    )
    .await;
    assert_eq!((forced.0, &forced.1["status"]), (201, &json!("ACCEPT")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_reject_to_awaiting_retry() {
    let app = TestApp::start().await;
    let f = flow(&app, "retrying").await;
    let run = flow_run(
        &app,
        &f,
        json!({"empirical_policy": {"retries": 1, "retry_delay": 0}}),
    )
    .await;
    let id = run["id"].as_str().expect("id");
    set_state(&app, id, json!({"type": "RUNNING"})).await;
    let (s, r) = set_state(&app, id, json!({"type": "FAILED", "message": "boom"})).await;
    assert_eq!(
        (s, &r["status"], &r["details"]["reason"]),
        (201, &json!("REJECT"), &json!("Retrying"))
    );
    assert_eq!(
        (
            &r["state"]["type"],
            &r["state"]["name"],
            &r["state"]["message"]
        ),
        (&json!("SCHEDULED"), &json!("AwaitingRetry"), &json!("boom"))
    );
    assert_eq!(set_state(&app, id, json!({"type": "RUNNING"})).await.0, 201);
    let (s, r) = set_state(&app, id, json!({"type": "FAILED"})).await;
    assert_eq!(
        (s, &r["status"]),
        (201, &json!("ACCEPT")),
        "retries exhausted"
    );
    assert_eq!(
        call(&app, "GET", &format!("/api/flow_runs/{id}"), None)
            .await
            .1["run_count"],
        2
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_run_create_errors_idempotency_and_queries() {
    let app = TestApp::start().await;
    let f = flow(&app, "queries").await;
    let unknown = uuid::Uuid::new_v4();
    let (s, e) = call(
        &app,
        "POST",
        "/api/flow_runs/",
        Some(json!({"flow_id": unknown})),
    )
    .await;
    assert_eq!(s, 409);
    assert!(
        e["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("Data integrity conflict"),
        "{e}"
    );
    let (s, e) = call(&app, "POST", "/api/flow_runs/", Some(json!({"flow_id": 5}))).await;
    assert_eq!(
        (s, &e["exception_detail"][0]["loc"]),
        (422, &json!(["body", "flow_id"]))
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/flow_runs/",
        Some(json!({"flow_id": f, "wat": 1})),
    )
    .await;
    assert_eq!(
        (s, &e["exception_detail"][0]["type"]),
        (422, &json!("extra_forbidden"))
    );
    let (s, plain) = call(&app, "POST", "/api/flow_runs/", Some(json!({"flow_id": f}))).await;
    assert_eq!(
        (s, &plain["state_type"]),
        (201, &json!("PENDING")),
        "no state means PENDING"
    );
    let first = flow_run(
        &app,
        &f,
        json!({"idempotency_key": "k1", "name": "alpha-run", "tags": ["a", "b"]}),
    )
    .await;
    let (s, again) = call(
        &app,
        "POST",
        "/api/flow_runs/",
        Some(json!({"flow_id": f, "idempotency_key": "k1"})),
    )
    .await;
    assert_eq!((s, &again["id"]), (200, &first["id"]));
    flow_run(&app, &f, json!({"name": "beta-run", "tags": ["b"]})).await;
    let names = |v: &Value| {
        v.as_array()
            .expect("list")
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let (_, by_tag) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"flow_runs": {"tags": {"all_": ["a", "b"]}}})),
    )
    .await;
    assert_eq!(names(&by_tag), ["alpha-run"]);
    let (_, sorted) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"flow_runs": {"name": {"like_": "-RUN"}}, "sort": "NAME_DESC"})),
    )
    .await;
    assert_eq!(names(&sorted), ["beta-run", "alpha-run"]);
    let (_, by_flow) = call(
        &app,
        "POST",
        "/api/flow_runs/count",
        Some(json!({"flows": {"name": {"any_": ["queries"]}}})),
    )
    .await;
    assert_eq!(by_flow, json!(3));
    let (_, none) = call(
        &app,
        "POST",
        "/api/flow_runs/count",
        Some(json!({"deployments": {}})),
    )
    .await;
    assert_eq!(none, json!(0), "a deployments filter requires a deployment");
    let (_, pending) = call(
        &app,
        "POST",
        "/api/flow_runs/count",
        Some(json!({"flow_runs": {"state": {"type": {"any_": ["PENDING"]}}}})),
    )
    .await;
    assert_eq!(pending, json!(3));
    let (s, page) = call(
        &app,
        "POST",
        "/api/flow_runs/paginate",
        Some(json!({"limit": 2, "page": 2})),
    )
    .await;
    assert_eq!(
        (
            s,
            &page["count"],
            &page["pages"],
            page["results"].as_array().map(Vec::len)
        ),
        (200, &json!(3), &json!(2), Some(1))
    );
    let id = first["id"].as_str().expect("id");
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("/api/flow_runs/{id}"),
            Some(json!({"name": "renamed", "infrastructure_pid": "42"}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("/api/flow_runs/{id}/labels"),
            Some(json!({"team": "data"}))
        )
        .await
        .0,
        204
    );
    let (_, got) = call(&app, "GET", &format!("/api/flow_runs/{id}"), None).await;
    assert_eq!(
        (
            &got["name"],
            &got["infrastructure_pid"],
            &got["labels"]["team"]
        ),
        (&json!("renamed"), &json!("42"), &json!("data"))
    );
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("/api/flow_runs/{unknown}/labels"),
        Some(json!({"a": 1})),
    )
    .await;
    assert_eq!(
        (s, e),
        (
            404,
            json!({"exception_message": format!("Flow run with id {unknown} not found")})
        )
    );
    let now = chrono::Utc::now();
    let hist = json!({"history_start": (now - chrono::Duration::hours(1)).to_rfc3339(), "history_end": (now + chrono::Duration::minutes(1)).to_rfc3339(), "history_interval_seconds": 600});
    let (s, h) = call(&app, "POST", "/api/flow_runs/history", Some(hist)).await;
    assert_eq!(s, 200);
    let total: i64 = h
        .as_array()
        .expect("intervals")
        .iter()
        .flat_map(|i| i["states"].as_array().cloned().unwrap_or_default())
        .map(|s| s["count_runs"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(total, 3);
    let bad = json!({"history_start": now.to_rfc3339(), "history_end": now.to_rfc3339(), "history_interval_seconds": 0.5});
    assert_eq!(
        call(&app, "POST", "/api/flow_runs/history", Some(bad)).await,
        (
            422,
            json!({"detail": "History interval must not be less than 1 second."})
        )
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/flow_runs/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&app, "GET", &format!("/api/flow_runs/{id}"), None).await,
        (404, json!({"detail": "Flow run not found"}))
    );
    let (s, d) = call(
        &app,
        "POST",
        "/api/flow_runs/bulk_delete",
        Some(json!({"flow_runs": {"tags": {"all_": ["b"]}}})),
    )
    .await;
    assert_eq!((s, d["deleted"].as_array().map(Vec::len)), (200, Some(1)));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_task_runs_subflow_parent_mirrors_the_subflow() {
    let app = TestApp::start().await;
    let f = flow(&app, "parent").await;
    let parent = flow_run(&app, &f, json!({})).await;
    let pid = parent["id"].as_str().expect("id");
    set_state(&app, pid, json!({"type": "RUNNING"})).await;
    let body = json!({"flow_run_id": pid, "task_key": "child-abc", "dynamic_key": "0", "name": "child-0", "state": {"type": "PENDING"}});
    let (s, task) = call(&app, "POST", "/api/task_runs/", Some(body.clone())).await;
    assert_eq!(s, 201, "{task}");
    assert_eq!(task["labels"]["prefect.flow-run.id"], json!(pid));
    let (s, again) = call(&app, "POST", "/api/task_runs/", Some(body)).await;
    assert_eq!((s, &again["id"]), (200, &task["id"]));
    let tid = task["id"].as_str().expect("id");
    let child = flow_run(&app, &f, json!({"parent_task_run_id": tid})).await;
    let cid = child["id"].as_str().expect("id");
    set_state(&app, cid, json!({"type": "RUNNING"})).await;
    set_state(&app, cid, json!({"type": "COMPLETED"})).await;
    let (_, t) = call(&app, "GET", &format!("/api/task_runs/{tid}"), None).await;
    assert_eq!(t["state_type"], "COMPLETED", "{t}");
    assert_eq!(t["state"]["state_details"]["child_flow_run_id"], json!(cid));
    let (_, found) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"flow_runs": {"parent_task_run_id": {"any_": [tid]}}, "limit": 1})),
    )
    .await;
    assert_eq!(found[0]["id"], json!(cid));
    let (_, g) = call(&app, "GET", &format!("/api/flow_runs/{pid}/graph-v2"), None).await;
    assert_eq!(g["nodes"][0][1]["kind"], "flow-run");
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        call(&app, "GET", &format!("/api/task_runs/{unknown}"), None).await,
        (404, json!({"detail": "Task not found"}))
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/task_runs/",
        Some(json!({"flow_run_id": unknown, "task_key": "k", "dynamic_key": "0"})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, e) = call(
        &app,
        "POST",
        "/api/task_runs/",
        Some(json!({"task_key": "k"})),
    )
    .await;
    assert_eq!(
        (s, &e["exception_detail"][0]["type"]),
        (422, &json!("missing"))
    );
    app.stop().await;
}

fn task_event(
    task_id: &str,
    flow_run_id: &str,
    state: &str,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Value {
    json!({
        "id": uuid::Uuid::now_v7(),
        "occurred": at.to_rfc3339(),
        "event": format!("prefect.task-run.{name}"),
        "resource": {"prefect.resource.id": format!("prefect.task-run.{task_id}"), "prefect.resource.name": "double-0", "prefect.orchestration": "client"},
        "related": [{"prefect.resource.id": format!("prefect.flow-run.{flow_run_id}"), "prefect.resource.role": "flow-run"}],
        "payload": {
            "intended": {"from": null, "to": state},
            "validated_state": {"type": state, "name": name, "message": "", "state_details": {}, "data": null},
            "task_run": {"name": "double-0", "task_key": "double-1", "dynamic_key": "0", "tags": ["t"], "labels": {}, "task_inputs": {},
                "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0, "retries": 0, "retry_delay": 0},
                "run_count": if state == "PENDING" { 0 } else { 1 }, "flow_run_run_count": 1, "expected_start_time": at.to_rfc3339(), "total_run_time": 0.0}
        },
        "follows": null
    })
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// An event older than the recorded state, arriving in a later batch, adds its state to the
/// history but does not move the task run back; a newer one does move it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_older_task_run_event_does_not_move_the_run_back() {
    let app = TestApp::start().await;
    let f = flow(&app, "late-events").await;
    let run = flow_run(&app, &f, json!({})).await;
    let fr = run["id"].as_str().expect("id").to_string();
    let task = uuid::Uuid::now_v7().to_string();
    let t0 = chrono::Utc::now();
    let path = format!("/api/task_runs/{task}");
    let states_path = format!("/api/task_run_states/?task_run_id={task}");
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let steps = [
        ("RUNNING", "Running", 10, "RUNNING"),
        // Older than the recorded RUNNING: kept in the history, the run stays RUNNING.
        ("PENDING", "Pending", 0, "RUNNING"),
        ("COMPLETED", "Completed", 20, "COMPLETED"),
    ];
    for (i, (state, name, ms, expected)) in steps.into_iter().enumerate() {
        let event = task_event(&task, &fr, state, name, at(ms));
        let (s, _) = call(&app, "POST", "/api/events", Some(json!([event]))).await;
        assert_eq!(s, 204);
        wait_for("the recorder", || async {
            call(&app, "GET", &states_path, None)
                .await
                .1
                .as_array()
                .map_or(0, Vec::len)
                == i + 1
        })
        .await;
        let (_, t) = call(&app, "GET", &path, None).await;
        assert_eq!(t["state_type"], expected, "after the {state} event");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_task_runs_and_are_persisted_idempotently() {
    let app = TestApp::start().await;
    let f = flow(&app, "evented").await;
    let run = flow_run(&app, &f, json!({})).await;
    let fr = run["id"].as_str().expect("id").to_string();
    let task = uuid::Uuid::now_v7().to_string();
    let t0 = chrono::Utc::now();
    let events = vec![
        task_event(&task, &fr, "PENDING", "Pending", t0),
        task_event(
            &task,
            &fr,
            "COMPLETED",
            "Completed",
            t0 + chrono::Duration::milliseconds(20),
        ),
        task_event(
            &task,
            &fr,
            "RUNNING",
            "Running",
            t0 + chrono::Duration::milliseconds(10),
        ),
    ];
    // Out of order, and twice: the newest state wins and nothing is doubled.
    for _ in 0..2 {
        let (s, _) = call(
            &app,
            "POST",
            "/api/events",
            Some(Value::Array(events.clone())),
        )
        .await;
        assert_eq!(s, 204);
    }
    let path = format!("/api/task_runs/{task}");
    wait_for("the recorder", || async {
        call(&app, "GET", &path, None).await.1["state_type"] == "COMPLETED"
    })
    .await;
    let (_, t) = call(&app, "GET", &path, None).await;
    assert_eq!(
        (&t["flow_run_id"], &t["tags"], &t["name"]),
        (&json!(fr), &json!(["t"]), &json!("double-0"))
    );
    let (_, states) = call(
        &app,
        "GET",
        &format!("/api/task_run_states/?task_run_id={task}"),
        None,
    )
    .await;
    let types: Vec<&str> = states
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["type"].as_str())
        .collect();
    assert_eq!(types, ["PENDING", "RUNNING", "COMPLETED"]);
    assert_eq!(states[2]["state_details"]["task_run_id"], json!(task));
    // The persister stored each client event once, and the server's flow-run event too.
    let state = app.app_state();
    let ws = orrery::storage::accounts::DEFAULT_WORKSPACE_ID;
    wait_for("the persister", || {
        let state = state.clone();
        async move {
            let mut c = state.stores.events.read().await.expect("connection");
            let rows = orrery::storage::events::list_recent(&mut c, ws, 100)
                .await
                .unwrap_or_default();
            rows.iter()
                .filter(|r| r.event.starts_with("prefect.task-run."))
                .count()
                == 3
                && rows.iter().any(|r| r.event == "prefect.flow-run.Pending")
        }
    })
    .await;
    let mut c = state.stores.events.read().await.expect("connection");
    let rows = orrery::storage::events::list_recent(&mut c, ws, 100)
        .await
        .expect("events");
    drop(c);
    let pending = rows
        .iter()
        .find(|r| r.event == "prefect.flow-run.Pending")
        .expect("flow-run event");
    assert_eq!(pending.resource_id, format!("prefect.flow-run.{fr}"));
    let (s, e) = call(&app, "POST", "/api/events", Some(json!([{"id": uuid::Uuid::new_v4(), "occurred": t0.to_rfc3339(), "event": "x", "resource": {}}]))).await;
    assert_eq!(
        (s, &e["exception_detail"][0]["loc"]),
        (422, &json!(["body", 0]))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_stored_and_filtered() {
    let app = TestApp::start().await;
    let run = uuid::Uuid::new_v4();
    let now = chrono::Utc::now();
    let logs = json!([
        {"name": "prefect.flow_runs", "level": 20, "message": "hello", "timestamp": now.to_rfc3339(), "flow_run_id": run, "task_run_id": null},
        {"name": "prefect.task_runs", "level": 40, "message": "Bad thing", "timestamp": (now + chrono::Duration::seconds(1)).to_rfc3339(), "flow_run_id": run}
    ]);
    assert_eq!(
        call(&app, "POST", "/api/logs/", Some(logs)).await,
        (201, Value::Null)
    );
    let (_, all) = call(
        &app,
        "POST",
        "/api/logs/filter",
        Some(json!({"logs": {"flow_run_id": {"any_": [run]}}})),
    )
    .await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    assert_eq!(all[0]["message"], "hello", "oldest first by default");
    let (_, errors) = call(
        &app,
        "POST",
        "/api/logs/filter",
        Some(json!({"logs": {"level": {"ge_": 30}}, "sort": "TIMESTAMP_DESC"})),
    )
    .await;
    assert_eq!(errors.as_array().map(Vec::len), Some(1));
    let (_, text) = call(
        &app,
        "POST",
        "/api/logs/filter",
        Some(json!({"logs": {"text": {"query": "bad"}}})),
    )
    .await;
    assert_eq!(text[0]["level"], 40);
    let (s, e) = call(
        &app,
        "POST",
        "/api/logs/",
        Some(json!([{"name": "x", "level": 20, "message": "m"}])),
    )
    .await;
    assert_eq!(
        (s, &e["exception_detail"][0]["loc"]),
        (422, &json!(["body", 0]))
    );
    assert_eq!(
        call(&app, "GET", "/api/admin/storage", None).await,
        (200, json!({"default_result_storage_block_id": null}))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_leases_take_renew_and_release_slots() {
    let app = TestApp::start().await;
    let (s, l) = call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/",
        Some(json!({"name": "db", "limit": 1})),
    )
    .await;
    assert_eq!((s, &l["active_slots"]), (201, &json!(0)));
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/v2/concurrency_limits/",
            Some(json!({"name": "db", "limit": 1}))
        )
        .await
        .0,
        409
    );
    let take = json!({"names": ["db"], "slots": 1, "mode": "concurrency", "lease_duration": 60});
    let (s, granted) = call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/increment-with-lease",
        Some(take.clone()),
    )
    .await;
    assert_eq!((s, &granted["limits"][0]["name"]), (200, &json!("db")));
    let r = app
        .client
        .post(app.url("/api/v2/concurrency_limits/increment-with-lease"))
        .json(&take)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status().as_u16(), 423);
    assert!(r.headers().get("retry-after").is_some());
    let lease = granted["lease_id"].as_str().expect("lease");
    let renew = format!("/api/v2/concurrency_limits/leases/{lease}/renew");
    assert_eq!(
        call(&app, "POST", &renew, Some(json!({"lease_duration": 60})))
            .await
            .0,
        204
    );
    assert_eq!(
        call(&app, "GET", "/api/v2/concurrency_limits/db", None)
            .await
            .1["active_slots"],
        1
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/v2/concurrency_limits/decrement-with-lease",
            Some(json!({"lease_id": lease}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&app, "GET", "/api/v2/concurrency_limits/db", None)
            .await
            .1["active_slots"],
        0
    );
    assert_eq!(
        call(&app, "POST", &renew, Some(json!({"lease_duration": 60}))).await,
        (410, json!({"detail": "Lease not found."}))
    );
    let (s, empty) = call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/increment-with-lease",
        Some(json!({"names": ["tag:none"], "slots": 1})),
    )
    .await;
    assert_eq!(
        (s, &empty["limits"]),
        (200, &json!([])),
        "no matching limit still grants a lease"
    );
    assert_eq!(
        call(&app, "GET", "/api/v2/concurrency_limits/nope", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&app, "DELETE", "/api/v2/concurrency_limits/db", None)
            .await
            .0,
        204
    );
    app.stop().await;
}

/// Many clients on PostgreSQL (or the SQLite writer) never overfill a limit or lose a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lease_holders_never_exceed_the_limit() {
    let app = TestApp::start().await;
    call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/",
        Some(json!({"name": "pool", "limit": 3})),
    )
    .await;
    let holders = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = app.client.clone();
        let base = app.base.clone();
        let (holders, peak) = (holders.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 5 {
                let r = client
                    .post(format!(
                        "{base}/api/v2/concurrency_limits/increment-with-lease"
                    ))
                    .json(&json!({"names": ["pool"], "slots": 1, "lease_duration": 60}))
                    .send()
                    .await
                    .expect("req");
                if r.status().as_u16() == 423 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                assert_eq!(r.status().as_u16(), 200);
                let lease = r.json::<Value>().await.expect("json")["lease_id"]
                    .as_str()
                    .expect("lease")
                    .to_string();
                let now = holders.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                holders.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                let r = client
                    .post(format!(
                        "{base}/api/v2/concurrency_limits/decrement-with-lease"
                    ))
                    .json(&json!({"lease_id": lease}))
                    .send()
                    .await
                    .expect("req");
                assert_eq!(r.status().as_u16(), 204);
                done += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    assert!(
        peak.load(std::sync::atomic::Ordering::SeqCst) <= 3,
        "more holders than the limit"
    );
    assert_eq!(
        call(&app, "GET", "/api/v2/concurrency_limits/pool", None)
            .await
            .1["active_slots"],
        0,
        "no slot lost or leaked"
    );
    app.stop().await;
}

/// Inputs that once reached a panic or a 500 (found by a sweep of every route): page numbers
/// whose offset overflows, history intervals past the calendar, NUL characters (PostgreSQL text
/// cannot hold them), and LIKE patterns longer than SQLite accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_inputs_get_answers_not_errors() {
    let app = TestApp::start().await;
    let flow_id = flow(&app, "extremes").await;
    flow_run(&app, &flow_id, json!({})).await;

    for path in [
        "/api/flows/paginate",
        "/api/flow_runs/paginate",
        "/api/task_runs/paginate",
    ] {
        let (s, b) = call(
            &app,
            "POST",
            path,
            Some(json!({"page": 4611686018427387904_i64, "limit": 10})),
        )
        .await;
        assert_eq!(s, 200, "{path}: {b}");
        assert_eq!(b["results"], json!([]), "{path}");
        assert_eq!(b["page"], json!(4611686018427387904_i64), "{path}");
    }

    for interval in [json!(1e308), json!(9223372036854775807_i64)] {
        let (s, b) = call(
            &app,
            "POST",
            "/api/flow_runs/history",
            Some(json!({
                "history_start": "2026-01-01T00:00:00Z",
                "history_end": "2026-01-02T00:00:00Z",
                "history_interval_seconds": interval,
            })),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b.as_array().map(Vec::len), Some(1), "{b}");
        assert_eq!(b[0]["interval_start"], "2026-01-01T00:00:00.000000Z");
    }
    // A span of the whole calendar at one second is far more than 500 intervals.
    let (s, b) = call(
        &app,
        "POST",
        "/api/flow_runs/history",
        Some(json!({
            "history_start": "0001-01-01T00:00:00Z",
            "history_end": "9999-12-31T23:59:59Z",
            "history_interval_seconds": 1,
        })),
    )
    .await;
    assert_eq!(s, 422, "{b}");

    let (s, b) = call(
        &app,
        "POST",
        "/api/flows/",
        Some(json!({"name": "a\u{0}b"})),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["exception_detail"][0]["loc"],
        json!(["body", "name"]),
        "{b}"
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"flow_runs": {"name": {"any_": ["ok", "x\u{0}"]}}})),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["exception_detail"][0]["loc"],
        json!(["body", "flow_runs", "name", "any_", 1]),
        "{b}"
    );
    let (s, b) = call(&app, "GET", "/api/flows/name/a%00b", None).await;
    assert_eq!(s, 404, "{b}");
    // Nothing was stored by the refused requests; the escaped form of a backslash is fine.
    let (s, b) = call(
        &app,
        "POST",
        "/api/flows/",
        Some(json!({"name": "a\\u0000b"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = call(&app, "POST", "/api/flows/count", Some(json!({}))).await;
    assert_eq!((s, b), (200, json!(2)));

    let long = "x".repeat(60_000);
    let (s, b) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"flow_runs": {"name": {"like_": long}}})),
    )
    .await;
    if app.pg_url.is_some() {
        assert_eq!((s, b), (200, json!([])));
    } else {
        assert_eq!(s, 422, "{b}");
        assert!(
            b["detail"].as_str().is_some_and(|d| d.contains("too long")),
            "{b}"
        );
    }
    app.stop().await;
}

/// A transition writes only the columns it owns: a worker's `infrastructure_pid` (or a PATCH of
/// the name or labels) that lands between the transition's read and its write survives. The
/// decision below plays the stale copy: it returns the run with the values it read before the
/// PATCH, and the write must not put them back.
/// `run` moved to a new RUNNING state at `now`: the write a transition decision would return.
fn running_write(
    mut run: orrery::storage::rows::FlowRunRow,
    now: chrono::NaiveDateTime,
) -> orrery::storage::transitions::FlowRunWrite {
    let state_id = uuid::Uuid::new_v4().to_string();
    run.updated = now;
    run.state_id = Some(state_id.clone());
    run.state_type = Some("RUNNING".into());
    run.state_name = Some("Running".into());
    run.state_timestamp = Some(now);
    let state = orrery::storage::rows::FlowRunStateRow {
        id: state_id,
        workspace_id: run.workspace_id.clone(),
        created: now,
        flow_run_id: run.id.clone(),
        state_type: "RUNNING".into(),
        name: "Running".into(),
        timestamp: now,
        message: None,
        data: None,
        state_details: "{}".into(),
    };
    orrery::storage::transitions::FlowRunWrite {
        state: Some(state),
        run: Some(run),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_does_not_overwrite_a_concurrent_patch() {
    use orrery::storage::transitions::transition_flow_run;
    let app = TestApp::start().await;
    let flow_id = flow(&app, "narrow-writes").await;
    let run = flow_run(&app, &flow_id, json!({"state": {"type": "PENDING"}})).await;
    let id = run["id"].as_str().expect("id").to_string();
    let state = app.app_state();
    let ws = orrery::storage::accounts::DEFAULT_WORKSPACE_ID;
    let mut c = state.stores.orion.read().await.expect("connection");
    let (before, _) = orrery::storage::flow_runs::find(&mut c, ws, &id)
        .await
        .expect("read")
        .expect("the run");
    drop(c);
    let patched = call(
        &app,
        "PATCH",
        &format!("/api/flow_runs/{id}"),
        Some(json!({"name": "renamed", "infrastructure_pid": "4242"})),
    )
    .await;
    assert_eq!(patched.0, 204);
    let now = chrono::Utc::now().naive_utc();
    let written = transition_flow_run(&state.stores.orion, ws, &id, now, move |_ctx| {
        let mut stale = before.clone();
        stale.run_count = 1;
        stale.start_time = Some(now);
        let write = running_write(stale, now);
        (write, ())
    })
    .await
    .expect("transition");
    assert_eq!(written, Some(()));
    let (_, got) = call(&app, "GET", &format!("/api/flow_runs/{id}"), None).await;
    assert_eq!(
        (
            &got["state"]["type"],
            &got["run_count"],
            &got["name"],
            &got["infrastructure_pid"]
        ),
        (
            &json!("RUNNING"),
            &json!(1),
            &json!("renamed"),
            &json!("4242")
        )
    );
    app.stop().await;
}

/// Concurrent transitions of one run never lose each other's writes: every transition that
/// reports success was made on the state it read (a lost race is retried from a fresh read), so
/// a counter each one increments ends at the number of successes, and the history holds exactly
/// one state per success. (On PostgreSQL this drives the single-statement path, whose guard on
/// the run's state id is all that stands between two workers and a lost update.)
#[actix_web::test]
async fn concurrent_transitions_of_one_run_lose_no_write() {
    use orrery::storage::transitions::transition_flow_run;
    let app = TestApp::start().await;
    let flow_id = flow(&app, "racing-transitions").await;
    let run = flow_run(&app, &flow_id, json!({"state": {"type": "PENDING"}})).await;
    let id = run["id"].as_str().expect("id").to_string();
    let state = app.app_state();
    let ws = orrery::storage::accounts::DEFAULT_WORKSPACE_ID;
    let attempts = (0..8).map(|_| {
        let (db, id) = (state.stores.orion.clone(), id.clone());
        async move {
            let now = chrono::Utc::now().naive_utc();
            transition_flow_run(&db, ws, &id, now, move |ctx| {
                let mut run = ctx.run.clone();
                run.run_count += 1;
                let write = running_write(run, now);
                (write, ())
            })
            .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let succeeded = results.iter().filter(|r| matches!(r, Ok(Some(())))).count();
    // Only "the run kept changing" may fail, never anything else.
    for r in &results {
        if let Err(e) = r {
            assert!(e.to_string().contains("kept changing"), "{e}");
        }
    }
    assert!(succeeded >= 1);
    let mut c = state.stores.orion.read().await.expect("connection");
    let (run, _) = orrery::storage::flow_runs::find(&mut c, ws, &id)
        .await
        .expect("read")
        .expect("the run");
    let history = orrery::storage::flow_runs::list_states(&mut c, ws, &id)
        .await
        .expect("states");
    drop(c);
    assert_eq!(
        (run.run_count, history.len()),
        (succeeded as i64, succeeded + 1)
    );
    assert!(history.iter().any(|s| Some(&s.id) == run.state_id.as_ref()));
    app.stop().await;
}
