//! Several replicas on one PostgreSQL + Redis behave as one installation (issue 23 §4): they
//! start together on an empty database, and each periodic job's effect happens once however
//! many replicas run it. Each test starts its replicas in-process on a fresh database of its
//! own; they are skipped in the SQLite pass (one process owns an SQLite file).

use serde_json::{json, Value};

use crate::support::{
    assert_accepted, call, create_flow, drop_pg_database, fresh_pg_database, pg_url, set_state,
    wait_for, FlowRunBuilder, TestApp,
};

/// Three replicas started at the same moment on an empty PostgreSQL database all come up (the
/// schemas are created once, under the migration lock; creating them on every new connection
/// made simultaneous starts collide).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_start_together_on_an_empty_database() {
    let Some(base) = pg_url() else {
        eprintln!("skipped: ORRERY_TEST_DATABASE_URL is not set (the SQLite pass)");
        return;
    };
    for _ in 0..3 {
        let url = fresh_pg_database(&base).await;
        let start = || {
            TestApp::builder()
                .setting("ORRERY__DATABASE__URL", &url)
                .start()
        };
        let (a, b, c) = tokio::join!(start(), start(), start());
        for app in [&a, &b, &c] {
            let (status, body) = call(app, "GET", "/api/ready", None).await;
            assert_eq!(status, 200, "{body}");
        }
        let flow = create_flow(&a, "shared").await;
        let (status, body) = call(&c, "GET", &format!("/api/flows/{flow}"), None).await;
        assert_eq!(status, 200, "one installation: {body}");
        for app in [a, b, c] {
            app.stop().await;
        }
        drop_pg_database(&base, &url).await;
    }
}

/// States of type `ty` in a run's history (`kind` is "flow_run" or "task_run").
async fn states_of(app: &TestApp, kind: &str, id: &str, ty: &str) -> usize {
    let (s, v) = call(
        app,
        "GET",
        &format!("/api/{kind}_states/?{kind}_id={id}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let states = v.as_array().cloned().unwrap_or_default();
    states.iter().filter(|st| st["type"] == ty).count()
}

/// A task run in `flow_run` in state RUNNING.
async fn running_task(app: &TestApp, flow_run: &str, key: &str) -> String {
    let (s, task) = call(
        app,
        "POST",
        "/api/task_runs/",
        Some(
            json!({"flow_run_id": flow_run, "task_key": key, "dynamic_key": "0",
                    "state": {"type": "RUNNING"}}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{task}");
    task["id"].as_str().expect("id").to_string()
}

/// Three replicas started together, each running cancellation cleanup every 30 ms: a cancelled
/// parent's subflows get one CANCELLED state each, and so do the parent's task runs (the
/// subflows' parent task runs take their subflow's state once; it used to be written by every
/// replica's pass, 3 and 4-6 times).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancellation_cleanup_moves_each_run_once_on_three_replicas() {
    let Some(base) = pg_url() else {
        eprintln!("skipped: ORRERY_TEST_DATABASE_URL is not set (the SQLite pass)");
        return;
    };
    let url = fresh_pg_database(&base).await;
    let start = || {
        TestApp::builder()
            .setting("ORRERY__DATABASE__URL", &url)
            .setting("ORRERY__SERVICES__CANCELLATION_CLEANUP_INTERVAL_MS", "30")
            .start()
    };
    let (a, b, c) = tokio::join!(start(), start(), start());
    let flow_id = create_flow(&a, "parent").await;
    let parent = FlowRunBuilder::flow_id(&flow_id)
        .state(json!({"type": "RUNNING"}))
        .create(&a)
        .await;
    let pid = parent["id"].as_str().expect("id").to_string();
    let mut subflows = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let tid = running_task(&b, &pid, &format!("child-{i}")).await;
        let child = FlowRunBuilder::flow_id(&flow_id)
            .state(json!({"type": "RUNNING"}))
            .with(json!({ "parent_task_run_id": tid }))
            .create(&c)
            .await;
        subflows.push(child["id"].as_str().expect("id").to_string());
        tasks.push(tid);
        tasks.push(running_task(&a, &pid, &format!("plain-{i}")).await);
    }
    assert_accepted(set_state(&a, &pid, json!({"type": "CANCELLED"}), true).await);
    for id in &subflows {
        wait_for(
            "the subflow to be cancelled",
            20,
            || async {
                call(&b, "GET", &format!("/api/flow_runs/{id}"), None)
                    .await
                    .1
            },
            |r: &Value| r["state_type"] == "CANCELLED",
        )
        .await;
    }
    for id in &tasks {
        wait_for(
            "the task run to be cancelled",
            20,
            || async {
                call(&c, "GET", &format!("/api/task_runs/{id}"), None)
                    .await
                    .1
            },
            |r: &Value| r["state_type"] == "CANCELLED",
        )
        .await;
    }
    // Many more passes on every replica: nothing is moved again.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    for id in &subflows {
        assert_eq!(
            states_of(&a, "flow_run", id, "CANCELLED").await,
            1,
            "subflow {id}"
        );
    }
    for id in &tasks {
        assert_eq!(
            states_of(&a, "task_run", id, "CANCELLED").await,
            1,
            "task run {id}"
        );
    }
    for app in [a, b, c] {
        app.stop().await;
    }
    drop_pg_database(&base, &url).await;
}
