//! `/artifacts` against a real server: create (every type the client sends), read, latest by
//! key and the collection kept on create/update/delete, filters with run sub-filters, sorts,
//! counts, update and delete, and bad input.

use serde_json::{json, Value};

use crate::support::{call, raw, FlowRunBuilder, TestApp};

async fn create(app: &TestApp, body: Value) -> Value {
    let (s, a) = call(app, "POST", "/api/artifacts/", Some(body)).await;
    assert_eq!(s, 201, "{a}");
    a
}

fn keys(list: &Value) -> Vec<Value> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|a| a["key"].clone())
        .collect()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_created_with_every_type_and_read_back() {
    let app = TestApp::start().await;
    let run = "9f2a0b8e-5d1c-4c7e-8f00-000000000001";
    let md = create(
        &app,
        json!({"key": "my-art", "type": "markdown", "description": "d", "data": "# hi",
               "metadata_": {"a": "b"}, "flow_run_id": run, "task_run_id": null}),
    )
    .await;
    assert_eq!(md["key"], "my-art");
    assert_eq!(md["type"], "markdown");
    assert_eq!(md["data"], "# hi");
    assert_eq!(md["metadata_"], json!({"a": "b"}));
    assert_eq!(md["flow_run_id"], run);
    assert_eq!(md["task_run_id"], Value::Null);
    assert_eq!(md["created"], md["updated"]);
    let table = create(
        &app,
        json!({"key": "my-art", "type": "table", "data": "[{\"a\": 1}]"}),
    )
    .await;
    let progress = create(&app, json!({"type": "progress", "data": 12.5})).await;
    assert_eq!(
        (progress["key"].clone(), progress["data"].clone()),
        (Value::Null, json!(12.5))
    );
    let link = create(
        &app,
        json!({"type": "markdown", "data": "[x](https://x.io)"}),
    )
    .await;
    let image = create(&app, json!({"type": "image", "data": "https://x.io/a.png"})).await;
    let empty = create(&app, json!({})).await;
    assert_eq!(empty["data"], Value::Null);
    assert_eq!(empty["metadata_"], Value::Null);
    let _ = (link, image);

    let (s, got) = call(
        &app,
        "GET",
        &format!("/api/artifacts/{}", md["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!((s, got.clone()), (200, md.clone()));

    // The latest of a key has the collection's id and no latest_id.
    let (s, latest) = call(&app, "GET", "/api/artifacts/my-art/latest", None).await;
    assert_eq!(s, 200);
    assert_eq!(latest["type"], "table");
    assert_eq!(latest["data"], table["data"]);
    assert_ne!(latest["id"], table["id"]);
    assert!(latest.get("latest_id").is_none());
    assert_eq!(
        latest["created"], md["created"],
        "the collection was created with the first"
    );
    assert_eq!(latest["updated"], table["created"]);
    let (s, b) = call(&app, "GET", "/api/artifacts/nope/latest", None).await;
    assert_eq!((s, b), (404, json!({"detail": "Artifact not found."})));
    let (s, _) = call(
        &app,
        "GET",
        "/api/artifacts/00000000-0000-0000-0000-000000000000",
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(&app, "GET", "/api/artifacts/not-a-uuid", None).await;
    assert_eq!(s, 404);

    let (s, cols) = call(&app, "POST", "/api/artifacts/latest/filter", None).await;
    assert_eq!(s, 200);
    assert_eq!(cols.as_array().map(Vec::len), Some(1));
    assert_eq!(cols[0]["latest_id"], table["id"]);
    let (_, n) = call(&app, "POST", "/api/artifacts/latest/count", None).await;
    assert_eq!(n, json!(1));
    let (_, n) = call(&app, "POST", "/api/artifacts/count", None).await;
    assert_eq!(n, json!(6));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_input_is_validated() {
    let app = TestApp::start().await;
    let (s, b) = call(
        &app,
        "POST",
        "/api/artifacts/",
        Some(json!({"key": "Bad_Key", "data": "x"})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(b["exception_detail"][0]["loc"], json!(["body", "key"]));
    assert_eq!(
        b["exception_detail"][0]["msg"],
        "Value error, Artifact key must only contain lowercase letters, numbers, and dashes."
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/artifacts/",
        Some(json!({"key": "k3", "metadata_": {"a": 1}})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(b["exception_detail"][0]["loc"][1], "metadata_");
    let (s, b) = call(&app, "POST", "/api/artifacts/", Some(json!({"bogus": 1}))).await;
    assert_eq!(
        (s, b["exception_detail"][0]["type"].clone()),
        (422, json!("extra_forbidden"))
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/artifacts/",
        Some(json!({"flow_run_id": "nope"})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = raw(&app, "POST", "/api/artifacts/", "{").await;
    assert_eq!(s, 422);
    // Long metadata values are cut to 500 characters plus "...".
    let a = create(
        &app,
        json!({"key": "k4", "metadata_": {"a": "x".repeat(600), "b": "short"}}),
    )
    .await;
    assert_eq!(a["metadata_"]["a"], format!("{}...", "x".repeat(500)));
    assert_eq!(a["metadata_"]["b"], "short");
    // Runs are not checked: the task run may not be recorded yet.
    let a = create(
        &app,
        json!({"key": "k2", "flow_run_id": "00000000-0000-0000-0000-000000000000"}),
    )
    .await;
    assert_eq!(a["flow_run_id"], "00000000-0000-0000-0000-000000000000");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_updates_and_deletes_keep_the_latest_current() {
    let app = TestApp::start().await;
    let first = create(
        &app,
        json!({"key": "my-art", "type": "markdown", "data": "# one", "metadata_": {"a": "b"}}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = create(
        &app,
        json!({"key": "my-art", "type": "progress", "data": 10}),
    )
    .await;
    let second_id = second["id"].as_str().unwrap().to_string();

    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/artifacts/{second_id}"),
        Some(json!({"data": 50, "description": "new"})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, got) = call(&app, "GET", &format!("/api/artifacts/{second_id}"), None).await;
    assert_eq!(
        (got["data"].clone(), got["description"].clone()),
        (json!(50), json!("new"))
    );
    let (_, latest) = call(&app, "GET", "/api/artifacts/my-art/latest", None).await;
    assert_eq!(
        (latest["data"].clone(), latest["description"].clone()),
        (json!(50), json!("new"))
    );
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/artifacts/{second_id}"),
        Some(json!({"description": null, "metadata_": null})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, got) = call(&app, "GET", &format!("/api/artifacts/{second_id}"), None).await;
    assert_eq!(
        (got["data"].clone(), got["description"].clone()),
        (json!(50), Value::Null)
    );

    let (s, b) = call(
        &app,
        "PATCH",
        &format!("/api/artifacts/{second_id}"),
        Some(json!({"key": "x"})),
    )
    .await;
    assert_eq!(
        (s, b["exception_detail"][0]["type"].clone()),
        (422, json!("extra_forbidden"))
    );
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/artifacts/{second_id}"),
        Some(json!({"metadata_": {"a": []}})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, b) = call(
        &app,
        "PATCH",
        "/api/artifacts/00000000-0000-0000-0000-000000000000",
        Some(json!({"data": 1})),
    )
    .await;
    assert_eq!(
        (s, b["detail"].clone()),
        (404, json!("Artifact not found."))
    );
    let (s, _) = raw(&app, "PATCH", &format!("/api/artifacts/{second_id}"), "{").await;
    assert_eq!(s, 422);

    // Deleting the latest makes the previous one the latest again.
    let (s, _) = call(&app, "DELETE", &format!("/api/artifacts/{second_id}"), None).await;
    assert_eq!(s, 204);
    let (_, latest) = call(&app, "GET", "/api/artifacts/my-art/latest", None).await;
    assert_eq!(
        (latest["data"].clone(), latest["type"].clone()),
        (json!("# one"), json!("markdown"))
    );
    assert_eq!(latest["metadata_"], json!({"a": "b"}));
    let (_, cols) = call(&app, "POST", "/api/artifacts/latest/filter", None).await;
    assert_eq!(cols[0]["latest_id"], first["id"]);
    let (s, b) = call(&app, "DELETE", &format!("/api/artifacts/{second_id}"), None).await;
    assert_eq!(
        (s, b["detail"].clone()),
        (404, json!("Artifact not found."))
    );
    let (s, _) = call(
        &app,
        "DELETE",
        &format!("/api/artifacts/{}", first["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(&app, "GET", "/api/artifacts/my-art/latest", None).await;
    assert_eq!(s, 404);
    let (_, n) = call(&app, "POST", "/api/artifacts/latest/count", None).await;
    assert_eq!(n, json!(0));
    let (s, _) = call(&app, "DELETE", "/api/artifacts/not-a-uuid", None).await;
    assert_eq!(s, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_filter_by_artifact_and_run_criteria() {
    let app = TestApp::start().await;
    let run = FlowRunBuilder::flow("arts")
        .state(json!({"type": "PENDING"}))
        .tags(&["t1"])
        .create(&app)
        .await;
    let run_id = run["id"].as_str().unwrap().to_string();
    let (s, task) = call(
        &app,
        "POST",
        "/api/task_runs/",
        Some(json!({"flow_run_id": run_id, "task_key": "k", "dynamic_key": "0", "name": "tr", "state": {"type": "PENDING"}})),
    )
    .await;
    assert_eq!(s, 201, "{task}");
    let task_id = task["id"].as_str().unwrap().to_string();

    let a = create(
        &app,
        json!({"key": "a", "type": "markdown", "flow_run_id": run_id, "task_run_id": task_id}),
    )
    .await;
    let b = create(
        &app,
        json!({"key": "b", "type": "table", "flow_run_id": run_id}),
    )
    .await;
    let c = create(&app, json!({"key": "c-x", "type": "progress"})).await;
    let d = create(&app, json!({"type": "markdown"})).await;

    let filter = |body: Value| {
        let app = &app;
        async move {
            let (s, list) = call(app, "POST", "/api/artifacts/filter", Some(body)).await;
            assert_eq!(s, 200, "{list}");
            list
        }
    };
    let all = filter(json!({})).await;
    assert_eq!(all.as_array().map(Vec::len), Some(4));
    let mut sorted = ids(&all);
    sorted.sort();
    sorted.reverse();
    assert_eq!(ids(&all), sorted, "ID_DESC by default");
    assert_eq!(
        keys(&filter(json!({"sort": "KEY_ASC", "artifacts": {"key": {"exists_": true}}})).await),
        [json!("a"), json!("b"), json!("c-x")]
    );
    assert_eq!(
        keys(
            &filter(
                json!({"sort": "KEY_DESC", "limit": 1, "artifacts": {"key": {"exists_": true}}})
            )
            .await
        ),
        [json!("c-x")]
    );
    assert_eq!(
        ids(&filter(json!({"artifacts": {"key": {"exists_": false}}})).await),
        [d["id"].as_str().unwrap()]
    );
    assert_eq!(
        keys(&filter(json!({"artifacts": {"key": {"like_": "X"}}})).await),
        [json!("c-x")]
    );
    assert_eq!(
        keys(&filter(json!({"artifacts": {"key": {"any_": ["a", "zz"]}}})).await),
        [json!("a")]
    );
    assert_eq!(
        keys(
            &filter(json!({"sort": "KEY_ASC", "artifacts": {"type": {"not_any_": ["markdown"]}}}))
                .await
        ),
        [json!("b"), json!("c-x")]
    );
    assert_eq!(
        keys(&filter(json!({"artifacts": {"type": {"any_": ["table"]}}})).await),
        [json!("b")]
    );
    assert_eq!(
        keys(&filter(json!({"artifacts": {"task_run_id": {"any_": [task_id]}}})).await),
        [json!("a")]
    );
    assert_eq!(
        keys(&filter(json!({"artifacts": {"id": {"any_": [c["id"]]}}})).await),
        [json!("c-x")]
    );
    assert_eq!(
        keys(&filter(json!({"sort": "KEY_ASC", "artifacts": {"operator": "or_", "type": {"any_": ["table"]}, "key": {"any_": ["c-x"]}}})).await),
        [json!("b"), json!("c-x")]
    );
    // Related objects: the artifact's flow run, its flow, its task run.
    assert_eq!(
        keys(&filter(json!({"sort": "KEY_ASC", "flow_runs": {"tags": {"all_": ["t1"]}}})).await),
        [json!("a"), json!("b")]
    );
    assert_eq!(
        keys(&filter(json!({"sort": "KEY_ASC", "flows": {"name": {"any_": ["arts"]}}})).await),
        [json!("a"), json!("b")]
    );
    assert_eq!(
        filter(json!({"flows": {"name": {"any_": ["other"]}}})).await,
        json!([])
    );
    assert_eq!(
        keys(&filter(json!({"task_runs": {"name": {"any_": ["tr"]}}})).await),
        [json!("a")]
    );
    assert_eq!(
        filter(json!({"deployments": {"id": {"any_": ["00000000-0000-0000-0000-000000000000"]}}}))
            .await,
        json!([])
    );
    assert_eq!(keys(&filter(json!({"sort": "KEY_ASC", "artifacts": {"key": {"exists_": true}}, "flow_runs": null, "deployments": null, "limit": 2, "offset": 1})).await), [json!("b"), json!("c-x")]);
    let _ = (a, b);

    let (_, n) = call(
        &app,
        "POST",
        "/api/artifacts/count",
        Some(json!({"flow_runs": {"id": {"any_": [run_id]}}})),
    )
    .await;
    assert_eq!(n, json!(2));
    let (_, n) = call(
        &app,
        "POST",
        "/api/artifacts/latest/count",
        Some(json!({"artifacts": {"key": {"like_": "c"}}})),
    )
    .await;
    assert_eq!(n, json!(1));
    let (_, cols) = call(
        &app,
        "POST",
        "/api/artifacts/latest/filter",
        Some(json!({"sort": "KEY_DESC", "task_runs": {"id": {"any_": [task_id]}}})),
    )
    .await;
    assert_eq!(keys(&cols), [json!("a")]);
    let (_, cols) = call(
        &app,
        "POST",
        "/api/artifacts/latest/filter",
        Some(json!({"artifacts": {"latest_id": {"any_": [c["id"]]}}})),
    )
    .await;
    assert_eq!(keys(&cols), [json!("c-x")]);

    for path in ["/api/artifacts/filter", "/api/artifacts/latest/filter"] {
        let (s, b) = call(&app, "POST", path, Some(json!({"limit": 201}))).await;
        assert_eq!(
            (s, b["detail"].clone()),
            (
                422,
                json!("Invalid limit: must be less than or equal to 200.")
            )
        );
        let (s, _) = call(&app, "POST", path, Some(json!({"sort": "NAME_ASC"}))).await;
        assert_eq!(s, 422);
        let (s, _) = call(
            &app,
            "POST",
            path,
            Some(json!({"artifacts": {"id": {"any_": ["x"]}}})),
        )
        .await;
        assert_eq!(s, 422);
        let (s, _) = raw(&app, "POST", path, "[").await;
        assert_eq!(s, 422);
    }
    app.stop().await;
}
