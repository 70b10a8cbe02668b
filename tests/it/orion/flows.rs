//! Flows and list limits: flows are idempotent by name and validated, list limits are capped,
//! and extreme inputs (overflowing pages and intervals, NUL characters, long patterns) get
//! answers, not errors.

use serde_json::json;

use crate::support::{call, create_flow, raw, FlowRunBuilder, TestApp, WorkPoolBuilder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_are_idempotent_by_name_and_validated() {
    let app = TestApp::start().await;
    let (s, a) = call(
        &app,
        "POST",
        "/api/flows/",
        Some(json!({"name": "etl", "tags": ["x"]})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(a["tags"], json!(["x"]));
    let (s, b) = call(&app, "POST", "/api/flows/", Some(json!({"name": "etl"}))).await;
    assert_eq!((s, &b["id"]), (200, &a["id"]));
    let id = a["id"].as_str().expect("id");
    assert_eq!(
        call(&app, "GET", &format!("/api/flows/{id}"), None).await.1["name"],
        "etl"
    );
    assert_eq!(
        call(&app, "GET", "/api/flows/name/etl", None).await.1["id"],
        a["id"]
    );
    assert_eq!(
        call(&app, "GET", "/api/flows/name/nope", None).await,
        (404, json!({"detail": "Flow not found"}))
    );
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        call(&app, "GET", &format!("/api/flows/{unknown}"), None).await,
        (404, json!({"detail": "Flow not found"}))
    );
    assert_eq!(
        call(&app, "GET", "/api/flows/not-a-uuid", None).await,
        (404, json!({"detail": "Not Found"}))
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/flows/",
        Some(json!({"name": "x", "bogus": 1})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(e["exception_detail"][0]["type"], "extra_forbidden");
    let (s, e) = call(&app, "POST", "/api/flows/", Some(json!({"tags": []}))).await;
    assert_eq!(
        (s, &e["exception_detail"][0]["type"]),
        (422, &json!("missing"))
    );
    let (s, e) = raw(&app, "POST", "/api/flows/", "{\"name\": ").await;
    assert_eq!(s, 422);
    assert_eq!(e["exception_detail"][0]["type"], "json_invalid");
    assert_eq!(e["request_body"], "{\"name\": ");
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("/api/flows/{id}"),
            Some(json!({"tags": ["y"]}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&app, "GET", &format!("/api/flows/{id}"), None).await.1["tags"],
        json!(["y"])
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("/api/flows/{unknown}"),
            Some(json!({"tags": []}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&app, "POST", "/api/flows/count", None).await,
        (200, json!(1))
    );
    let (s, page) = call(
        &app,
        "POST",
        "/api/flows/paginate",
        Some(json!({"limit": 1})),
    )
    .await;
    assert_eq!(
        (s, &page["count"], &page["pages"], &page["page"]),
        (200, &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/flows/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/flows/{id}"), None)
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_limits_are_capped() {
    let app = TestApp::start().await;
    for path in [
        "/api/flows/filter",
        "/api/flow_runs/filter",
        "/api/task_runs/filter",
        "/api/logs/filter",
    ] {
        let (s, body) = call(&app, "POST", path, Some(json!({"limit": 201}))).await;
        assert_eq!(
            (s, body),
            (
                422,
                json!({"detail": "Invalid limit: must be less than or equal to 200."})
            ),
            "{path}"
        );
        let (s, body) = call(&app, "POST", path, Some(json!({"limit": -1}))).await;
        assert_eq!(
            (s, body),
            (
                422,
                json!({"detail": "Invalid limit: must be greater than or equal to 0."})
            ),
            "{path}"
        );
        assert_eq!(
            call(
                &app,
                "POST",
                path,
                Some(json!({"limit": null, "offset": null}))
            )
            .await
            .0,
            200,
            "{path}"
        );
    }
    let (s, e) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"sort": "SIDEWAYS"})),
    )
    .await;
    assert_eq!(
        (s, &e["exception_detail"][0]["loc"]),
        (422, &json!(["body", "sort"]))
    );
    app.stop().await;
}

/// Inputs that once reached a panic or a 500 (found by a sweep of every route): page numbers
/// whose offset overflows, history intervals past the calendar, NUL characters (PostgreSQL text
/// cannot hold them), and LIKE patterns longer than SQLite accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_inputs_get_answers_not_errors() {
    let app = TestApp::start().await;
    FlowRunBuilder::flow("extremes")
        .state(json!({"type": "PENDING"}))
        .create(&app)
        .await;

    for path in [
        "/api/flows/paginate",
        "/api/flow_runs/paginate",
        "/api/task_runs/paginate",
    ] {
        let (s, b) = call(
            &app,
            "POST",
            path,
            Some(json!({"page": 4611686018427387904_i64, "limit": 10})),
        )
        .await;
        assert_eq!(s, 200, "{path}: {b}");
        assert_eq!(b["results"], json!([]), "{path}");
        assert_eq!(b["page"], json!(4611686018427387904_i64), "{path}");
    }

    for interval in [json!(1e308), json!(9223372036854775807_i64)] {
        let (s, b) = call(
            &app,
            "POST",
            "/api/flow_runs/history",
            Some(json!({
                "history_start": "2026-01-01T00:00:00Z",
                "history_end": "2026-01-02T00:00:00Z",
                "history_interval_seconds": interval,
            })),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b.as_array().map(Vec::len), Some(1), "{b}");
        assert_eq!(b[0]["interval_start"], "2026-01-01T00:00:00.000000Z");
    }
    // A span of the whole calendar at one second is far more than 500 intervals.
    let (s, b) = call(
        &app,
        "POST",
        "/api/flow_runs/history",
        Some(json!({
            "history_start": "0001-01-01T00:00:00Z",
            "history_end": "9999-12-31T23:59:59Z",
            "history_interval_seconds": 1,
        })),
    )
    .await;
    assert_eq!(s, 422, "{b}");

    let (s, b) = call(
        &app,
        "POST",
        "/api/flows/",
        Some(json!({"name": "a\u{0}b"})),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["exception_detail"][0]["loc"],
        json!(["body", "name"]),
        "{b}"
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"flow_runs": {"name": {"any_": ["ok", "x\u{0}"]}}})),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["exception_detail"][0]["loc"],
        json!(["body", "flow_runs", "name", "any_", 1]),
        "{b}"
    );
    let (s, b) = call(&app, "GET", "/api/flows/name/a%00b", None).await;
    assert_eq!(s, 404, "{b}");
    // Nothing was stored by the refused requests; the escaped form of a backslash is fine.
    let (s, b) = call(
        &app,
        "POST",
        "/api/flows/",
        Some(json!({"name": "a\\u0000b"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = call(&app, "POST", "/api/flows/count", Some(json!({}))).await;
    assert_eq!((s, b), (200, json!(2)));

    let long = "x".repeat(60_000);
    let (s, b) = call(
        &app,
        "POST",
        "/api/flow_runs/filter",
        Some(json!({"flow_runs": {"name": {"like_": long}}})),
    )
    .await;
    if app.pg_url.is_some() {
        assert_eq!((s, b), (200, json!([])));
    } else {
        assert_eq!(s, 422, "{b}");
        assert!(
            b["detail"].as_str().is_some_and(|d| d.contains("too long")),
            "{b}"
        );
    }
    app.stop().await;
}

/// One maximum for every name and key, on both backends: 500 characters are stored (even of
/// four-byte characters, which PostgreSQL must fit in an index entry), 501 answer 422
/// `string_too_long` naming the field, for flows, deployments, work pools, v2 limits and artifact
/// keys alike. (PostgreSQL refused ~2.7 kB with a 500, SQLite took 10 MB.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_keys_have_one_maximum_on_both_backends() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "f").await;
    let max = 500;
    // Random text does not compress into the index entry: the hard case for PostgreSQL.
    let random = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_u32(0x1F300 + rand_u32() % 0x300).unwrap_or('x'))
            .collect()
    };
    let lower = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'a' + (rand_u32() % 26) as u8))
            .collect()
    };
    type Body = fn(&str, &str) -> serde_json::Value;
    let routes: [(&str, &str, Body, bool); 5] = [
        ("/api/flows/", "name", |n, _| json!({"name": n}), false),
        (
            "/api/deployments/",
            "name",
            |n, f| json!({"name": n, "flow_id": f}),
            false,
        ),
        ("/api/work_pools/", "name", |n, _| json!({"name": n}), false),
        (
            "/api/v2/concurrency_limits/",
            "name",
            |n, _| json!({"name": n, "limit": 1}),
            false,
        ),
        (
            "/api/artifacts/",
            "key",
            |n, _| json!({"key": n, "type": "markdown", "data": "d"}),
            true,
        ),
    ];
    for (path, field, body, lowercase_only) in routes {
        let text = |n| if lowercase_only { lower(n) } else { random(n) };
        let (status, created) = call(&app, "POST", path, Some(body(&text(max), &flow_id))).await;
        assert!(
            status == 201 || status == 200,
            "{path}: {max} characters are stored: {created}"
        );
        let (status, refused) =
            call(&app, "POST", path, Some(body(&text(max + 1), &flow_id))).await;
        assert_eq!(status, 422, "{path}: {refused}");
        let detail = &refused["exception_detail"][0];
        assert_eq!(detail["type"], "string_too_long", "{path}: {refused}");
        assert_eq!(detail["loc"], json!(["body", field]), "{path}: {refused}");
        assert_eq!(
            detail["msg"], "String should have at most 500 characters",
            "{path}"
        );
    }
    app.stop().await;
}

fn rand_u32() -> u32 {
    (uuid::Uuid::new_v4().as_u128() & 0xFFFF_FFFF) as u32
}

/// Anything but whitespace after the JSON value is a decode error (422 `json_invalid`), not a
/// body that was read up to where it made sense; nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_garbage_after_a_json_body_is_refused() {
    let app = TestApp::start().await;
    let (status, body) = raw(&app, "POST", "/api/flows/", r#"{"name": "x"} garbage"#).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["exception_detail"][0]["type"], "json_invalid",
        "{body}"
    );
    let (status, body) = raw(&app, "POST", "/api/flows/", "{\"name\": \"x\"}  \n").await;
    assert_eq!(status, 201, "{body}");
    let (_, flows) = call(&app, "POST", "/api/flows/filter", Some(json!({}))).await;
    assert_eq!(flows.as_array().map(Vec::len), Some(1), "{flows}");
    app.stop().await;
}

/// Bodies are parsed strictly in one place for every route: an array where an object is
/// expected (at the top or nested) is Prefect's `model_attributes_type`, and a body that is not
/// UTF-8 is refused as the reference refuses it (400), even where the bad bytes sit in a field
/// the route ignores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_for_objects_and_bodies_that_are_not_utf8_are_refused() {
    let app = TestApp::start().await;
    WorkPoolBuilder::new("p").create(&app).await;
    for path in [
        "/api/artifacts/",
        "/api/flows/",
        "/api/work_pools/p/get_scheduled_flow_runs",
    ] {
        let (status, body) = raw(&app, "POST", path, "[]").await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(
            body["exception_detail"][0]["type"], "model_attributes_type",
            "{path}: {body}"
        );
    }
    let flow_id = create_flow(&app, "f").await;
    let (status, run) = call(
        &app,
        "POST",
        "/api/flow_runs/",
        Some(json!({"flow_id": flow_id})),
    )
    .await;
    assert_eq!(status, 201);
    let id = run["id"].as_str().expect("id");
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/flow_runs/{id}/set_state"),
        Some(json!({"state": ["COMPLETED"]})),
    )
    .await;
    assert_eq!(status, 422, "nested: {body}");
    assert_eq!(
        body["exception_detail"][0]["loc"],
        json!(["body", "state"]),
        "{body}"
    );

    let not_utf8 = b"{\"work_queue_names\": null, \"ignored\": \"\xff\xfe\"}".to_vec();
    let (status, body) = raw(
        &app,
        "POST",
        "/api/work_pools/p/get_scheduled_flow_runs",
        not_utf8,
    )
    .await;
    assert_eq!(
        (status, &body),
        (
            400,
            &json!({"detail": "There was an error parsing the body"})
        )
    );
    let (_, artifacts) = call(&app, "POST", "/api/artifacts/filter", Some(json!({}))).await;
    assert_eq!(artifacts, json!([]), "nothing was created");
    app.stop().await;
}
