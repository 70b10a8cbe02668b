//! Block types: the system types and schemas every workspace gets (once), and block types
//! created, read, updated and deleted.

use serde_json::{json, Value};

use super::id;
use crate::support::{call, err_loc, raw, TestApp};

const SYSTEM: &str = include_str!("../../../src/storage/blocks_system.json");
const SECRET_CHECKSUM: &str =
    "sha256:c078ed9c1e813e224c0b353d7ad4564a11d51d3198d9ac0686478165a1911c78";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_block_types_and_schemas_are_registered() {
    let app = TestApp::start().await;
    let system: Value = serde_json::from_str(SYSTEM).expect("system data");
    let (s, types) = call(&app, "POST", "/api/block_types/filter", None).await;
    assert_eq!(s, 200);
    // Orrery's own e-mail type besides the reference's, which keep their order.
    let slugs: Vec<&str> = types
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["slug"].as_str().unwrap_or_default())
        .filter(|s| *s != "smtp-email")
        .collect();
    assert_eq!(types.as_array().map(Vec::len), Some(slugs.len() + 1));
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
    assert_eq!(schemas.as_array().map(Vec::len), Some(captured.len() + 1));
    // Newest first (Orrery's own, registered after the captured ones), and every captured
    // schema reads back with exactly its captured fields.
    assert_eq!(schemas[0]["block_type"]["slug"], "smtp-email");
    assert_eq!(schemas[0]["capabilities"], json!(["notify"]));
    assert_eq!(schemas[0]["version"], "orrery-1");
    assert_eq!(
        schemas[1]["checksum"],
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
    use orrery::query::Page;
    use orrery::storage::blocks::{system, types};
    let app = TestApp::start().await;
    let state = app.app_state();
    let db = &state.stores.orion;
    let ws = orrery::ids::WorkspaceId::new("11111111-2222-4333-8444-555555555555");
    let page = Page {
        limit: 200,
        offset: 0,
    };
    let mut c = db.read().await.expect("read");
    assert!(types::list(&mut c, &ws, None, None, page)
        .await
        .expect("list")
        .is_empty());
    for _ in 0..2 {
        let w = ws.clone();
        db.write(async move |c| system::ensure(c, &w).await)
            .await
            .expect("registers");
    }
    let w = ws.clone();
    db.write(async move |c| system::register(c, &w, false).await)
        .await
        .expect("again");
    let rows = types::list(&mut c, &ws, None, None, page)
        .await
        .expect("list");
    // The 54 the 3.9.1 server registers and Orrery's own smtp-email.
    assert_eq!(rows.len(), 55);
    assert!(rows.iter().any(|t| t.slug == "smtp-email"));
    assert_eq!(rows.iter().filter(|t| t.is_protected).count(), 3);
    let (_, default_types) = call(&app, "POST", "/api/block_types/filter", None).await;
    assert_eq!(default_types.as_array().map(Vec::len), Some(55));
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
    assert_eq!((s, err_loc(&b)), (422, json!(["body", "slug"])));
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
        assert_eq!((s, err_loc(&b)), (422, json!(["body", "name"])), "{b}");
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
    assert_eq!((s, err_loc(&b)), (422, json!(["body", "name"])));
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
    assert_eq!((s, err_loc(&b)), (422, json!(["body", "offset"])));
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
