//! Automations firing: events evaluated against reactive, proactive and composite triggers, and
//! the actions they start — a deployment run, a work pool paused, a failure reported — each once,
//! with Prefect's `prefect.automation.triggered` and `prefect.automation.action.*` events.

use serde_json::{json, Value};

use crate::support::{
    assert_accepted, call, create_flow, set_state, wait_for, FlowRunBuilder, TestApp,
    WorkPoolBuilder,
};

/// The events whose names start with `prefix`, oldest first.
async fn events(app: &TestApp, prefix: &str) -> Vec<Value> {
    let (_, page) = call(
        app,
        "POST",
        "/api/events/filter",
        Some(json!({"filter": {"event": {"prefix": [prefix]}, "order": "ASC"}, "limit": 50})),
    )
    .await;
    page["events"].as_array().cloned().unwrap_or_default()
}

async fn wait_events(app: &TestApp, prefix: &str, n: usize) -> Vec<Value> {
    wait_for(
        prefix,
        30,
        || events(app, prefix),
        |e: &Vec<Value>| e.len() >= n,
    )
    .await
}

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

async fn emit(app: &TestApp, name: &str, resource: &str) {
    let body = json!([{
        "occurred": chrono::Utc::now(), "event": name, "id": uuid::Uuid::new_v4(),
        "resource": {"prefect.resource.id": resource}, "related": [], "payload": {}
    }]);
    let (s, b) = call(app, "POST", "/api/events", Some(body)).await;
    assert_eq!(s, 204, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_fires_its_automation_once_and_the_actions_run() {
    let app = TestApp::start().await;
    let pool = WorkPoolBuilder::new("pool").create(&app).await;
    let flow_id = create_flow(&app, "etl").await;
    let (s, d) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(json!({"name": "cleanup", "flow_id": flow_id, "work_pool_name": "pool", "parameters": {"who": "nobody", "n": 1}})),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let deployment = d["id"].as_str().expect("id").to_string();
    let body = json!({
        "name": "on failure",
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Failed"],
                    "match": {"prefect.resource.id": "prefect.flow-run.*"}, "match_related": {"prefect.resource.role": "flow", "prefect.resource.name": "etl"}},
        "actions": [
            {"type": "run-deployment", "source": "selected", "deployment_id": deployment,
             "parameters": {"who": "{{ flow_run.name }}", "event": {"__prefect_kind": "jinja", "template": "{{ event.event }}"},
                            "flow": "{{ flow.name }}", "greeting": "{{ variables.greeting }}"}},
            {"type": "pause-work-pool", "source": "selected", "work_pool_id": pool["id"]},
        ],
    });
    let (s, v) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "greeting", "value": "hi"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, a) = call(&app, "POST", "/api/automations/", Some(body)).await;
    assert_eq!(s, 201, "{a}");
    let automation = a["id"].as_str().expect("id").to_string();

    // A completed run doesn't fire it; a failed one does.
    let ok = FlowRunBuilder::flow_id(&flow_id)
        .with(json!({"name": "fine"}))
        .create(&app)
        .await;
    let ok_id = ok["id"].as_str().expect("id");
    assert_accepted(set_state(&app, ok_id, json!({"type": "RUNNING"}), None).await);
    assert_accepted(set_state(&app, ok_id, json!({"type": "COMPLETED"}), None).await);
    let run = FlowRunBuilder::flow_id(&flow_id)
        .with(json!({"name": "broken-run"}))
        .create(&app)
        .await;
    let run_id = run["id"].as_str().expect("id");
    assert_accepted(set_state(&app, run_id, json!({"type": "RUNNING"}), None).await);
    assert_accepted(set_state(&app, run_id, json!({"type": "FAILED"}), None).await);

    let seen = wait_events(&app, "prefect.automation.action.executed", 2).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    let all = events(&app, "prefect.automation.").await;
    let triggered = named(&all, "prefect.automation.triggered");
    assert_eq!(triggered.len(), 1, "{all:?}");
    assert_eq!(
        triggered[0]["resource"]["prefect.resource.id"],
        format!("prefect.automation.{automation}")
    );
    assert_eq!(triggered[0]["resource"]["prefect.posture"], "Reactive");
    assert_eq!(
        triggered[0]["payload"]["triggering_event"]["resource"]["prefect.resource.id"],
        format!("prefect.flow-run.{run_id}")
    );
    assert_eq!(named(&all, "prefect.automation.action.triggered").len(), 2);
    let run_action = seen
        .iter()
        .find(|e| e["payload"]["action_type"] == "run-deployment")
        .expect("run-deployment");
    assert_eq!(run_action["payload"]["status_code"], 201);
    assert_eq!(run_action["payload"]["action_index"], 0);

    // The deployment ran once, with the rendered parameters, made by the automation.
    let (_, runs) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"flow_runs": {"deployment_id": {"any_": [deployment]}}})),
    )
    .await;
    let runs = runs.as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        runs[0]["parameters"],
        json!({"who": "broken-run", "event": "prefect.flow-run.Failed", "flow": "etl", "greeting": "hi", "n": 1})
    );
    assert_eq!(runs[0]["created_by"]["type"], "AUTOMATION");
    assert_eq!(runs[0]["created_by"]["id"], automation.as_str());
    assert_eq!(runs[0]["state"]["type"], "SCHEDULED");
    let (_, p) = call(&app, "GET", "/api/work_pools/pool", None).await;
    assert_eq!(p["is_paused"], true);

    // Still once a moment later: nothing was evaluated or run twice.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let all = events(&app, "prefect.automation.").await;
    assert_eq!(named(&all, "prefect.automation.triggered").len(), 1);
    assert_eq!(named(&all, "prefect.automation.action.executed").len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_within_a_window_and_a_compound_trigger() {
    let app = TestApp::start().await;
    // Three of `x.tick` within a minute, per resource.
    let body = json!({
        "name": "three ticks",
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["x.tick"], "threshold": 3, "within": 60, "for_each": ["prefect.resource.id"]},
        "actions": [{"type": "do-nothing"}],
    });
    let (s, _) = call(&app, "POST", "/api/automations/", Some(body)).await;
    assert_eq!(s, 201);
    // Both of `x.one` and `x.two`; its action can't find a deployment in the event.
    let body = json!({
        "name": "both",
        "trigger": {"type": "compound", "require": "all", "within": 60, "triggers": [
            {"type": "event", "posture": "Reactive", "expect": ["x.one"]},
            {"type": "event", "posture": "Reactive", "expect": ["x.two"]}]},
        "actions": [{"type": "pause-deployment", "source": "inferred"}],
    });
    let (s, both) = call(&app, "POST", "/api/automations/", Some(body)).await;
    assert_eq!(s, 201, "{both}");

    for r in ["a", "a", "b", "b"] {
        emit(&app, "x.tick", &format!("thing.{r}")).await;
    }
    emit(&app, "x.one", "thing.c").await;
    // Each event is evaluated in its own time; give them a moment before the last ones.
    wait_for(
        "the ticks to be stored",
        30,
        || events(&app, "x."),
        |e: &Vec<Value>| e.len() >= 5,
    )
    .await;
    let fired = events(&app, "prefect.automation.triggered").await;
    assert!(fired.is_empty(), "nothing has fired yet: {fired:?}");
    emit(&app, "x.tick", "thing.a").await;
    emit(&app, "x.two", "thing.c").await;

    let fired = wait_events(&app, "prefect.automation.triggered", 2).await;
    let names: Vec<&str> = fired
        .iter()
        .filter_map(|e| e["resource"]["prefect.resource.name"].as_str())
        .collect();
    assert!(
        names.contains(&"three ticks") && names.contains(&"both"),
        "{names:?}"
    );
    let ticks = fired
        .iter()
        .find(|e| e["resource"]["prefect.resource.name"] == "three ticks")
        .expect("ticks");
    assert_eq!(
        ticks["payload"]["triggering_labels"],
        json!({"prefect.resource.id": "thing.a"})
    );
    let failed = wait_events(&app, "prefect.automation.action.failed", 1).await;
    assert_eq!(
        failed[0]["payload"]["reason"],
        "No deployment could be inferred"
    );
    assert_eq!(failed[0]["payload"]["action_type"], "pause-deployment");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(events(&app, "prefect.automation.triggered").await.len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proactive_trigger_fires_when_the_expected_event_does_not_come() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__PROACTIVE_TRIGGERS_INTERVAL_MS", "500")
        .start()
        .await;
    let body = json!({
        "name": "quiet",
        "trigger": {"type": "event", "posture": "Proactive", "expect": ["x.heartbeat"], "threshold": 1, "within": 10},
        "actions": [{"type": "do-nothing"}],
    });
    let (s, a) = call(&app, "POST", "/api/automations/", Some(body)).await;
    assert_eq!(s, 201, "{a}");
    let fired = wait_events(&app, "prefect.automation.triggered", 1).await;
    assert_eq!(fired[0]["resource"]["prefect.posture"], "Proactive");
    assert_eq!(fired[0]["payload"]["triggering_event"], Value::Null);
    wait_events(&app, "prefect.automation.action.executed", 1).await;
    app.stop().await;
}
