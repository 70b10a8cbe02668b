//! Blocks against a real server: system block types and schemas, block types, schemas
//! (checksums, nested schemas), documents (secrets, references, updates, anonymous documents)
//! and capabilities — status codes and bodies, including bad input. Nothing answers 500.

use serde_json::{json, Value};

use crate::support::TestApp;
use crate::support::{call, raw};

const SYSTEM: &str = include_str!("../../src/storage/blocks_system.json");
const SECRET_CHECKSUM: &str =
    "sha256:c078ed9c1e813e224c0b353d7ad4564a11d51d3198d9ac0686478165a1911c78";

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn loc(v: &Value) -> Value {
    v["exception_detail"][0]["loc"].clone()
}

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
async fn system_block_types_and_schemas_are_registered() {
    let app = TestApp::start().await;
    let system: Value = serde_json::from_str(SYSTEM).expect("system data");
    let (s, types) = call(&app, "POST", "/api/block_types/filter", None).await;
    assert_eq!(s, 200);
    let slugs: Vec<&str> = types
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["slug"].as_str().unwrap_or_default())
        .collect();
    let expected: Vec<&str> = system["block_types"]
        .as_array()
        .expect("types")
        .iter()
        .map(|t| t["slug"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        slugs, expected,
        "same types, in the reference server's name order"
    );
    let (s, schemas) = call(
        &app,
        "POST",
        "/api/block_schemas/filter",
        Some(json!({"limit": 200})),
    )
    .await;
    assert_eq!(s, 200);
    let captured = system["block_schemas"].as_array().expect("schemas");
    assert_eq!(schemas.as_array().map(Vec::len), Some(captured.len()));
    // Newest first, and every captured schema reads back with exactly its captured fields.
    assert_eq!(
        schemas[0]["checksum"],
        captured[captured.len() - 1]["checksum"]
    );
    for c in captured {
        let path = format!(
            "/api/block_schemas/checksum/{}?version={}",
            c["checksum"].as_str().expect("checksum"),
            c["version"].as_str().expect("version")
        );
        let (s, got) = call(&app, "GET", &path, None).await;
        assert_eq!(s, 200, "{path}");
        assert_eq!(got["fields"], c["fields"], "{path}");
        assert_eq!(got["capabilities"], c["capabilities"], "{path}");
        assert_eq!(got["block_type"]["slug"], c["block_type_slug"], "{path}");
    }
    // The Secret type the 3.9.1 client looks up.
    let (s, secret) = call(&app, "GET", "/api/block_types/slug/secret", None).await;
    assert_eq!(s, 200);
    assert_eq!(secret["is_protected"], true);
    assert_eq!(secret["name"], "Secret");
    let (s, schema) = call(
        &app,
        "GET",
        &format!("/api/block_schemas/checksum/{SECRET_CHECKSUM}?version=3.9.1"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(schema["block_type_id"], secret["id"]);
    assert_eq!(schema["fields"]["secret_fields"], json!(["value", "value"]));
    // Protected types and their schemas refuse deletion.
    let (s, b) = call(
        &app,
        "DELETE",
        &format!("/api/block_types/{}", id(&secret)),
        None,
    )
    .await;
    assert_eq!(
        (s, b),
        (
            403,
            json!({"detail": "protected block types cannot be deleted."})
        )
    );
    let (s, b) = call(
        &app,
        "DELETE",
        &format!("/api/block_schemas/{}", id(&schema)),
        None,
    )
    .await;
    assert_eq!(
        (s, b),
        (
            403,
            json!({"detail": "Block schemas for protected block types cannot be deleted."})
        )
    );
    // A protected type may be patched; install_system_block_types puts it back.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/block_types/{}", id(&secret)),
        Some(json!({"description": "changed"})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, changed) = call(&app, "GET", "/api/block_types/slug/secret", None).await;
    assert_eq!(changed["description"], "changed");
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_types/install_system_block_types",
        None,
    )
    .await;
    assert_eq!((s, b), (200, Value::Null));
    let (_, back) = call(&app, "GET", "/api/block_types/slug/secret", None).await;
    assert_eq!(back["description"], secret["description"]);
    // Capabilities of every schema, sorted.
    let (s, caps) = call(&app, "GET", "/api/block_capabilities/", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        caps,
        json!([
            "get-directory",
            "notify",
            "put-directory",
            "read-path",
            "write-path"
        ])
    );
    // The workspace-prefixed URL reaches the same (default) workspace.
    let (s, same) = call(
        &app,
        "GET",
        "/api/accounts/00000000-0000-4000-8000-000000000001/workspaces/00000000-0000-4000-8000-000000000002/block_types/slug/secret",
        None,
    )
    .await;
    assert_eq!((s, id(&same)), (200, id(&secret)));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workspace_gets_the_system_blocks_once() {
    use orrery::storage::blocks::{system, types};
    use orrery::storage::filters::Page;
    let app = TestApp::start().await;
    let state = app.app_state();
    let db = &state.stores.orion;
    let ws = "11111111-2222-4333-8444-555555555555";
    let page = Page {
        limit: 200,
        offset: 0,
    };
    let mut c = db.read().await.expect("read");
    assert!(types::list(&mut c, ws, None, None, page)
        .await
        .expect("list")
        .is_empty());
    for _ in 0..2 {
        db.write(async move |c| system::ensure(c, ws).await)
            .await
            .expect("registers");
    }
    db.write(async move |c| system::register(c, ws, false).await)
        .await
        .expect("again");
    let rows = types::list(&mut c, ws, None, None, page)
        .await
        .expect("list");
    assert_eq!(rows.len(), 54);
    assert_eq!(rows.iter().filter(|t| t.is_protected).count(), 3);
    let (_, default_types) = call(&app, "POST", "/api/block_types/filter", None).await;
    assert_eq!(default_types.as_array().map(Vec::len), Some(54));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_types_are_created_read_updated_and_deleted() {
    let app = TestApp::start().await;
    let (s, t) = call(
        &app,
        "POST",
        "/api/block_types/",
        Some(json!({"name": "My Thing", "slug": "my-thing", "description": "a <b> & c"})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["description"], "a &lt;b&gt; &amp; c");
    assert_eq!(t["is_protected"], false);
    assert_eq!(t["logo_url"], Value::Null);
    let tid = id(&t);
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_types/",
        Some(json!({"name": "Other", "slug": "my-thing"})),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            409,
            json!({"detail": "Block type with name \"Other\" already exists"})
        )
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_types/",
        Some(json!({"name": "Prefect Thing", "slug": "pt"})),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            403,
            json!({"detail": "Block type names beginning with 'Prefect' are reserved."})
        )
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_types/",
        Some(json!({"name": "Bad", "slug": "Bad_Slug"})),
    )
    .await;
    assert_eq!((s, loc(&b)), (422, json!(["body", "slug"])));
    assert_eq!(
        b["exception_detail"][0]["msg"],
        "Value error, Block type slug must only contain lowercase letters, numbers, and dashes."
    );
    for body in [
        json!({"name": "a/b", "slug": "ab"}),
        json!({"name": "", "slug": "ab"}),
        json!({"slug": "ab"}),
        json!({"name": 1, "slug": "ab"}),
    ] {
        let (s, b) = call(&app, "POST", "/api/block_types/", Some(body)).await;
        assert_eq!((s, loc(&b)), (422, json!(["body", "name"])), "{b}");
    }
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_types/",
        Some(json!({"name": "X", "slug": "x", "extra": 1})),
    )
    .await;
    assert_eq!(
        (s, b["exception_detail"][0]["type"].clone()),
        (422, json!("extra_forbidden"))
    );
    let (s, _) = raw(&app, "POST", "/api/block_types/", "{not json").await;
    assert_eq!(s, 422);

    let (s, r) = call(&app, "GET", &format!("/api/block_types/{tid}"), None).await;
    assert_eq!((s, r["slug"].clone()), (200, json!("my-thing")));
    let (s, r) = call(&app, "GET", "/api/block_types/slug/my-thing", None).await;
    assert_eq!((s, id(&r)), (200, tid.clone()));
    let missing = "00000000-0000-4000-8000-00000000abcd";
    let (s, b) = call(&app, "GET", &format!("/api/block_types/{missing}"), None).await;
    assert_eq!((s, b), (404, json!({"detail": "Block type not found"})));
    let (s, b) = call(&app, "GET", "/api/block_types/slug/nope", None).await;
    assert_eq!((s, b), (404, json!({"detail": "Block type not found"})));
    let (s, b) = call(&app, "GET", "/api/block_types/not-a-uuid", None).await;
    assert_eq!((s, b), (404, json!({"detail": "Not Found"})));

    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/block_types/{tid}"),
        Some(json!({"description": "new <x>", "logo_url": "https://x/y.png"})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, r) = call(&app, "GET", &format!("/api/block_types/{tid}"), None).await;
    assert_eq!(r["description"], "new <x>", "updates are not escaped");
    assert_eq!(r["logo_url"], "https://x/y.png");
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/block_types/{tid}"),
        Some(json!({"logo_url": null})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, r) = call(&app, "GET", &format!("/api/block_types/{tid}"), None).await;
    assert_eq!(r["logo_url"], Value::Null);
    assert_eq!(r["description"], "new <x>");
    let (s, b) = call(
        &app,
        "PATCH",
        &format!("/api/block_types/{tid}"),
        Some(json!({"name": "zz"})),
    )
    .await;
    assert_eq!((s, loc(&b)), (422, json!(["body", "name"])));
    let (s, b) = call(
        &app,
        "PATCH",
        &format!("/api/block_types/{missing}"),
        Some(json!({})),
    )
    .await;
    assert_eq!((s, b), (404, json!({"detail": "Block type not found"})));

    let filter = |body: Value| {
        let app = &app;
        async move {
            let (s, r) = call(app, "POST", "/api/block_types/filter", Some(body)).await;
            assert_eq!(s, 200, "{r}");
            r.as_array()
                .expect("list")
                .iter()
                .map(|t| t["slug"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        filter(json!({"block_types": {"name": {"like_": "secr"}}})).await,
        vec!["aws-secret", "gcpsecret", "secret"]
    );
    assert_eq!(
        filter(json!({"block_types": {"slug": {"any_": ["my-thing", "secret"]}}})).await,
        vec!["my-thing", "secret"]
    );
    assert_eq!(
        filter(
            json!({"block_schemas": {"block_capabilities": {"all_": ["read-path", "write-path"]}}})
        )
        .await,
        vec![
            "azure-blob-storage-container",
            "gcs-bucket",
            "local-file-system",
            "remote-file-system",
            "s3-bucket",
            "smb"
        ]
    );
    assert_eq!(filter(json!({"limit": 2, "offset": 1})).await.len(), 2);
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_types/filter",
        Some(json!({"limit": 300})),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            422,
            json!({"detail": "Invalid limit: must be less than or equal to 200."})
        )
    );
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_types/filter",
        Some(json!({"offset": -1})),
    )
    .await;
    assert_eq!((s, loc(&b)), (422, json!(["body", "offset"])));
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_types/filter",
        Some(json!({"block_types": {"bogus": 1}})),
    )
    .await;
    assert_eq!(
        (s, b["exception_detail"][0]["type"].clone()),
        (422, json!("extra_forbidden"))
    );

    let (s, _) = call(&app, "DELETE", &format!("/api/block_types/{tid}"), None).await;
    assert_eq!(s, 204);
    let (s, b) = call(&app, "DELETE", &format!("/api/block_types/{tid}"), None).await;
    assert_eq!((s, b), (404, json!({"detail": "Block type not found"})));
    app.stop().await;
}

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
    assert_eq!((s, loc(&b)), (422, json!(["body", "block_type_id"])));
    let (s, b) = call(
        &app,
        "POST",
        "/api/block_schemas/",
        Some(json!({"block_type_id": "nope", "fields": {}})),
    )
    .await;
    assert_eq!((s, loc(&b)), (422, json!(["body", "block_type_id"])));
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
    assert_eq!((st, loc(&b)), (422, json!(["query", "include_secrets"])));
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
    assert_eq!((st, loc(&b)), (422, json!(["body", "name"])));
    let (st, b) = create(json!({"block_type_id": t, "block_schema_id": s})).await;
    assert_eq!((st, loc(&b)), (422, json!(["body"])));
    assert_eq!(
        b["exception_detail"][0]["msg"],
        "Value error, Names must be provided for block documents."
    );
    let (st, b) = create(json!({"name": "x", "block_type_id": t})).await;
    assert_eq!((st, loc(&b)), (422, json!(["body", "block_schema_id"])));
    let (st, b) =
        create(json!({"name": "x", "block_type_id": t, "block_schema_id": s, "data": []})).await;
    assert_eq!((st, loc(&b)), (422, json!(["body", "data"])));
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
    assert_eq!((st, loc(&b)), (422, json!(["body", "sort"])));
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
    assert_eq!((st, loc(&b)), (422, json!(["body", "name"])));
    let (st, b) = patch(cpath.clone(), json!({"data": null})).await;
    assert_eq!((st, loc(&b)), (422, json!(["body", "data"])));
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
