//! Work pools and their workers: create, read, update, delete, filter and count; every error
//! answer of the pool routes; the bodies' active slots and storage configuration; heartbeats and
//! the foreman marking silent workers offline.

use serde_json::{json, Value};

use crate::support::{
    call, create_queue, detail, err_loc, err_type, names, raw, wait_for, TestApp, WorkPoolBuilder,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_created_with_every_field_keeps_them() {
    let app = TestApp::start().await;
    let body = json!({
        "name": "full",
        "type": "process",
        "description": "nightly jobs",
        "is_paused": true,
        "concurrency_limit": 2,
        "storage_configuration": {"bundle_upload_step": {"x": 1}},
    });
    let (s, created) = call(&app, "POST", "/api/work_pools/", Some(body)).await;
    assert_eq!(s, 201, "{created}");
    let (s, read) = call(&app, "GET", "/api/work_pools/full", None).await;
    assert_eq!(s, 200, "{read}");
    for p in [&created, &read] {
        assert_eq!(p["description"], "nightly jobs");
        assert_eq!(p["is_paused"], true);
        assert_eq!(p["concurrency_limit"], 2);
        assert_eq!(
            p["storage_configuration"]["bundle_upload_step"],
            json!({"x": 1})
        );
    }
    // Its default queue was written with it.
    let (s, q) = call(&app, "GET", "/api/work_pools/full/queues/default", None).await;
    assert_eq!((s, &q["id"]), (200, &read["default_queue_id"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_pools_create_read_update_delete() {
    let app = TestApp::start().await;
    let p = WorkPoolBuilder::new("p").create(&app).await;
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
    WorkPoolBuilder::new("p").create(&app).await;
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
    let (s, e) = raw(&app, "POST", "/api/work_pools/", "{\"name\": ").await;
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
    let p = WorkPoolBuilder::new("p").create(&app).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_register_workers_and_the_foreman_marks_them_offline() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__FOREMAN_INTERVAL_MS", "200")
        .start()
        .await;
    WorkPoolBuilder::new("p").create(&app).await;
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
    let (s, e) = raw(&app, "POST", "/api/work_pools/p/workers/heartbeat", "{").await;
    assert_eq!((s, err_type(&e)), (422, json!("json_invalid")));
    app.stop().await;
}
