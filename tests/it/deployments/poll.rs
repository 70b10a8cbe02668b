//! Polling for due runs: the runner's poll by deployment and the worker's poll by pool (queue
//! priorities, pool and queue concurrency limits, paused pools and queues).

use chrono::Utc;
use serde_json::json;

use super::{at, parse_ts, poll_pool, polled, scheduled_run, two_deployments};
use crate::support::{
    assert_accepted, call, create_flow, detail, err_loc, err_type, names, set_state,
    DeploymentBuilder, TestApp, WorkPoolBuilder,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_poll_returns_due_runs_and_marks_the_deployment_ready() {
    let app = TestApp::start().await;
    let (id, other) = two_deployments(&app).await;
    scheduled_run(&app, &id, None, -20, "late").await;
    scheduled_run(&app, &id, None, -40, "later").await;
    scheduled_run(&app, &id, None, 5, "soon").await;
    scheduled_run(&app, &id, None, 3600, "next-hour").await;
    scheduled_run(&app, &other, None, -10, "not-mine").await;
    let running = scheduled_run(&app, &id, None, -30, "running").await;
    let running = running["id"].as_str().expect("run id");
    assert_accepted(set_state(&app, running, json!({"type": "RUNNING"}), false).await);

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
    let (_, read) = call(&app, "GET", &format!("/api/deployments/{}", &other), None).await;
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
    let pool = WorkPoolBuilder::new("p")
        .queue(json!({"name": "urgent", "priority": 1})) // default becomes 2
        .queue(json!({"name": "bulk", "concurrency_limit": 1})) // 3
        .create(&app)
        .await;
    let flow_id = create_flow(&app, "etl").await;
    let d = DeploymentBuilder::new("d")
        .flow_id(&flow_id)
        .pool("p")
        .create(&app)
        .await;
    let id = d["id"].as_str().expect("id").to_string();
    let b1 = scheduled_run(&app, &id, Some("bulk"), -300, "b1").await;
    let b1 = b1["id"].as_str().expect("run id");
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
    assert_accepted(set_state(&app, b1, json!({"type": "PENDING"}), false).await);
    assert_eq!(polled(&poll_pool(&app, "p", before.clone()).await), ["u1"]);
    let (_, bulk_while_pending) = call(&app, "GET", "/api/work_pools/p/queues/bulk", None).await;
    // RUNNING counts; CANCELLING does not (the reference counts PENDING and RUNNING only).
    assert_accepted(set_state(&app, b1, json!({"type": "RUNNING"}), false).await);
    assert_eq!(polled(&poll_pool(&app, "p", before.clone()).await), ["u1"]);
    assert_accepted(set_state(&app, b1, json!({"type": "CANCELLING"}), true).await);
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
