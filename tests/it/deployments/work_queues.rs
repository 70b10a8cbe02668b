//! Work queues: a pool's queues (CRUD, unique priorities, errors), queues created on demand by
//! racing deployments, and the legacy by-id routes living in the default agent pool.

use serde_json::{json, Value};

use crate::support::{
    call, create_flow, create_queue, detail, err_loc, err_type, names, TestApp, WorkPoolBuilder,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_queues_crud_priorities_and_errors() {
    let app = TestApp::start().await;
    WorkPoolBuilder::new("p").create(&app).await;
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
    WorkPoolBuilder::new("p").create(&app).await;
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
