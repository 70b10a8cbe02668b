//! Automations across two processes on one PostgreSQL + Redis, with faults: 100 triggering
//! events sent to both, one process killed with SIGKILL and restarted, Redis flushed — every
//! event fires its automation once and every action runs once. Runs in the PostgreSQL + Redis
//! pass (its Redis is its own, so the flush touches no other test).

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::durability::{free_port, redis_cli, redis_server, wait_for_port};
use crate::support::{
    call, create_flow, drop_pg_database, fresh_pg_database, pg_url, redis_url, wait_for, TestApp,
};

const FAST: &[(&str, &str)] = &[
    ("ORRERY__SERVICES__VISIBILITY_TIMEOUT_SECONDS", "3"),
    ("ORRERY__SERVICES__AUTOMATION_ACTION_CLAIM_SECONDS", "3"),
];

fn spawn(port: u16, db: &str, redis: &str) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orrery"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ORRERY__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("ORRERY__DATABASE__URL", db)
        .env("ORRERY__REDIS__URL", redis)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in FAST {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start orrery")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    wait_for(
        "the process to be ready",
        60,
        || async {
            match client.get(format!("{base}/api/ready")).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            }
        },
        |s| *s == 200,
    )
    .await;
}

/// Every event named `name`, following the next-page links. Pages are offsets (as Prefect's
/// are), so an event persisted while the pages are read can shift one onto the next page as
/// well: the events are answered once each, by id.
async fn all_events(app: &TestApp, name: &str) -> Vec<Value> {
    let (_, mut page) = call(
        app,
        "POST",
        "/api/events/filter",
        Some(json!({"filter": {"event": {"name": [name]}}, "limit": 50})),
    )
    .await;
    let mut out: Vec<Value> = Vec::new();
    let mut seen = BTreeSet::new();
    loop {
        for e in page["events"].as_array().cloned().unwrap_or_default() {
            if seen.insert(e["id"].as_str().unwrap_or_default().to_string()) {
                out.push(e);
            }
        }
        let Some(next) = page["next_page"].as_str() else {
            return out;
        };
        page = app
            .client
            .get(next)
            .send()
            .await
            .expect("next page")
            .json()
            .await
            .expect("json");
    }
}

async fn send(client: &reqwest::Client, base: &str, from: usize) -> bool {
    let batch: Vec<Value> = (from..from + 10)
        .map(|i| {
            json!({"occurred": chrono::Utc::now(), "event": "x.go", "id": uuid::Uuid::new_v4(),
                   "resource": {"prefect.resource.id": format!("thing.{i}")}, "related": [], "payload": {}})
        })
        .collect();
    match client
        .post(format!("{base}/api/events"))
        .json(&batch)
        .send()
        .await
    {
        Ok(r) if r.status().as_u16() == 204 => true,
        Ok(r) => {
            eprintln!(
                "{base}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
            false
        }
        Err(e) => {
            eprintln!("{base}: {e}");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_firing_acts_once_across_a_killed_process_and_a_flushed_redis() {
    let (Some(base), Some(_)) = (pg_url(), redis_url()) else {
        eprintln!("skipped: needs ORRERY_TEST_DATABASE_URL and ORRERY_TEST_REDIS_URL");
        return;
    };
    let db = fresh_pg_database(&base).await;
    let redis_port = free_port();
    let mut redis = redis_server(redis_port);
    wait_for_port(redis_port).await;
    let redis_url = format!("redis://127.0.0.1:{redis_port}/0");
    let mut builder = TestApp::builder()
        .setting("ORRERY__DATABASE__URL", &db)
        .setting("ORRERY__REDIS__URL", &redis_url);
    for (k, v) in FAST {
        builder = builder.setting(k, v);
    }
    let b = builder.start().await;
    let port = free_port();
    let mut a = spawn(port, &db, &redis_url);
    let a_base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &a_base).await;

    let flow = create_flow(&b, "target").await;
    let (s, d) = call(
        &b,
        "POST",
        "/api/deployments/",
        Some(json!({"name": "on-go", "flow_id": flow})),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let deployment = d["id"].as_str().expect("id").to_string();
    let body = json!({
        "name": "go",
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["x.go"]},
        "actions": [{"type": "run-deployment", "source": "selected", "deployment_id": deployment}, {"type": "do-nothing"}],
    });
    let (s, created) = call(&b, "POST", "/api/automations/", Some(body)).await;
    assert_eq!(s, 201, "{created}");

    let mut a_up = true;
    for batch in 0..10 {
        let to_a = a_up && batch % 2 == 0;
        let target = if to_a {
            a_base.as_str()
        } else {
            b.base.as_str()
        };
        assert!(
            send(&client, target, batch * 10).await,
            "batch {batch} refused"
        );
        match batch {
            3 => {
                a.kill().expect("SIGKILL");
                let _ = a.wait();
                a_up = false;
            }
            5 => redis_cli(redis_port, &["FLUSHALL"]),
            7 => {
                a = spawn(port, &db, &redis_url);
                wait_ready(&client, &a_base).await;
                a_up = true;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let executed = wait_for(
        "200 executed actions",
        90,
        || all_events(&b, "prefect.automation.action.executed"),
        |e: &Vec<Value>| e.len() >= 200,
    )
    .await;
    // A moment more: nothing arrives twice late.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let executed = {
        let again = all_events(&b, "prefect.automation.action.executed").await;
        assert_eq!(again.len(), executed.len());
        again
    };
    // Firings first, saying which event fired more than once and whether the second firing had
    // the same event (a repeated evaluation) or another event for the same thing (a repeated
    // ingest): one batch in three full PostgreSQL runs fired twice (session 19).
    let fired = all_events(&b, "prefect.automation.triggered").await;
    let mut per_cause: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for e in &fired {
        let t = &e["payload"]["triggering_event"];
        per_cause
            .entry(t["resource"]["prefect.resource.id"].as_str().unwrap_or("?"))
            .or_default()
            .push(t["id"].as_str().unwrap_or("?"));
    }
    let twice: Vec<_> = per_cause.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        twice.is_empty() && fired.len() == 100,
        "{} firings and {} executed actions; fired more than once (thing: triggering event ids): {twice:?}",
        fired.len(),
        executed.len()
    );
    assert_eq!(executed.len(), 200);
    let invocations: BTreeSet<&str> = executed
        .iter()
        .filter_map(|e| e["payload"]["invocation"].as_str())
        .collect();
    assert_eq!(invocations.len(), 200, "an action ran twice");
    let triggered = all_events(&b, "prefect.automation.triggered").await;
    assert_eq!(triggered.len(), 100, "each event fired once");
    let causes: BTreeSet<&str> = triggered
        .iter()
        .filter_map(|e| {
            e["payload"]["triggering_event"]["resource"]["prefect.resource.id"].as_str()
        })
        .collect();
    assert_eq!(causes.len(), 100);
    let (_, runs) = call(
        &b,
        "POST",
        "/api/flow_runs/count",
        Some(json!({"flow_runs": {"deployment_id": {"any_": [deployment]}}})),
    )
    .await;
    assert_eq!(runs, 100);

    let _ = a.kill();
    let _ = a.wait();
    b.stop().await;
    let _ = redis.kill();
    let _ = redis.wait();
    drop_pg_database(&base, &db).await;
}
