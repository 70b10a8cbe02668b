//! E-mail notifications through Orrery's own `smtp-email` block (`storage::blocks::own`): one
//! plain-text message to every recipient, over STARTTLS, implicit TLS or (for a relay on a
//! private network) no TLS, logging in when the block has a user. A server that answers a
//! transient 4xx, or can't be reached, is tried again with the executor's backoff; a 5xx refusal
//! fails the action with the server's answer. The password is read from the block only here.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::perform::Fail;
use super::services::{list, text};

/// How long one SMTP exchange may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// What the block asks for, checked before anything is sent.
#[derive(Debug, PartialEq)]
pub struct Mail {
    pub server: String,
    pub port: u16,
    pub security: Security,
    pub login: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, PartialEq, Clone, Copy)]
pub enum Security {
    StartTls,
    Ssl,
    Insecure,
}

fn failed(why: impl std::fmt::Display) -> Fail {
    Fail::Action(format!("Notification failed: {why}"))
}

/// The block's fields as a [`Mail`], or why they can't be sent.
pub fn parse(data: &Value) -> Result<Mail, String> {
    let server = text(&data["smtp_server"]).trim().to_string();
    if server.is_empty() {
        return Err("the block has no smtp_server".into());
    }
    let security = match text(&data["smtp_type"]).to_ascii_uppercase().as_str() {
        "" | "STARTTLS" => Security::StartTls,
        "SSL" => Security::Ssl,
        "INSECURE" => Security::Insecure,
        other => return Err(format!("unknown smtp_type {other:?}")),
    };
    let port = match &data["smtp_port"] {
        Value::Null => match security {
            Security::StartTls => 587,
            Security::Ssl => 465,
            Security::Insecure => 25,
        },
        v => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("smtp_port {v} is not a port"))?,
    };
    let user = text(&data["username"]);
    let login = (!user.is_empty()).then(|| (user, text(&data["password"])));
    let from = text(&data["from_email"]);
    if from.is_empty() {
        return Err("the block has no from_email".into());
    }
    let to = list(&data["to_emails"]);
    if to.is_empty() {
        return Err("the block has no to_emails".into());
    }
    Ok(Mail {
        server,
        port,
        security,
        login,
        from,
        to,
    })
}

/// The message: `subject` and `body` as plain text from the sender to every recipient.
pub fn message(mail: &Mail, subject: &str, body: &str) -> Result<Message, String> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| format!("{a:?} is not an e-mail address: {e}"))
    };
    let mut b = Message::builder()
        .from(mailbox(&mail.from)?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &mail.to {
        b = b.to(mailbox(to)?);
    }
    b.body(body.to_string()).map_err(|e| e.to_string())
}

fn transport(mail: &Mail) -> Result<AsyncSmtpTransport<Tokio1Executor>, SmtpError> {
    let builder = match mail.security {
        Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&mail.server)?,
        Security::Ssl => AsyncSmtpTransport::<Tokio1Executor>::relay(&mail.server)?,
        Security::Insecure => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&mail.server),
    };
    let builder = builder.port(mail.port).timeout(Some(TIMEOUT));
    Ok(match &mail.login {
        Some((user, password)) => builder
            .credentials(Credentials::new(user.clone(), password.clone()))
            .build(),
        None => builder.build(),
    })
}

/// Sends the notification through the block's SMTP server.
pub(super) async fn send(data: &Value, subject: &str, body: &str) -> Result<(), Fail> {
    let mail = parse(data).map_err(failed)?;
    let message = message(&mail, subject, body).map_err(failed)?;
    let smtp = transport(&mail).map_err(failed)?;
    match smtp.send(message).await {
        Ok(_) => Ok(()),
        // A refusal: sending again would be refused again.
        Err(e) if e.is_permanent() => Err(failed(e)),
        // A 4xx (greylisting, a full queue), a timeout, a connection that failed: later.
        Err(e) => Err(Fail::Retry(format!("Notification failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_block_becomes_a_mail_with_the_usual_port_of_its_security() {
        let m = parse(
            &json!({"smtp_server": "mail.example.com", "from_email": "a@example.com",
                              "to_emails": ["b@example.com", "c@example.com"], "username": "u",
                              "password": "p"}),
        )
        .expect("parses");
        assert_eq!((m.port, m.security), (587, Security::StartTls));
        assert_eq!(m.login, Some(("u".into(), "p".into())));
        assert_eq!(m.to.len(), 2);
        let ssl = parse(
            &json!({"smtp_server": "h", "smtp_type": "SSL", "from_email": "a@x.org",
                                "to_emails": "b@x.org"}),
        )
        .expect("parses");
        assert_eq!(
            (ssl.port, ssl.security, ssl.login),
            (465, Security::Ssl, None)
        );
        let plain = parse(
            &json!({"smtp_server": "h", "smtp_type": "INSECURE", "smtp_port": 2525,
                                  "from_email": "a@x.org", "to_emails": ["b@x.org"]}),
        )
        .expect("parses");
        assert_eq!((plain.port, plain.security), (2525, Security::Insecure));
    }

    #[test]
    fn a_block_that_cannot_send_says_why() {
        let base = json!({"smtp_server": "h", "from_email": "a@x.org", "to_emails": ["b@x.org"]});
        let with = |k: &str, v: Value| {
            let mut d = base.clone();
            d[k] = v;
            parse(&d).expect_err("refused")
        };
        assert!(with("smtp_server", json!("")).contains("smtp_server"));
        assert!(with("to_emails", json!([])).contains("to_emails"));
        assert!(with("smtp_port", json!(70000)).contains("not a port"));
        assert!(with("smtp_type", json!("TLS1")).contains("smtp_type"));
        let m = parse(&json!({"smtp_server": "h", "from_email": "not an address",
                              "to_emails": ["b@x.org"]}))
        .expect("parses");
        assert!(message(&m, "s", "b")
            .expect_err("bad")
            .contains("not an e-mail address"));
    }

    #[test]
    fn the_message_carries_subject_and_body_to_every_recipient() {
        let m = parse(
            &json!({"smtp_server": "h", "from_email": "Prefect <a@x.org>",
                              "to_emails": ["b@x.org", "c@x.org"]}),
        )
        .expect("parses");
        let msg = message(&m, "Run failed", "flow x failed").expect("builds");
        let env = msg.envelope();
        assert_eq!(env.to().len(), 2);
        let raw = String::from_utf8(msg.formatted()).expect("utf-8");
        assert!(raw.contains("Subject: Run failed\r\n"), "{raw}");
        assert!(raw.contains("From: Prefect <a@x.org>\r\n"), "{raw}");
        assert!(raw.contains("flow x failed"), "{raw}");
    }
}
