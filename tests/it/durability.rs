//! Acknowledged means durable (issue 20): every event the server answered for — a `POST /events`
//! batch it took with 204, an event an API write produced — reaches the events database, and
//! every client task-run event becomes its task run, through a Redis `FLUSHALL`, a Redis
//! `SHUTDOWN NOSAVE` and restart, and a `kill -9` of the embedded server. The faults are real:
//! a Redis server of the test's own (so flushing it touches no other test) and the `orrery`
//! binary killed with SIGKILL.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orrery::ids::WorkspaceId;
use orrery::storage::accounts::DEFAULT_WORKSPACE_ID;
use serde_json::{json, Value};

use crate::support::{call, redis_url, wait_for, FlowRunBuilder, TestApp};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A Redis server of this test's own, without persistence, on `port`.
pub(crate) fn redis_server(port: u16) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (the PostgreSQL + Redis test pass needs it)")
}

pub(crate) fn redis_cli(port: u16, args: &[&str]) {
    let _ = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub(crate) async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {port}");
}

fn plain_event(n: usize) -> (String, Value) {
    let id = uuid::Uuid::now_v7().to_string();
    let event = json!({
        "id": id,
        "occurred": chrono::Utc::now().to_rfc3339(),
        "event": "test.durability.sent",
        "resource": {"prefect.resource.id": format!("test.thing.{n}")},
        "related": [],
        "payload": {"n": n},
    });
    (id, event)
}

fn task_run_event(task_run_id: &str, flow_run_id: &str) -> Value {
    let at = chrono::Utc::now().to_rfc3339();
    json!({
        "id": uuid::Uuid::now_v7(),
        "occurred": at,
        "event": "prefect.task-run.Completed",
        "resource": {"prefect.resource.id": format!("prefect.task-run.{task_run_id}"),
            "prefect.resource.name": "t-0", "prefect.orchestration": "client"},
        "related": [{"prefect.resource.id": format!("prefect.flow-run.{flow_run_id}"),
            "prefect.resource.role": "flow-run"}],
        "payload": {
            "validated_state": {"type": "COMPLETED", "name": "Completed", "message": "",
                "state_details": {}, "data": null},
            "task_run": {"name": "t-0", "task_key": format!("t-{task_run_id}"), "dynamic_key": "0",
                "tags": [], "labels": {}, "task_inputs": {}, "empirical_policy": {},
                "run_count": 1, "flow_run_run_count": 1, "total_run_time": 0.0}
        },
    })
}

/// What the load acknowledged: event ids answered with 204, task runs reported in them.
#[derive(Default)]
struct Acked {
    events: BTreeSet<String>,
    task_runs: BTreeSet<String>,
    batches_refused: usize,
}

/// Sends batches of 20 events (one in five a client task-run event of `flow_run_id`) until
/// `stop` is set, recording what the server acknowledged.
async fn send_events(
    client: reqwest::Client,
    base: String,
    flow_run_id: Option<String>,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut batch = Vec::new();
        let mut ids = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            n += 1;
            match &flow_run_id {
                Some(fr) if n % 5 == 0 => {
                    let task = uuid::Uuid::new_v4().to_string();
                    let e = task_run_event(&task, fr);
                    ids.push(e["id"].as_str().unwrap_or_default().to_string());
                    batch.push(e);
                    tasks.push(task);
                }
                _ => {
                    let (id, e) = plain_event(n);
                    ids.push(id);
                    batch.push(e);
                }
            }
        }
        let sent = client
            .post(format!("{base}/api/events"))
            .json(&batch)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let status = sent.map(|r| r.status().as_u16()).unwrap_or(0);
        assert_ne!(status, 500, "POST /events answered 500");
        {
            let mut a = acked.lock().unwrap();
            if status == 204 {
                a.events.extend(ids);
                a.task_runs.extend(tasks);
            } else {
                a.batches_refused += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The ids of every event in the default workspace's events database.
async fn stored_event_ids(app: &TestApp) -> BTreeSet<String> {
    let state = app.app_state();
    let ws = WorkspaceId::new(DEFAULT_WORKSPACE_ID);
    let Ok(mut c) = state.stores.events.read().await else {
        return BTreeSet::new();
    };
    orrery::storage::events::list_recent(&mut c, &ws, 1_000_000)
        .await
        .map(|rows| rows.into_iter().map(|r| r.id).collect())
        .unwrap_or_default()
}

/// Waits until every acknowledged event is in the events database (and, when `task_runs` is
/// not empty, every reported task run exists), then checks the outbox drains.
async fn assert_all_arrived(app: &TestApp, acked: &Acked) {
    let expected = &acked.events;
    // How many acknowledged events the events database lacks (the wait prints the count).
    eprintln!(
        "acknowledged: {} events, {} task runs; batches refused: {}",
        expected.len(),
        acked.task_runs.len(),
        acked.batches_refused
    );
    let missing = wait_for(
        "every acknowledged event in the events database (value: how many are missing)",
        90,
        || async { expected.difference(&stored_event_ids(app).await).count() },
        |missing| *missing == 0,
    )
    .await;
    assert_eq!(missing, 0, "{missing} of {} events lost", expected.len());
    if !acked.task_runs.is_empty() {
        let want = acked.task_runs.len() as i64;
        let ids: Vec<&String> = acked.task_runs.iter().collect();
        wait_for(
            "every reported task run recorded",
            90,
            || async {
                let body = json!({"task_runs": {"id": {"any_": ids}}});
                call(app, "POST", "/api/task_runs/count", Some(body))
                    .await
                    .1
            },
            |n| n.as_i64() == Some(want),
        )
        .await;
    }
    let state = app.app_state();
    wait_for(
        "the outbox to drain",
        60,
        || async {
            let mut c = state.stores.orion.read().await.expect("connection");
            orrery::storage::outbox::backlog(&mut c)
                .await
                .expect("backlog")
        },
        |(unpublished, unconfirmed)| *unpublished == 0 && *unconfirmed == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_a_redis_flush_and_a_restart_without_persistence() {
    // Runs in the PostgreSQL + Redis pass, which has redis-server; the Redis is its own.
    if redis_url().is_none() {
        eprintln!("skipped: ORRERY_TEST_REDIS_URL is not set (the SQLite + memory pass)");
        return;
    }
    let port = free_port();
    let mut redis = redis_server(port);
    wait_for_port(port).await;
    let app = TestApp::builder()
        .setting("ORRERY__REDIS__URL", &format!("redis://127.0.0.1:{port}/0"))
        .start()
        .await;
    let run = FlowRunBuilder::flow("durable").create(&app).await;
    let flow_run_id = run["id"].as_str().expect("id").to_string();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..3 {
        load.push(tokio::spawn(send_events(
            app.client.clone(),
            app.base.clone(),
            Some(flow_run_id.clone()),
            acked.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis_cli(port, &["FLUSHALL"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis_cli(port, &["FLUSHALL"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis_cli(port, &["SHUTDOWN", "NOSAVE"]);
    let _ = redis.wait();
    // While Redis is down the API still takes events (into the outbox), and the server says
    // it can serve: ready, with the Redis roles degraded.
    let (status, ready) = call(&app, "GET", "/api/ready", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["stores"]["streams"], "degraded", "{ready}");
    assert_eq!(ready["stores"]["orion"], "ok", "{ready}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    redis = redis_server(port);
    wait_for_port(port).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        l.await.expect("load task");
    }

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.events.len() > 500,
        "too little load: {}",
        acked.events.len()
    );
    assert_eq!(
        acked.batches_refused, 0,
        "POST /events failed during the Redis faults"
    );
    assert_all_arrived(&app, &acked).await;
    app.stop().await;
    let _ = redis.kill();
    let _ = redis.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_embedded_server_killed_with_sigkill_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ORRERY__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("ORRERY__DATABASE__DATA_DIR", &data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start orrery");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(
        "the server to answer",
        60,
        || async {
            client
                .get(format!("{base}/api/health"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        },
        |s| *s == 200,
    )
    .await;

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..3 {
        load.push(tokio::spawn(send_events(
            client.clone(),
            base.clone(),
            None,
            acked.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().expect("SIGKILL");
    let _ = server.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        l.await.expect("load task");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.events.len() > 200,
        "too little load: {}",
        acked.events.len()
    );

    // The same data directory, served again: the events still in the outbox go out.
    let app = TestApp::builder()
        .embedded_only()
        .setting("ORRERY__DATABASE__DATA_DIR", &data.display().to_string())
        .start()
        .await;
    assert_all_arrived(&app, &acked).await;
    app.stop().await;
}

/// PostgreSQL's connections are killed under load (`pg_terminate_backend`, as a failover or an
/// administrator does): requests that meet a dead connection answer 503 with `Retry-After`,
/// which the client retries — never 500 — and the server keeps serving afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_postgres_connections_answer_503_never_500() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let Some(base) = crate::support::pg_url() else {
        eprintln!("skipped: ORRERY_TEST_DATABASE_URL is not set (the SQLite pass)");
        return;
    };
    let app = TestApp::start().await;
    let db_name = app
        .pg_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.path().trim_start_matches('/').to_string())
        .expect("a test database");
    let flow = crate::support::create_flow(&app, "terminated").await;
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, base_url, flow) = (app.client.clone(), app.base.clone(), flow.clone());
        let (statuses, stop) = (statuses.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = client
                    .post(format!("{base_url}/api/flow_runs/"))
                    .json(&json!({"flow_id": flow, "state": {"type": "PENDING"}}))
                    .send()
                    .await;
                let status = r.map(|r| r.status().as_u16()).unwrap_or(0);
                statuses.lock().unwrap().push(status);
            }
        }));
    }
    let mut admin = AsyncPgConnection::establish(&base).await.expect("admin");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
            ))
            .await
            .expect("terminate");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        l.await.expect("load task");
    }
    let statuses = std::mem::take(&mut *statuses.lock().unwrap());
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    assert!(count(201) > 100, "too little load: {} created", count(201));
    assert_eq!(
        count(500),
        0,
        "answers: 201 {}, 503 {}, 500 {}",
        count(201),
        count(503),
        count(500)
    );
    assert!(
        statuses.iter().all(|s| [201, 503].contains(s)),
        "unexpected answers: {:?}",
        statuses
            .iter()
            .filter(|s| ![201, 503].contains(*s))
            .collect::<Vec<_>>()
    );
    // Still serving.
    let (status, _) = call(&app, "GET", "/api/health", None).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"limit": 1})),
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// A transaction whose connection dies before its COMMIT (here it terminates its own backend,
/// as a failover or an administrator would) runs again, once, on a fresh connection: the caller
/// gets its result, not a 503, and the work is done exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_loses_its_connection_runs_again_on_a_fresh_one() {
    use diesel_async::SimpleAsyncConnection;
    use orrery::storage::Backend;
    use std::sync::atomic::{AtomicUsize, Ordering};
    if crate::support::pg_url().is_none() {
        eprintln!("skipped: ORRERY_TEST_DATABASE_URL is not set (the SQLite pass)");
        return;
    }
    let app = TestApp::start().await;
    let state = app.app_state();
    let db = &state.stores.orion;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let answer = db
        .transaction(async move |c| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst);
            let Backend::Pg(pg) = c.backend() else {
                unreachable!("the PostgreSQL pass")
            };
            pg.batch_execute("CREATE TABLE IF NOT EXISTS retried (n int)")
                .await?;
            if attempt == 0 {
                pg.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
                    .await?;
            }
            pg.batch_execute("INSERT INTO retried VALUES (1)").await?;
            Ok(attempt)
        })
        .await
        .expect("the retry succeeds");
    assert_eq!((answer, runs.load(Ordering::SeqCst)), (1, 2));
    let (status, _) = call(&app, "GET", "/api/ready", None).await;
    assert_eq!(status, 200);
    let rows = db
        .transaction(async |c| {
            let Backend::Pg(pg) = c.backend() else {
                unreachable!("the PostgreSQL pass")
            };
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let n: Vec<N> = diesel_async::RunQueryDsl::load(
                diesel::sql_query("SELECT count(*) AS n FROM retried"),
                pg,
            )
            .await?;
            Ok(n.first().map_or(0, |r| r.n))
        })
        .await
        .expect("count");
    assert_eq!(rows, 1, "the first attempt's insert was never committed");
    app.stop().await;
}

/// Every query a background loop runs over flow runs and task runs has an index that fits it:
/// with 300 finished runs (and task runs) in the tables and nothing for the loops to do, the five
/// loop queries read almost no row of `flow_runs` or `task_runs` (sequential scans are disabled, so a
/// scan only happens where no index applies; a whole index walked in id order reads every row
/// too). At a million runs each of these was a sequential scan of 0.3-0.6 s, every few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_loop_queries_use_indexes_not_table_scans() {
    use diesel_async::SimpleAsyncConnection;
    use orrery::storage::{flow_run_input, flow_runs, Backend};
    if crate::support::pg_url().is_none() {
        eprintln!("skipped: ORRERY_TEST_DATABASE_URL is not set (the SQLite pass)");
        return;
    }
    let app = TestApp::start().await;
    // History the loops must not read: finished runs with task runs. A loop query that walks
    // the table (a sequential scan, or a whole index in id order) reads all of them.
    let flow = crate::support::create_flow(&app, "history").await;
    for i in 0..300 {
        let (status, run) = call(
            &app,
            "POST",
            "/api/flow_runs/",
            Some(json!({"flow_id": flow, "state": {"type": "COMPLETED"}})),
        )
        .await;
        assert_eq!(status, 201, "{run}");
        let (status, task) = call(
            &app,
            "POST",
            "/api/task_runs/",
            Some(
                json!({"flow_run_id": run["id"], "task_key": "t", "dynamic_key": i.to_string(),
                        "state": {"type": "COMPLETED"}}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{task}");
    }
    let state = app.app_state();
    let scans = state
        .stores
        .orion
        .transaction(async |c| {
            let Backend::Pg(pg) = c.backend() else {
                unreachable!("the PostgreSQL pass")
            };
            pg.batch_execute("SET LOCAL enable_seqscan = off").await?;
            let now = chrono::Utc::now().naive_utc();
            flow_runs::list_late_candidates(c, now, 100).await?;
            flow_runs::list_stuck_cancelling(c, now, 100).await?;
            flow_runs::list_orphaned_subflows(c, now, 100).await?;
            flow_runs::list_orphaned_task_runs(c, now, 100).await?;
            flow_run_input::list_paused_runs(c, "", 100).await?;
            #[derive(diesel::QueryableByName, Debug)]
            struct Scans {
                #[diesel(sql_type = diesel::sql_types::Text)]
                relname: String,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                read: i64,
            }
            let Backend::Pg(pg) = c.backend() else {
                unreachable!("the PostgreSQL pass")
            };
            let rows: Vec<Scans> = diesel_async::RunQueryDsl::load(
                diesel::sql_query(
                    "SELECT relname::text AS relname, seq_tup_read + idx_tup_fetch AS read \
                     FROM pg_stat_xact_user_tables WHERE relname IN ('flow_runs', 'task_runs')",
                ),
                pg,
            )
            .await?;
            Ok(rows
                .into_iter()
                // The planner's own probes of index ends (selectivity of a range) fetch a few
                // rows; walking the history reads all 300 of each table.
                .filter(|r| r.read >= 100)
                .map(|r| format!("{}: {} rows read", r.relname, r.read))
                .collect::<Vec<_>>())
        })
        .await
        .expect("queries");
    assert!(scans.is_empty(), "the loops read history: {scans:?}");
    app.stop().await;
}
