//! Several replicas on one PostgreSQL + Redis behave as one installation (issue 23 §4): they
//! start together on an empty database, and each periodic job's effect happens once however
//! many replicas run it. Each test starts its replicas in-process on a fresh database of its
//! own; they are skipped in the SQLite pass (one process owns an SQLite file).

use serde_json::{json, Value};

use deadpool_redis::redis;

use crate::support::{
    assert_accepted, call, create_flow, drop_pg_database, fresh_pg_database, pg_url, redis_url,
    set_state, wait_for, FlowRunBuilder, TestApp,
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
        let ns = format!("test-{}", uuid::Uuid::new_v4().simple());
        let start = || {
            TestApp::builder()
                .setting("ORRERY__DATABASE__URL", &url)
                .setting("ORRERY__REDIS__NAMESPACE", &ns)
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
    let ns = format!("test-{}", uuid::Uuid::new_v4().simple());
    let start = || {
        TestApp::builder()
            .setting("ORRERY__DATABASE__URL", &url)
            .setting("ORRERY__REDIS__NAMESPACE", &ns)
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
    for (app, kind, ids) in [(&b, "flow_runs", &subflows), (&c, "task_runs", &tasks)] {
        for id in ids {
            wait_for(
                &format!("{kind} {id} to be cancelled"),
                20,
                || async { call(app, "GET", &format!("/api/{kind}/{id}"), None).await.1 },
                |r: &Value| r["state_type"] == "CANCELLED",
            )
            .await;
        }
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

/// (group name, consumer names) of every consumer group of `key`.
async fn groups_of(
    mut conn: redis::aio::MultiplexedConnection,
    key: &str,
) -> Vec<(String, Vec<String>)> {
    let names = |v: &redis::Value| -> Vec<String> {
        let mut out = Vec::new();
        if let redis::Value::Array(entries) = v {
            for e in entries {
                if let redis::Value::Array(f) = e {
                    for pair in f.chunks(2) {
                        if let [redis::Value::BulkString(k), redis::Value::BulkString(v)] = pair {
                            if k == b"name" {
                                out.push(String::from_utf8_lossy(v).into_owned());
                            }
                        }
                    }
                }
            }
        }
        out
    };
    let groups: redis::Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("XINFO GROUPS");
    let mut out = Vec::new();
    for g in names(&groups) {
        let consumers: redis::Value = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(key)
            .arg(&g)
            .query_async(&mut conn)
            .await
            .expect("XINFO CONSUMERS");
        out.push((g, names(&consumers)));
    }
    out
}

fn distributors(groups: &[(String, Vec<String>)]) -> Vec<String> {
    groups
        .iter()
        .filter(|(g, _)| g.starts_with("distributor-"))
        .map(|(g, _)| g.clone())
        .collect()
}

/// Per-replica Redis consumer groups don't pile up: a replica that stops removes its own
/// live-event group, the group a killed replica left is removed once its alive key expires
/// (`redis.consumer_reap_after_seconds`), and so is its idle consumer in a shared group. After restarts of
/// three replicas there used to be six distributor groups, three dead and growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_groups_of_stopped_and_killed_replicas_are_removed() {
    let (Some(base), Some(redis_url)) = (pg_url(), redis_url()) else {
        eprintln!("skipped: needs PostgreSQL and Redis (the SQLite pass)");
        return;
    };
    let url = fresh_pg_database(&base).await;
    let ns = format!("test-{}", uuid::Uuid::new_v4().simple());
    let start = || {
        TestApp::builder()
            .setting("ORRERY__DATABASE__URL", &url)
            .setting("ORRERY__REDIS__NAMESPACE", &ns)
            .setting("ORRERY__REDIS__CONSUMER_REAP_AFTER_SECONDS", "2")
            .start()
    };
    let (a, b) = tokio::join!(start(), start());
    let client = redis::Client::open(redis_url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let key = format!("{ns}:events");
    let two = wait_for(
        "both replicas' live-event groups",
        20,
        || groups_of(conn.clone(), &key),
        |g| distributors(g).len() == 2,
    )
    .await;
    b.stop().await;
    let left = wait_for(
        "the stopped replica's group to go",
        10,
        || groups_of(conn.clone(), &key),
        |g| distributors(g).len() == 1,
    )
    .await;
    let own = distributors(&left);
    assert!(distributors(&two).contains(&own[0]), "{two:?} {left:?}");

    // What a replica killed with SIGKILL leaves: its group, with a consumer that read once,
    // and its consumer in the shared persister group.
    let _: redis::Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("distributor-gone-1")
        .arg("$")
        .query_async(&mut conn)
        .await
        .expect("XGROUP CREATE");
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("distributor-gone-1")
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("XREADGROUP");
    let _: redis::Value = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&key)
        .arg("event-persister")
        .arg("ghost")
        .query_async(&mut conn)
        .await
        .expect("XGROUP CREATECONSUMER");
    let ghost_in = |g: &[(String, Vec<String>)]| {
        g.iter().any(|(name, consumers)| {
            name == "distributor-gone-1" || consumers.iter().any(|c| c == "ghost")
        })
    };
    assert!(ghost_in(&groups_of(conn.clone(), &key).await));
    let after = wait_for(
        "the killed replica's group and consumer to be reaped",
        20,
        || groups_of(conn.clone(), &key),
        |g| !ghost_in(g),
    )
    .await;
    // The live replica keeps its group, and it still delivers.
    assert_eq!(distributors(&after), own, "{after:?}");
    // A subscriber on the live replica gets a new event through that group.
    let mut ws = events_out(&a).await;
    let flow = create_flow(&a, "after-reaping").await;
    let run = FlowRunBuilder::flow_id(&flow)
        .state(json!({"type": "RUNNING"}))
        .create(&a)
        .await;
    let resource = format!("prefect.flow-run.{}", run["id"].as_str().expect("id"));
    let got = next_event_of(&mut ws, &resource).await;
    assert_eq!(got["event"], "prefect.flow-run.Running", "{got}");
    a.stop().await;
    let gone = groups_of(conn.clone(), &key).await;
    assert!(distributors(&gone).is_empty(), "{gone:?}");
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap_or(0);
    drop_pg_database(&base, &url).await;
}

/// A websocket on `/api/events/out` of `app`, past the `prefect` handshake, filtered on flow-run
/// events.
async fn events_out(
    app: &TestApp,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let url = app.url("/api/events/out").replace("http://", "ws://");
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "prefect".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"type": "auth", "token": null})))
        .await
        .expect("auth");
    let reply = ws.next().await.expect("reply").expect("message");
    assert!(reply.to_string().contains("auth_success"), "{reply}");
    let filter = json!({"event": {"prefix": ["prefect.flow-run."]}});
    ws.send(send(json!({"type": "filter", "filter": filter})))
        .await
        .expect("filter");
    ws
}

/// The next event about `resource` the socket delivers (waiting up to 20 s).
async fn next_event_of(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    resource: &str,
) -> Value {
    use futures_util::StreamExt;
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(Ok(msg)) = ws.next().await {
            let Ok(v) = serde_json::from_str::<Value>(&msg.to_string()) else {
                continue;
            };
            if v["event"]["resource"]["prefect.resource.id"] == resource {
                return v["event"].clone();
            }
        }
        panic!("the socket closed");
    })
    .await
    .expect("an event within 20 s")
}
