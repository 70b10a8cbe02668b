//! `TestApp`: a real Orrery server started in-process on an ephemeral port; `call`/`raw` to
//! send it requests; the helpers every test file shares (`set_state`, `wait_for`, error-body
//! accessors) and, in `builders`, the set-up builders.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use orrery::app::{self, Running};
use orrery::settings::Settings;
use orrery::state::Roles;
use serde_json::{json, Value};

mod builders;
pub use builders::{create_flow, create_queue, DeploymentBuilder, FlowRunBuilder, WorkPoolBuilder};

pub fn pg_url() -> Option<String> {
    std::env::var("ORRERY_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

pub fn redis_url() -> Option<String> {
    std::env::var("ORRERY_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Creates an empty PostgreSQL database next to the one in `base` and returns its URL.
pub async fn fresh_pg_database(base: &str) -> String {
    let mut url = url::Url::parse(base).expect("ORRERY_TEST_DATABASE_URL is a URL");
    let name = format!("orrery_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(base)
        .await
        .expect("connect to the test PostgreSQL");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Drops the database of `url` (connections are closed by force).
pub async fn drop_pg_database(base: &str, url: &str) {
    let name = url::Url::parse(url)
        .map(|u| u.path().trim_start_matches('/').to_string())
        .unwrap_or_default();
    if let Ok(mut admin) = AsyncPgConnection::establish(base).await {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

pub struct TestAppBuilder {
    env: Vec<(String, String)>,
    roles: Roles,
    use_backends: bool,
}

impl TestAppBuilder {
    /// Sets `ORRERY__SECTION__KEY`-style settings for this server.
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn roles(mut self, roles: Roles) -> Self {
        self.roles = roles;
        self
    }

    /// Keep the embedded default even when the CI backends are configured.
    pub fn embedded_only(mut self) -> Self {
        self.use_backends = false;
        self
    }

    pub async fn start(self) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = vec![
            (
                "ORRERY__SERVER__BIND".to_string(),
                "127.0.0.1:0".to_string(),
            ),
            ("ORRERY__SERVER__WORKERS".to_string(), "2".to_string()),
            (
                "ORRERY__SERVER__SHUTDOWN_TIMEOUT_SECONDS".to_string(),
                "5".to_string(),
            ),
            (
                "ORRERY__DATABASE__DATA_DIR".to_string(),
                dir.path().join("data").display().to_string(),
            ),
            ("ORRERY__DATABASE__POOL_SIZE".to_string(), "4".to_string()),
            (
                "ORRERY__REDIS__NAMESPACE".to_string(),
                format!("test-{}", uuid::Uuid::new_v4().simple()),
            ),
        ];
        let mut pg = None;
        if self.use_backends {
            // A test that names its database (replicas sharing one) gets no database of its own.
            let named = self.env.iter().any(|(k, _)| k == "ORRERY__DATABASE__URL");
            if let Some(base) = pg_url().filter(|_| !named) {
                let url = fresh_pg_database(&base).await;
                env.push(("ORRERY__DATABASE__URL".into(), url.clone()));
                pg = Some(url);
            }
            if let Some(redis) = redis_url() {
                env.push(("ORRERY__REDIS__URL".into(), redis));
            }
        }
        env.extend(self.env);
        let settings = Arc::new(Settings::load_from(None, &env).expect("test settings are valid"));
        let (stores, brokers) = app::connect(&settings)
            .await
            .expect("connect stores and brokers");
        let running = app::start(settings.clone(), self.roles, stores, brokers)
            .await
            .expect("server starts");
        let scheme = if settings.tls_files().is_some() {
            "https"
        } else {
            "http"
        };
        let app = TestApp {
            base: format!("{scheme}://{}", running.addr),
            addr: running.addr,
            client: reqwest::Client::new(),
            running: Some(running),
            settings,
            pg_url: pg,
            _dir: dir,
        };
        app.wait_until_migrated().await;
        app
    }
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT` (or https).
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub settings: Arc<Settings>,
    pub pg_url: Option<String>,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            env: Vec::new(),
            roles: Roles::all(),
            use_backends: true,
        }
    }

    pub async fn start() -> TestApp {
        Self::builder().start().await
    }

    /// `base` + `path`, e.g. `app.url("/api/health")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn wait_until_migrated(&self) {
        let state = self
            .running
            .as_ref()
            .map(|r| r.state.clone())
            .expect("running");
        for _ in 0..600 {
            if state.is_migrated() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("migrations did not finish");
    }

    pub fn app_state(&self) -> actix_web::web::Data<orrery::state::AppState> {
        self.running
            .as_ref()
            .map(|r| r.state.clone())
            .expect("running")
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean shutdown");
        }
        if let (Some(url), Some(base)) = (self.pg_url.take(), pg_url()) {
            drop_pg_database(&base, &url).await;
        }
    }
}

/// Sends a request with an optional JSON body; answers (status, body or null). No route may
/// answer 500.
pub async fn call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = app.url(path);
    let req = match method {
        "GET" => app.client.get(url),
        "POST" => app.client.post(url),
        "PUT" => app.client.put(url),
        "PATCH" => app.client.patch(url),
        "DELETE" => app.client.delete(url),
        other => panic!("method {other}"),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    assert_ne!(status, 500, "{method} {path} answered 500: {text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends `body` as raw bytes (for malformed JSON).
/// Sends `body` as raw bytes (malformed JSON); no route may answer 500.
pub async fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    body: impl Into<Vec<u8>>,
) -> (u16, Value) {
    let url = app.url(path);
    let req = match method {
        "PATCH" => app.client.patch(url),
        "PUT" => app.client.put(url),
        _ => app.client.post(url),
    };
    let r = req
        .header("content-type", "application/json")
        .body(body.into())
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    assert_ne!(status, 500, "{method} {path} answered 500");
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `POST /api/flow_runs/{run_id}/set_state` with `{"state": state}`; `force` adds `"force": …`
/// (`None` leaves it out, for the server's default). Answers (status, body) unchecked.
pub async fn set_state(
    app: &TestApp,
    run_id: &str,
    state: Value,
    force: impl Into<Option<bool>>,
) -> (u16, Value) {
    let mut body = json!({ "state": state });
    if let Some(force) = force.into() {
        body["force"] = json!(force);
    }
    call(
        app,
        "POST",
        &format!("/api/flow_runs/{run_id}/set_state"),
        Some(body),
    )
    .await
}

/// Asserts that a `set_state` (or resume) answer is `201 ACCEPT`.
#[track_caller]
pub fn assert_accepted((status, body): (u16, Value)) {
    assert_eq!((status, &body["status"]), (201, &json!("ACCEPT")), "{body}");
}

/// Calls `f` every 100 ms until `ok` holds for its value and answers that value; panics after
/// `secs` seconds with the last value.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F, ok: impl Fn(&T) -> bool) -> T
where
    T: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = f().await;
        if ok(&v) {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}; last value: {v:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `{"detail": msg}`, the body of most error answers.
pub fn detail(msg: &str) -> Value {
    json!({ "detail": msg })
}

/// The `type` of the first validation error of a 422 body.
pub fn err_type(body: &Value) -> Value {
    body["exception_detail"][0]["type"].clone()
}

/// The `loc` of the first validation error of a 422 body.
pub fn err_loc(body: &Value) -> Value {
    body["exception_detail"][0]["loc"].clone()
}

/// The `name` of every item of a list body.
pub fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v["name"].as_str().unwrap_or_default().to_string())
        .collect()
}
