//! `/automations`: create, read, replace, pause/resume, delete, filter, count, related-to and
//! owned-by, Prefect's checks (422 with the field's path), lifecycle events, and
//! `/templates/validate`.

use serde_json::{json, Value};

use crate::support::{call, wait_for, TestApp};

const DEPLOYMENT: &str = "7a1d9c1e-0000-4000-8000-000000000001";
const OWNER: &str = "prefect.deployment.7a1d9c1e-0000-4000-8000-000000000009";

fn automation(name: &str) -> Value {
    json!({
        "name": name,
        "tags": ["t1"],
        "trigger": {"type": "event", "match": {"prefect.resource.id": "prefect.flow-run.*"}, "expect": ["prefect.flow-run.Failed"], "posture": "Reactive", "threshold": 1, "within": 0},
        "actions": [
            {"type": "do-nothing"},
            {"type": "run-deployment", "source": "selected", "deployment_id": DEPLOYMENT, "parameters": {"x": "{{ event.id }}"}},
            {"type": "send-notification", "block_document_id": DEPLOYMENT, "body": "Flow {{ flow.name }} failed"},
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automations_are_created_read_changed_and_deleted() {
    let app = TestApp::start().await;
    let mut body = automation("b-second");
    body["owner_resource"] = json!(OWNER);
    let (s, a) = call(&app, "POST", "/api/automations/", Some(body)).await;
    assert_eq!(s, 201, "{a}");
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(a["enabled"], true);
    assert_eq!(a["description"], "");
    assert_eq!(a["trigger"]["match_related"], json!({}));
    assert_eq!(a["trigger"]["within"], json!(0.0));
    assert_eq!(a["actions"][1]["schedule_after"], json!(0.0));
    assert_eq!(a["actions"][2]["subject"], "Prefect automated notification");
    assert_eq!(a["actions_on_trigger"], json!([]));
    assert!(a.get("owner_resource").is_none());
    let (s, b) = call(
        &app,
        "POST",
        "/api/automations/",
        Some(automation("a-first")),
    )
    .await;
    assert_eq!(s, 201);

    let (s, got) = call(&app, "GET", &format!("/api/automations/{id}"), None).await;
    assert_eq!((s, &got), (200, &a));

    // Filter, sort, count.
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|a| a["name"].as_str().expect("name").to_string())
            .collect()
    };
    let (_, all) = call(&app, "POST", "/api/automations/filter", Some(json!({}))).await;
    assert_eq!(names(&all), vec!["a-first", "b-second"]);
    let (_, desc) = call(
        &app,
        "POST",
        "/api/automations/filter",
        Some(json!({"sort": "NAME_DESC", "limit": 1})),
    )
    .await;
    assert_eq!(names(&desc), vec!["b-second"]);
    let (_, by_name) = call(
        &app,
        "POST",
        "/api/automations/filter",
        Some(json!({"automations": {"name": {"any_": ["a-first"]}}})),
    )
    .await;
    assert_eq!(names(&by_name), vec!["a-first"]);
    let (_, by_tag) = call(
        &app,
        "POST",
        "/api/automations/filter",
        Some(json!({"automations": {"tags": {"any_": ["nope"]}}})),
    )
    .await;
    assert_eq!(names(&by_tag), Vec::<String>::new());
    let (_, n) = call(&app, "POST", "/api/automations/count", Some(json!({}))).await;
    assert_eq!(n, 2);

    // Related: the deployment both run, the owner only the first.
    let (_, rel) = call(
        &app,
        "GET",
        &format!("/api/automations/related-to/prefect.deployment.{DEPLOYMENT}"),
        None,
    )
    .await;
    assert_eq!(names(&rel), vec!["a-first", "b-second"]);
    let (_, owned) = call(
        &app,
        "GET",
        &format!("/api/automations/related-to/{OWNER}"),
        None,
    )
    .await;
    assert_eq!(names(&owned), vec!["b-second"]);

    // Pause, resume, replace.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/automations/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, got) = call(&app, "GET", &format!("/api/automations/{id}"), None).await;
    assert_eq!(got["enabled"], false);
    let mut changed = automation("b-renamed");
    changed["actions"] = json!([{"type": "pause-work-pool", "source": "inferred"}]);
    let (s, _) = call(
        &app,
        "PUT",
        &format!("/api/automations/{id}"),
        Some(changed),
    )
    .await;
    assert_eq!(s, 204);
    let (_, got) = call(&app, "GET", &format!("/api/automations/{id}"), None).await;
    assert_eq!(got["name"], "b-renamed");
    assert_eq!(got["created"], a["created"]);
    assert_ne!(got["trigger"]["id"], a["trigger"]["id"], "new trigger ids");
    assert_eq!(
        got["actions"],
        json!([{"type": "pause-work-pool", "source": "inferred", "work_pool_id": null}])
    );
    let (_, rel) = call(
        &app,
        "GET",
        &format!("/api/automations/related-to/prefect.deployment.{DEPLOYMENT}"),
        None,
    )
    .await;
    assert_eq!(
        names(&rel),
        vec!["a-first"],
        "no longer runs the deployment"
    );
    let (_, owned) = call(
        &app,
        "GET",
        &format!("/api/automations/related-to/{OWNER}"),
        None,
    )
    .await;
    assert_eq!(names(&owned), vec!["b-renamed"], "still owned");

    // Deleting what a resource owns leaves the rest.
    let (s, _) = call(
        &app,
        "DELETE",
        &format!("/api/automations/owned-by/{OWNER}"),
        None,
    )
    .await;
    assert_eq!(s, 202);
    let (s, _) = call(&app, "GET", &format!("/api/automations/{id}"), None).await;
    assert_eq!(s, 404);
    let b_id = b["id"].as_str().expect("id");
    let (s, _) = call(&app, "DELETE", &format!("/api/automations/{b_id}"), None).await;
    assert_eq!(s, 204);
    let (s, body) = call(&app, "DELETE", &format!("/api/automations/{b_id}"), None).await;
    assert_eq!((s, body), (404, json!({"detail": "Automation not found"})));
    let (_, n) = call(&app, "POST", "/api/automations/count", Some(json!({}))).await;
    assert_eq!(n, 0);

    // Each change was an event.
    let events = wait_for(
        "the lifecycle events",
        20,
        || async {
            call(&app, "POST", "/api/events/filter", Some(json!({"filter": {"event": {"prefix": ["prefect.automation."]}, "order": "ASC"}}))).await.1
        },
        |page| page["total"] == 6,
    )
    .await;
    let names: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "prefect.automation.created")
            .count(),
        2
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "prefect.automation.updated")
            .count(),
        2
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "prefect.automation.deleted")
            .count(),
        2
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_automations_are_refused_with_the_fields_path() {
    let app = TestApp::start().await;
    let with_trigger = |t: Value| json!({"name": "x", "trigger": t, "actions": []});
    let with_action = |a: Value| json!({"name": "x", "trigger": {"type": "event", "posture": "Reactive"}, "actions": [a]});
    let cases = [
        (
            with_trigger(json!({"type": "event", "posture": "Proactive", "within": 5})),
            json!(["body", "trigger"]),
            "10 seconds",
        ),
        (
            with_trigger(json!({"type": "event", "posture": "Sideways"})),
            json!(["body", "trigger"]),
            "",
        ),
        (
            with_trigger(json!({"type": "event"})),
            json!(["body", "trigger"]),
            "posture",
        ),
        (
            with_trigger(
                json!({"type": "compound", "require": 3, "within": null, "triggers": [{"type": "event", "posture": "Reactive"}]}),
            ),
            json!(["body", "trigger"]),
            "require",
        ),
        (
            with_action(json!({"type": "run-deployment", "source": "selected"})),
            json!(["body", "actions", 0]),
            "deployment_id is required",
        ),
        (
            with_action(
                json!({"type": "pause-work-queue", "source": "inferred", "work_queue_id": DEPLOYMENT}),
            ),
            json!(["body", "actions", 0]),
            "not allowed",
        ),
        (
            with_action(
                json!({"type": "send-notification", "block_document_id": DEPLOYMENT, "body": "{{ oops"}),
            ),
            json!(["body", "actions", 0, "body"]),
            "not a valid template",
        ),
        (
            with_action(json!({"type": "nope"})),
            json!(["body", "actions", 0]),
            "",
        ),
        (
            json!({"name": "x", "trigger": {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Running"]}, "actions": [{"type": "run-deployment", "source": "inferred"}]}),
            json!(["body"]),
            "infinite loop",
        ),
        (
            json!({"name": "x", "trigger": {"type": "event", "posture": "Reactive"}, "actions": [], "bogus": 1}),
            json!(["body", "bogus"]),
            "",
        ),
    ];
    for (body, loc, msg) in cases {
        let (s, b) = call(&app, "POST", "/api/automations/", Some(body.clone())).await;
        assert_eq!(s, 422, "{body} → {b}");
        let detail = &b["exception_detail"][0];
        let at = detail["loc"].as_array().expect("loc");
        let want = loc.as_array().expect("loc");
        assert_eq!(&at[..want.len().min(at.len())], &want[..], "{body} → {b}");
        assert!(
            detail["msg"].as_str().expect("msg").contains(msg),
            "{body} → {b}"
        );
    }
    let (_, n) = call(&app, "POST", "/api/automations/count", Some(json!({}))).await;
    assert_eq!(n, 0, "nothing stored");
    let missing = uuid::Uuid::new_v4();
    let (s, _) = call(
        &app,
        "PUT",
        &format!("/api/automations/{missing}"),
        Some(automation("x")),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/automations/{missing}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(&app, "GET", "/api/automations/not-a-uuid", None).await;
    assert!(s == 404 || s == 422, "{s}");

    // Templates.
    let (s, _) = call(
        &app,
        "POST",
        "/api/templates/validate",
        Some(json!("hi {{ x }}")),
    )
    .await;
    assert_eq!(s, 204);
    let (s, b) = call(
        &app,
        "POST",
        "/api/automations/templates/validate",
        Some(json!("a\n{{ x }")),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(b["error"]["line"], 2);
    assert_eq!(b["error"]["source"], "a\n{{ x }");
    app.stop().await;
}
