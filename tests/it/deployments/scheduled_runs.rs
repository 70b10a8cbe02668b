//! Scheduled runs' states: the late-runs service marking overdue runs Late, and a scheduled
//! run's first state, which has no row until its first transition (read everywhere alike,
//! written once even when workers race to take the run).

use serde_json::{json, Value};

use super::{at, auto_scheduled, poll_pool, polled, runs_of, scheduled_run};
use crate::support::{
    assert_accepted, call, create_flow, set_state, wait_for, DeploymentBuilder, TestApp,
    WorkPoolBuilder,
};

/// Deployment `name` of `flow_id` in pool "p" with `schedules` and concurrency limit `limit`
/// (null for none); answers its id and the first of the runs the scheduler made for it.
async fn first_scheduled_run(
    app: &TestApp,
    flow_id: &str,
    name: &str,
    limit: Value,
    schedules: &Value,
) -> (String, Value) {
    let d = DeploymentBuilder::new(name)
        .flow_id(flow_id)
        .pool("p")
        .with(json!({ "concurrency_limit": limit }))
        .schedules(schedules.clone())
        .create(app)
        .await;
    let dep = d["id"].as_str().expect("id").to_string();
    let runs = wait_for(
        "the scheduler to create runs",
        30,
        || async { runs_of(app, &dep).await },
        |r| auto_scheduled(r).len() >= 3,
    )
    .await;
    (dep, auto_scheduled(&runs)[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_scheduled_runs_are_marked_late() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__LATE_RUNS_INTERVAL_MS", "200")
        .start()
        .await;
    WorkPoolBuilder::new("p").create(&app).await;
    let flow_id = create_flow(&app, "etl").await;
    let d = DeploymentBuilder::new("d")
        .flow_id(&flow_id)
        .pool("p")
        .create(&app)
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

/// Workers racing to take a scheduled run whose state has no row yet: one PENDING is accepted,
/// and the history holds the SCHEDULED state once and that PENDING (PostgreSQL's one-statement
/// path, and the transaction path of a deployment with a concurrency limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_transitions_of_a_scheduled_run_write_its_state_once() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "300")
        .start()
        .await;
    WorkPoolBuilder::new("p").create(&app).await;
    let flow_id = create_flow(&app, "etl").await;
    let schedules =
        json!([{"schedule": {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z"}}]);
    for (name, limit) in [("free", Value::Null), ("limited", json!(50))] {
        let (_, run) = first_scheduled_run(&app, &flow_id, name, limit, &schedules).await;
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
    WorkPoolBuilder::new("p").create(&app).await;
    let flow_id = create_flow(&app, "etl").await;
    let schedules = json!([{"schedule": {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}}]);
    for (name, limit) in [("free", Value::Null), ("limited", json!(5))] {
        let (dep, run) = first_scheduled_run(&app, &flow_id, name, limit, &schedules).await;
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
        assert_accepted(set_state(&app, &rid, json!({"type": "PENDING"}), false).await);
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
