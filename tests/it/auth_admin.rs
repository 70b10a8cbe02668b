//! The account admin API in Prefect Cloud's shapes (`/api/accounts/{a}/...`) and workspace
//! access (`.../workspaces/{w}/user_access/` ...): every account route × account role, an
//! account run end to end through it (workspaces, custom roles, grants, service accounts with
//! key rotation, teams, memberships, workspace deletion in the background), and the audit
//! events all of that leaves in the events database.

use std::time::{Duration, Instant};

use orrery::auth::admin::{self, Target};
use orrery::auth::table::ACCOUNT_ROUTES;
use orrery::identity::{AccountRole, Role};
use orrery::ids::WorkspaceId;
use orrery::storage::accounts::{DEFAULT_ACCOUNT_ID, DEFAULT_WORKSPACE_ID};
use orrery::storage::identities;
use serde_json::{json, Value};

use crate::auth::{bearer, concrete, with_auth};
use crate::support::TestApp;

async fn required() -> TestApp {
    TestApp::builder()
        .setting("ORRERY__AUTH__MODE", "required")
        .setting("ORRERY__AUTH__CACHE_SECONDS", "0")
        .setting("ORRERY__SERVICES__WORKSPACE_DELETION_DELAY_MS", "0")
        .start()
        .await
}

/// A user of the default account with `role` there, and a key for it.
async fn account_user(app: &TestApp, email: &str, role: AccountRole) -> (String, String) {
    let stores = &app.app_state().stores;
    let u = admin::add_user(stores, email, None, role.as_str(), None)
        .await
        .expect("user");
    let key = admin::create_key(stores, &Target::User(email.into()), "k", None)
        .await
        .expect("key")
        .1;
    (u.id, bearer(&key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_account_route_answers_by_account_role() {
    let app = required().await;
    let mut keys = Vec::new();
    for role in AccountRole::ALL {
        let (_, key) = account_user(&app, &format!("{}@example.com", role.as_str()), role).await;
        keys.push((role, key));
    }
    // An owner of another account.
    let stores = &app.app_state().stores;
    let other = uuid::Uuid::new_v4().to_string();
    let o = other.clone();
    stores
        .nebula
        .write(async move |c| {
            identities::insert_account(c, &o, "Other", "other", orrery::time::now_naive()).await
        })
        .await
        .expect("account");
    let (_, stranger) = account_user(&app, "stranger@example.com", AccountRole::Owner).await;
    let stranger_id = identities::user_by_email(
        &mut stores.nebula.read().await.expect("c"),
        "stranger@example.com",
    )
    .await
    .expect("read")
    .expect("user")
    .id;
    let (o, sid) = (other.clone(), stranger_id.clone());
    stores
        .nebula
        .write(async move |c| {
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            use orrery::storage::schema::users;
            orrery::db_run!(c, |c| {
                diesel::update(users::table.filter(users::id.eq(&sid)))
                    .set(users::account_id.eq(&o))
                    .execute(c)
                    .await
            })?;
            Ok(())
        })
        .await
        .expect("move the stranger");

    for (method, pattern, permission) in ACCOUNT_ROUTES {
        let path = format!("/api/accounts/{DEFAULT_ACCOUNT_ID}{}", concrete(pattern));
        let body = (*method != "GET" && *method != "DELETE").then(|| json!({}));
        let (s, b) = with_auth(&app, None, method, &path, body.clone()).await;
        assert_eq!(
            (s, &b),
            (401, &json!({"detail": "Not authenticated"})),
            "{method} {path}"
        );
        let (s, b) = with_auth(&app, Some(&stranger), method, &path, body.clone()).await;
        assert_eq!(
            (s, &b),
            (404, &json!({"detail": "Account not found"})),
            "{method} {path}: a key of another account"
        );
        for (role, key) in &keys {
            let (s, b) = with_auth(&app, Some(key), method, &path, body.clone()).await;
            if role.may(permission) {
                assert!(
                    s != 401 && s != 403,
                    "{method} {path} as {role:?} answered {s}: {b}"
                );
            } else {
                assert_eq!(s, 403, "{method} {path} as {role:?}: {b}");
            }
        }
    }
    app.stop().await;
}

/// How many flows workspace `ws` has.
async fn flows_in(c: &mut orrery::storage::Conn, ws: &WorkspaceId) -> i64 {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use orrery::storage::schema::flows;
    orrery::db_run!(c, |c| {
        flows::table
            .filter(flows::workspace_id.eq(ws))
            .count()
            .get_result::<i64>(c)
            .await
    })
    .expect("count")
}

/// Polls `f` until it is true (at most 30 s).
async fn eventually<F: AsyncFn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The names of the audit events stored under `scope` (a workspace or an account id).
async fn audit_events(app: &TestApp, scope: &str) -> Vec<(String, Value, Value)> {
    let state = app.app_state();
    let Ok(mut c) = state.stores.events.read().await else {
        return Vec::new();
    };
    orrery::storage::events::list_recent(&mut c, &WorkspaceId::new(scope), 10_000)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.event.starts_with("orrery.audit."))
        .map(|e| {
            (
                e.event,
                serde_json::from_str(&e.related).unwrap_or(Value::Null),
                serde_json::from_str(&e.payload).unwrap_or(Value::Null),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_run_through_the_admin_api() {
    let app = required().await;
    let a = format!("/api/accounts/{DEFAULT_ACCOUNT_ID}");
    let (boss_id, boss) = account_user(&app, "boss@example.com", AccountRole::Owner).await;
    let (dev_id, _) = account_user(&app, "dev@example.com", AccountRole::Member).await;
    let req = async |key: &str, method: &str, path: &str, body: Option<Value>| {
        with_auth(&app, Some(key), method, path, body).await
    };

    // Workspaces.
    let (s, ws) = req(
        &boss,
        "POST",
        &format!("{a}/workspaces/"),
        Some(json!({"name": "Data", "handle": "data"})),
    )
    .await;
    assert_eq!(s, 201, "{ws}");
    let ws_id = ws["id"].as_str().expect("id").to_string();
    assert_eq!(
        (&ws["handle"], &ws["account_id"]),
        (&json!("data"), &json!(DEFAULT_ACCOUNT_ID))
    );
    let (s, _) = req(
        &boss,
        "POST",
        &format!("{a}/workspaces/"),
        Some(json!({"name": "x", "handle": "data"})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, b) = req(
        &boss,
        "POST",
        &format!("{a}/workspaces/"),
        Some(json!({"name": "x", "handle": "Not A Handle"})),
    )
    .await;
    assert_eq!(
        (s, &b["exception_detail"][0]["loc"]),
        (422, &json!(["body", "handle"]))
    );
    let (s, found) = req(
        &boss,
        "POST",
        &format!("{a}/workspaces/filter"),
        Some(json!({"workspaces": {"handle": {"any_": ["data"]}}})),
    )
    .await;
    assert_eq!((s, found.as_array().map(Vec::len)), (200, Some(1)));
    let prefix = format!("{a}/workspaces/{ws_id}");

    // A custom role: flows read, blocks managed, nothing else.
    let (s, b) = req(
        &boss,
        "POST",
        &format!("{a}/workspace_roles/"),
        Some(json!({"name": "Keeper", "scopes": ["see_everything"]})),
    )
    .await;
    assert_eq!(
        (s, &b["exception_detail"][0]["loc"]),
        (422, &json!(["body", "scopes"]))
    );
    let (s, role) = req(
        &boss,
        "POST",
        &format!("{a}/workspace_roles/"),
        Some(json!({"name": "Keeper", "scopes": ["see_flows", "manage_blocks"]})),
    )
    .await;
    assert_eq!(s, 201, "{role}");
    let role_id = role["id"].as_str().expect("id").to_string();
    let (_, builtin) = req(
        &boss,
        "POST",
        &format!("{a}/workspace_roles/filter"),
        Some(json!({"workspace_roles": {"name": {"any_": ["Developer"]}}})),
    )
    .await;
    assert_eq!(builtin[0]["id"], json!(Role::Developer.id()));
    assert_eq!(builtin[0]["account_id"], Value::Null);

    // The owner makes the developer a key and grants the custom role.
    let (s, made) = req(
        &boss,
        "POST",
        &format!("/api/users/{dev_id}/api_keys"),
        Some(json!({"name": "laptop"})),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let dev = bearer(made["key"].as_str().expect("key"));
    let (s, granted) = req(
        &boss,
        "POST",
        &format!("{prefix}/user_access/"),
        Some(json!([{"user_id": dev_id, "workspace_role_id": role_id}])),
    )
    .await;
    assert_eq!(s, 200, "{granted}");
    assert_eq!(granted[0]["workspace_role_name"], "Keeper");
    assert_eq!(granted[0]["email"], "dev@example.com");
    assert_eq!(
        req(
            &dev,
            "POST",
            &format!("{prefix}/flows/filter"),
            Some(json!({}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        req(
            &dev,
            "POST",
            &format!("{prefix}/variables/filter"),
            Some(json!({}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        req(
            &dev,
            "DELETE",
            &format!("{prefix}/flows/{}", uuid::Uuid::new_v4()),
            None
        )
        .await
        .0,
        403
    );
    let (s, _) = req(
        &dev,
        "POST",
        &format!("{prefix}/block_types/"),
        Some(json!({"name": "Thing", "slug": "thing"})),
    )
    .await;
    assert!(s == 201 || s == 200, "a keeper manages blocks: {s}");
    // Changing the role reaches the key (the cache is off here).
    let (s, _) = req(
        &boss,
        "PATCH",
        &format!("{a}/workspace_roles/{role_id}"),
        Some(json!({"scopes": ["see_flows", "manage_blocks", "see_variables"]})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        req(
            &dev,
            "POST",
            &format!("{prefix}/variables/filter"),
            Some(json!({}))
        )
        .await
        .0,
        200
    );
    let (s, _) = req(
        &boss,
        "DELETE",
        &format!("{a}/workspace_roles/{role_id}"),
        None,
    )
    .await;
    assert_eq!(s, 409, "a granted role stays");
    // The developer is only a member: it may read the account's teams, not make them, and
    // cannot grant access in a workspace it does not own.
    assert_eq!(
        req(&dev, "POST", &format!("{a}/teams/filter"), Some(json!({})))
            .await
            .0,
        200
    );
    assert_eq!(
        req(
            &dev,
            "POST",
            &format!("{a}/teams/"),
            Some(json!({"name": "t"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        req(
            &dev,
            "POST",
            &format!("{prefix}/user_access/"),
            Some(json!([{"user_id": dev_id, "workspace_role_id": Role::Owner.id()}]))
        )
        .await
        .0,
        403
    );

    // A service account: its key works at once; rotation with a grace period keeps the old
    // key working, without one ends it.
    let (s, bot) = req(
        &boss,
        "POST",
        &format!("{a}/bots/"),
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(s, 201, "{bot}");
    let bot_id = bot["id"].as_str().expect("id").to_string();
    let first = bearer(bot["api_key"]["key"].as_str().expect("key"));
    assert!(bot["api_key"]["key"]
        .as_str()
        .is_some_and(|k| k.starts_with("pnb_")));
    let (s, _) = req(
        &boss,
        "POST",
        &format!("{prefix}/bot_access/"),
        Some(json!([{"bot_id": bot_id, "workspace_role_id": Role::Worker.id()}])),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        req(
            &first,
            "POST",
            &format!("{prefix}/flows/"),
            Some(json!({"name": "etl"}))
        )
        .await
        .0,
        201
    );
    let (s, rotated) = req(
        &boss,
        "POST",
        &format!("{a}/bots/{bot_id}/rotate_api_key"),
        Some(json!({"old_key_expires_in_seconds": 3600})),
    )
    .await;
    assert_eq!(s, 201, "{rotated}");
    let second = bearer(rotated["api_key"]["key"].as_str().expect("key"));
    assert_eq!(
        req(&first, "GET", "/api/me", None).await.0,
        200,
        "the old key has its grace period"
    );
    assert_eq!(req(&second, "GET", "/api/me", None).await.0, 200);
    let (s, b) = req(
        &boss,
        "POST",
        &format!("{a}/bots/{bot_id}/rotate_api_key"),
        Some(json!({"old_key_expires_in_seconds": 999_999})),
    )
    .await;
    assert_eq!(
        (s, &b["exception_detail"][0]["loc"]),
        (422, &json!(["body", "old_key_expires_in_seconds"]))
    );
    let (s, third) = req(
        &boss,
        "POST",
        &format!("{a}/bots/{bot_id}/rotate_api_key"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 201);
    let third = bearer(third["api_key"]["key"].as_str().expect("key"));
    assert_eq!(req(&first, "GET", "/api/me", None).await.0, 401);
    assert_eq!(req(&second, "GET", "/api/me", None).await.0, 401);
    assert_eq!(req(&third, "GET", "/api/me", None).await.0, 200);
    let (_, listed) = req(
        &boss,
        "POST",
        &format!("{a}/bots/filter"),
        Some(json!({"service_accounts": {"name": {"any_": ["ci"]}}})),
    )
    .await;
    assert_eq!(listed[0]["api_key"]["masked_key"], "pnb_********");
    assert!(listed[0]["api_key"].get("key").is_none(), "{listed}");

    // Managing access reaches no further than one's own role: a gatekeeper (a viewer who may
    // manage users) grants viewer, not developer, and cannot take an owner's grant away.
    let (s, gate_role) = req(&boss, "POST", &format!("{a}/workspace_roles/"), Some(json!({"name": "Gatekeeper", "scopes": ["manage_workspace_users"], "inherited_role_id": Role::Viewer.id()}))).await;
    assert_eq!(s, 201, "{gate_role}");
    let (gate_id, gate) = account_user(&app, "gate@example.com", AccountRole::Member).await;
    let (other_id, _) = account_user(&app, "other@example.com", AccountRole::Member).await;
    let (s, _) = req(
        &boss,
        "POST",
        &format!("{prefix}/user_access/"),
        Some(json!([{"user_id": gate_id, "workspace_role_id": gate_role["id"]}])),
    )
    .await;
    assert_eq!(s, 200);
    let grant = |role: &str| Some(json!([{"user_id": other_id, "workspace_role_id": role}]));
    assert_eq!(
        req(
            &gate,
            "POST",
            &format!("{prefix}/user_access/"),
            grant(Role::Viewer.id())
        )
        .await
        .0,
        200
    );
    assert_eq!(
        req(
            &gate,
            "POST",
            &format!("{prefix}/user_access/"),
            grant(Role::Developer.id())
        )
        .await
        .0,
        403
    );
    let (s, _) = req(
        &gate,
        "POST",
        &format!("{prefix}/user_access/"),
        Some(json!([{"user_id": gate_id, "workspace_role_id": Role::Owner.id()}])),
    )
    .await;
    assert_eq!(s, 403, "no promoting oneself");
    assert_eq!(
        req(
            &boss,
            "POST",
            &format!("{prefix}/user_access/"),
            grant(Role::Owner.id())
        )
        .await
        .0,
        200
    );
    assert_eq!(
        req(
            &gate,
            "DELETE",
            &format!("{prefix}/user_access/{other_id}"),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        req(
            &gate,
            "POST",
            &format!("{prefix}/user_access/filter"),
            Some(json!({}))
        )
        .await
        .0,
        200
    );

    // A team makes its members developers of the workspace.
    let (s, team) = req(
        &boss,
        "POST",
        &format!("{a}/teams/"),
        Some(json!({"name": "data-eng"})),
    )
    .await;
    assert_eq!(s, 201, "{team}");
    let team_id = team["id"].as_str().expect("id").to_string();
    let (s, team) = req(
        &boss,
        "PUT",
        &format!("{a}/teams/{team_id}/members"),
        Some(json!({"members": [{"member_id": dev_id, "member_type": "user"}]})),
    )
    .await;
    assert_eq!((s, &team["memberships"][0]["id"]), (200, &json!(dev_id)));
    let (s, _) = req(
        &boss,
        "PUT",
        &format!("{prefix}/team_access/"),
        Some(json!([{"team_id": team_id, "workspace_role_id": Role::Developer.id()}])),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = req(
        &dev,
        "DELETE",
        &format!("{prefix}/flows/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(
        s, 404,
        "a developer through the team may delete flows (none has that id)"
    );
    let (_, team) = req(&boss, "GET", &format!("{a}/teams/{team_id}"), None).await;
    assert_eq!(team["workspaces"][0]["workspace_role_name"], "Developer");
    // Removing the direct grant and the team membership takes the workspace away.
    assert_eq!(
        req(
            &boss,
            "DELETE",
            &format!("{prefix}/user_access/{dev_id}"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        req(
            &boss,
            "DELETE",
            &format!("{a}/teams/{team_id}/members/{dev_id}"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        req(
            &dev,
            "POST",
            &format!("{prefix}/flows/filter"),
            Some(json!({}))
        )
        .await
        .0,
        404
    );

    // Memberships and account roles.
    let (_, members) = req(
        &boss,
        "POST",
        &format!("{a}/account_memberships/filter"),
        Some(json!({})),
    )
    .await;
    let emails: Vec<&str> = members
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["email"].as_str())
        .collect();
    assert!(
        emails.contains(&"boss@example.com") && emails.contains(&"dev@example.com"),
        "{members}"
    );
    let (s, _) = req(
        &boss,
        "PATCH",
        &format!("{a}/account_memberships/{boss_id}"),
        Some(json!({"account_role_id": AccountRole::Member.id()})),
    )
    .await;
    assert_eq!(s, 409, "the last owner stays an owner");
    let (s, _) = req(
        &boss,
        "PATCH",
        &format!("{a}/account_memberships/{dev_id}"),
        Some(json!({"account_role_id": AccountRole::Admin.id()})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        req(
            &dev,
            "POST",
            &format!("{prefix}/flows/filter"),
            Some(json!({}))
        )
        .await
        .0,
        200,
        "an admin owns every workspace"
    );
    let (_, roles) = req(
        &boss,
        "POST",
        &format!("{a}/account_roles/filter"),
        Some(json!({})),
    )
    .await;
    assert_eq!(roles.as_array().map(Vec::len), Some(3));

    // Deleting the workspace: it stops resolving at once; its rows go in the background.
    assert_eq!(
        req(
            &boss,
            "DELETE",
            &format!("{a}/workspaces/{DEFAULT_WORKSPACE_ID}"),
            None
        )
        .await
        .0,
        409
    );
    assert_eq!(req(&boss, "DELETE", &prefix, None).await.0, 204);
    assert_eq!(
        req(
            &boss,
            "POST",
            &format!("{prefix}/flows/filter"),
            Some(json!({}))
        )
        .await
        .0,
        404
    );
    let state = app.app_state();
    let ws = WorkspaceId::new(&ws_id);
    eventually("the workspace's rows to be deleted", async || {
        let mut c = state.stores.orion.read().await.expect("c");
        let flows = flows_in(&mut c, &ws).await;
        drop(c);
        let mut n = state.stores.nebula.read().await.expect("c");
        let pending = identities::pending_deletions(&mut n, orrery::time::now_naive())
            .await
            .expect("read");
        flows == 0 && pending.is_empty()
    })
    .await;

    // The audit log: account-wide changes under the account, with the actor related.
    eventually("the account's audit events", async || {
        let names: Vec<String> = audit_events(&app, DEFAULT_ACCOUNT_ID)
            .await
            .into_iter()
            .map(|e| e.0)
            .collect();
        [
            "orrery.audit.workspace.deleted",
            "orrery.audit.workspace-role.created",
            "orrery.audit.service-account.created",
            "orrery.audit.api-key.rotated",
            "orrery.audit.team.created",
            "orrery.audit.account-membership.updated",
            "orrery.audit.user.created",
        ]
        .iter()
        .all(|want| names.iter().any(|n| n == want))
    })
    .await;
    let events = audit_events(&app, DEFAULT_ACCOUNT_ID).await;
    let (_, related, _) = events
        .iter()
        .find(|e| e.0 == "orrery.audit.team.created")
        .expect("team");
    assert_eq!(
        related[0]["prefect.resource.id"],
        json!(format!("orrery.user.{boss_id}"))
    );
    assert_eq!(related[0]["prefect.resource.role"], "actor");
    // Read through the API: the account's events routes, for those who may read the audit log.
    let audit = json!({"filter": {"event": {"prefix": ["orrery.audit.team."]}}, "limit": 5});
    let (s, page) = req(
        &boss,
        "POST",
        &format!("{a}/events/filter"),
        Some(audit.clone()),
    )
    .await;
    assert_eq!(s, 200, "{page}");
    assert!(
        page["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["event"] == "orrery.audit.team.created"),
        "{page}"
    );
    let (s, counts) = req(
        &boss,
        "POST",
        &format!("{a}/events/count-by/event"),
        Some(json!({"filter": {"event": {"prefix": ["orrery.audit."]}}})),
    )
    .await;
    assert_eq!(s, 200, "{counts}");
    assert!(counts.as_array().expect("counts").len() >= 7, "{counts}");
    let (_, member) = account_user(&app, "member@example.com", AccountRole::Member).await;
    let (s, _) = req(&member, "POST", &format!("{a}/events/filter"), Some(audit)).await;
    assert_eq!(s, 403, "members don't read the audit log");
    // Denied requests are counted and written a few seconds later.
    eventually("the denied requests", async || {
        audit_events(&app, DEFAULT_ACCOUNT_ID)
            .await
            .iter()
            .any(|(name, _, payload)| {
                name == "orrery.audit.request.denied" && payload["status"] == 403
            })
    })
    .await;
    app.stop().await;
}

/// A request with a session cookie (and the CSRF token when given).
async fn with_cookie(
    app: &TestApp,
    cookie: &str,
    csrf: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app
        .client
        .request(method.parse().expect("method"), app.url(path))
        .header("cookie", format!("orrery_session={cookie}"))
        .header("content-type", "application/json");
    if let Some(t) = csrf {
        r = r.header("x-csrf-token", t);
    }
    if let Some(b) = body {
        r = r.body(b.to_string());
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Signs in: (status, the session cookie's value, the Set-Cookie header, the body).
async fn login(app: &TestApp, email: &str, password: &str) -> (u16, String, String, Value) {
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login");
    let status = resp.status().as_u16();
    let set = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let value = set
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    (status, value, set, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_sign_in_need_csrf_end_and_are_throttled() {
    // The default cache time: what the cache keeps must not outlive a logout or a password.
    let app = TestApp::builder()
        .setting("ORRERY__AUTH__MODE", "required")
        .setting("ORRERY__AUTH__LOGIN_ATTEMPTS_PER_EMAIL", "5")
        .start()
        .await;
    let stores = &app.app_state().stores;
    let user = admin::add_user(
        stores,
        "ada@example.com",
        None,
        "member",
        Some("correct horse"),
    )
    .await
    .expect("user");
    admin::grant(
        stores,
        "default",
        &Target::User("ada@example.com".into()),
        "developer",
    )
    .await
    .expect("grant");
    let basic = |pw: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("ada@example.com:{pw}"))
        )
    };

    // Failure 1.
    let (s, _, _, b) = login(&app, "ada@example.com", "wrong horse").await;
    assert_eq!(
        (s, &b),
        (401, &json!({"detail": "Invalid email or password"}))
    );
    // Only JSON, and not from another site's page (neither is checked, nor counted).
    let form = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "text/plain")
        .body(r#"{"email": "ada@example.com", "password": "correct horse"}"#)
        .send()
        .await
        .expect("login");
    assert_eq!(form.status().as_u16(), 415);
    let cross = app
        .client
        .post(app.url("/api/auth/login"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"email": "ada@example.com", "password": "correct horse"}))
        .send()
        .await
        .expect("login");
    assert_eq!(cross.status().as_u16(), 403);
    let (s, cookie, set, body) = login(&app, "Ada@Example.com", "correct horse").await;
    assert_eq!(s, 200, "{body}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let csrf = body["csrf_token"].as_str().expect("csrf").to_string();
    assert_eq!(body["user"]["id"], json!(user.id));

    let (s, me) = with_cookie(&app, &cookie, None, "GET", "/api/auth/session", None).await;
    assert_eq!((s, &me["user"]["email"]), (200, &json!("ada@example.com")));
    assert_eq!(
        with_cookie(&app, &cookie, None, "GET", "/api/flows/nope", None)
            .await
            .0,
        404
    );
    let (s, b) = with_cookie(
        &app,
        &cookie,
        None,
        "POST",
        "/api/flows/filter",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (s, &b),
        (403, &json!({"detail": "Missing or wrong CSRF token"}))
    );
    let forged = with_cookie(
        &app,
        &cookie,
        Some("forged"),
        "POST",
        "/api/flows/filter",
        Some(json!({})),
    )
    .await;
    assert_eq!(forged.0, 403);
    let good = with_cookie(
        &app,
        &cookie,
        Some(&csrf),
        "POST",
        "/api/flows/filter",
        Some(json!({})),
    )
    .await;
    assert_eq!(good.0, 200);
    assert_eq!(
        with_cookie(&app, "ors_nonsense", None, "GET", "/api/auth/session", None)
            .await
            .0,
        401
    );
    // A page of another origin gets nothing with the cookie, even a read.
    let foreign = app
        .client
        .get(app.url("/api/auth/session"))
        .header("cookie", format!("orrery_session={cookie}"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(foreign.status().as_u16(), 403);

    // Changing the password (failure 2: a wrong current one) ends every session; the old
    // password, verified and cached a moment ago, stops working at once (failure 3).
    assert_eq!(
        with_auth(&app, Some(&basic("correct horse")), "GET", "/api/me", None)
            .await
            .0,
        200
    );
    let change = |current: &str| {
        Some(json!({"current_password": current, "new_password": "battery staple"}))
    };
    let (s, _) = with_cookie(
        &app,
        &cookie,
        Some(&csrf),
        "POST",
        "/api/me/password",
        change("nope nope"),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = with_cookie(
        &app,
        &cookie,
        Some(&csrf),
        "POST",
        "/api/me/password",
        change("correct horse"),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        with_cookie(&app, &cookie, None, "GET", "/api/auth/session", None)
            .await
            .0,
        401
    );
    assert_eq!(
        with_auth(&app, Some(&basic("correct horse")), "GET", "/api/me", None)
            .await
            .0,
        401
    );
    let (s, cookie, _, body) = login(&app, "ada@example.com", "battery staple").await;
    assert_eq!(s, 200);
    let csrf = body["csrf_token"].as_str().expect("csrf").to_string();
    // Logging out ends the session.
    assert_eq!(
        with_cookie(&app, &cookie, Some(&csrf), "POST", "/api/auth/logout", None)
            .await
            .0,
        204
    );
    assert_eq!(
        with_cookie(&app, &cookie, None, "GET", "/api/auth/session", None)
            .await
            .0,
        401
    );

    // Failures 4 and 5, then even the right password waits.
    for guess in ["guess one", "guess two"] {
        assert_eq!(login(&app, "ada@example.com", guess).await.0, 401);
    }
    let (s, _, _, b) = login(&app, "ada@example.com", "battery staple").await;
    assert_eq!(
        (s, &b),
        (
            429,
            &json!({"detail": "Too many failed logins; try again later"})
        )
    );
    // Another user from the same address is not locked out by it.
    admin::add_user(
        stores,
        "bob@example.com",
        None,
        "member",
        Some("another secret"),
    )
    .await
    .expect("user");
    assert_eq!(
        login(&app, "bob@example.com", "another secret").await.0,
        200
    );

    eventually("the logins' audit events", async || {
        let names: Vec<String> = audit_events(&app, DEFAULT_ACCOUNT_ID)
            .await
            .into_iter()
            .map(|e| e.0)
            .collect();
        [
            "orrery.audit.user.login-failed",
            "orrery.audit.user.logged-in",
            "orrery.audit.user.logged-out",
            "orrery.audit.user.password-changed",
            "orrery.audit.request.denied",
        ]
        .iter()
        .all(|want| names.iter().any(|n| n == want))
    })
    .await;
    app.stop().await;
}

/// Password guesses in Basic credentials count like logins: past the limit even the right
/// password is refused there, and the login route answers 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guesses_in_basic_credentials_are_throttled() {
    use base64::Engine;
    let app = TestApp::builder()
        .setting("ORRERY__AUTH__MODE", "required")
        .setting("ORRERY__AUTH__CACHE_SECONDS", "0")
        .setting("ORRERY__AUTH__LOGIN_ATTEMPTS_PER_EMAIL", "2")
        .start()
        .await;
    admin::add_user(
        &app.app_state().stores,
        "eve@example.com",
        None,
        "member",
        Some("the right one"),
    )
    .await
    .expect("user");
    let basic = |pw: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("eve@example.com:{pw}"))
        )
    };
    assert_eq!(
        with_auth(&app, Some(&basic("the right one")), "GET", "/api/me", None)
            .await
            .0,
        200
    );
    for guess in ["first guess", "second guess"] {
        assert_eq!(
            with_auth(&app, Some(&basic(guess)), "GET", "/api/me", None)
                .await
                .0,
            401
        );
    }
    assert_eq!(
        with_auth(&app, Some(&basic("the right one")), "GET", "/api/me", None)
            .await
            .0,
        401
    );
    assert_eq!(login(&app, "eve@example.com", "the right one").await.0, 429);
    app.stop().await;
}

/// A socket's `auth` message is checked against the socket route's scope: a viewer's key may
/// read `/events/out` but not send on `/events/in`; a worker's may send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_auth_messages_need_the_routes_scope() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let app = required().await;
    let stores = &app.app_state().stores;
    let mut keys = Vec::new();
    for role in [Role::Viewer, Role::Worker] {
        let email = format!("{}@example.com", role.as_str());
        admin::add_user(stores, &email, None, "member", None)
            .await
            .expect("user");
        let who = Target::User(email);
        admin::grant(stores, "default", &who, role.as_str())
            .await
            .expect("grant");
        keys.push(
            admin::create_key(stores, &who, "k", None)
                .await
                .expect("key")
                .1,
        );
    }
    // The first answer to `{"type": "auth", "token": key}` on `path`: the reply text, or the
    // close code and reason.
    let first_answer = async |path: &str, key: &str| -> String {
        let url = app.url(path).replace("http://", "ws://");
        let mut req = url.into_client_request().expect("request");
        req.headers_mut()
            .insert("sec-websocket-protocol", "prefect".parse().expect("header"));
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        ws.send(Message::text(
            json!({"type": "auth", "token": key}).to_string(),
        ))
        .await
        .expect("auth");
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(msg) = ws.next().await {
                match msg {
                    Ok(Message::Text(t)) => return t.to_string(),
                    Ok(Message::Close(f)) => {
                        return f.map_or("closed".into(), |f| {
                            format!("{} {}", u16::from(f.code), f.reason)
                        })
                    }
                    _ => {}
                }
            }
            "ended".to_string()
        })
        .await
        .expect("an answer");
        answer
    };
    let (viewer, worker) = (&keys[0], &keys[1]);
    assert_eq!(
        first_answer("/api/events/in", viewer).await,
        "1008 Invalid token"
    );
    assert!(first_answer("/api/events/in", worker)
        .await
        .contains("auth_success"));
    assert!(first_answer("/api/events/out", viewer)
        .await
        .contains("auth_success"));
    assert_eq!(
        first_answer("/api/events/out", &format!("pnu_{}", "x".repeat(36))).await,
        "1008 Invalid token"
    );
    app.stop().await;
}

/// With the cache role emptied, then stopped, keys, passwords and sessions are checked against
/// the database, and the rest of a request does not notice. (PostgreSQL + Redis pass: the Redis
/// is the test's own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_against_the_database_without_the_cache_role() {
    use crate::durability::{free_port, redis_cli, redis_server, wait_for_port};
    if crate::support::redis_url().is_none() {
        eprintln!("skipped: ORRERY_TEST_REDIS_URL is not set (the SQLite + memory pass)");
        return;
    }
    let port = free_port();
    let mut redis = redis_server(port);
    wait_for_port(port).await;
    let app = TestApp::builder()
        .setting("ORRERY__AUTH__MODE", "required")
        .setting(
            "ORRERY__REDIS__CACHE_URL",
            &format!("redis://127.0.0.1:{port}/0"),
        )
        .start()
        .await;
    let stores = &app.app_state().stores;
    admin::add_user(
        stores,
        "ops@example.com",
        None,
        "member",
        Some("a long password"),
    )
    .await
    .expect("user");
    let who = Target::User("ops@example.com".into());
    admin::grant(stores, "default", &who, "developer")
        .await
        .expect("grant");
    let key = bearer(
        &admin::create_key(stores, &who, "k", None)
            .await
            .expect("key")
            .1,
    );
    let (s, cookie, _, body) = login(&app, "ops@example.com", "a long password").await;
    assert_eq!(s, 200, "{body}");
    let csrf = body["csrf_token"].as_str().expect("csrf").to_string();
    let works = async || {
        let (s, b) = with_auth(
            &app,
            Some(&key),
            "POST",
            "/api/flows/",
            Some(json!({"name": "f"})),
        )
        .await;
        assert!(s == 200 || s == 201, "{s} {b}");
        let (s, _) = with_auth(
            &app,
            Some(&bearer(&format!("pnu_{}", "y".repeat(36)))),
            "GET",
            "/api/me",
            None,
        )
        .await;
        assert_eq!(s, 401);
        let (s, _) = with_cookie(
            &app,
            &cookie,
            Some(&csrf),
            "POST",
            "/api/flows/filter",
            Some(json!({})),
        )
        .await;
        assert_eq!(s, 200);
    };
    works().await; // warm
    redis_cli(port, &["FLUSHALL"]);
    works().await;
    redis_cli(port, &["SHUTDOWN", "NOSAVE"]);
    let _ = redis.wait();
    works().await;
    app.stop().await;
}
