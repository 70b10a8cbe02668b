//! Flow runs and set_state: the lifecycle and its recorded states and times, retries, create
//! errors, idempotency and queries, and task runs whose subflow's state their parent mirrors.

use chrono::Timelike;
use serde_json::json;

use crate::support::{call, create_flow, names, set_state, FlowRunBuilder, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_run_lifecycle_records_states_and_times() {
    let app = TestApp::start().await;
    let f = create_flow(&app, "lifecycle").await;
    let run = FlowRunBuilder::flow_id(&f)
        .state(json!({"type": "PENDING"}))
        .tags(&["nightly"])
        .with(json!({"parameters": {"n": 3}}))
        .create(&app)
        .await;
    let id = run["id"].as_str().expect("id").to_string();
    let name = run["name"].as_str().expect("name");
    assert!(name.split('-').count() >= 2, "generated name {name}");
    assert_eq!(run["state_type"], "PENDING");
    assert_eq!(run["labels"]["prefect.flow.id"], json!(f));
    assert_eq!(run["expected_start_time"], run["state"]["timestamp"]);
    assert_eq!(run["state"]["state_details"]["flow_run_id"], json!(id));
    let (s, r) = set_state(&app, &id, json!({"type": "RUNNING"}), None).await;
    assert_eq!(
        (s, &r["status"], &r["details"]),
        (201, &json!("ACCEPT"), &json!({"type": "accept_details"}))
    );
    let (s, r) = set_state(&app, &id, json!({"type": "PENDING"}), None).await;
    assert_eq!((s, &r["status"]), (200, &json!("ABORT")));
    assert_eq!(
        r["details"]["reason"],
        "This run is in a RUNNING state and cannot transition to a PENDING state."
    );
    assert_eq!(
        r["state"]["type"], "RUNNING",
        "ABORT answers with the current state"
    );
    let (s, r) = set_state(&app, &id, json!({"type": "COMPLETED"}), None).await;
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
    let (s, r) = set_state(&app, &id, json!({"type": "CANCELLING"}), None).await;
    assert_eq!((s, &r["status"]), (200, &json!("ABORT")));
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        set_state(&app, &unknown.to_string(), json!({"type": "RUNNING"}), None).await,
        (404, json!({"detail": "Flow run not found"}))
    );
    let (s, e) = set_state(&app, &id, json!({"type": "RUNNING", "bogus": 1}), None).await;
    assert_eq!(
        (s, &e["exception_detail"][0]["type"]),
        (422, &json!("extra_forbidden"))
    );
    let (s, e) = set_state(&app, &id, json!({"type": "SIDEWAYS"}), None).await;
    assert_eq!(s, 422, "{e}");
    let forced = set_state(&app, &id, json!({"type": "RUNNING"}), true).await;
    assert_eq!((forced.0, &forced.1["status"]), (201, &json!("ACCEPT")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_reject_to_awaiting_retry() {
    let app = TestApp::start().await;
    let run = FlowRunBuilder::flow("retrying")
        .state(json!({"type": "PENDING"}))
        .with(json!({"empirical_policy": {"retries": 1, "retry_delay": 0}}))
        .create(&app)
        .await;
    let id = run["id"].as_str().expect("id");
    set_state(&app, id, json!({"type": "RUNNING"}), None).await;
    let (s, r) = set_state(&app, id, json!({"type": "FAILED", "message": "boom"}), None).await;
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
    assert_eq!(
        set_state(&app, id, json!({"type": "RUNNING"}), None)
            .await
            .0,
        201
    );
    let (s, r) = set_state(&app, id, json!({"type": "FAILED"}), None).await;
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
    let f = create_flow(&app, "queries").await;
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
    let first = FlowRunBuilder::flow_id(&f)
        .state(json!({"type": "PENDING"}))
        .tags(&["a", "b"])
        .with(json!({"idempotency_key": "k1", "name": "alpha-run"}))
        .create(&app)
        .await;
    let (s, again) = call(
        &app,
        "POST",
        "/api/flow_runs/",
        Some(json!({"flow_id": f, "idempotency_key": "k1"})),
    )
    .await;
    assert_eq!((s, &again["id"]), (200, &first["id"]));
    FlowRunBuilder::flow_id(&f)
        .state(json!({"type": "PENDING"}))
        .tags(&["b"])
        .with(json!({"name": "beta-run"}))
        .create(&app)
        .await;
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
    let f = create_flow(&app, "parent").await;
    let parent = FlowRunBuilder::flow_id(&f)
        .state(json!({"type": "PENDING"}))
        .create(&app)
        .await;
    let pid = parent["id"].as_str().expect("id");
    set_state(&app, pid, json!({"type": "RUNNING"}), None).await;
    let body = json!({"flow_run_id": pid, "task_key": "child-abc", "dynamic_key": "0", "name": "child-0", "state": {"type": "PENDING"}});
    let (s, task) = call(&app, "POST", "/api/task_runs/", Some(body.clone())).await;
    assert_eq!(s, 201, "{task}");
    assert_eq!(task["labels"]["prefect.flow-run.id"], json!(pid));
    let (s, again) = call(&app, "POST", "/api/task_runs/", Some(body)).await;
    assert_eq!((s, &again["id"]), (200, &task["id"]));
    let tid = task["id"].as_str().expect("id");
    let child = FlowRunBuilder::flow_id(&f)
        .state(json!({"type": "PENDING"}))
        .with(json!({"parent_task_run_id": tid}))
        .create(&app)
        .await;
    let cid = child["id"].as_str().expect("id");
    set_state(&app, cid, json!({"type": "RUNNING"}), None).await;
    set_state(&app, cid, json!({"type": "COMPLETED"}), None).await;
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

/// START_TIME sorts and filters on when a run started or, before it starts, when it is expected
/// to (the reference's coalesce(start_time, expected_start_time)): scheduled and late runs take
/// their place among the started ones instead of sorting last and dropping out of a window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_time_means_started_or_expected() {
    let app = TestApp::start().await;
    let flow = create_flow(&app, "timed").await;
    let at = |secs: i64| {
        (chrono::Utc::now() + chrono::Duration::seconds(secs))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    let scheduled = |name: &str, secs: i64| {
        FlowRunBuilder::flow_id(&flow)
            .state(json!({"type": "SCHEDULED", "state_details": {"scheduled_time": at(secs)}}))
            .with(json!({"name": name}))
    };
    scheduled("upcoming", 3600).create(&app).await;
    FlowRunBuilder::flow_id(&flow)
        .state(json!({"type": "RUNNING"}))
        .with(json!({"name": "started"}))
        .create(&app)
        .await;
    scheduled("late", -7200).create(&app).await;
    let list = |body: serde_json::Value| {
        let app = &app;
        async move {
            let (s, v) = call(app, "POST", "/api/flow_runs/filter", Some(body)).await;
            assert_eq!(s, 200, "{v}");
            names(&v)
        }
    };
    assert_eq!(
        list(json!({"sort": "START_TIME_DESC"})).await,
        ["upcoming", "started", "late"]
    );
    assert_eq!(
        list(json!({"sort": "START_TIME_ASC"})).await,
        ["late", "started", "upcoming"]
    );
    let window = json!({"flow_runs": {"start_time": {"after_": at(-3 * 3600), "before_": at(60)}},
                        "sort": "START_TIME_DESC"});
    assert_eq!(list(window).await, ["started", "late"]);
    let unstarted =
        json!({"flow_runs": {"start_time": {"is_null_": true}}, "sort": "START_TIME_ASC"});
    assert_eq!(list(unstarted).await, ["late", "upcoming"]);
    app.stop().await;
}

/// The history counts each run in the interval its expected start falls in, to the microsecond
/// (a run on a boundary opens the next interval), with Prefect's estimates: a scheduled run is
/// late by now minus its expected start, a started one by its start minus it, and a running one
/// has run since it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_places_runs_by_the_microsecond_with_their_estimates() {
    let app = TestApp::start().await;
    let flow = create_flow(&app, "charted").await;
    // A window of three one-minute intervals, ten minutes ago.
    let t0 =
        chrono::Utc::now().with_nanosecond(0).unwrap_or_default() - chrono::Duration::minutes(10);
    let at = |micros: i64| {
        (t0 + chrono::Duration::microseconds(micros))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    let scheduled = |name: &str, micros: i64| {
        FlowRunBuilder::flow_id(&flow)
            .state(json!({"type": "SCHEDULED", "state_details": {"scheduled_time": at(micros)}}))
            .with(json!({"name": name}))
    };
    scheduled("last-of-first", 59_999_999).create(&app).await;
    scheduled("on-boundary", 60_000_000).create(&app).await;
    let running = scheduled("running", 120_500_000).create(&app).await;
    let id = running["id"].as_str().unwrap_or_default();
    assert_eq!(
        set_state(&app, id, json!({"type": "RUNNING"}), None)
            .await
            .0,
        201
    );
    scheduled("before-window", -1).create(&app).await;
    scheduled("after-window", 180_000_000).create(&app).await;
    let asked = chrono::Utc::now();
    let body = json!({"history_start": at(0), "history_end": at(180_000_000),
                      "history_interval_seconds": 60});
    let (s, h) = call(&app, "POST", "/api/flow_runs/history", Some(body)).await;
    assert_eq!(s, 200, "{h}");
    let intervals = h.as_array().cloned().unwrap_or_default();
    assert_eq!(intervals.len(), 3, "{h}");
    let states: Vec<Vec<(String, i64)>> = intervals
        .iter()
        .map(|i| {
            i["states"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    (
                        s["state_name"].as_str().unwrap_or("").to_string(),
                        s["count_runs"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .collect();
    // Overdue scheduled runs may have been marked Late by the time the history is read.
    let scheduled_or_late = |v: &Vec<(String, i64)>| {
        v.len() == 1 && (v[0].0 == "Scheduled" || v[0].0 == "Late") && v[0].1 == 1
    };
    assert!(scheduled_or_late(&states[0]), "{h}");
    assert!(scheduled_or_late(&states[1]), "{h}");
    assert_eq!(states[2], [("Running".to_string(), 1)], "{h}");
    assert_eq!(intervals[1]["interval_start"], json!(at(60_000_000)));
    // Lateness of the first: now minus one minute less a microsecond past t0, within the
    // request's duration.
    let late = intervals[0]["states"][0]["sum_estimated_lateness"]
        .as_f64()
        .unwrap_or(-1.0);
    let expected = (asked - t0).num_microseconds().unwrap_or(0) as f64 / 1e6 - 59.999999;
    assert!(
        late >= expected - 0.001 && late < expected + 30.0,
        "{late} vs {expected}: {h}"
    );
    // The running run: late by its start minus 120.5 s past t0 (about 7.5 minutes), and running
    // for the time since it started (less than the test has taken).
    let r = &intervals[2]["states"][0];
    let (lateness, run_time) = (
        r["sum_estimated_lateness"].as_f64().unwrap_or(-1.0),
        r["sum_estimated_run_time"].as_f64().unwrap_or(-1.0),
    );
    let since_t0 = (chrono::Utc::now() - t0).num_microseconds().unwrap_or(0) as f64 / 1e6;
    assert!(lateness > 0.0 && lateness <= since_t0 - 120.5, "{h}");
    assert!((0.0..30.0).contains(&run_time), "{h}");
    app.stop().await;
}
