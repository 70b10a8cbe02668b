//! The foundation: health and versions, readiness, host routing, workspace URLs, the API version
//! check, error bodies, TLS, the UI page, storage placement and migration bookkeeping.

use serde_json::{json, Value};

use crate::support::{call, pg_url, redis_url, TestApp};
use orrery::storage::accounts::{DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.client.get(app.url(path)).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_version_and_admin_version() {
    let app = TestApp::start().await;
    assert_eq!(get(&app, "/api/health").await, (200, json!(true)));
    assert_eq!(get(&app, "/api/version").await, (200, json!("0.8.4")));
    let (status, v) = get(&app, "/api/admin/version").await;
    assert_eq!(status, 200);
    let text = v.as_str().expect("a string");
    assert!(text.starts_with("3."), "{text}");
    assert_eq!(get(&app, "/api/hello").await, (200, json!("👋")));
    let (status, ready) = get(&app, "/api/ready").await;
    assert_eq!((status, &ready["message"]), (200, &json!("OK")), "{ready}");
    for store in ["orion", "nebula", "events"] {
        assert_eq!(ready["stores"][store], "ok", "{ready}");
    }
    let brokers = if app.settings.redis.url.is_empty() {
        "memory"
    } else {
        "ok"
    };
    for role in ["cache", "work", "streams"] {
        assert_eq!(ready["stores"][role], brokers, "{ready}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_token_says_protection_is_disabled() {
    let app = TestApp::start().await;
    let (status, body) = get(&app, "/api/csrf-token?client=abc").await;
    assert_eq!(
        (status, body),
        (422, json!({"detail": "CSRF protection is disabled."}))
    );
    let (status, body) = get(&app, "/api/csrf-token").await;
    assert_eq!(status, 422);
    assert_eq!(
        body["exception_detail"][0]["loc"],
        json!(["query", "client"])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_version_header_is_checked() {
    let app = TestApp::start().await;
    let send = |v: &'static str| {
        app.client
            .get(app.url("/api/health"))
            .header("X-PREFECT-API-VERSION", v)
            .send()
    };
    assert_eq!(send("0.8.4").await.expect("ok").status().as_u16(), 200);
    let bad = send("banana").await.expect("ok");
    assert_eq!(bad.status().as_u16(), 400);
    let body: Value = bad.json().await.expect("json");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("Invalid X-PREFECT-API-VERSION"),
        "{body}"
    );
    let old = send("0.7.0").await.expect("ok");
    assert_eq!(old.status().as_u16(), 400);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_urls_resolve_or_404() {
    let app = TestApp::start().await;
    let prefix = format!("/api/accounts/{DEFAULT_ACCOUNT_ID}/workspaces/{DEFAULT_WORKSPACE_ID}");
    assert_eq!(
        get(&app, &format!("{prefix}/health")).await,
        (200, json!(true))
    );
    assert_eq!(get(&app, &format!("{prefix}/admin/version")).await.0, 200);
    let unknown = format!(
        "/api/accounts/{DEFAULT_ACCOUNT_ID}/workspaces/{}/health",
        uuid::Uuid::new_v4()
    );
    assert_eq!(
        get(&app, &unknown).await,
        (404, json!({"detail": "Workspace not found"}))
    );
    let wrong_account = format!(
        "/api/accounts/{}/workspaces/{DEFAULT_WORKSPACE_ID}/health",
        uuid::Uuid::new_v4()
    );
    assert_eq!(get(&app, &wrong_account).await.0, 404);
    assert_eq!(
        get(&app, "/api/accounts/not-a-uuid/workspaces/x/health")
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_paths_are_json_404s() {
    let app = TestApp::start().await;
    assert_eq!(
        get(&app, "/api/nope").await,
        (404, json!({"detail": "Not Found"}))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_route_to_api_or_ui() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVER__API_HOST", "api.example.com")
        .setting("ORRERY__SERVER__APP_HOST", "app.example.com")
        .start()
        .await;
    let req =
        |host: &'static str, path: &str| app.client.get(app.url(path)).header("Host", host).send();
    // The API host serves the API and nothing else.
    let r = req("api.example.com", "/api/health").await.expect("ok");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.expect("json"), json!(true));
    let r = req("api.example.com", "/").await.expect("ok");
    assert_eq!(r.status().as_u16(), 404);
    // The app host serves the UI for every path but /api, whatever the case and port.
    let r = req("App.Example.COM:4200", "/").await.expect("ok");
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("policy")
        .to_string();
    assert!(
        csp.contains("connect-src 'self' http://api.example.com:4200;"),
        "the page may call the API host: {csp}"
    );
    let page = r.text().await.expect("text");
    assert!(
        page.contains("Orrery") && page.contains("healthy"),
        "{page}"
    );
    assert!(
        page.contains("http://api.example.com:4200/api"),
        "the page names the API host, on the port the page came through"
    );
    let r = req("app.example.com", "/api/health").await.expect("ok");
    assert_eq!(r.status().as_u16(), 404, "the app host serves no API");
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"detail": "Not Found"})
    );
    let r = req("API.example.com:4200", "/api/health")
        .await
        .expect("ok");
    assert_eq!(
        r.status().as_u16(),
        200,
        "host names match without case or port"
    );
    // Any other host: the single-host layout.
    let r = req("other.example.com", "/api/health").await.expect("ok");
    assert_eq!(r.json::<Value>().await.expect("json"), json!(true));
    let r = req("other.example.com", "/runs/flow-run/x")
        .await
        .expect("ok");
    assert!(r.text().await.expect("text").contains("<html"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_root_shows_version_and_health_and_serves_assets() {
    let app = TestApp::start().await;
    let r = app.client.get(app.url("/")).send().await.expect("ok");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    let page = r.text().await.expect("text");
    assert!(
        page.contains(&format!("orrery {}", env!("CARGO_PKG_VERSION"))),
        "{page}"
    );
    assert!(page.contains("healthy"));
    let css = app
        .client
        .get(app.url("/style.css"))
        .send()
        .await
        .expect("ok");
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/css"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_ui_is_one_page_with_a_strict_policy_and_its_modules() {
    let app = TestApp::start().await;
    // Prefect's URLs get the application's page, with a policy that runs nothing inline.
    for path in [
        "/",
        "/runs",
        "/runs/flow-run/0f0f0000-0000-4000-8000-000000000007",
        "/settings",
    ] {
        let r = app.client.get(app.url(path)).send().await.expect("ok");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("policy")
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let page = r.text().await.expect("text");
        assert!(
            page.contains(r#"<script type="module" src="/js/main.js"></script>"#),
            "{page}"
        );
        assert!(page.contains(r#"data-api="/api""#), "{page}");
        assert!(!page.contains("{{"), "every placeholder is filled: {page}");
    }
    for module in ["/js/main.js", "/js/dom.js", "/js/pages/flow_run.js"] {
        let r = app.client.get(app.url(module)).send().await.expect("ok");
        assert_eq!(r.status().as_u16(), 200, "{module}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/javascript"));
        assert!(r.text().await.expect("text").contains("export"), "{module}");
    }
    let missing = app
        .client
        .get(app.url("/js/nope.js"))
        .send()
        .await
        .expect("ok");
    assert_eq!(missing.status().as_u16(), 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_without_api_or_ui_keep_only_probes() {
    let app = TestApp::builder()
        .roles(orrery::state::Roles::parse("services,events").expect("roles"))
        .start()
        .await;
    assert_eq!(get(&app, "/api/health").await, (200, json!(true)));
    assert_eq!(
        app.client
            .get(app.url("/"))
            .send()
            .await
            .expect("ok")
            .status()
            .as_u16(),
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_with_a_generated_certificate() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    let app = TestApp::builder()
        .setting("ORRERY__TLS__CERT_FILE", &cert_path.display().to_string())
        .setting("ORRERY__TLS__KEY_FILE", &key_path.display().to_string())
        .start()
        .await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("pem");
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .expect("client");
    let url = format!("https://localhost:{}/api/health", app.addr.port());
    let r = client
        .get(&url)
        .send()
        .await
        .expect("TLS handshake and request");
    assert_eq!(r.json::<Value>().await.expect("json"), json!(true));
    // Plain HTTP to the TLS port does not get an answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/health", app.addr.port()))
        .send()
        .await;
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_creates_three_sqlite_files() {
    let app = TestApp::builder().embedded_only().start().await;
    let dir = std::path::PathBuf::from(&app.settings.database.data_dir);
    for db in ["orion", "nebula", "events"] {
        assert!(dir.join(format!("{db}.db")).is_file(), "{db}.db missing");
    }
    let state = app.app_state();
    assert!(state.stores.orion.describe().starts_with("sqlite "));
    app.stop().await;
}

#[test]
fn migration_versions_match_across_backends() {
    use orrery::storage::{migrations, DbName};
    for db in DbName::ALL {
        let pg = migrations::versions_pg(db);
        assert!(!pg.is_empty(), "{} has migrations", db.as_str());
        assert_eq!(
            pg,
            migrations::versions_sqlite(db),
            "{} postgres and sqlite sets differ",
            db.as_str()
        );
    }
}

/// One PostgreSQL database for all three: each logical database has its own schema, tables and
/// migration bookkeeping, so identical version ids do not collide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapsed_postgres_keeps_bookkeeping_apart() {
    let Some(_) = pg_url() else {
        eprintln!("skipped: ORRERY_TEST_DATABASE_URL is not set");
        return;
    };
    let app = TestApp::start().await;
    let url = app.pg_url.clone().expect("a test database");
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    for (schema, table) in [
        ("orion", "flow_runs"),
        ("nebula", "workspaces"),
        ("events", "events"),
    ] {
        let q = format!(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '{schema}' AND table_name IN ('{table}', '__diesel_schema_migrations')"
        );
        let c: Count = diesel::sql_query(q)
            .get_result(&mut conn)
            .await
            .expect("query");
        assert_eq!(c.n, 2, "{schema} has its tables and its own bookkeeping");
        let versions = format!("SELECT count(*) AS n FROM {schema}.__diesel_schema_migrations");
        let v: Count = diesel::sql_query(versions)
            .get_result(&mut conn)
            .await
            .expect("query");
        assert_eq!(
            v.n as usize,
            orrery::storage::migrations::versions_pg(match schema {
                "orion" => orrery::storage::DbName::Orion,
                "nebula" => orrery::storage::DbName::Nebula,
                _ => orrery::storage::DbName::Events,
            })
            .len()
        );
    }
    // The default account and workspace exist in nebula.
    let c: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM nebula.workspaces WHERE id = '{DEFAULT_WORKSPACE_ID}'"
    ))
    .get_result(&mut conn)
    .await
    .expect("query");
    assert_eq!(c.n, 1);
    // A second start (a replica) finds nothing to migrate and the same data.
    let state = app.app_state();
    assert_eq!(state.stores.pending_migrations().await.expect("pending"), 0);
    assert_eq!(state.stores.migrate().await.expect("idempotent"), 0);
    app.stop().await;
}

/// Three Redis URLs: each role uses its own database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_redis_urls_give_each_role_its_own() {
    let Some(base) = redis_url() else {
        eprintln!("skipped: ORRERY_TEST_REDIS_URL is not set");
        return;
    };
    let root = base
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches('/')
        .to_string();
    let app = TestApp::builder()
        .setting("ORRERY__REDIS__CACHE_URL", &format!("{root}/1"))
        .setting("ORRERY__REDIS__WORK_URL", &format!("{root}/2"))
        .setting("ORRERY__REDIS__STREAMS_URL", &format!("{root}/3"))
        .start()
        .await;
    let described = app.app_state().brokers.describe();
    let find = |role: &str| {
        described
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    };
    assert!(find("cache").ends_with("/1"), "{described:?}");
    assert!(find("work").ends_with("/2"), "{described:?}");
    assert!(find("streams").ends_with("/3"), "{described:?}");
    app.stop().await;
}

/// Sends `head` (request line and headers, CRLF-terminated, then `body`) on a fresh connection
/// and answers the status line of the response.
async fn raw_status_line(app: &TestApp, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(body).await.expect("write body");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), s.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A body over the limit answers 413 (not 400), and a body that stops arriving answers 408
/// after `server.body_timeout_seconds` instead of holding the connection open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_answer_413_and_stalled_bodies_408() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVER__BODY_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    let over = orrery::extract::json::MAX_BODY + 1;
    let status = raw_status_line(
        &app,
        &format!(
            "POST /api/flows/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {over}\r\n\r\n"
        ),
        b"",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    let started = std::time::Instant::now();
    let status = raw_status_line(
        &app,
        "POST /api/flows/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        b"{",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    // The server still answers.
    let (code, _) = call(&app, "GET", "/api/health", None).await;
    assert_eq!(code, 200);
    app.stop().await;
}
