//! Authentication and authorisation (`auth.mode = "required"`): every route of the route table
//! × each kind of credential and each workspace role gets 401 / 403 / 404 or passes, keys made
//! by the administration functions the command line uses, `/me/workspaces` as `prefect cloud
//! login` reads it, and the table covering every route registered in the sources.

use std::collections::BTreeSet;

use orrery::auth::admin::{self, Target};
use orrery::auth::table::{ACCOUNT_ROUTES, ROUTES, SOCKETS};
use orrery::identity::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{call, TestApp};

async fn required() -> TestApp {
    TestApp::builder()
        .setting("ORRERY__AUTH__MODE", "required")
        .setting("ORRERY__AUTH__CACHE_SECONDS", "0")
        .start()
        .await
}

/// (status, body) of a request with `Authorization: <auth>` (none when `None`).
pub(crate) async fn with_auth(
    app: &TestApp,
    auth: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = app.url(path);
    let mut req = app
        .client
        .request(method.parse().expect("method"), url)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    assert_ne!(status, 500, "{method} {path} answered 500: {text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// (status, body) of `POST /api/flows/filter` with `Authorization: <auth>`.
async fn list_flows(app: &TestApp, auth: &str) -> (u16, Value) {
    with_auth(
        app,
        Some(auth),
        "POST",
        "/api/flows/filter",
        Some(json!({})),
    )
    .await
}

pub(crate) fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A user with `role` in the default workspace and a key for it.
async fn user_with_role(app: &TestApp, email: &str, role: Role) -> String {
    let stores = &app.app_state().stores;
    admin::add_user(stores, email, None, "member", None)
        .await
        .expect("user");
    let who = Target::User(email.into());
    admin::grant(stores, "default", &who, role.as_str())
        .await
        .expect("grant");
    admin::create_key(stores, &who, "test", None)
        .await
        .expect("key")
        .1
}

/// The route pattern with every `{param}` filled with a value no object has.
pub(crate) fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        out.push_str("00000000-0000-4000-8000-00000000dead");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_by_credential_and_role() {
    let app = required().await;
    let mut keys = Vec::new();
    for role in Role::ALL {
        let key = user_with_role(&app, &format!("{}@example.com", role.as_str()), role).await;
        keys.push((role, key));
    }
    let stores = &app.app_state().stores;
    // A key of a user who holds a role only in another workspace.
    admin::add_workspace(stores, "other", None, None)
        .await
        .expect("workspace");
    admin::add_user(stores, "elsewhere@example.com", None, "member", None)
        .await
        .expect("user");
    let elsewhere = Target::User("elsewhere@example.com".into());
    admin::grant(stores, "other", &elsewhere, "owner")
        .await
        .expect("grant");
    let other_key = admin::create_key(stores, &elsewhere, "k", None)
        .await
        .expect("key")
        .1;
    let unknown = format!("pnu_{}", "Z".repeat(36));
    // An owner's keys that expired, and that were revoked.
    let owner = Target::User("owner@example.com".into());
    let (expired_row, expired) = admin::create_key(stores, &owner, "old", None)
        .await
        .expect("key");
    let past = orrery::time::now_naive() - chrono::Duration::minutes(1);
    let id = expired_row.id.clone();
    stores
        .nebula
        .write(async move |c| orrery::storage::identities::set_key_expiry(c, &id, Some(past)).await)
        .await
        .expect("expire");
    let (revoked_row, revoked) = admin::create_key(stores, &owner, "gone", None)
        .await
        .expect("key");
    admin::revoke_key(stores, &revoked_row.id)
        .await
        .expect("revoke");

    for (method, pattern, scope) in ROUTES {
        let path = format!("/api{}", concrete(pattern));
        let body = (*method != "GET" && *method != "DELETE").then(|| json!({}));
        let socket = SOCKETS.contains(pattern);
        if *scope == Scope::Public {
            let (s, b) = with_auth(&app, None, method, &path, None).await;
            assert!(s != 401 && s != 403, "{method} {path} is public: {s} {b}");
            continue;
        }
        if !socket {
            let (s, b) = with_auth(&app, None, method, &path, body.clone()).await;
            assert_eq!(
                (s, &b),
                (401, &json!({"detail": "Not authenticated"})),
                "{method} {path}"
            );
        }
        for bad in [
            "Bearer nonsense",
            "Basic !!!",
            "Token x",
            &bearer(&unknown),
            &bearer(&expired),
            &bearer(&revoked),
        ] {
            let (s, _) = with_auth(&app, Some(bad), method, &path, body.clone()).await;
            assert_eq!(s, 401, "{method} {path} with {bad}");
        }
        if *scope == Scope::Me {
            continue;
        }
        let (s, b) = with_auth(&app, Some(&bearer(&other_key)), method, &path, body.clone()).await;
        assert_eq!(
            (s, &b),
            (404, &json!({"detail": "Workspace not found"})),
            "{method} {path}: a key of another workspace"
        );
        for (role, key) in &keys {
            let (s, b) = with_auth(&app, Some(&bearer(key)), method, &path, body.clone()).await;
            if role.allows(*scope) {
                assert!(
                    s != 401 && s != 403 && b != json!({"detail": "Workspace not found"}),
                    "{method} {path} as {role:?} answered {s}: {b}"
                );
            } else {
                assert_eq!(s, 403, "{method} {path} as {role:?}: {b}");
            }
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_are_revoked_and_work_as_basic_credentials() {
    let app = required().await;
    let stores = &app.app_state().stores;
    admin::add_user(
        stores,
        "Dev@Example.com",
        Some("Dev"),
        "member",
        Some("a long password"),
    )
    .await
    .expect("user");
    let dev = Target::User("dev@example.com".into());
    admin::grant(stores, "default", &dev, "developer")
        .await
        .expect("grant");
    let (row, key) = admin::create_key(stores, &dev, "laptop", Some(30))
        .await
        .expect("key");
    assert!(key.starts_with("pnu_") && key.len() == 40, "{key}");

    let (s, _) = with_auth(
        &app,
        Some(&bearer(&key)),
        "POST",
        "/api/flows/",
        Some(json!({"name": "f"})),
    )
    .await;
    assert_eq!(s, 201);
    // Basic `anything:<key>` (PREFECT_API_AUTH_STRING) and the user's email and password.
    use base64::Engine;
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let basic_key = format!("Basic {}", b64(&format!("anything:{key}")));
    let (s, _) = list_flows(&app, &basic_key).await;
    assert_eq!(s, 200);
    let basic_pw = format!("Basic {}", b64("dev@example.com:a long password"));
    let (s, _) = list_flows(&app, &basic_pw).await;
    assert_eq!(s, 200);
    let wrong_pw = format!("Basic {}", b64("dev@example.com:not the password"));
    let (s, _) = list_flows(&app, &wrong_pw).await;
    assert_eq!(s, 401);

    // Listed with its owner, never with the key; revoked, it stops working (cache off here).
    let listed = admin::list_keys(stores).await.expect("list");
    assert!(listed
        .iter()
        .any(|(k, who)| k.id == row.id && who.as_deref() == Some("dev@example.com")));
    assert!(listed
        .iter()
        .all(|(k, _)| k.key_hash != key && !k.key_hash.contains(&key[4..])));
    admin::revoke_key(stores, &row.id).await.expect("revoke");
    assert!(admin::revoke_key(stores, &row.id).await.is_err());
    let (s, _) = list_flows(&app, &bearer(&key)).await;
    assert_eq!(s, 401);

    // A service account's key starts pnb_, and its worker role deletes nothing.
    admin::add_service_account(stores, "ci", "member")
        .await
        .expect("sa");
    let ci = Target::ServiceAccount("ci".into());
    admin::grant(stores, "default", &ci, "worker")
        .await
        .expect("grant");
    let (_, bot) = admin::create_key(stores, &ci, "ci", Some(1))
        .await
        .expect("key");
    assert!(bot.starts_with("pnb_"));
    let (s, _) = list_flows(&app, &bearer(&bot)).await;
    assert_eq!(s, 200);
    let (s, _) = with_auth(
        &app,
        Some(&bearer(&bot)),
        "DELETE",
        "/api/flows/00000000-0000-4000-8000-000000000000",
        None,
    )
    .await;
    assert_eq!(s, 403, "a worker deletes nothing");

    // Operator mistakes are one sentence each.
    assert!(
        admin::add_user(stores, "dev@example.com", None, "member", None)
            .await
            .unwrap_err()
            .contains("exists")
    );
    assert!(
        admin::add_user(stores, "x@example.com", None, "emperor", None)
            .await
            .unwrap_err()
            .contains("account role")
    );
    assert!(admin::grant(stores, "nowhere", &dev, "viewer")
        .await
        .unwrap_err()
        .contains("no workspace"));
    assert!(admin::grant(stores, "default", &dev, "admin")
        .await
        .unwrap_err()
        .contains("workspace role"));
    assert!(admin::add_workspace(stores, "Bad Handle", None, None)
        .await
        .unwrap_err()
        .contains("handle"));
    assert!(admin::create_key(
        stores,
        &Target::User("nobody@example.com".into()),
        "k",
        None
    )
    .await
    .unwrap_err()
    .contains("no user"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_workspaces_lists_what_the_key_may_use() {
    let app = required().await;
    let stores = &app.app_state().stores;
    let ws = admin::add_workspace(stores, "team-a", Some("Team A"), None)
        .await
        .expect("workspace");
    admin::add_user(stores, "a@example.com", None, "member", None)
        .await
        .expect("user");
    let a = Target::User("a@example.com".into());
    admin::grant(stores, "team-a", &a, "developer")
        .await
        .expect("grant");
    let key = admin::create_key(stores, &a, "k", None)
        .await
        .expect("key")
        .1;
    let (s, list) = with_auth(&app, Some(&bearer(&key)), "GET", "/api/me/workspaces", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        list,
        json!([{
            "account_id": ws.account_id,
            "account_name": "Default account",
            "account_handle": "default",
            "workspace_id": ws.id,
            "workspace_name": "Team A",
            "workspace_description": "",
            "workspace_handle": "team-a",
        }])
    );
    // Its workspace's URLs work; the default workspace is not its to see.
    let prefix = format!("/api/accounts/{}/workspaces/{}", ws.account_id, ws.id);
    let (s, _) = with_auth(
        &app,
        Some(&bearer(&key)),
        "POST",
        &format!("{prefix}/flows/"),
        Some(json!({"name": "f"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = list_flows(&app, &bearer(&key)).await;
    assert_eq!(s, 404);
    // An account owner is owner of every workspace of the account.
    admin::add_user(stores, "boss@example.com", None, "owner", None)
        .await
        .expect("user");
    let boss = admin::create_key(stores, &Target::User("boss@example.com".into()), "k", None)
        .await
        .expect("key")
        .1;
    let (_, list) = with_auth(
        &app,
        Some(&bearer(&boss)),
        "GET",
        "/api/me/workspaces/",
        None,
    )
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let (s, me) = with_auth(&app, Some(&bearer(&boss)), "GET", "/api/me", None).await;
    assert_eq!(
        (s, &me["email"], &me["account_role"]),
        (200, &json!("boss@example.com"), &json!("owner"))
    );
    // Health, readiness and version need nothing.
    for open in ["/api/health", "/api/ready", "/api/version"] {
        assert_eq!(call(&app, "GET", open, None).await.0, 200, "{open}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_checked_is_what_the_router_serves() {
    // An app host configured: the API on every other host must still be closed.
    let app = TestApp::builder()
        .setting("ORRERY__AUTH__MODE", "required")
        .setting("ORRERY__SERVER__APP_HOST", "app.example.test")
        .start()
        .await;
    let viewer = bearer(&user_with_role(&app, "v@example.com", Role::Viewer).await);
    let dead = "00000000-0000-4000-8000-00000000dead";
    for path in [
        "/api/flows/filter".to_string(),
        "/api/%66lows/filter".to_string(),
        "/api/fl%6Fws/filter".to_string(),
        "/api/accounts/00000000-0000-4000-8000-000000000001/workspaces/00000000-0000-4000-8000-000000000002/%66lows/filter".to_string(),
    ] {
        let (s, _) = with_auth(&app, None, "POST", &path, Some(json!({}))).await;
        assert_eq!(s, 401, "POST {path} without a credential");
        let (s, _) = with_auth(&app, Some(&viewer), "POST", &path, Some(json!({}))).await;
        assert_eq!(s, 200, "POST {path} as a viewer");
    }
    let (s, _) = with_auth(
        &app,
        Some(&viewer),
        "DELETE",
        &format!("/api/%66lows/{dead}"),
        None,
    )
    .await;
    assert_eq!(
        s, 403,
        "a viewer deletes nothing, however the path is spelled"
    );
    let (s, _) = with_auth(&app, None, "GET", "/api/m%65/workspaces", None).await;
    assert_eq!(s, 401);
    // A pool named "filter" is read with GET (the route of pools), HEAD and unknown routes
    // serve nothing, and no method or path answers 500.
    let (s, b) = with_auth(&app, Some(&viewer), "GET", "/api/work_pools/filter", None).await;
    assert_eq!(s, 404, "{b}");
    for (method, path) in [
        ("HEAD", "/api/flows/filter"),
        ("OPTIONS", "/api/flows/filter"),
        ("GET", "/api/nonsense"),
        ("PUT", "/api/flows/filter"),
    ] {
        let (s, _) = with_auth(&app, Some(&viewer), method, path, None).await;
        assert_eq!(s, 404, "{method} {path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_revoked_keys_stop_working_through_the_cache() {
    // The default cache time (5 s): a revocation must not wait for it.
    let app = TestApp::builder()
        .setting("ORRERY__AUTH__MODE", "required")
        .start()
        .await;
    let state = app.app_state();
    let stores = &state.stores;
    let key = user_with_role(&app, "r@example.com", Role::Developer).await;
    assert_eq!(list_flows(&app, &bearer(&key)).await.0, 200);
    assert_eq!(
        list_flows(&app, &bearer(&key)).await.0,
        200,
        "now from the cache"
    );
    let (row, _) = admin::list_keys(stores).await.expect("list").remove(0);
    let hash = admin::revoke_key(stores, &row.id).await.expect("revoke");
    orrery::identity::forget_key_here(&state, &hash).await;
    assert_eq!(list_flows(&app, &bearer(&key)).await.0, 401);
    // A wrong guess is cached too, and stays wrong.
    let guess = format!("pnu_{}", "G".repeat(36));
    assert_eq!(list_flows(&app, &bearer(&guess)).await.0, 401);
    assert_eq!(list_flows(&app, &bearer(&guess)).await.0, 401);

    // A key past its expiry is refused.
    let who = Target::User("r@example.com".into());
    let (row, key) = admin::create_key(stores, &who, "short", Some(1))
        .await
        .expect("key");
    assert_eq!(list_flows(&app, &bearer(&key)).await.0, 200);
    let past = chrono::Utc::now().naive_utc() - chrono::Duration::hours(1);
    let id = row.id.clone();
    let expired = stores
        .nebula
        .write(async move |c| orrery::storage::identities::set_key_expiry(c, &id, Some(past)).await)
        .await
        .expect("expire");
    assert!(expired);
    orrery::identity::forget_key_here(&state, &row.key_hash).await;
    assert_eq!(list_flows(&app, &bearer(&key)).await.0, 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_needs_no_credential() {
    let app = TestApp::start().await;
    let (s, _) = call(&app, "POST", "/api/flows/filter", Some(json!({}))).await;
    assert_eq!(s, 200);
    let (s, list) = call(&app, "GET", "/api/me/workspaces", None).await;
    assert_eq!(s, 200);
    assert_eq!(list[0]["workspace_handle"], "default");
    app.stop().await;
}

/// Every `.route("PATH", web::METHOD()...)` under src/api, src/events and src/auth.
fn registered_routes() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    for dir in ["src/api", "src/events", "src/auth"] {
        collect(std::path::Path::new(dir), &mut files);
    }
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("source");
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + 7..];
            let Some(q) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some(end) = q.find('"') else { continue };
            let path = &q[..end];
            let after = &q[end..];
            // `web::get()` or `actix_web::web::get()`: the name after the last `web::` before `()`.
            let call = after.find("()").map_or(after, |e| &after[..e]);
            let Some(w) = call.rfind("web::") else {
                continue;
            };
            let method: String = call[w + 5..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            out.insert((method.to_ascii_uppercase(), path.to_string()));
        }
    }
    out
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_registered_route_declares_its_scope() {
    let declared: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .chain(
            ACCOUNT_ROUTES
                .iter()
                .map(|(m, p, _)| (m.to_string(), format!("/accounts/{{account_id}}{p}"))),
        )
        .collect();
    let registered = registered_routes();
    assert!(
        registered.len() > 150,
        "the scan found {} routes",
        registered.len()
    );
    let missing: Vec<_> = registered.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "routes without a scope in src/auth/table.rs: {missing:?}"
    );
}
