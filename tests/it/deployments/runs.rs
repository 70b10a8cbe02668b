//! Flow runs of deployments: create_flow_run (single and bulk), the run, flow and deployment
//! filters that know deployments, pools and queues, lateness, and the cancellation-cleanup
//! service cancelling a cancelled parent's subflows and task runs.

use chrono::Utc;
use serde_json::{json, Value};

use super::{param_schema, parse_ts, scheduled_run, two_deployments};
use crate::support::{
    assert_accepted, call, create_flow, create_queue, detail, err_loc, err_type, names, set_state,
    wait_for, DeploymentBuilder, FlowRunBuilder, TestApp, WorkPoolBuilder,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_flow_run_from_deployment() {
    let app = TestApp::start().await;
    let pool = WorkPoolBuilder::new("p")
        .queue(json!({"name": "q1"}))
        .create(&app)
        .await;
    let flow_id = create_flow(&app, "etl").await;
    let d = DeploymentBuilder::new("d")
        .flow_id(&flow_id)
        .pool("p")
        .parameters(json!({"n": 1}))
        .with(
            json!({"parameter_openapi_schema": param_schema(), "tags": ["dep-tag"],
                     "job_variables": {"env": {"A": "1"}}}),
        )
        .create(&app)
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
    let bare = DeploymentBuilder::new("bare")
        .flow_id(&flow_id)
        .create(&app)
        .await;
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
    let d = DeploymentBuilder::new("d")
        .flow_id(&flow_id)
        .parameters(json!({"n": 1}))
        .with(json!({"parameter_openapi_schema": param_schema()}))
        .create(&app)
        .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_flow_and_deployment_filters_know_deployments_pools_and_queues() {
    let app = TestApp::start().await;
    WorkPoolBuilder::new("p").create(&app).await;
    WorkPoolBuilder::new("other").create(&app).await;
    create_queue(&app, "p", json!({"name": "side"})).await;
    let with_dep = create_flow(&app, "with-dep").await;
    let no_dep = create_flow(&app, "no-dep").await;
    let d = DeploymentBuilder::new("d")
        .flow_id(&with_dep)
        .pool("p")
        .create(&app)
        .await;
    DeploymentBuilder::new("elsewhere")
        .flow_id(&with_dep)
        .pool("other")
        .create(&app)
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
    let (id, other_id) = two_deployments(&app).await;
    // Overdue by 100 s, and one not due yet (0): an average of about 50 s.
    scheduled_run(&app, &id, None, -100, "overdue").await;
    scheduled_run(&app, &id, None, 600, "future").await;
    // A run forced to COMPLETED gets its start time then (as on the reference server): it
    // counts as started 1000 s late.
    let done = scheduled_run(&app, &other_id, None, -1000, "done").await;
    let done = done["id"].as_str().expect("run id");
    assert_accepted(set_state(&app, done, json!({"type": "COMPLETED"}), true).await);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_parent_cancels_its_subflows_and_task_runs() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__CANCELLATION_CLEANUP_INTERVAL_MS", "200")
        .start()
        .await;
    let flow_id = create_flow(&app, "parent").await;
    let parent = FlowRunBuilder::flow_id(&flow_id)
        .state(json!({"type": "RUNNING"}))
        .create(&app)
        .await;
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
    let child = FlowRunBuilder::flow_id(&flow_id)
        .state(json!({"type": "RUNNING"}))
        .with(json!({ "parent_task_run_id": tid }))
        .create(&app)
        .await;
    let cid = child["id"].as_str().expect("id").to_string();

    assert_accepted(set_state(&app, &pid, json!({"type": "CANCELLED"}), true).await);
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
