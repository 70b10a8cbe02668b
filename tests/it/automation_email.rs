//! E-mail notifications through Orrery's own `smtp-email` block, received by an SMTP server the
//! test starts: the login, the envelope (sender, every recipient) and the message (subject,
//! body) are what the automation rendered; a transient 451 is tried again; a recipient the
//! server refuses with 550 fails the action with the server's answer and no password in it.

use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::automation_notifications::block;
use crate::support::{call, wait_for, TestApp};

#[derive(Debug, Clone, Default)]
struct Session {
    login: Option<String>,
    from: String,
    to: Vec<String>,
    data: String,
    refused: Vec<String>,
}

type Mailbox = Arc<Mutex<Vec<Session>>>;

/// A minimal SMTP server (RFC 5321's commands a client sends, AUTH PLAIN): records each
/// session; the first MAIL FROM it ever gets is answered 451, a recipient named `reject@` 550.
async fn sink() -> (u16, Mailbox) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mailbox: Mailbox = Arc::default();
    let seen = mailbox.clone();
    let greylisted = Arc::new(Mutex::new(false));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (seen, greylisted) = (seen.clone(), greylisted.clone());
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut s = Session::default();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: String = if upper.starts_with("EHLO") {
                        "250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME".into()
                    } else if let Some(b64) = upper.strip_prefix("AUTH PLAIN ").map(|_| &line[11..])
                    {
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .unwrap_or_default();
                        s.login = Some(String::from_utf8_lossy(&raw).replace('\0', "|"));
                        "235 2.7.0 accepted".into()
                    } else if upper.starts_with("MAIL FROM:") {
                        let mut first = greylisted.lock().expect("lock");
                        if *first {
                            s.from = line[10..].to_string();
                            "250 2.1.0 ok".into()
                        } else {
                            *first = true;
                            s.refused.push("451".into());
                            "451 4.7.1 greylisted, try again later".into()
                        }
                    } else if upper.starts_with("RCPT TO:") {
                        if upper.contains("<REJECT@") {
                            s.refused.push("550".into());
                            "550 5.1.1 no such user".into()
                        } else {
                            s.to.push(line[8..].to_string());
                            "250 2.1.5 ok".into()
                        }
                    } else if upper == "DATA" {
                        let _ = write.write_all(b"354 end with .\r\n").await;
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            s.data.push_str(&l);
                            s.data.push('\n');
                        }
                        "250 2.0.0 queued".into()
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                        break;
                    } else {
                        "250 2.0.0 ok".into()
                    };
                    if write
                        .write_all(format!("{reply}\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                seen.lock().expect("mailbox").push(s);
            });
        }
    });
    (port, mailbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_email_block_sends_the_rendered_notification() {
    let (port, mailbox) = sink().await;
    let app = TestApp::start().await;
    let server = json!({"smtp_server": "127.0.0.1", "smtp_type": "INSECURE", "smtp_port": port,
                        "username": "mailer", "password": "s3cret-pw",
                        "from_email": "Prefect <prefect@example.com>"});
    let mut ok = server.clone();
    ok["to_emails"] = json!(["ops@example.com", "dev@example.com"]);
    let mut bad = server;
    bad["to_emails"] = json!(["reject@example.com"]);
    let ok = block(&app, "smtp-email", "team-mail", ok).await;
    let bad = block(&app, "smtp-email", "bad-mail", bad).await;

    // The block reads back with its password masked, as every secret field is.
    let (s, doc) = call(&app, "GET", &format!("/api/block_documents/{ok}"), None).await;
    assert_eq!(s, 200, "{doc}");
    assert_ne!(doc["data"]["password"], "s3cret-pw", "{doc}");

    let actions: Vec<Value> = [&ok, &bad]
        .iter()
        .map(|id| json!({"type": "send-notification", "block_document_id": id,
                         "subject": "Alert {{ event.event }}", "body": "on {{ event.resource.id }}"}))
        .collect();
    let body = json!({"name": "mail", "trigger": {"type": "event", "posture": "Reactive",
                      "expect": ["x.mail"]}, "actions": actions});
    let (s, a) = call(&app, "POST", "/api/automations/", Some(body)).await;
    assert_eq!(s, 201, "{a}");
    let event = json!([{"occurred": chrono::Utc::now(), "event": "x.mail", "id": uuid::Uuid::new_v4(),
                         "resource": {"prefect.resource.id": "thing.1"}, "related": [], "payload": {}}]);
    let (s, _) = call(&app, "POST", "/api/events", Some(event)).await;
    assert_eq!(s, 204);

    let outcomes = wait_for(
        "both actions' outcomes",
        60,
        || async {
            call(
                &app,
                "POST",
                "/api/events/filter",
                Some(json!({"filter": {"event": {"name": [
                "prefect.automation.action.executed", "prefect.automation.action.failed"]}}})),
            )
            .await
            .1
        },
        |p: &Value| p["total"] == 2,
    )
    .await;
    let sessions = mailbox.lock().expect("mailbox").clone();
    let delivered: Vec<&Session> = sessions.iter().filter(|s| !s.data.is_empty()).collect();
    assert_eq!(delivered.len(), 1, "{sessions:?}");
    let mail = delivered[0];
    assert_eq!(mail.login.as_deref(), Some("|mailer|s3cret-pw"));
    assert_eq!(mail.from, "<prefect@example.com>");
    assert_eq!(mail.to, vec!["<ops@example.com>", "<dev@example.com>"]);
    assert!(
        mail.data.contains("Subject: Alert x.mail\n"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("\non thing.1\n"), "{}", mail.data);
    assert!(
        mail.data.contains("To: ops@example.com, dev@example.com\n"),
        "{}",
        mail.data
    );
    let refusals: Vec<&str> = sessions
        .iter()
        .flat_map(|s| s.refused.iter().map(String::as_str))
        .collect();
    assert_eq!(
        refusals.iter().filter(|r| **r == "451").count(),
        1,
        "{sessions:?}"
    );
    assert!(refusals.contains(&"550"), "{sessions:?}");

    let events = outcomes["events"].as_array().expect("events");
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "prefect.automation.action.failed")
        .collect();
    assert_eq!(failed.len(), 1, "{outcomes}");
    let reason = failed[0]["payload"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("550") || reason.contains("no such user"),
        "{reason}"
    );
    assert!(!outcomes.to_string().contains("s3cret-pw"), "{outcomes}");
    app.stop().await;
}
