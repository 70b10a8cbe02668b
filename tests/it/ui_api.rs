//! The `/ui/*` routes Prefect's UIs call, `/ui-settings`, Prefect's UI folders served through
//! `ui.dir`, the graph's artifacts and subflow labels, `/admin/settings`, user JSON read back in
//! the order it was written, and CORS for the app host.

use serde_json::{json, Value};

use crate::support::{call, create_flow, set_state, DeploymentBuilder, FlowRunBuilder, TestApp};

fn at(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

async fn task_run(app: &TestApp, flow_run: &str, key: &str, state: &str) -> String {
    let body = json!({"flow_run_id": flow_run, "task_key": key, "dynamic_key": "0",
        "name": key, "state": {"type": "PENDING"}});
    let (s, t) = call(app, "POST", "/api/task_runs/", Some(body)).await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().expect("id").to_string();
    for st in ["RUNNING", state] {
        let (s, r) = call(
            app,
            "POST",
            &format!("/api/task_runs/{id}/set_state"),
            Some(json!({"state": {"type": st}})),
        )
        .await;
        assert_eq!((s, &r["status"]), (201, &json!("ACCEPT")), "{r}");
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_count_deployments_and_next_runs_answer_every_id_asked_in_order() {
    let app = TestApp::start().await;
    let a = create_flow(&app, "a").await;
    let b = create_flow(&app, "b").await;
    let none = uuid::Uuid::new_v4().to_string();
    DeploymentBuilder::new("d1").flow_id(&a).create(&app).await;
    DeploymentBuilder::new("d2").flow_id(&a).create(&app).await;
    let (s, counts) = call(
        &app,
        "POST",
        "/api/ui/flows/count-deployments",
        Some(json!({"flow_ids": [b, a, none]})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(counts, json!({&b: 0, &a: 2, &none: 0}));
    let keys: Vec<&String> = counts.as_object().expect("map").keys().collect();
    assert_eq!(keys, [&b, &a, &none], "in the order asked");

    let later = FlowRunBuilder::flow_id(&a)
        .state(json!({"type": "SCHEDULED", "state_details": {"scheduled_time": at(7200)}}))
        .create(&app)
        .await;
    let sooner = FlowRunBuilder::flow_id(&a)
        .state(json!({"type": "SCHEDULED", "state_details": {"scheduled_time": at(600)}}))
        .create(&app)
        .await;
    FlowRunBuilder::flow_id(&b)
        .state(json!({"type": "PENDING"}))
        .create(&app)
        .await;
    let (s, next) = call(
        &app,
        "POST",
        "/api/ui/flows/next-runs",
        Some(json!({"flow_ids": [a, b]})),
    )
    .await;
    assert_eq!(s, 200, "{next}");
    assert_eq!(next[&b], Value::Null, "b has no scheduled run");
    assert_eq!(next[&a]["id"], sooner["id"], "the earliest: {next}");
    assert_ne!(next[&a]["id"], later["id"]);
    assert_eq!(next[&a]["flow_id"], json!(a));
    assert_eq!(next[&a]["state_type"], "SCHEDULED");
    assert_eq!(next[&a]["state_name"], "Scheduled");
    assert_eq!(next[&a]["name"], sooner["name"]);
    assert_eq!(
        next[&a]["next_scheduled_start_time"],
        sooner["next_scheduled_start_time"]
    );

    let many: Vec<String> = (0..201).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let (s, e) = call(
        &app,
        "POST",
        "/api/ui/flows/next-runs",
        Some(json!({"flow_ids": many})),
    )
    .await;
    assert_eq!(
        (s, &e["exception_detail"][0]["type"]),
        (422, &json!("too_long"))
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/ui/flows/count-deployments",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (s, &e["exception_detail"][0]["type"]),
        (422, &json!("missing"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_run_points_task_run_counts_and_ui_task_runs() {
    let app = TestApp::start().await;
    let f = create_flow(&app, "plotted").await;
    let parent = FlowRunBuilder::flow_id(&f)
        .state(json!({"type": "PENDING"}))
        .create(&app)
        .await;
    let pid = parent["id"].as_str().expect("id").to_string();
    set_state(&app, &pid, json!({"type": "RUNNING"}), None).await;
    let done = task_run(&app, &pid, "ok", "COMPLETED").await;
    task_run(&app, &pid, "bad", "FAILED").await;
    let sub_parent = task_run(&app, &pid, "child", "COMPLETED").await;
    FlowRunBuilder::flow_id(&f)
        .state(json!({"type": "PENDING"}))
        .with(json!({"parent_task_run_id": sub_parent}))
        .create(&app)
        .await;
    let scheduled = FlowRunBuilder::flow_id(&f)
        .state(json!({"type": "SCHEDULED", "state_details": {"scheduled_time": at(-30)}}))
        .create(&app)
        .await;

    let none = uuid::Uuid::new_v4().to_string();
    let (s, counts) = call(
        &app,
        "POST",
        "/api/ui/flow_runs/count-task-runs",
        Some(json!({"flow_run_ids": [pid, none]})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        counts,
        json!({&pid: 2, &none: 0}),
        "the subflow's task run is not counted"
    );

    let (s, points) = call(&app, "POST", "/api/ui/flow_runs/history", Some(json!({}))).await;
    assert_eq!(s, 200, "{points}");
    assert_eq!(points.as_array().map(Vec::len), Some(3));
    let p = points
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == scheduled["id"])
        .expect("the scheduled run");
    assert_eq!(p["state_type"], "SCHEDULED");
    assert_eq!(p["timestamp"], scheduled["expected_start_time"]);
    assert!(p["lateness"].as_f64().expect("secs") >= 29.0, "{p}");
    assert_eq!(p["duration"], json!(0.0));
    let keys: Vec<&String> = p.as_object().expect("point").keys().collect();
    assert_eq!(
        keys,
        ["id", "state_type", "timestamp", "duration", "lateness"]
    );
    let (s, one) = call(
        &app,
        "POST",
        "/api/ui/flow_runs/history",
        Some(json!({"limit": 1, "flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}})),
    )
    .await;
    assert_eq!((s, one[0]["id"].clone()), (200, json!(pid)));
    let (s, _) = call(
        &app,
        "POST",
        "/api/ui/flow_runs/history",
        Some(json!({"limit": 1001})),
    )
    .await;
    assert_eq!(s, 422);

    let (s, by_state) = call(&app, "POST", "/api/ui/task_runs/count", Some(json!({}))).await;
    assert_eq!(s, 200);
    assert_eq!(
        by_state,
        json!({"COMPLETED": 1, "PENDING": 1, "RUNNING": 0, "FAILED": 1, "CANCELLED": 0,
               "CRASHED": 0, "PAUSED": 0, "CANCELLING": 0, "SCHEDULED": 0}),
        "the subflow's task run mirrors its PENDING subflow"
    );
    let keys: Vec<&String> = by_state.as_object().expect("map").keys().collect();
    assert_eq!(keys[0], "COMPLETED", "CountByState's order");

    let (s, t) = call(&app, "GET", &format!("/api/ui/task_runs/{done}"), None).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["flow_run_name"], parent["name"]);
    assert_eq!(
        (t["id"].as_str(), t["state_type"].as_str()),
        (Some(done.as_str()), Some("COMPLETED"))
    );
    assert_eq!(
        call(&app, "GET", &format!("/api/ui/task_runs/{none}"), None).await,
        (404, json!({"detail": "Task not found"}))
    );

    let window = json!({"task_runs": {"start_time": {"after_": at(-600), "before_": at(60)}}});
    let (s, buckets) = call(
        &app,
        "POST",
        "/api/ui/task_runs/dashboard/counts",
        Some(window.clone()),
    )
    .await;
    assert_eq!(s, 200, "{buckets}");
    let buckets = buckets.as_array().expect("list");
    assert_eq!(buckets.len(), 20);
    let sum = |k: &str| {
        buckets
            .iter()
            .map(|b| b[k].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    assert_eq!(
        (sum("completed"), sum("failed")),
        (1, 1),
        "finished ones only"
    );
    // Twenty equal buckets from the minute of `after_` to the end of the minute of `before_`.
    let (_, t) = call(&app, "GET", &format!("/api/task_runs/{done}"), None).await;
    let ts = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("time"))
            .expect("time")
            .with_timezone(&chrono::Utc)
    };
    use chrono::DurationRound;
    let minute = chrono::TimeDelta::minutes(1);
    let start = ts(&window["task_runs"]["start_time"]["after_"])
        .duration_trunc(minute)
        .expect("trunc");
    let end = ts(&window["task_runs"]["start_time"]["before_"])
        .duration_trunc(minute)
        .expect("trunc")
        + minute
        - chrono::TimeDelta::microseconds(1);
    let step = (end - start).num_microseconds().expect("us") / 20;
    let index = (ts(&t["start_time"]) - start)
        .num_microseconds()
        .expect("us")
        / step;
    assert!(
        buckets[index as usize]["completed"].as_i64() >= Some(1),
        "bucket {index}: {buckets:?}"
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/ui/task_runs/dashboard/counts",
            Some(json!({"task_runs": {}}))
        )
        .await,
        (
            422,
            json!({"detail": "task_runs.start_time.after_ is required"})
        )
    );
    let far = json!({"task_runs": {"start_time": {"after_": "2020-01-01T00:00:00Z",
        "before_": "9999-12-31T23:59:59.999999Z"}}});
    let (s, b) = call(
        &app,
        "POST",
        "/api/ui/task_runs/dashboard/counts",
        Some(far),
    )
    .await;
    assert_eq!(
        (s, b.as_array().map(Vec::len)),
        (200, Some(20)),
        "the far end of time: {b}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_validate_reports_every_failure_under_its_path() {
    let app = TestApp::start().await;
    let schema = json!({"type": "object", "properties": {
        "x": {"type": "integer"},
        "y": {"type": "object", "properties": {"z": {"type": "string"}}, "required": ["z"]},
        "l": {"type": "array", "items": {"type": "integer"}}},
        "required": ["x"]});
    let (s, r) = call(
        &app,
        "POST",
        "/api/ui/schemas/validate",
        Some(json!({"schema": schema, "values": {"y": {"z": 3}, "l": [1, "a", 2, "b"]}})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        r,
        json!({"errors": [
            {"property": "y", "errors": [{"property": "z", "errors": ["3 is not of type 'string'"]}]},
            {"property": "l", "errors": [
                {"index": 1, "errors": ["'a' is not of type 'integer'"]},
                {"index": 3, "errors": ["'b' is not of type 'integer'"]}]},
            {"property": "x", "errors": ["'x' is a required property"]}],
            "valid": false})
    );
    let (s, r) = call(
        &app,
        "POST",
        "/api/ui/schemas/validate",
        Some(json!({"schema": schema, "values": {"x": {"__prefect_kind": "json", "value": "5"}}})),
    )
    .await;
    assert_eq!((s, r), (200, json!({"errors": [], "valid": true})));
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/ui/schemas/validate",
            Some(json!({"schema": {"type": "nope"}, "values": {}}))
        )
        .await,
        (
            422,
            json!({"detail": "Invalid schema: 'nope' is not valid under any of the given schemas"})
        )
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_lists_artifacts_and_labels_subflows_with_their_flow() {
    let app = TestApp::start().await;
    let f = create_flow(&app, "parent-flow").await;
    let child_flow = create_flow(&app, "child-flow").await;
    let parent = FlowRunBuilder::flow_id(&f)
        .state(json!({"type": "PENDING"}))
        .create(&app)
        .await;
    let pid = parent["id"].as_str().expect("id").to_string();
    set_state(&app, &pid, json!({"type": "RUNNING"}), None).await;
    let t = task_run(&app, &pid, "make", "COMPLETED").await;
    let holder = task_run(&app, &pid, "sub", "COMPLETED").await;
    let child = FlowRunBuilder::flow_id(&child_flow)
        .state(json!({"type": "PENDING"}))
        .with(json!({"parent_task_run_id": holder}))
        .create(&app)
        .await;
    let art = |body: Value| async {
        let (s, a) = call(&app, "POST", "/api/artifacts/", Some(body)).await;
        assert_eq!(s, 201, "{a}");
        a
    };
    let old = art(json!({"key": "report", "type": "markdown", "data": "# 1", "flow_run_id": pid, "task_run_id": t})).await;
    let new = art(json!({"key": "report", "type": "markdown", "data": "# 2", "flow_run_id": pid, "task_run_id": t})).await;
    let progress = art(json!({"type": "progress", "data": 50.0, "flow_run_id": pid})).await;
    art(json!({"type": "result", "data": "x", "flow_run_id": pid})).await;

    let (s, g) = call(&app, "GET", &format!("/api/flow_runs/{pid}/graph-v2"), None).await;
    assert_eq!(s, 200, "{g}");
    let nodes = g["nodes"].as_array().expect("nodes");
    let node = |id: &Value| {
        nodes
            .iter()
            .find(|n| &n[0] == id)
            .map(|n| n[1].clone())
            .expect("node")
    };
    let sub = node(&child["id"]);
    assert_eq!(sub["kind"], "flow-run");
    assert_eq!(
        sub["label"],
        json!(format!(
            "child-flow / {}",
            child["name"].as_str().expect("name")
        ))
    );
    let task = node(&json!(t));
    let ids: Vec<&Value> = task["artifacts"]
        .as_array()
        .expect("list")
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&old["id"], &new["id"]], "oldest first");
    assert_eq!(task["artifacts"][0]["is_latest"], json!(false));
    assert_eq!(task["artifacts"][1]["is_latest"], json!(true));
    assert_eq!(
        task["artifacts"][1]["data"],
        Value::Null,
        "data only for progress"
    );
    assert_eq!(task["artifacts"][1]["type"], "markdown");
    assert_eq!(
        g["artifacts"],
        json!([{"id": progress["id"], "created": progress["created"], "key": null,
                "type": "progress", "is_latest": true, "data": 50.0}]),
        "the run's own artifacts, results left out"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_json_comes_back_in_the_order_it_was_written() {
    let app = TestApp::start().await;
    let f = create_flow(&app, "ordered").await;
    let params = r#"{"zeta": 1, "alpha": {"y": 2, "b": 3}, "mid": [ {"k2": 1, "k1": 2} ]}"#;
    let body: Value = serde_json::from_str(&format!(
        r#"{{"flow_id": "{f}", "parameters": {params}, "state": {{"type": "PENDING"}}}}"#
    ))
    .expect("json");
    let (s, run) = call(&app, "POST", "/api/flow_runs/", Some(body)).await;
    assert_eq!(s, 201, "{run}");
    let (_, read) = call(
        &app,
        "GET",
        &format!("/api/flow_runs/{}", run["id"].as_str().expect("id")),
        None,
    )
    .await;
    let written: Value = serde_json::from_str(params).expect("json");
    assert_eq!(
        serde_json::to_string(&read["parameters"]).expect("text"),
        serde_json::to_string(&written).expect("text"),
        "keys in the order written, at every depth"
    );
    let (s, v) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(serde_json::from_str(r#"{"name": "cfg", "value": {"b": 1, "a": 2}}"#).expect("json")),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        serde_json::to_string(&v["value"]).expect("text"),
        r#"{"b":1,"a":2}"#
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_settings_have_the_reference_shape_with_orrery_values() {
    let app = TestApp::start().await;
    let (s, v) = call(&app, "GET", "/api/admin/settings", None).await;
    assert_eq!(s, 200);
    for key in ["home", "api", "client", "server", "worker", "ui_url"] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    assert_eq!(v["server"]["api"]["default_limit"], json!(200));
    assert_eq!(v["server"]["analytics_enabled"], json!(false));
    assert_eq!(v["server"]["ui"]["api_url"], json!(app.url("/api")));
    assert_eq!(v["ui_url"], json!(app.url("").trim_end_matches('/')));
    app.stop().await;
}

/// A built UI in Prefect's layout: the base-URL placeholder in its files, hashed assets.
fn prefect_like_ui(react: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let p = "/PREFECT_UI_SERVE_BASE_REPLACE_PLACEHOLDER";
    let vendor = if react {
        "vendor-react-X.js"
    } else {
        "prefect-ui-library-X.js"
    };
    std::fs::write(
        dir.path().join("index.html"),
        format!(r#"<html><head><script type="module" src="{p}/assets/index-X.js"></script><link rel="modulepreload" href="{p}/assets/{vendor}"></head><body></body></html>"#),
    )
    .expect("index");
    std::fs::create_dir(dir.path().join("assets")).expect("assets");
    std::fs::write(
        dir.path().join("assets/index-X.js"),
        format!("fetch(`{p}/ui-settings`)"),
    )
    .expect("js");
    std::fs::write(dir.path().join("site.webmanifest"), "{}").expect("manifest");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefect_ui_folders_are_served_as_the_reference_serves_them() {
    for react in [false, true] {
        let dir = prefect_like_ui(react);
        let app = TestApp::builder()
            .setting("ORRERY__UI__DIR", dir.path().to_str().expect("path"))
            .start()
            .await;
        let get = |path: &str| app.client.get(app.url(path)).send();
        for path in ["/", "/runs/flow-run/abc"] {
            let r = get(path).await.expect("ok");
            assert_eq!(r.status().as_u16(), 200);
            let page = r.text().await.expect("text");
            assert!(page.contains(r#"src="/assets/index-X.js""#), "{page}");
            assert!(!page.contains("PLACEHOLDER"));
        }
        let r = get("/assets/index-X.js").await.expect("ok");
        assert!(r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/javascript"));
        assert_eq!(r.text().await.expect("text"), "fetch(`/ui-settings`)");
        let r = get("/site.webmanifest").await.expect("ok");
        assert_eq!(r.headers()["content-type"], "application/manifest+json");
        let r = get("/assets/missing-Y.js").await.expect("ok");
        assert_eq!(
            r.status().as_u16(),
            404,
            "a missing file is not the index page"
        );
        let (s, settings) = call(&app, "GET", "/ui-settings", None).await;
        assert_eq!(s, 200);
        let kind = if react { "v2" } else { "v1" };
        assert_eq!(settings["api_url"], json!(app.url("/api")));
        assert_eq!(settings["csrf_enabled"], json!(false));
        assert_eq!(settings["auth"], Value::Null);
        assert_eq!(settings["flags"], json!([]));
        assert_eq!(settings["default_ui"], json!(kind));
        assert_eq!(settings["available_uis"], json!([kind]));
        assert_eq!(settings[format!("{kind}_base_url")], json!("/"));
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_hosts_pages_may_call_the_api_host() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVER__API_HOST", "api.example.test")
        .setting("ORRERY__SERVER__APP_HOST", "app.example.test")
        .setting("ORRERY__SERVER__CORS_ORIGINS", "https://tools.example.test")
        .start()
        .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/flows/filter"))
            .header("Host", "api.example.test")
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type,x-prefect-ui",
            )
            .send()
    };
    for origin in ["http://App.Example.Test:4200", "https://tools.example.test"] {
        let r = preflight(origin).await.expect("ok");
        assert_eq!(r.status().as_u16(), 204, "{origin}");
        assert_eq!(r.headers()["access-control-allow-origin"], origin);
        assert!(r.headers()["access-control-allow-methods"]
            .to_str()
            .expect("m")
            .contains("POST"));
        assert_eq!(
            r.headers()["access-control-allow-headers"],
            "content-type,x-prefect-ui"
        );
    }
    let r = preflight("https://evil.example.test").await.expect("ok");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app
        .client
        .post(app.url("/api/flows/filter"))
        .header("Host", "api.example.test")
        .header("Origin", "http://app.example.test:4200")
        .json(&json!({}))
        .send()
        .await
        .expect("ok");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://app.example.test:4200"
    );
    let r = app
        .client
        .get(app.url("/ui-settings"))
        .header("Host", "app.example.test:4200")
        .send()
        .await
        .expect("ok");
    let settings: Value = r.json().await.expect("json");
    assert_eq!(settings["api_url"], "http://api.example.test:4200/api");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_views_come_from_the_compiled_copy_or_the_configured_dir() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("demo-flows.json"), r#"{"flows": [1]}"#).expect("file");
    let app = TestApp::builder()
        .setting(
            "ORRERY__COLLECTIONS__DIR",
            dir.path().to_str().expect("path"),
        )
        .start()
        .await;
    let (s, workers) = call(
        &app,
        "GET",
        "/api/collections/views/aggregate-worker-metadata",
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(workers["prefect"]["process"]["type"], "process");
    let k8s = &workers["prefect-kubernetes"]["kubernetes"];
    assert!(k8s["default_base_job_configuration"]["job_configuration"]["job_manifest"].is_object());
    let (s, demo) = call(&app, "GET", "/api/collections/views/demo-flows", None).await;
    assert_eq!((s, demo), (200, json!({"flows": [1]})));
    let (s, blocks) = call(
        &app,
        "GET",
        "/api/collections/views/aggregate-block-metadata",
        None,
    )
    .await;
    assert_eq!(s, 200);
    let secret = &blocks["prefect"]["block_types"]["secret"];
    assert_eq!(secret["name"], "Secret");
    assert!(secret["block_schema"]["checksum"]
        .as_str()
        .is_some_and(|c| c.starts_with("sha256:")));
    assert!(blocks["prefect-aws"]["block_types"]["aws-credentials"].is_object());
    assert_eq!(
        call(
            &app,
            "GET",
            "/api/collections/views/aggregate-flow-metadata",
            None
        )
        .await,
        (
            404,
            json!({"detail": "Requested content missing for view aggregate-flow-metadata"})
        )
    );
    assert_eq!(
        call(&app, "GET", "/api/collections/views/nonsense", None).await,
        (
            404,
            json!({"detail": "View nonsense not found in registry"})
        )
    );
    app.stop().await;
}

/// What Prefect's UIs ask of automations before any can exist: a deployment's page lists those
/// related to it, the automations page lists and counts them. Bad bodies are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automations_lists_are_empty_until_automations_exist() {
    let app = TestApp::start().await;
    let (s, related) = call(
        &app,
        "GET",
        "/api/automations/related-to/prefect.deployment.00000000-0000-4000-8000-000000000009",
        None,
    )
    .await;
    assert_eq!((s, related), (200, json!([])));
    let (s, listed) = call(
        &app,
        "POST",
        "/api/automations/filter",
        Some(json!({"sort": "NAME_ASC", "limit": 10})),
    )
    .await;
    assert_eq!((s, listed), (200, json!([])));
    assert_eq!(
        call(&app, "POST", "/api/automations/count", Some(json!({}))).await,
        (200, json!(0))
    );
    let (s, _) = call(&app, "POST", "/api/automations/filter", Some(json!([1]))).await;
    assert_eq!(s, 422);
    app.stop().await;
}
