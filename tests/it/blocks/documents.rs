//! Block documents: secrets masked, filters, references between documents, updates and
//! anonymous documents.

use serde_json::{json, Value};

use super::id;
use crate::support::{call, err_loc, names, raw, TestApp};

/// A block type with a schema that has a secret field; returns (type id, schema id).
async fn thing(app: &TestApp, slug: &str) -> (String, String) {
    let (s, t) = call(
        app,
        "POST",
        "/api/block_types/",
        Some(json!({"name": format!("Thing {slug}"), "slug": slug})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let (s, schema) = call(
        app,
        "POST",
        "/api/block_schemas/",
        Some(json!({
            "block_type_id": id(&t),
            "fields": {"title": format!("Thing{slug}"), "type": "object",
                "properties": {"a": {"type": "integer"}, "pw": {"type": "string", "format": "password"},
                               "nested": {"type": "object"}},
                "secret_fields": ["pw", "nested.*"], "block_type_slug": slug,
                "block_schema_references": {}},
            "capabilities": ["cap-x"]
        })),
    )
    .await;
    assert_eq!(s, 201, "{schema}");
    (id(&t), id(&schema))
}

async fn document(app: &TestApp, name: &str, t: &str, s: &str, data: Value) -> Value {
    let (status, d) = call(
        app,
        "POST",
        "/api/block_documents/",
        Some(json!({"name": name, "block_type_id": t, "block_schema_id": s, "data": data})),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_documents_mask_secrets_and_filter() {
    let app = TestApp::start().await;
    let (t, s) = thing(&app, "thing").await;
    let d1 = document(
        &app,
        "doc-one",
        &t,
        &s,
        json!({"a": 3, "pw": "hunter2", "nested": {"k": "v"}}),
    )
    .await;
    assert_eq!(
        d1["data"],
        json!({"a": 3, "pw": "********", "nested": {"k": "********"}})
    );
    assert_eq!(d1["block_type_name"], "Thing thing");
    assert_eq!(d1["block_schema"]["id"], json!(s));
    assert_eq!(d1["block_type"]["slug"], "thing");
    assert_eq!(d1["block_document_references"], json!({}));
    assert_eq!(d1["is_anonymous"], false);
    let d1id = id(&d1);
    for (q, secret) in [
        ("", false),
        ("?include_secrets=true", true),
        ("?include_secrets=1", true),
        ("?include_secrets=yes", true),
        ("?include_secrets=false", false),
    ] {
        let (st, r) = call(
            &app,
            "GET",
            &format!("/api/block_documents/{d1id}{q}"),
            None,
        )
        .await;
        assert_eq!(st, 200);
        let pw = if secret { "hunter2" } else { "********" };
        assert_eq!(r["data"]["pw"], pw, "{q}");
    }
    let (st, b) = call(
        &app,
        "GET",
        &format!("/api/block_documents/{d1id}?include_secrets=maybe"),
        None,
    )
    .await;
    assert_eq!(
        (st, err_loc(&b)),
        (422, json!(["query", "include_secrets"]))
    );
    let (st, r) = call(
        &app,
        "GET",
        "/api/block_types/slug/thing/block_documents/name/doc-one?include_secrets=true",
        None,
    )
    .await;
    assert_eq!((st, r["data"]["pw"].clone()), (200, json!("hunter2")));
    let (st, b) = call(
        &app,
        "GET",
        "/api/block_types/slug/thing/block_documents/name/nope",
        None,
    )
    .await;
    assert_eq!(
        (st, b),
        (404, json!({"detail": "Block document not found"}))
    );
    let (st, b) = call(
        &app,
        "GET",
        "/api/block_types/slug/nope/block_documents",
        None,
    )
    .await;
    assert_eq!((st, b), (404, json!({"detail": "Block type not found"})));
    let missing = "00000000-0000-4000-8000-00000000abcd";
    let (st, b) = call(
        &app,
        "GET",
        &format!("/api/block_documents/{missing}"),
        None,
    )
    .await;
    assert_eq!(
        (st, b),
        (404, json!({"detail": "Block document not found"}))
    );

    // Create errors.
    let create = |body: Value| {
        let app = &app;
        async move { call(app, "POST", "/api/block_documents/", Some(body)).await }
    };
    let (st, b) =
        create(json!({"name": "doc-one", "block_type_id": t, "block_schema_id": s})).await;
    assert_eq!((st, b), (409, json!({"detail": "Block already exists"})));
    let (st, b) =
        create(json!({"name": "Doc One", "block_type_id": t, "block_schema_id": s})).await;
    assert_eq!((st, err_loc(&b)), (422, json!(["body", "name"])));
    let (st, b) = create(json!({"block_type_id": t, "block_schema_id": s})).await;
    assert_eq!((st, err_loc(&b)), (422, json!(["body"])));
    assert_eq!(
        b["exception_detail"][0]["msg"],
        "Value error, Names must be provided for block documents."
    );
    let (st, b) = create(json!({"name": "x", "block_type_id": t})).await;
    assert_eq!((st, err_loc(&b)), (422, json!(["body", "block_schema_id"])));
    let (st, b) =
        create(json!({"name": "x", "block_type_id": t, "block_schema_id": s, "data": []})).await;
    assert_eq!((st, err_loc(&b)), (422, json!(["body", "data"])));
    let (st, _) =
        create(json!({"name": "x", "block_type_id": missing, "block_schema_id": s})).await;
    assert_eq!(st, 409);
    let (st, _) =
        create(json!({"name": "x", "block_type_id": t, "block_schema_id": missing})).await;
    assert_eq!(st, 409);
    let (st, b) = create(
        json!({"name": "x", "block_type_id": t, "block_schema_id": s,
        "data": {"c": {"$ref": {}}}}),
    )
    .await;
    assert_eq!(
        (st, b),
        (
            400,
            json!({"detail": "Received block reference without a block_document_id in key c"})
        )
    );
    let (st, _) = create(
        json!({"name": "x", "block_type_id": t, "block_schema_id": s,
        "data": {"c": {"$ref": {"block_document_id": missing}}}}),
    )
    .await;
    assert_eq!(st, 409);

    // Anonymous documents get a generated name and are hidden unless asked for.
    let (st, anon) = create(
        json!({"is_anonymous": true, "block_type_id": t, "block_schema_id": s,
        "data": {"a": 4, "pw": "x"}}),
    )
    .await;
    assert_eq!(st, 201);
    let anon_name = anon["name"].as_str().expect("name").to_string();
    assert!(anon_name.starts_with("anonymous-"), "{anon_name}");
    assert_eq!(anon["is_anonymous"], true);
    document(&app, "doc-two", &t, &s, json!({"a": 5})).await;

    let filter = |body: Value| {
        let app = &app;
        async move {
            let (st, r) = call(app, "POST", "/api/block_documents/filter", Some(body)).await;
            assert_eq!(st, 200, "{r}");
            names(&r)
        }
    };
    assert_eq!(filter(json!({})).await, vec!["doc-one", "doc-two"]);
    assert_eq!(
        filter(json!({"block_documents": {"is_anonymous": null}})).await,
        vec![anon_name.clone(), "doc-one".into(), "doc-two".into()]
    );
    assert_eq!(
        filter(json!({"block_documents": {"is_anonymous": {"eq_": true}}})).await,
        vec![anon_name.clone()]
    );
    assert_eq!(
        filter(json!({"block_documents": {}})).await,
        vec!["doc-one", "doc-two"]
    );
    assert_eq!(
        filter(json!({"block_documents": {"name": {"like_": "TWO"}}})).await,
        vec!["doc-two"]
    );
    assert_eq!(
        filter(json!({"sort": "NAME_DESC"})).await,
        vec!["doc-two", "doc-one"]
    );
    assert_eq!(
        filter(json!({"limit": 1, "offset": 1})).await,
        vec!["doc-two"]
    );
    assert_eq!(
        filter(json!({"block_types": {"slug": {"any_": ["secret"]}}})).await,
        Vec::<String>::new()
    );
    assert_eq!(
        filter(json!({"block_schemas": {"block_capabilities": {"all_": ["cap-x"]}}})).await,
        vec!["doc-one", "doc-two"]
    );
    assert_eq!(
        filter(json!({"block_documents": {"operator": "or_", "name": {"any_": ["doc-two"]}, "is_anonymous": {"eq_": true}}})).await,
        vec![anon_name.clone(), "doc-two".into()]
    );
    let (st, r) = call(
        &app,
        "POST",
        "/api/block_documents/filter",
        Some(json!({"include_secrets": true, "block_documents": {"name": {"any_": ["doc-one"]}}})),
    )
    .await;
    assert_eq!((st, r[0]["data"]["pw"].clone()), (200, json!("hunter2")));
    let (st, b) = call(
        &app,
        "POST",
        "/api/block_documents/filter",
        Some(json!({"sort": "BAD"})),
    )
    .await;
    assert_eq!((st, err_loc(&b)), (422, json!(["body", "sort"])));
    let (st, _) = call(
        &app,
        "POST",
        "/api/block_documents/filter",
        Some(json!({"limit": 201})),
    )
    .await;
    assert_eq!(st, 422);
    let (st, _) = raw(&app, "POST", "/api/block_documents/filter", "{").await;
    assert_eq!(st, 422);
    let (st, docs) = call(
        &app,
        "GET",
        "/api/block_types/slug/thing/block_documents",
        None,
    )
    .await;
    assert_eq!(
        (st, names(&docs)),
        (200, vec!["doc-one".to_string(), "doc-two".to_string()])
    );

    let count = |body: Value| {
        let app = &app;
        async move {
            let (st, n) = call(app, "POST", "/api/block_documents/count", Some(body)).await;
            assert_eq!(st, 200);
            n
        }
    };
    assert_eq!(count(json!({})).await, json!(2));
    assert_eq!(
        count(json!({"block_documents": {"is_anonymous": null}})).await,
        json!(3)
    );
    assert_eq!(count(json!({"limit": 5})).await, json!(2));

    let (st, _) = call(
        &app,
        "DELETE",
        &format!("/api/block_documents/{d1id}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, b) = call(
        &app,
        "DELETE",
        &format!("/api/block_documents/{d1id}"),
        None,
    )
    .await;
    assert_eq!(
        (st, b),
        (404, json!({"detail": "Block document not found"}))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_documents_reference_each_other_and_update() {
    let app = TestApp::start().await;
    let (t, s) = thing(&app, "thing").await;
    let child = document(&app, "child", &t, &s, json!({"a": 1, "pw": "inner"})).await;
    let cid = id(&child);
    let parent = document(
        &app,
        "parent",
        &t,
        &s,
        json!({"a": 2, "pw": "outer", "sub": {"$ref": {"block_document_id": cid}}}),
    )
    .await;
    let pid = id(&parent);
    assert_eq!(
        parent["data"],
        json!({"a": 2, "pw": "********", "sub": {"a": 1, "pw": "********"}})
    );
    let r = &parent["block_document_references"]["sub"]["block_document"];
    assert_eq!(r["id"], json!(cid));
    assert_eq!(r["name"], "child");
    assert_eq!(r["is_anonymous"], false);
    assert_eq!(r["block_type"]["slug"], "thing");
    assert_eq!(r["block_document_references"], json!({}));
    let (_, full) = call(
        &app,
        "GET",
        &format!("/api/block_documents/{pid}?include_secrets=true"),
        None,
    )
    .await;
    assert_eq!(full["data"]["sub"]["pw"], "inner");
    // Three levels deep.
    let top = document(
        &app,
        "top",
        &t,
        &s,
        json!({"p": {"$ref": {"block_document_id": pid}}}),
    )
    .await;
    assert_eq!(top["data"]["p"]["sub"]["a"], 1);
    assert_eq!(
        top["block_document_references"]["p"]["block_document"]["block_document_references"]["sub"]
            ["block_document"]["name"],
        "child"
    );

    let patch = |path: String, body: Value| {
        let app = &app;
        async move { call(app, "PATCH", &path, Some(body)).await }
    };
    let get = |doc: String| {
        let app = &app;
        async move {
            let (st, r) = call(
                app,
                "GET",
                &format!("/api/block_documents/{doc}?include_secrets=true"),
                None,
            )
            .await;
            assert_eq!(st, 200);
            r
        }
    };
    let cpath = format!("/api/block_documents/{cid}");
    let before = get(cid.clone()).await;
    let (st, _) = patch(cpath.clone(), json!({"data": {"a": 5}})).await;
    assert_eq!(st, 204);
    let r = get(cid.clone()).await;
    assert_eq!(r["data"], json!({"a": 5, "pw": "inner"}), "merged");
    assert_ne!(r["updated"], before["updated"]);
    let (st, _) = patch(cpath.clone(), json!({"data": {"a": 6, "pw": "********"}})).await;
    assert_eq!(st, 204);
    assert_eq!(
        get(cid.clone()).await["data"],
        json!({"a": 6, "pw": "inner"}),
        "the mask keeps the secret"
    );
    let (st, _) = patch(
        cpath.clone(),
        json!({"data": {"a": 7}, "merge_existing_data": false}),
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(get(cid.clone()).await["data"], json!({"a": 7}));
    let (st, _) = patch(cpath.clone(), json!({})).await;
    assert_eq!(st, 204);
    assert_eq!(get(cid.clone()).await["data"], json!({"a": 7}));
    let (st, _) = patch(cpath.clone(), json!({"merge_existing_data": false})).await;
    assert_eq!(st, 204);
    assert_eq!(get(cid.clone()).await["data"], json!({}));
    let (st, b) = patch(cpath.clone(), json!({"name": "x"})).await;
    assert_eq!((st, err_loc(&b)), (422, json!(["body", "name"])));
    let (st, b) = patch(cpath.clone(), json!({"data": null})).await;
    assert_eq!((st, err_loc(&b)), (422, json!(["body", "data"])));
    let missing = "00000000-0000-4000-8000-00000000abcd";
    let (st, b) = patch(format!("/api/block_documents/{missing}"), json!({})).await;
    assert_eq!(
        (st, b),
        (404, json!({"detail": "Block document not found"}))
    );
    let (st, _) = raw(&app, "PATCH", &cpath, "nope").await;
    assert_eq!(st, 422);

    // References can not form cycles.
    let (st, b) = patch(
        cpath.clone(),
        json!({"data": {"back": {"$ref": {"block_document_id": pid}}}}),
    )
    .await;
    assert_eq!(
        (st, b),
        (
            400,
            json!({"detail": format!("Cannot create block document reference: it would introduce a cycle into the block_document_reference graph (parent={cid}, reference={pid}).")})
        )
    );
    let (st, _) = patch(
        format!("/api/block_documents/{pid}"),
        json!({"data": {"sub": {"$ref": {"block_document_id": pid}}}}),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(
        get(pid.clone()).await["data"]["sub"],
        json!({}),
        "unchanged after the refused update"
    );

    // Migrating to a schema of another type is refused; an unknown schema is a conflict.
    let secret_schema = call(
        &app,
        "POST",
        "/api/block_schemas/filter",
        Some(json!({"block_schemas": {"version": {"any_": ["3.9.1"]}}, "limit": 1})),
    )
    .await
    .1;
    let (st, b) = patch(
        cpath.clone(),
        json!({"block_schema_id": secret_schema[0]["id"], "data": {"a": 1}}),
    )
    .await;
    assert_eq!(
        (st, b),
        (
            400,
            json!({"detail": "Must migrate block document to a block schema of the same block type."})
        )
    );
    let (st, _) = patch(
        cpath.clone(),
        json!({"block_schema_id": missing, "data": {"a": 1}}),
    )
    .await;
    assert_eq!(st, 409);

    // An update without the reference drops it; deleting a child drops the reference too.
    let (st, _) = patch(
        format!("/api/block_documents/{pid}"),
        json!({"data": {"a": 3}}),
    )
    .await;
    assert_eq!(st, 204);
    let p = get(pid.clone()).await;
    assert_eq!(p["data"], json!({"a": 3, "pw": "outer"}));
    assert_eq!(p["block_document_references"], json!({}));
    let (st, _) = patch(
        format!("/api/block_documents/{pid}"),
        json!({"data": {"sub": {"$ref": {"block_document_id": cid}}}}),
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(
        get(pid.clone()).await["block_document_references"]["sub"]["block_document"]["id"],
        json!(cid)
    );
    let (st, _) = call(&app, "DELETE", &cpath, None).await;
    assert_eq!(st, 204);
    let p = get(pid.clone()).await;
    assert_eq!(p["block_document_references"], json!({}));
    assert_eq!(p["data"], json!({"a": 3, "pw": "outer"}));
    app.stop().await;
}
