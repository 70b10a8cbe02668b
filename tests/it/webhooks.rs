//! Incoming webhooks (Prefect Cloud's): managed under `/webhooks/`, and the public receiver
//! `/hooks/{slug}` turning requests into events through the webhook's template — which can fire
//! an automation, as an outside system triggering a deployment would.

use serde_json::{json, Value};

use crate::support::{call, err_loc, wait_for, TestApp};

async fn events(app: &TestApp, name: &str) -> Vec<Value> {
    let (_, page) = call(
        app,
        "POST",
        "/api/events/filter",
        Some(json!({"filter": {"event": {"name": [name]}}, "limit": 50})),
    )
    .await;
    page["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_managed_and_turn_requests_into_events() {
    let app = TestApp::start().await;
    let template = r#"{"event": "repo.{{ headers['x-github-event'] }}", "resource": {"prefect.resource.id": "repo.{{ body.repository.name }}", "prefect.resource.name": "{{ body.repository.name }}"}, "payload": {"ref": "{{ body.ref }}", "q": "{{ query.tag }}"}}"#;
    let (s, hook) = call(
        &app,
        "POST",
        "/api/webhooks/",
        Some(json!({"name": "github", "description": "pushes", "template": template})),
    )
    .await;
    assert_eq!(s, 201, "{hook}");
    let (id, slug) = (
        hook["id"].as_str().expect("id").to_string(),
        hook["slug"].as_str().expect("slug").to_string(),
    );
    assert_eq!(slug.len(), 22);
    assert_eq!(
        (hook["enabled"].clone(), hook["name"].clone()),
        (json!(true), json!("github"))
    );
    let (s, got) = call(&app, "GET", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!((s, &got), (200, &hook));
    let (s, list) = call(&app, "POST", "/api/webhooks/filter", Some(json!({}))).await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    // A template that isn't one: 422 naming the field.
    let (s, bad) = call(
        &app,
        "POST",
        "/api/webhooks/",
        Some(json!({"name": "x", "template": "{{ oops"})),
    )
    .await;
    assert_eq!(s, 422, "{bad}");
    assert_eq!(err_loc(&bad), json!(["body", "template"]), "{bad}");

    // The public receiver: no credentials, JSON body, headers and query in the template.
    let push = app
        .client
        .post(app.url(&format!("/hooks/{slug}?tag=v1")))
        .header("x-github-event", "push")
        .json(&json!({"ref": "refs/heads/main", "repository": {"name": "orrery"}}))
        .send()
        .await
        .expect("hook");
    assert_eq!(push.status().as_u16(), 204);
    let got = wait_for(
        "the event",
        20,
        || events(&app, "repo.push"),
        |e: &Vec<Value>| !e.is_empty(),
    )
    .await;
    assert_eq!(got[0]["resource"]["prefect.resource.id"], "repo.orrery");
    assert_eq!(
        got[0]["payload"],
        json!({"ref": "refs/heads/main", "q": "v1"})
    );
    assert_eq!(
        got[0]["related"][0]["prefect.resource.id"],
        format!("prefect-cloud.webhook.{id}")
    );
    assert_eq!(got[0]["related"][0]["prefect.resource.role"], "webhook");

    // A body the template can't use: 400 with the reason, reported to the workspace.
    let bad = app
        .client
        .post(app.url(&format!("/api/hooks/{slug}")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("hook");
    assert_eq!(bad.status().as_u16(), 400);
    let reason: Value = bad.json().await.expect("json");
    assert!(
        reason["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid JSON"),
        "{reason}"
    );
    let failures = wait_for(
        "the failure event",
        20,
        || events(&app, "prefect-cloud.webhook.failed"),
        |e: &Vec<Value>| !e.is_empty(),
    )
    .await;
    assert_eq!(
        failures[0]["resource"]["prefect.resource.id"],
        format!("prefect-cloud.webhook.{id}")
    );

    // Disabled: not found; rotated: the old URL is gone, the new one works.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/webhooks/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, 204);
    let off = app
        .client
        .get(app.url(&format!("/hooks/{slug}")))
        .send()
        .await
        .expect("hook");
    assert_eq!(off.status().as_u16(), 404);
    let (_, _) = call(
        &app,
        "PATCH",
        &format!("/api/webhooks/{id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    let (s, rotated) = call(&app, "POST", &format!("/api/webhooks/{id}/rotate"), None).await;
    assert_eq!(s, 200, "{rotated}");
    let new_slug = rotated["slug"].as_str().expect("slug");
    assert_ne!(new_slug, slug);
    let old = app
        .client
        .get(app.url(&format!("/hooks/{slug}")))
        .send()
        .await
        .expect("hook");
    assert_eq!(old.status().as_u16(), 404);

    // An automation fires on the webhook's events: a GET with a static template.
    let (s, _) = call(
        &app,
        "PUT",
        &format!("/api/webhooks/{id}"),
        Some(json!({"name": "nightly", "template": "{\"event\": \"models.updated\", \"resource\": {\"prefect.resource.id\": \"models\"}}"})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &app,
        "POST",
        "/api/automations/",
        Some(json!({"name": "on models", "trigger": {"type": "event", "posture": "Reactive", "expect": ["models.updated"]}, "actions": [{"type": "do-nothing"}]})),
    )
    .await;
    assert_eq!(s, 201);
    let ping = app
        .client
        .get(app.url(&format!("/hooks/{new_slug}")))
        .send()
        .await
        .expect("hook");
    assert_eq!(ping.status().as_u16(), 204);
    wait_for(
        "the automation to fire",
        20,
        || events(&app, "prefect.automation.triggered"),
        |e: &Vec<Value>| e.len() == 1,
    )
    .await;

    let (s, _) = call(&app, "DELETE", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, gone) = call(&app, "GET", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!((s, gone), (404, json!({"detail": "Webhook not found"})));
    app.stop().await;
}
