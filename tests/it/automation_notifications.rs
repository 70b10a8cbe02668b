//! Notifications and webhooks sent by automations, received by an HTTP server the test starts:
//! each service's block (its endpoint pointed at the test server through `[notifications]`)
//! gets the method, path, headers and body the service expects; a service answering 503 is
//! tried again; a block that is not a notification block is reported as failed.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{call, wait_for, TestApp};

#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A minimal HTTP/1.1 server: records each request; `/flaky` answers 503 the first time.
async fn receiver() -> (String, Inbox) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let inbox: Inbox = Arc::default();
    let seen = inbox.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, length) = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_string();
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0usize);
                        break (i + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end - 4]).to_string();
                let mut lines = head.lines();
                let first: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
                let got = Received {
                    method: first.first().unwrap_or(&"").to_string(),
                    path: first.get(1).unwrap_or(&"").to_string(),
                    headers: lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .collect(),
                    body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
                };
                let flaky_first = {
                    let mut all = seen.lock().expect("inbox");
                    let first = got.path == "/flaky" && !all.iter().any(|r| r.path == "/flaky");
                    all.push(got);
                    first
                };
                let status = if flaky_first {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    (base, inbox)
}

/// Saves a block document of a system block type.
pub(crate) async fn block(app: &TestApp, slug: &str, name: &str, data: Value) -> String {
    let (s, t) = call(app, "GET", &format!("/api/block_types/slug/{slug}"), None).await;
    assert_eq!(s, 200, "{slug}: {t}");
    let (s, schemas) = call(
        app,
        "POST",
        "/api/block_schemas/filter",
        Some(json!({"block_schemas": {"block_type_id": {"any_": [t["id"]]}}})),
    )
    .await;
    assert_eq!(s, 200, "{schemas}");
    let body = json!({"name": name, "block_type_id": t["id"], "block_schema_id": schemas[0]["id"], "data": data});
    let (s, d) = call(app, "POST", "/api/block_documents/", Some(body)).await;
    assert_eq!(s, 201, "{slug}: {d}");
    d["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sender_delivers_what_its_service_expects() {
    let (base, inbox) = receiver().await;
    let app = TestApp::builder()
        .setting(
            "ORRERY__NOTIFICATIONS__PAGERDUTY_URL",
            &format!("{base}/pagerduty/v2/enqueue"),
        )
        .setting(
            "ORRERY__NOTIFICATIONS__OPSGENIE_URL",
            &format!("{base}/opsgenie/v2/alerts"),
        )
        .setting(
            "ORRERY__NOTIFICATIONS__TWILIO_URL",
            &format!("{base}/twilio"),
        )
        .setting(
            "ORRERY__NOTIFICATIONS__SENDGRID_URL",
            &format!("{base}/sendgrid"),
        )
        .setting(
            "ORRERY__NOTIFICATIONS__DISCORD_URL",
            &format!("{base}/discord"),
        )
        .start()
        .await;
    let blocks = [
        block(&app, "slack-webhook", "slack", json!({"url": format!("{base}/slack")})).await,
        block(&app, "ms-teams-webhook", "teams", json!({"url": format!("{base}/teams")})).await,
        block(&app, "discord-webhook", "discord", json!({"webhook_id": "42", "webhook_token": "tok"})).await,
        block(&app, "pager-duty-webhook", "pd", json!({"integration_key": "ik", "api_key": "ak", "component": "etl", "notify_type": "failure"})).await,
        block(&app, "opsgenie-webhook", "og", json!({"apikey": "gk", "target_team": ["ops"]})).await,
        block(&app, "twilio-sms", "sms", json!({"account_sid": "AC1", "auth_token": "t", "from_phone_number": "+15550000000", "to_phone_numbers": ["+15551111111"]})).await,
        block(&app, "sendgrid-email", "mail", json!({"api_key": "SG.k", "sender_email": "from@example.com", "to_emails": ["to@example.com"]})).await,
        block(&app, "custom-webhook", "custom", json!({"name": "custom", "url": format!("{base}/flaky"), "method": "POST", "json_data": {"msg": "{{subject}} / {{body}}"}})).await,
        block(&app, "email-server-credentials", "smtp", json!({"username": "u", "password": "p", "smtp_server": "localhost"})).await,
    ];
    let hook = block(
        &app,
        "webhook",
        "hook",
        json!({"method": "PUT", "url": format!("{base}/hook"), "headers": {"x-key": "v"}}),
    )
    .await;
    let mut actions: Vec<Value> = blocks
        .iter()
        .map(|id| json!({"type": "send-notification", "block_document_id": id, "subject": "Alert {{ event.event }}", "body": "on {{ event.resource.id }}"}))
        .collect();
    actions.push(json!({"type": "call-webhook", "block_document_id": hook, "payload": "{\"event\": \"{{ event.event }}\"}"}));
    let body = json!({
        "name": "notify all",
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["x.alert"]},
        "actions": actions,
    });
    let (s, a) = call(&app, "POST", "/api/automations/", Some(body)).await;
    assert_eq!(s, 201, "{a}");
    let event = json!([{"occurred": chrono::Utc::now(), "event": "x.alert", "id": uuid::Uuid::new_v4(),
                         "resource": {"prefect.resource.id": "thing.1"}, "related": [], "payload": {}}]);
    let (s, _) = call(&app, "POST", "/api/events", Some(event)).await;
    assert_eq!(s, 204);

    // Ten requests: seven services, the webhook, and the custom webhook twice (503, then again
    // after the backoff).
    let got = wait_for(
        "every service's request",
        40,
        || async { inbox.lock().expect("inbox").clone() },
        |r: &Vec<Received>| r.len() >= 10,
    )
    .await;
    let at = |path: &str| -> Received {
        got.iter()
            .rev()
            .find(|r| r.path.starts_with(path))
            .unwrap_or_else(|| panic!("nothing at {path}: {got:?}"))
            .clone()
    };
    let (subject, text) = ("Alert x.alert", "on thing.1");
    assert_eq!(at("/slack").json()["text"], format!("*{subject}*\n{text}"));
    assert_eq!(at("/teams").json()["title"], subject);
    let discord = at("/discord");
    assert_eq!(discord.path, "/discord/api/webhooks/42/tok");
    assert_eq!(
        discord.json()["content"],
        format!("**{subject}**\r\n{text}")
    );
    let pd = at("/pagerduty");
    assert_eq!(
        (pd.method.as_str(), pd.header("authorization")),
        ("POST", Some("Token token=ak"))
    );
    assert_eq!(pd.json()["routing_key"], "ik");
    assert_eq!(pd.json()["payload"]["severity"], "critical");
    let og = at("/opsgenie");
    assert_eq!(og.header("authorization"), Some("GenieKey gk"));
    assert_eq!(og.json()["message"], subject);
    assert_eq!(
        og.json()["responders"],
        json!([{"type": "team", "name": "ops"}])
    );
    let sms = at("/twilio");
    assert_eq!(sms.path, "/twilio/2010-04-01/Accounts/AC1/Messages.json");
    assert_eq!(
        sms.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(sms.body.contains("To=%2B15551111111"), "{}", sms.body);
    let mail = at("/sendgrid");
    assert_eq!(mail.path, "/sendgrid/v3/mail/send");
    assert_eq!(mail.header("authorization"), Some("Bearer SG.k"));
    assert_eq!(
        mail.json()["personalizations"][0]["to"][0]["email"],
        "to@example.com"
    );
    assert_eq!(
        got.iter().filter(|r| r.path == "/flaky").count(),
        2,
        "tried again after a 503"
    );
    assert_eq!(at("/flaky").json()["msg"], format!("{subject} / {text}"));
    let hook = at("/hook");
    assert_eq!(
        (hook.method.as_str(), hook.header("x-key")),
        ("PUT", Some("v"))
    );
    assert_eq!(hook.json(), json!({"event": "x.alert"}));

    // Ten outcomes: nine executed; the SMTP credentials are not a notification block.
    let outcomes = wait_for(
        "every action's outcome",
        40,
        || async {
            call(&app, "POST", "/api/events/filter", Some(json!({"filter": {"event": {"name": ["prefect.automation.action.executed", "prefect.automation.action.failed"]}}, "limit": 50}))).await.1
        },
        |p: &Value| p["total"] == 10,
    )
    .await;
    let failed: Vec<&Value> = outcomes["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == "prefect.automation.action.failed")
        .collect();
    assert_eq!(failed.len(), 1, "{outcomes}");
    assert_eq!(
        failed[0]["payload"]["reason"],
        "The referenced block was not a notification block"
    );
    app.stop().await;
}
