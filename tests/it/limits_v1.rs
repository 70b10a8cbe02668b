//! `/concurrency_limits` (v1 tag limits) against a real server: stored as v2 `tag:<tag>` limits,
//! `active_slots` = the task runs holding leases, increment/decrement, reset, delete, and bad
//! input.

use serde_json::{json, Value};

use crate::support::TestApp;
use crate::support::{call, raw};

const RUN_A: &str = "11111111-1111-4111-8111-111111111111";
const RUN_B: &str = "22222222-2222-4222-8222-222222222222";
const RUN_C: &str = "33333333-3333-4333-8333-333333333333";

async fn v2(app: &TestApp, tag: &str) -> Value {
    let (s, l) = call(
        app,
        "GET",
        &format!("/api/v2/concurrency_limits/tag:{tag}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{l}");
    l
}

/// The tag limit's `active_slots`, sorted.
async fn slots(app: &TestApp, tag: &str) -> Value {
    let (s, l) = call(
        app,
        "GET",
        &format!("/api/concurrency_limits/tag/{tag}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{l}");
    // Holders in a stable order (leases made together share their timestamp).
    let mut holders: Vec<String> = serde_json::from_value(l["active_slots"].clone()).expect("ids");
    holders.sort();
    json!(holders)
}

async fn increment(app: &TestApp, names: Value, run: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/concurrency_limits/increment"))
        .json(&json!({"names": names, "task_run_id": run}))
        .send()
        .await
        .expect("request")
}

/// `POST /api/concurrency_limits/` for `tag` with `limit` (set-up; the answer is not checked).
async fn tag_limit(app: &TestApp, tag: &str, limit: i64) {
    call(
        app,
        "POST",
        "/api/concurrency_limits/",
        Some(json!({"tag": tag, "concurrency_limit": limit})),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_limits_are_v2_limits_named_by_tag() {
    let app = TestApp::start().await;
    let (s, a) = call(
        &app,
        "POST",
        "/api/concurrency_limits/",
        Some(json!({"tag": "db", "concurrency_limit": 1})),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["tag"], "db");
    assert_eq!(a["concurrency_limit"], 1);
    assert_eq!(a["active_slots"], json!([]));
    let id = a["id"].as_str().unwrap().to_string();
    let (s, b) = call(
        &app,
        "POST",
        "/api/concurrency_limits",
        Some(json!({"tag": "db", "concurrency_limit": 2})),
    )
    .await;
    assert_eq!(
        (s, b["id"].clone(), b["concurrency_limit"].clone()),
        (200, json!(id), json!(2))
    );
    assert_eq!(b["created"], a["created"]);
    let limit = v2(&app, "db").await;
    assert_eq!(
        (
            limit["id"].clone(),
            limit["limit"].clone(),
            limit["active"].clone()
        ),
        (json!(id), json!(2), json!(true))
    );

    let (s, by_id) = call(&app, "GET", &format!("/api/concurrency_limits/{id}"), None).await;
    assert_eq!((s, by_id["tag"].clone()), (200, json!("db")));
    let (s, by_tag) = call(&app, "GET", "/api/concurrency_limits/tag/db", None).await;
    assert_eq!((s, by_tag["id"].clone()), (200, json!(id)));
    let (s, b) = call(&app, "GET", "/api/concurrency_limits/tag/nope", None).await;
    assert_eq!(
        (s, b),
        (404, json!({"detail": "Concurrency limit not found"}))
    );
    let (s, _) = call(
        &app,
        "GET",
        "/api/concurrency_limits/00000000-0000-0000-0000-000000000000",
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(&app, "GET", "/api/concurrency_limits/not-a-uuid", None).await;
    assert_eq!(s, 404);

    // Global limits without the prefix are not tag limits.
    let (s, plain) = call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/",
        Some(json!({"name": "plain", "limit": 3})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &app,
        "GET",
        &format!("/api/concurrency_limits/{}", plain["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, 404);
    tag_limit(&app, "", 1).await;
    tag_limit(&app, "zero", 0).await;
    let (s, list) = call(&app, "POST", "/api/concurrency_limits/filter", None).await;
    assert_eq!(s, 200);
    let tags: Vec<Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["tag"].clone())
        .collect();
    assert_eq!(tags, [json!(""), json!("db"), json!("zero")]);
    let (_, page) = call(
        &app,
        "POST",
        "/api/concurrency_limits/filter",
        Some(json!({"limit": 1, "offset": 1})),
    )
    .await;
    assert_eq!(page[0]["tag"], "db");
    let (s, _) = call(
        &app,
        "POST",
        "/api/concurrency_limits/filter",
        Some(json!({"limit": 201})),
    )
    .await;
    assert_eq!(s, 422);

    for bad in [
        json!({"tag": "x"}),
        json!({"tag": "x", "concurrency_limit": -1}),
        json!({"tag": "a/b", "concurrency_limit": 1}),
        json!({"tag": "x", "concurrency_limit": 1, "extra": 2}),
        json!({"tag": 1, "concurrency_limit": 1}),
        json!({"tag": "x", "concurrency_limit": "many"}),
    ] {
        let (s, b) = call(&app, "POST", "/api/concurrency_limits/", Some(bad.clone())).await;
        assert_eq!(s, 422, "{bad} -> {b}");
    }
    let (s, _) = raw(&app, "POST", "/api/concurrency_limits/", "{").await;
    assert_eq!(s, 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increment_and_decrement_hold_slots_for_task_runs() {
    let app = TestApp::start().await;
    tag_limit(&app, "db", 2).await;
    tag_limit(&app, "zero", 0).await;

    let r = increment(&app, json!(["db", "other"]), RUN_A).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body[0]["name"], "db");
    assert_eq!(body[0]["limit"], 2);
    assert_eq!(
        increment(&app, json!(["db"]), RUN_B)
            .await
            .status()
            .as_u16(),
        200
    );
    let full = increment(&app, json!(["db"]), RUN_C).await;
    assert_eq!(full.status().as_u16(), 423);
    assert_eq!(
        full.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("10.0")
    );
    let body: Value = full.json().await.unwrap();
    assert_eq!(
        body["detail"],
        "Concurrency limit for the db tag has been reached"
    );
    let zero = increment(&app, json!(["zero"]), RUN_C).await;
    assert_eq!(zero.status().as_u16(), 423);
    let body: Value = zero.json().await.unwrap();
    assert_eq!(
        body["detail"],
        "The concurrency limit on tag \"zero\" is 0 and will deadlock if the task tries to run again."
    );
    let none = increment(&app, json!(["unlimited"]), RUN_C).await;
    assert_eq!(none.status().as_u16(), 200);
    assert_eq!(none.json::<Value>().await.unwrap(), json!([]));

    assert_eq!(slots(&app, "db").await, json!([RUN_A, RUN_B]));
    assert_eq!(v2(&app, "db").await["active_slots"], 2);

    let (s, out) = call(
        &app,
        "POST",
        "/api/concurrency_limits/decrement",
        Some(json!({"names": ["db"], "task_run_id": RUN_A})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(out[0]["name"], "tag:db");
    assert_eq!(slots(&app, "db").await, json!([RUN_B]));
    assert_eq!(v2(&app, "db").await["active_slots"], 1);
    let (s, out) = call(
        &app,
        "POST",
        "/api/concurrency_limits/decrement",
        Some(json!({"names": ["nope"], "task_run_id": RUN_A})),
    )
    .await;
    assert_eq!((s, out), (200, json!([])));
    // Decrementing twice gives nothing back twice.
    call(
        &app,
        "POST",
        "/api/concurrency_limits/decrement",
        Some(json!({"names": ["db"], "task_run_id": RUN_A})),
    )
    .await;
    assert_eq!(v2(&app, "db").await["active_slots"], 1);

    // An inactive limit takes no slots.
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/v2/concurrency_limits/tag:db",
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(s, 204);
    let r = increment(&app, json!(["db"]), RUN_C).await;
    assert_eq!(
        (r.status().as_u16(), r.json::<Value>().await.unwrap()),
        (200, json!([]))
    );

    for bad in [
        json!({"names": ["db"]}),
        json!({"task_run_id": RUN_A}),
        json!({"names": "db", "task_run_id": RUN_A}),
        json!({"names": ["db"], "task_run_id": "x"}),
    ] {
        for path in [
            "/api/concurrency_limits/increment",
            "/api/concurrency_limits/decrement",
        ] {
            let (s, _) = call(&app, "POST", path, Some(bad.clone())).await;
            assert_eq!(s, 422, "{path} {bad}");
        }
    }
    app.stop().await;
}

/// `/concurrency_limits/filter` lists each limit with the task runs holding its slots, and only
/// those (leases on several limits count for each of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_lists_each_limits_holders() {
    let app = TestApp::start().await;
    for tag in ["api", "db", "idle"] {
        tag_limit(&app, tag, 5).await;
    }
    assert_eq!(
        increment(&app, json!(["api", "db"]), RUN_A)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        increment(&app, json!(["db"]), RUN_B)
            .await
            .status()
            .as_u16(),
        200
    );
    let (s, list) = call(&app, "POST", "/api/concurrency_limits/filter", None).await;
    assert_eq!(s, 200, "{list}");
    let holders: Vec<(Value, Value)> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|l| {
            let mut runs: Vec<String> =
                serde_json::from_value(l["active_slots"].clone()).expect("ids");
            runs.sort();
            (l["tag"].clone(), json!(runs))
        })
        .collect();
    assert_eq!(
        holders,
        [
            (json!("api"), json!([RUN_A])),
            (json!("db"), json!([RUN_A, RUN_B])),
            (json!("idle"), json!([])),
        ]
    );
    for tag in ["api", "db", "idle"] {
        let one = holders
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, r)| r.clone());
        assert_eq!(one, Some(slots(&app, tag).await), "{tag}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_task_leases_show_as_active_slots() {
    let app = TestApp::start().await;
    tag_limit(&app, "db", 1).await;
    // What the 3.9.1 client sends for `@task(tags=["db"])`.
    let (s, lease) = call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/increment-with-lease",
        Some(
            json!({"names": ["tag:db"], "slots": 1, "mode": "concurrency", "lease_duration": 60,
                    "holder": {"type": "task_run", "id": RUN_A}}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{lease}");
    assert_eq!(slots(&app, "db").await, json!([RUN_A]));
    let r = app
        .client
        .post(app.url("/api/v2/concurrency_limits/increment-with-lease"))
        .json(
            &json!({"names": ["tag:db"], "slots": 1, "mode": "concurrency", "lease_duration": 60,
                      "holder": {"type": "task_run", "id": RUN_B}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 423, "a limit of 1 admits one task");
    let (s, _) = call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/decrement-with-lease",
        Some(json!({"lease_id": lease["lease_id"]})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(slots(&app, "db").await, json!([]));
    assert_eq!(v2(&app, "db").await["active_slots"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_delete_release_the_holders() {
    let app = TestApp::start().await;
    tag_limit(&app, "db", 3).await;
    tag_limit(&app, "other", 3).await;
    assert_eq!(
        increment(&app, json!(["db", "other"]), RUN_A)
            .await
            .status()
            .as_u16(),
        200
    );

    let (s, b) = call(
        &app,
        "POST",
        "/api/concurrency_limits/tag/db/reset",
        Some(json!({"slot_override": [RUN_B, RUN_C]})),
    )
    .await;
    assert_eq!((s, b), (200, Value::Null));
    assert_eq!(slots(&app, "db").await, json!([RUN_B, RUN_C]));
    assert_eq!(v2(&app, "db").await["active_slots"], 2);
    // RUN_A's lease spanned both tags: it ended, so its slot on the other tag is free too.
    assert_eq!(slots(&app, "other").await, json!([]));
    assert_eq!(v2(&app, "other").await["active_slots"], 0);
    let (s, _) = call(&app, "POST", "/api/concurrency_limits/tag/db/reset", None).await;
    assert_eq!(s, 200);
    assert_eq!(slots(&app, "db").await, json!([]));
    assert_eq!(v2(&app, "db").await["active_slots"], 0);
    let (s, b) = call(&app, "POST", "/api/concurrency_limits/tag/nope/reset", None).await;
    assert_eq!(
        (s, b["detail"].clone()),
        (404, json!("Concurrency limit not found"))
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/concurrency_limits/tag/db/reset",
        Some(json!({"slot_override": ["bad"]})),
    )
    .await;
    assert_eq!(s, 422);

    assert_eq!(
        increment(&app, json!(["db", "other"]), RUN_A)
            .await
            .status()
            .as_u16(),
        200
    );
    let (s, b) = call(&app, "DELETE", "/api/concurrency_limits/tag/db", None).await;
    assert_eq!((s, b), (200, Value::Null));
    let (s, _) = call(&app, "GET", "/api/v2/concurrency_limits/tag:db", None).await;
    assert_eq!(s, 404);
    assert_eq!(
        v2(&app, "other").await["active_slots"],
        0,
        "the deleted limit's leases ended"
    );
    let (s, _) = call(&app, "DELETE", "/api/concurrency_limits/tag/db", None).await;
    assert_eq!(s, 404);

    let other = v2(&app, "other").await;
    let (s, b) = call(
        &app,
        "DELETE",
        &format!("/api/concurrency_limits/{}", other["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!((s, b), (200, Value::Null));
    let (s, b) = call(
        &app,
        "DELETE",
        &format!("/api/concurrency_limits/{}", other["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (s, b["detail"].clone()),
        (404, json!("Concurrency limit not found"))
    );
    let (s, _) = call(&app, "DELETE", "/api/concurrency_limits/not-a-uuid", None).await;
    assert_eq!(s, 404);
    app.stop().await;
}
