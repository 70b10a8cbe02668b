//! `/variables` and `/saved_searches` against a real server: status codes and bodies of every
//! route, Prefect's name and value rules, filters, sorts, counts and bad input.

use serde_json::{json, Value};

use crate::support::{call, err_loc, names, raw, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_are_created_read_and_conflict_by_name() {
    let app = TestApp::start().await;
    let (s, v) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "v1", "value": {"a": [1, 2]}, "tags": ["x", "y"]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["name"], "v1");
    assert_eq!(v["value"], json!({"a": [1, 2]}));
    assert_eq!(v["tags"], json!(["x", "y"]));
    assert!(v["created"].as_str().is_some_and(|t| t.ends_with('Z')));
    let id = v["id"].as_str().expect("id").to_string();

    let (s, again) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "v1", "value": 1})),
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(
        again["detail"],
        "A variable with the name 'v1' already exists."
    );

    // Every JSON type is a value; null is one too, and the empty name is allowed (as in Prefect).
    for (name, value) in [
        ("s", json!("text")),
        ("i", json!(3)),
        ("f", json!(1.5)),
        ("b", json!(true)),
        ("n", Value::Null),
        ("l", json!([1, "x"])),
        ("", json!(1)),
    ] {
        let (s, v) = call(
            &app,
            "POST",
            "/api/variables",
            Some(json!({"name": name, "value": value})),
        )
        .await;
        assert_eq!(s, 201, "{name}: {v}");
        assert_eq!(v["value"], value);
        assert_eq!(v["tags"], json!([]));
    }

    let (s, by_id) = call(&app, "GET", &format!("/api/variables/{id}"), None).await;
    assert_eq!((s, by_id["name"].clone()), (200, json!("v1")));
    let (s, by_name) = call(&app, "GET", "/api/variables/name/v1", None).await;
    assert_eq!((s, by_name["id"].clone()), (200, json!(id)));
    let (s, missing) = call(&app, "GET", "/api/variables/name/nope", None).await;
    assert_eq!(
        (s, missing),
        (404, json!({"detail": "Variable not found."}))
    );
    let (s, missing) = call(
        &app,
        "GET",
        "/api/variables/00000000-0000-0000-0000-000000000000",
        None,
    )
    .await;
    assert_eq!(
        (s, missing["detail"].clone()),
        (404, json!("Variable not found."))
    );
    let (s, _) = call(&app, "GET", "/api/variables/not-a-uuid", None).await;
    assert_eq!(s, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variable_names_and_values_are_validated_as_prefect_does() {
    let app = TestApp::start().await;
    let (s, b) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "Bad Name", "value": 1})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(err_loc(&b), json!(["body", "name"]));
    assert_eq!(
        b["exception_detail"][0]["msg"],
        "Value error, Variable name must only contain lowercase letters, numbers, and dashes or underscores."
    );
    let long = "a".repeat(256);
    let (s, b) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": long, "value": 1})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(b["exception_detail"][0]["type"], "too_long");
    assert_eq!(
        b["exception_detail"][0]["msg"],
        "Value should have at most 255 items after validation, not 256"
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "a".repeat(255), "value": 1})),
    )
    .await;
    assert_eq!(s, 201);

    // 4998 characters of string: 5000 of JSON, the most allowed.
    let (s, _) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "big", "value": "a".repeat(4998)})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, b) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "bigger", "value": "a".repeat(4999)})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(err_loc(&b), json!(["body", "value"]));
    assert_eq!(
        b["exception_detail"][0]["msg"],
        "Value error, Variable value must be less than 5000 characters"
    );

    let (s, b) = call(&app, "POST", "/api/variables/", Some(json!({"name": "v3"}))).await;
    assert_eq!(
        (s, b["exception_detail"][0]["type"].clone()),
        (422, json!("missing"))
    );
    assert!(b["exception_detail"][0]["msg"]
        .as_str()
        .is_some_and(|m| m.contains("value")));
    let (s, b) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "v4", "value": 1, "extra": 1})),
    )
    .await;
    assert_eq!(
        (s, b["exception_detail"][0]["type"].clone()),
        (422, json!("extra_forbidden"))
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "v5", "value": 1, "tags": "x"})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": 5, "value": 1})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "v6", "value": 1, "tags": null})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, b) = raw(&app, "POST", "/api/variables/", "{\"name\": ").await;
    assert_eq!(
        (s, b["exception_detail"][0]["type"].clone()),
        (422, json!("json_invalid"))
    );
    let (s, _) = raw(&app, "POST", "/api/variables/", "").await;
    assert_eq!(s, 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_update_and_delete_by_id_and_name() {
    let app = TestApp::start().await;
    let (_, v) = call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "v1", "value": 1, "tags": ["t"]})),
    )
    .await;
    let id = v["id"].as_str().expect("id").to_string();
    call(
        &app,
        "POST",
        "/api/variables/",
        Some(json!({"name": "other", "value": 2})),
    )
    .await;

    let (s, _) = call(
        &app,
        "PATCH",
        "/api/variables/name/v1",
        Some(json!({"value": [1, "x"]})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, v) = call(&app, "GET", "/api/variables/name/v1", None).await;
    assert_eq!(
        (v["value"].clone(), v["tags"].clone()),
        (json!([1, "x"]), json!(["t"]))
    );
    assert!(v["updated"].as_str() >= v["created"].as_str());

    let (s, _) = call(
        &app,
        "PATCH",
        "/api/variables/name/v1",
        Some(json!({"value": null})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, v) = call(&app, "GET", "/api/variables/name/v1", None).await;
    assert_eq!(v["value"], Value::Null);
    let (s, _) = call(&app, "PATCH", "/api/variables/name/v1", Some(json!({}))).await;
    assert_eq!(s, 204);

    // A null for a required column and a taken name are integrity conflicts.
    let (s, b) = call(
        &app,
        "PATCH",
        "/api/variables/name/v1",
        Some(json!({"tags": null})),
    )
    .await;
    assert_eq!(s, 409);
    assert!(b["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("Data integrity conflict")));
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/variables/name/v1",
        Some(json!({"name": "other"})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, b) = call(
        &app,
        "PATCH",
        "/api/variables/name/v1",
        Some(json!({"name": "Bad"})),
    )
    .await;
    assert_eq!((s, err_loc(&b)), (422, json!(["body", "name"])));
    let (s, b) = call(
        &app,
        "PATCH",
        "/api/variables/name/v1",
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_eq!(
        (s, b["exception_detail"][0]["type"].clone()),
        (422, json!("extra_forbidden"))
    );
    let (s, b) = call(
        &app,
        "PATCH",
        "/api/variables/name/nope",
        Some(json!({"value": 1})),
    )
    .await;
    assert_eq!(
        (s, b["detail"].clone()),
        (404, json!("Variable not found."))
    );
    let (s, _) = raw(&app, "PATCH", "/api/variables/name/v1", "[").await;
    assert_eq!(s, 422);

    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/variables/{id}"),
        Some(json!({"name": "renamed", "tags": ["a", "b"]})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, v) = call(&app, "GET", &format!("/api/variables/{id}"), None).await;
    assert_eq!(
        (v["name"].clone(), v["tags"].clone()),
        (json!("renamed"), json!(["a", "b"]))
    );
    let (s, _) = call(
        &app,
        "PATCH",
        "/api/variables/00000000-0000-0000-0000-000000000000",
        Some(json!({"value": 1})),
    )
    .await;
    assert_eq!(s, 404);

    let (s, _) = call(&app, "DELETE", "/api/variables/name/other", None).await;
    assert_eq!(s, 204);
    let (s, b) = call(&app, "DELETE", "/api/variables/name/other", None).await;
    assert_eq!(
        (s, b["detail"].clone()),
        (404, json!("Variable not found."))
    );
    let (s, _) = call(&app, "DELETE", &format!("/api/variables/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, _) = call(&app, "DELETE", &format!("/api/variables/{id}"), None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&app, "DELETE", "/api/variables/not-a-uuid", None).await;
    assert_eq!(s, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_filter_sort_and_count() {
    let app = TestApp::start().await;
    for (name, tags) in [
        ("alpha", json!(["x", "y"])),
        ("beta", json!(["x"])),
        ("gamma", json!([])),
        ("Delta_ok", json!([])),
    ] {
        let name = name.to_lowercase();
        let (s, _) = call(
            &app,
            "POST",
            "/api/variables/",
            Some(json!({"name": name, "value": 1, "tags": tags})),
        )
        .await;
        assert_eq!(s, 201);
    }
    let (s, all) = call(&app, "POST", "/api/variables/filter", None).await;
    assert_eq!(s, 200);
    assert_eq!(names(&all), ["alpha", "beta", "delta_ok", "gamma"]);
    let (_, desc) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"sort": "NAME_DESC"})),
    )
    .await;
    assert_eq!(names(&desc), ["gamma", "delta_ok", "beta", "alpha"]);
    let (_, created) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"sort": "CREATED_DESC", "limit": 1})),
    )
    .await;
    assert_eq!(names(&created), ["delta_ok"]);
    let (_, like) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"variables": {"name": {"like_": "A"}}})),
    )
    .await;
    assert_eq!(names(&like), ["alpha", "beta", "delta_ok", "gamma"]);
    let (_, like) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"variables": {"name": {"like_": "ph"}}})),
    )
    .await;
    assert_eq!(names(&like), ["alpha"]);
    let (_, any) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"variables": {"name": {"any_": ["beta", "nope"]}}})),
    )
    .await;
    assert_eq!(names(&any), ["beta"]);
    let (_, tags) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"variables": {"tags": {"all_": ["x", "y"]}}})),
    )
    .await;
    assert_eq!(names(&tags), ["alpha"]);
    let (_, untagged) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"variables": {"tags": {"is_null_": true}}})),
    )
    .await;
    assert_eq!(names(&untagged), ["delta_ok", "gamma"]);
    let (_, or) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"variables": {"operator": "or_", "name": {"any_": ["gamma"]}, "tags": {"all_": ["y"]}}})),
    )
    .await;
    assert_eq!(names(&or), ["alpha", "gamma"]);
    let beta_id = any[0]["id"].clone();
    let (_, by_id) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"variables": {"id": {"any_": [beta_id]}}})),
    )
    .await;
    assert_eq!(names(&by_id), ["beta"]);
    let (_, page) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"limit": 2, "offset": 1, "sort": null, "variables": null})),
    )
    .await;
    assert_eq!(names(&page), ["beta", "delta_ok"]);

    let (s, n) = call(&app, "POST", "/api/variables/count", None).await;
    assert_eq!((s, n), (200, json!(4)));
    let (_, n) = call(
        &app,
        "POST",
        "/api/variables/count",
        Some(json!({"variables": {"tags": {"all_": ["x"]}}})),
    )
    .await;
    assert_eq!(n, json!(2));

    let (s, b) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"limit": 201})),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            422,
            json!({"detail": "Invalid limit: must be less than or equal to 200."})
        )
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"offset": -1})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, b) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"sort": "BOGUS"})),
    )
    .await;
    assert_eq!((s, err_loc(&b)), (422, json!(["body", "sort"])));
    let (s, _) = call(
        &app,
        "POST",
        "/api/variables/filter",
        Some(json!({"variables": {"id": {"any_": ["nope"]}}})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = raw(&app, "POST", "/api/variables/count", "{").await;
    assert_eq!(s, 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_are_scoped_to_their_workspace() {
    let app = TestApp::start().await;
    let prefix = "/api/accounts/00000000-0000-4000-8000-000000000001/workspaces/00000000-0000-4000-8000-000000000002";
    let (s, _) = call(
        &app,
        "POST",
        &format!("{prefix}/variables/"),
        Some(json!({"name": "ws", "value": 1})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(&app, "GET", "/api/variables/name/ws", None).await;
    assert_eq!(s, 200, "the default workspace is the prefixed one");
    let (s, _) = call(
        &app,
        "GET",
        "/api/accounts/00000000-0000-4000-8000-000000000001/workspaces/00000000-0000-4000-8000-0000000000ff/variables/name/ws",
        None,
    )
    .await;
    assert_eq!(s, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_searches_upsert_read_list_and_delete() {
    let app = TestApp::start().await;
    let filter = json!({"object": "flow", "property": "name", "type": "string", "operation": "equals", "value": "x"});
    let (s, a) = call(
        &app,
        "PUT",
        "/api/saved_searches/",
        Some(json!({"name": "s1", "filters": [filter]})),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["filters"], json!([filter]));
    let id = a["id"].as_str().expect("id").to_string();
    let (s, b) = call(
        &app,
        "PUT",
        "/api/saved_searches/",
        Some(json!({"name": "s1", "filters": []})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (b["id"].clone(), b["filters"].clone()),
        (json!(id), json!([]))
    );
    let (s, c) = call(
        &app,
        "PUT",
        "/api/saved_searches",
        Some(json!({"name": "s0"})),
    )
    .await;
    assert_eq!((s, c["filters"].clone()), (201, json!([])));
    // Unknown keys inside a filter are dropped; missing ones are refused.
    let mut extra = filter.clone();
    extra["extra"] = json!(1);
    let (s, d) = call(
        &app,
        "PUT",
        "/api/saved_searches/",
        Some(json!({"name": "s2", "filters": [extra]})),
    )
    .await;
    assert_eq!((s, d["filters"].clone()), (201, json!([filter])));
    let (s, e) = call(
        &app,
        "PUT",
        "/api/saved_searches/",
        Some(json!({"name": "s3", "filters": [{"object": "flow"}]})),
    )
    .await;
    assert_eq!((s, err_loc(&e)[1].clone()), (422, json!("filters")));
    let (s, e) = call(
        &app,
        "PUT",
        "/api/saved_searches/",
        Some(json!({"filters": []})),
    )
    .await;
    assert_eq!(
        (s, e["exception_detail"][0]["type"].clone()),
        (422, json!("missing"))
    );
    let (s, _) = call(
        &app,
        "PUT",
        "/api/saved_searches/",
        Some(json!({"name": "s4", "bogus": 1})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = raw(&app, "PUT", "/api/saved_searches/", "nope").await;
    assert_eq!(s, 422);

    let (s, got) = call(&app, "GET", &format!("/api/saved_searches/{id}"), None).await;
    assert_eq!((s, got["name"].clone()), (200, json!("s1")));
    let (s, all) = call(&app, "POST", "/api/saved_searches/filter", None).await;
    assert_eq!(
        (s, names(&all)),
        (200, vec!["s0".to_string(), "s1".into(), "s2".into()])
    );
    let (_, page) = call(
        &app,
        "POST",
        "/api/saved_searches/filter",
        Some(json!({"limit": 1, "offset": 1})),
    )
    .await;
    assert_eq!(names(&page), ["s1"]);
    let (s, _) = call(
        &app,
        "POST",
        "/api/saved_searches/filter",
        Some(json!({"limit": 500})),
    )
    .await;
    assert_eq!(s, 422);

    let (s, _) = call(&app, "DELETE", &format!("/api/saved_searches/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, b) = call(&app, "DELETE", &format!("/api/saved_searches/{id}"), None).await;
    assert_eq!(
        (s, b["detail"].clone()),
        (404, json!("Saved search not found"))
    );
    let (s, _) = call(&app, "GET", &format!("/api/saved_searches/{id}"), None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&app, "GET", "/api/saved_searches/not-a-uuid", None).await;
    assert_eq!(s, 404);
    app.stop().await;
}
