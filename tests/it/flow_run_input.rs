//! `/flow_runs/{id}/input` and `/flow_runs/{id}/resume` against a real server: inputs (create,
//! filter, text/plain read, delete), resuming paused runs with and without a run-input schema,
//! and the pause-expiration service failing runs whose pause timed out.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{assert_accepted, call, raw, set_state, wait_for, FlowRunBuilder, TestApp};

/// A run of the flow "pausing" (of `deployment`, if given), created PENDING and moved to RUNNING.
async fn running_run(app: &TestApp, deployment: Option<&str>) -> String {
    let mut run = FlowRunBuilder::flow("pausing").state(json!({"type": "PENDING"}));
    if let Some(d) = deployment {
        run = run.deployment(d);
    }
    let run = run.create(app).await;
    let id = run["id"].as_str().unwrap().to_string();
    assert_accepted(set_state(app, &id, json!({"type": "RUNNING"}), None).await);
    id
}

fn keyset(base: &str) -> Value {
    json!({"description": format!("{base}-description"), "response": format!("{base}-response"), "schema": format!("{base}-schema")})
}

async fn pause(app: &TestApp, run: &str, details: Value) {
    assert_accepted(
        set_state(
            app,
            run,
            json!({"type": "PAUSED", "name": "Paused", "state_details": details}),
            None,
        )
        .await,
    );
}

async fn input(app: &TestApp, run: &str, key: &str) -> (u16, String, String) {
    let r = app
        .client
        .get(app.url(&format!("/api/flow_runs/{run}/input/{key}")))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ctype, r.text().await.unwrap_or_default())
}

fn approval_schema() -> String {
    json!({"additionalProperties": false, "properties": {
        "approved": {"title": "Approved", "type": "boolean"},
        "reason": {"default": "none", "title": "Reason", "type": "string"}},
        "required": ["approved"], "title": "Approval", "type": "object"})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_created_filtered_read_and_deleted() {
    let app = TestApp::start().await;
    let run = running_run(&app, None).await;
    let base = format!("/api/flow_runs/{run}/input");
    let (s, b) = call(
        &app,
        "POST",
        &base,
        Some(json!({"key": "k-1", "value": "{\"a\":1}", "sender": "me"})),
    )
    .await;
    assert_eq!((s, b), (201, Value::Null));
    let (s, b) = call(
        &app,
        "POST",
        &base,
        Some(json!({"key": "k-1", "value": "x"})),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            409,
            json!({"detail": "A flow run input with this key already exists."})
        )
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (s, _) = call(
        &app,
        "POST",
        &base,
        Some(json!({"key": "k-2", "value": "plain", "ignored": 1})),
    )
    .await;
    assert_eq!(s, 201);
    call(
        &app,
        "POST",
        &base,
        Some(json!({"key": "other", "value": "o"})),
    )
    .await;

    let (s, b) = call(
        &app,
        "POST",
        &base,
        Some(json!({"key": "Bad_Key", "value": "x"})),
    )
    .await;
    assert_eq!(
        (s, b["exception_detail"][0]["loc"].clone()),
        (422, json!(["body", "key"]))
    );
    let (s, _) = call(&app, "POST", &base, Some(json!({"key": "k-3"}))).await;
    assert_eq!(s, 422);
    let (s, _) = call(&app, "POST", &base, Some(json!({"key": "k-3", "value": 5}))).await;
    assert_eq!(s, 422);
    let (s, _) = raw(&app, "POST", &base, "{").await;
    assert_eq!(s, 422);
    let (s, b) = call(
        &app,
        "POST",
        "/api/flow_runs/00000000-0000-0000-0000-000000000000/input",
        Some(json!({"key": "k", "value": "x"})),
    )
    .await;
    assert_eq!((s, b), (404, json!({"detail": "Flow run not found"})));
    let (s, _) = call(
        &app,
        "POST",
        "/api/flow_runs/not-a-uuid/input",
        Some(json!({"key": "k", "value": "x"})),
    )
    .await;
    assert_eq!(s, 404);

    let (s, ctype, text) = input(&app, &run, "k-1").await;
    assert_eq!((s, text.as_str()), (200, "{\"a\":1}"));
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let (s, _, text) = input(&app, &run, "nope").await;
    assert_eq!(s, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"detail": "Flow run input not found"})
    );

    let (s, list) = call(
        &app,
        "POST",
        &format!("{base}/filter"),
        Some(json!({"prefix": "k"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "limit defaults to 1"
    );
    assert_eq!(list[0]["key"], "k-1");
    assert_eq!(list[0]["value"], "{\"a\":1}");
    assert_eq!(list[0]["sender"], "me");
    assert_eq!(list[0]["flow_run_id"], json!(run));
    let (_, list) = call(
        &app,
        "POST",
        &format!("{base}/filter"),
        Some(json!({"prefix": "k", "limit": 5, "exclude_keys": ["k-1"]})),
    )
    .await;
    let keys: Vec<Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].clone())
        .collect();
    assert_eq!(keys, [json!("k-2")]);
    let (_, list) = call(
        &app,
        "POST",
        &format!("{base}/filter"),
        Some(json!({"prefix": "", "limit": 10})),
    )
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(3));
    let (s, _) = call(&app, "POST", &format!("{base}/filter"), Some(json!({}))).await;
    assert_eq!(s, 422);
    let (s, _) = call(
        &app,
        "POST",
        &format!("{base}/filter"),
        Some(json!({"prefix": "k", "limit": -1})),
    )
    .await;
    assert_eq!(s, 422);

    let (s, _) = call(&app, "DELETE", &format!("{base}/k-2"), None).await;
    assert_eq!(s, 204);
    let (s, b) = call(&app, "DELETE", &format!("{base}/k-2"), None).await;
    assert_eq!(
        (s, b["detail"].clone()),
        (404, json!("Flow run input not found"))
    );
    let (s, _) = call(&app, "DELETE", "/api/flow_runs/not-a-uuid/input/k-1", None).await;
    assert_eq!(s, 404);

    // Deleting the run deletes its inputs.
    let (s, _) = call(&app, "DELETE", &format!("/api/flow_runs/{run}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(input(&app, &run, "k-1").await.0, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_validates_run_input_against_the_pause_schema() {
    let app = TestApp::start().await;
    let run = running_run(&app, None).await;
    let resume = format!("/api/flow_runs/{run}/resume");

    let (s, r) = call(&app, "POST", &resume, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        r,
        json!({"state": null, "status": "ABORT", "details": {"type": "abort_details", "reason": "Cannot resume a flow run that is not paused."}})
    );

    pause(
        &app,
        &run,
        json!({"pause_key": "1", "run_input_keyset": keyset("paused-1")}),
    )
    .await;
    let (s, r) = call(
        &app,
        "POST",
        &resume,
        Some(json!({"run_input": {"approved": true}})),
    )
    .await;
    assert_eq!((s, r["status"].clone()), (200, json!("REJECT")));
    assert_eq!(
        r["details"],
        json!({"type": "abort_details", "reason": "Run input schema not found."})
    );
    assert_eq!(r["state"]["type"], "PAUSED");

    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/flow_runs/{run}/input"),
        Some(json!({"key": "paused-1-schema", "value": approval_schema()})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, r) = call(
        &app,
        "POST",
        &resume,
        Some(json!({"run_input": {"approved": "yes"}})),
    )
    .await;
    assert_eq!((s, r["status"].clone()), (200, json!("REJECT")));
    assert_eq!(
        r["details"]["reason"],
        "Reason: Validation failed for field 'approved'. Failure reason: 'yes' is not of type 'boolean'"
    );
    let (s, r) = call(&app, "POST", &resume, None).await;
    assert_eq!((s, r["status"].clone()), (200, json!("REJECT")));
    assert_eq!(
        r["details"]["reason"],
        "Reason: Validation failed. Failure reason: 'approved' is a required property"
    );
    assert_eq!(
        input(&app, &run, "paused-1-response").await.0,
        404,
        "refused input is not stored"
    );

    let (s, r) = call(
        &app,
        "POST",
        &resume,
        Some(json!({"run_input": {"approved": true, "reason": "ok"}})),
    )
    .await;
    assert_eq!(
        (s, r["status"].clone(), r["state"]["type"].clone()),
        (201, json!("ACCEPT"), json!("RUNNING")),
        "{r}"
    );
    let (s, _, text) = input(&app, &run, "paused-1-response").await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"approved": true, "reason": "ok"})
    );
    let (_, fr) = call(&app, "GET", &format!("/api/flow_runs/{run}"), None).await;
    assert_eq!(fr["state_type"], "RUNNING");

    let (s, r) = call(
        &app,
        "POST",
        &resume,
        Some(json!({"run_input": {"approved": true}})),
    )
    .await;
    assert_eq!(
        (s, r["status"].clone(), r["state"].clone()),
        (200, json!("ABORT"), Value::Null)
    );

    // A schema that is not JSON.
    pause(
        &app,
        &run,
        json!({"pause_key": "2", "run_input_keyset": keyset("paused-2")}),
    )
    .await;
    call(
        &app,
        "POST",
        &format!("/api/flow_runs/{run}/input"),
        Some(json!({"key": "paused-2-schema", "value": "{nope"})),
    )
    .await;
    let (_, r) = call(&app, "POST", &resume, Some(json!({"run_input": {}}))).await;
    assert_eq!(
        r["details"]["reason"],
        "Run input schema is not valid JSON."
    );

    let (s, _) = call(
        &app,
        "POST",
        "/api/flow_runs/00000000-0000-0000-0000-000000000000/resume",
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(&app, "POST", "/api/flow_runs/not-a-uuid/resume", None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&app, "POST", &resume, Some(json!({"run_input": [1]}))).await;
    assert_eq!(s, 422);
    let (s, _) = raw(&app, "POST", &resume, "{").await;
    assert_eq!(s, 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_without_input_and_after_a_rescheduling_pause() {
    let app = TestApp::start().await;
    let run = running_run(&app, None).await;
    pause(&app, &run, json!({"pause_key": "1"})).await;
    let (s, r) = call(
        &app,
        "POST",
        &format!("/api/flow_runs/{run}/resume"),
        Some(json!({"run_input": null})),
    )
    .await;
    assert_eq!(
        (s, r["status"].clone(), r["state"]["name"].clone()),
        (201, json!("ACCEPT"), json!("Running")),
        "{r}"
    );

    // A rescheduling pause (the run has a deployment) resumes as Scheduled "Resuming".
    let deployed = running_run(&app, Some("9f2a0b8e-5d1c-4c7e-8f00-0000000000dd")).await;
    assert_accepted(
        set_state(
            &app,
            &deployed,
            json!({"type": "PAUSED", "name": "Suspended", "state_details": {"pause_key": "1", "pause_reschedule": true}}),
            None,
        )
        .await,
    );
    let (s, r) = call(
        &app,
        "POST",
        &format!("/api/flow_runs/{deployed}/resume"),
        None,
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        (r["state"]["type"].clone(), r["state"]["name"].clone()),
        (json!("SCHEDULED"), json!("Resuming"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_pauses_fail_the_run() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__PAUSE_EXPIRATIONS_INTERVAL_MS", "100")
        .start()
        .await;
    let expiring = running_run(&app, None).await;
    let waiting = running_run(&app, None).await;
    let soon = orrery::time::format(&(orrery::time::now() + chrono::Duration::milliseconds(500)));
    let later = orrery::time::format(&(orrery::time::now() + chrono::Duration::hours(1)));
    pause(
        &app,
        &expiring,
        json!({"pause_key": "1", "pause_timeout": soon}),
    )
    .await;
    pause(
        &app,
        &waiting,
        json!({"pause_key": "1", "pause_timeout": later}),
    )
    .await;

    let failed = wait_for(
        "the expired pause to fail the run",
        10,
        || async {
            call(&app, "GET", &format!("/api/flow_runs/{expiring}"), None)
                .await
                .1
        },
        |fr| fr["state_type"] == "FAILED",
    )
    .await;
    assert_eq!(
        failed["state"]["message"], "The flow was paused and never resumed.",
        "{failed}"
    );
    let (_, fr) = call(&app, "GET", &format!("/api/flow_runs/{waiting}"), None).await;
    assert_eq!(fr["state_type"], "PAUSED");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_hydrates_workspace_variables_in_run_input() {
    let app = TestApp::start().await;
    let run = running_run(&app, None).await;
    let resume = format!("/api/flow_runs/{run}/resume");
    pause(
        &app,
        &run,
        json!({"pause_key": "1", "run_input_keyset": keyset("paused-1")}),
    )
    .await;
    call(
        &app,
        "POST",
        &format!("/api/flow_runs/{run}/input"),
        Some(json!({"key": "paused-1-schema", "value": approval_schema()})),
    )
    .await;
    call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "approve", "value": true})),
    )
    .await;

    let missing = json!({"run_input": {"approved": {"__prefect_kind": "workspace_variable", "variable_name": "nope"}}});
    let (s, r) = call(&app, "POST", &resume, Some(missing)).await;
    assert_eq!((s, r["status"].clone()), (200, json!("REJECT")));
    assert_eq!(
        r["details"]["reason"],
        "Error hydrating run input: Variable 'nope' not found in workspace."
    );

    let placeholders = json!({"run_input": {
        "approved": {"__prefect_kind": "workspace_variable", "variable_name": "approve"},
        "reason": {"__prefect_kind": "json", "value": "\"from the UI\""}}});
    let (s, r) = call(&app, "POST", &resume, Some(placeholders)).await;
    assert_eq!((s, r["status"].clone()), (201, json!("ACCEPT")), "{r}");
    let (_, _, text) = input(&app, &run, "paused-1-response").await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"approved": true, "reason": "from the UI"})
    );
    app.stop().await;
}
