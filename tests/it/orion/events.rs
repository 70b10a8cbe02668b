//! Events and logs: task-run events become task runs through the recorder (idempotently, in
//! event-time order) and are persisted; logs are stored and filtered.

use serde_json::{json, Value};

use crate::support::{call, wait_for, FlowRunBuilder, TestApp};

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

/// An event older than the recorded state, arriving in a later batch, adds its state to the
/// history but does not move the task run back; a newer one does move it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_older_task_run_event_does_not_move_the_run_back() {
    let app = TestApp::start().await;
    let run = FlowRunBuilder::flow("late-events")
        .state(json!({"type": "PENDING"}))
        .create(&app)
        .await;
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
        wait_for(
            "the recorder",
            10,
            || async { call(&app, "GET", &states_path, None).await.1 },
            |states| states.as_array().map_or(0, Vec::len) == i + 1,
        )
        .await;
        let (_, t) = call(&app, "GET", &path, None).await;
        assert_eq!(t["state_type"], expected, "after the {state} event");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_task_runs_and_are_persisted_idempotently() {
    let app = TestApp::start().await;
    let run = FlowRunBuilder::flow("evented")
        .state(json!({"type": "PENDING"}))
        .create(&app)
        .await;
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
    wait_for(
        "the recorder",
        10,
        || async { call(&app, "GET", &path, None).await.1 },
        |t| t["state_type"] == "COMPLETED",
    )
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
    let ws = &orrery::ids::WorkspaceId::new(orrery::storage::accounts::DEFAULT_WORKSPACE_ID);
    wait_for(
        "the persister",
        10,
        || {
            let state = state.clone();
            async move {
                let Ok(mut c) = state.stores.events.read().await else {
                    return Vec::new();
                };
                orrery::storage::events::list_recent(&mut c, ws, 100)
                    .await
                    .unwrap_or_default()
            }
        },
        |rows| {
            rows.iter()
                .filter(|r| r.event.starts_with("prefect.task-run."))
                .count()
                == 3
                && rows.iter().any(|r| r.event == "prefect.flow-run.Pending")
        },
    )
    .await;
    let mut c = state.stores.events.read().await.expect("connection");
    let rows = orrery::storage::events::list_recent(&mut c, ws, 100)
        .await
        .expect("events");
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

/// A websocket on `/api/events/in` speaking the `prefect` subprotocol (not yet authenticated).
async fn events_in(
    app: &TestApp,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = app.url("/api/events/in").replace("http://", "ws://");
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "prefect".parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    ws
}

/// A socket that speaks the `prefect` subprotocol but never sends its `auth` message is closed
/// (policy violation, with the reason) instead of staying open forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_socket_that_never_authenticates_is_closed() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let app = TestApp::start().await;
    let mut ws = events_in(&app).await;
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(msg) = ws.next().await {
            if let Ok(Message::Close(frame)) = msg {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("the server closes the socket");
    assert_eq!(closed, Some((1008, "Auth handshake timed out".to_string())));
    assert!(started.elapsed() >= std::time::Duration::from_secs(5));
    app.stop().await;
}

/// Events over Prefect's maximum size (1.5 MB serialised) are refused with a reason: 422 from
/// `POST /events` (nothing of the batch is taken), a close with 1009 on `/events/in` (the events
/// before it are taken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_the_maximum_size_are_refused_with_a_reason() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let app = TestApp::start().await;
    let big = |n: usize| {
        json!({
            "id": uuid::Uuid::new_v4(),
            "occurred": chrono::Utc::now().to_rfc3339(),
            "event": "test.big",
            "resource": {"prefect.resource.id": "test.big.1"},
            "payload": {"blob": "x".repeat(n)},
        })
    };
    let (status, body) = call(
        &app,
        "POST",
        "/api/events",
        Some(json!([big(10), big(1_600_000)])),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["exception_detail"][0]["loc"],
        json!(["body", 1]),
        "{body}"
    );
    assert!(
        body["exception_detail"][0]["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("too large"),
        "{body}"
    );

    let mut ws = events_in(&app).await;
    ws.send(Message::text(
        json!({"type": "auth", "token": null}).to_string(),
    ))
    .await
    .expect("auth");
    let small = big(10);
    ws.send(Message::text(small.to_string()))
        .await
        .expect("send");
    let _ = ws.send(Message::text(big(1_600_000).to_string())).await;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(msg) = ws.next().await {
            if let Ok(Message::Close(frame)) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("the server closes the socket");
    assert_eq!(closed, Some(1009));
    // The small event before it was accepted.
    let state = app.app_state();
    let ws_id = orrery::ids::WorkspaceId::new(orrery::storage::accounts::DEFAULT_WORKSPACE_ID);
    let id = small["id"].as_str().expect("id").to_string();
    wait_for(
        "the event before the big one in the events database",
        20,
        || async {
            let mut c = state.stores.events.read().await.expect("connection");
            orrery::storage::events::list_recent(&mut c, &ws_id, 100)
                .await
                .expect("list")
                .iter()
                .any(|r| r.id == id)
        },
        |found| *found,
    )
    .await;
    app.stop().await;
}

/// A large `POST /logs/` batch (more rows than one SQLite statement takes) is stored whole and
/// reads back in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_log_batch_is_stored_whole() {
    let app = TestApp::start().await;
    let run = FlowRunBuilder::flow("chatty").create(&app).await;
    let run_id = run["id"].as_str().expect("id").to_string();
    let at = chrono::Utc::now();
    let logs: Vec<Value> = (0..2_500)
        .map(|i| {
            json!({"name": "prefect.flow_runs", "level": 20, "message": format!("line {i}"),
                "timestamp": (at + chrono::Duration::milliseconds(i)).to_rfc3339(),
                "flow_run_id": run_id, "task_run_id": null})
        })
        .collect();
    let (status, _) = call(&app, "POST", "/api/logs/", Some(Value::Array(logs))).await;
    assert_eq!(status, 201);
    let page = |offset: i64| {
        let body = json!({"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC",
            "limit": 2, "offset": offset});
        let app = &app;
        async move { call(app, "POST", "/api/logs/filter", Some(body)).await.1 }
    };
    let first = page(0).await;
    assert_eq!(first[0]["message"], "line 0", "{first}");
    assert_eq!(first[0]["level"], 20);
    assert_eq!(first[0]["flow_run_id"], json!(run_id));
    assert!(first[0]["task_run_id"].is_null());
    let last = page(2_498).await;
    let messages: Vec<&str> = last
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert_eq!(messages, ["line 2498", "line 2499"]);
    assert_eq!(page(2_500).await, json!([]));
    app.stop().await;
}

/// The relay claims a backlog of large events by size as well as count: twelve events of about
/// 1.1 MB go out four at a time under a 4 MiB budget (not all at once: 500 events of 1.5 MB
/// made one 1.1 GB XADD), and a single event larger than the budget still goes alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_claims_large_events_by_size() {
    use orrery::storage::outbox::{self, Relayed};

    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__OUTBOX_RELAY_INTERVAL_MS", "0")
        .start()
        .await;
    let big = || {
        json!({
            "id": uuid::Uuid::new_v4(),
            "occurred": chrono::Utc::now().to_rfc3339(),
            "event": "test.big",
            "resource": {"prefect.resource.id": "test.big.1"},
            "payload": {"blob": "x".repeat(1_100_000)},
        })
    };
    let events: Vec<Value> = (0..12).map(|_| big()).collect();
    let (status, body) = call(&app, "POST", "/api/events", Some(Value::Array(events))).await;
    assert_eq!(status, 204, "{body}");
    let state = app.app_state();
    let mut batches = Vec::new();
    for budget in [4 << 20, 4 << 20, 1 << 20, 100 << 20] {
        let mut c = state.stores.orion.read().await.expect("connection");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(0usize));
        let counter = seen.clone();
        let relayed = outbox::relay(&mut c, 500, budget, chrono::Utc::now().naive_utc(), {
            move |rows| async move {
                *counter.lock().expect("lock") = rows.len();
                rows.iter().map(|r| r.seq).collect()
            }
        })
        .await
        .expect("relay");
        drop(c);
        if let Relayed::Published(done) = relayed {
            state
                .stores
                .orion
                .write(async move |c| {
                    outbox::mark_published(c, &done, chrono::Utc::now().naive_utc()).await
                })
                .await
                .expect("mark");
        }
        batches.push(*seen.lock().expect("lock"));
    }
    assert_eq!(batches, vec![4, 4, 1, 3]);
    app.stop().await;
}
