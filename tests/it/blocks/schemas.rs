//! Block schemas: keyed by checksum and version, nested schemas, and bad input.

use serde_json::{json, Value};

use super::id;
use crate::support::{call, err_loc, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_schemas_are_keyed_by_checksum_and_version() {
    let app = TestApp::start().await;
    let (s, t) = call(
        &app,
        "POST",
        "/api/block_types/",
        Some(json!({"name": "My Thing", "slug": "my-thing"})),
    )
    .await;
    assert_eq!(s, 201);
    let tid = id(&t);
    // The checksum the reference server computes for these fields (float formatting included).
    let fields = json!({"title": "MyThing", "type": "object",
        "properties": {"a": {"type": "integer", "default": 1.5e-7}, "pw": {"type": "string", "format": "password"}},
        "secret_fields": ["pw"], "block_type_slug": "my-thing", "block_schema_references": {}});
    let (s, created) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"block_type_id": tid, "fields": fields, "capabilities": ["cap-x"]})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(
        created["checksum"],
        "sha256:34726d13937da31b1b042708155b9ee2a0a652784161da7986024bb711850b83"
    );
    assert_eq!(created["version"], "non-versioned");
    assert_eq!(created["fields"], fields);
    assert_eq!(created["block_type"]["slug"], "my-thing");
    let (s, again) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"block_type_id": tid, "fields": fields, "capabilities": ["cap-y"]})),
    )
    .await;
    assert_eq!((s, id(&again)), (200, id(&created)));
    assert_eq!(again["capabilities"], json!(["cap-x"]));
    let (s, v2) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"block_type_id": tid, "fields": fields, "version": "2.0"})),
    )
    .await;
    assert_eq!(s, 201);
    assert_ne!(id(&v2), id(&created));

    let missing = "00000000-0000-4000-8000-00000000abcd";
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"block_type_id": missing, "fields": {}})),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            404,
            json!({"detail": format!("Block type {missing} not found.")})
        )
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"fields": {}})),
    )
    .await;
    assert_eq!((s, err_loc(&b)), (422, json!(["body", "block_type_id"])));
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"block_type_id": "nope", "fields": {}})),
    )
    .await;
    assert_eq!((s, err_loc(&b)), (422, json!(["body", "block_type_id"])));
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"block_type_id": tid, "fields": {"title": "X",
            "block_schema_references": {"child": {"block_type_slug": "nope", "block_schema_checksum": "sha256:abc"}}}})),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            409,
            json!({"detail": "Cannot create block schema because block type 'nope' was not found.Did you forget to register the block type?"})
        )
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"block_type_id": tid, "fields": {"title": "X",
            "block_schema_references": {"child": {"block_type_slug": "secret", "block_schema_checksum": "sha256:abc"}}}})),
    )
    .await;
    assert_eq!(
        s, 400,
        "no definitions to register the nested schema from: {b}"
    );

    // A schema with a nested block: the nested schema is registered from the definitions,
    // stored on its own, and the parent reads back with the references and definitions.
    let (_, inner_type) = call(
        &app,
        "POST",
        "/api/block_types/",
        Some(json!({"name": "Inner Creds", "slug": "inner-creds"})),
    )
    .await;
    let inner_fields = json!({"title": "InnerCreds", "type": "object", "block_type_slug": "inner-creds",
        "properties": {"user": {"type": "string"}, "opts": {"$ref": "#/definitions/Opts"}},
        "secret_fields": [], "block_schema_references": {}});
    let inner_with_defs = {
        let mut with_defs = inner_fields.clone();
        with_defs["definitions"] = json!({"Opts": {"type": "object", "title": "Opts"}});
        with_defs
    };
    let parent_fields = json!({"title": "Outer", "type": "object", "block_type_slug": "my-thing",
        "properties": {"creds": {"$ref": "#/definitions/InnerCreds"}, "n": {"type": "integer"}},
        "secret_fields": [],
        "block_schema_references": {"creds": {"block_type_slug": "inner-creds",
            "block_schema_checksum": "sha256:0000"}},
        "definitions": {"InnerCreds": inner_fields, "Opts": {"type": "object", "title": "Opts"}}});
    let (s, outer) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"block_type_id": tid, "fields": parent_fields, "version": "1"})),
    )
    .await;
    assert_eq!(s, 201, "{outer}");
    // The answer echoes the posted references and definitions, as Prefect's does; a read
    // rebuilds them from what was stored.
    assert_eq!(
        outer["fields"]["block_schema_references"],
        parent_fields["block_schema_references"]
    );
    assert_eq!(outer["fields"]["definitions"], parent_fields["definitions"]);
    let (s, outer) = call(
        &app,
        "GET",
        &format!("/api/block_schemas/{}", id(&outer)),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let refs = &outer["fields"]["block_schema_references"]["creds"];
    assert_eq!(refs["block_type_slug"], "inner-creds");
    let child_checksum = refs["block_schema_checksum"].as_str().expect("checksum");
    let (s, child) = call(
        &app,
        "GET",
        &format!("/api/block_schemas/checksum/{child_checksum}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{child}");
    assert_eq!(child["block_type_id"], inner_type["id"]);
    assert_eq!(child["version"], "non-versioned");
    assert_eq!(
        child["fields"]["definitions"],
        inner_with_defs["definitions"]
    );
    assert_eq!(
        outer["fields"]["definitions"]["InnerCreds"]["properties"],
        inner_fields["properties"]
    );
    assert_eq!(
        outer["fields"]["definitions"]["Opts"],
        json!({"type": "object", "title": "Opts"})
    );

    let (s, r) = call(
        &app,
        "GET",
        &format!("/api/block_schemas/{}", id(&outer)),
        None,
    )
    .await;
    assert_eq!((s, r["fields"].clone()), (200, outer["fields"].clone()));
    let (s, b) = call(&app, "GET", &format!("/api/block_schemas/{missing}"), None).await;
    assert_eq!((s, b), (404, json!({"detail": "Block schema not found"})));
    let (s, b) = call(&app, "GET", "/api/block_schemas/checksum/sha256:nope", None).await;
    assert_eq!((s, b), (404, json!({"detail": "Block schema not found"})));
    let path = format!(
        "/api/block_schemas/checksum/{}?version=9",
        created["checksum"].as_str().unwrap_or_default()
    );
    let (s, _) = call(&app, "GET", &path, None).await;
    assert_eq!(s, 404);

    let list = |body: Value| {
        let app = &app;
        async move {
            let (s, r) = call(app, "POST", "/api/block_schemas/filter", Some(body)).await;
            assert_eq!(s, 200, "{r}");
            r.as_array()
                .expect("list")
                .iter()
                .map(|x| x["id"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(json!({"block_schemas": {"block_type_id": {"any_": [tid]}}})).await,
        vec![id(&outer), id(&v2), id(&created)],
        "newest first"
    );
    assert_eq!(
        list(json!({"block_schemas": {"block_type_id": {"any_": [tid]}, "version": {"any_": ["2.0"]}}}))
            .await,
        vec![id(&v2)]
    );
    assert_eq!(
        list(json!({"block_schemas": {"block_capabilities": {"all_": ["cap-x"]}}})).await,
        vec![id(&created)]
    );
    assert_eq!(
        list(
            json!({"block_schemas": {"operator": "or_", "version": {"any_": ["2.0"]},
            "block_capabilities": {"all_": ["cap-x"]}}})
        )
        .await,
        vec![id(&v2), id(&created)]
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/block_schemas/filter",
        Some(json!({"limit": 201})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, caps) = call(&app, "GET", "/api/block_capabilities", None).await;
    assert_eq!(s, 200);
    assert!(caps.as_array().expect("list").contains(&json!("cap-x")));

    let (s, _) = call(
        &app,
        "DELETE",
        &format!("/api/block_schemas/{}", id(&v2)),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, b) = call(
        &app,
        "DELETE",
        &format!("/api/block_schemas/{}", id(&v2)),
        None,
    )
    .await;
    assert_eq!((s, b), (404, json!({"detail": "Block schema not found"})));
    app.stop().await;
}
