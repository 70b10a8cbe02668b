//! The request each notification service expects, built from a notification block's fields
//! (the payloads Prefect's blocks send through Apprise): pure, so each is checked field by field.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::settings::NotificationSettings;

/// One HTTP request to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub method: String,
    pub url: String,
    pub headers: Map<String, Value>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Text(String),
    Json(Value),
    Form(Vec<(String, String)>),
}

pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn post(url: String, headers: Map<String, Value>, body: Body) -> Outgoing {
    Outgoing {
        method: "POST".into(),
        url,
        headers,
        body,
    }
}

fn headers(pairs: &[(&str, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

/// `{{key}}` placeholders of a custom webhook replaced by the subject, body, name and secrets.
pub fn apply_values(v: &Value, values: &Map<String, Value>) -> Value {
    match v {
        Value::String(s) => {
            // A string that is one placeholder takes the value itself (not its text).
            if let Some(key) = s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
                if let Some(val) = values.get(key.trim()) {
                    return val.clone();
                }
            }
            let mut out = s.clone();
            for (k, val) in values {
                out = out.replace(&format!("{{{{{k}}}}}"), &text(val));
            }
            Value::String(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| apply_values(i, values)).collect())
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, i)| (k.clone(), apply_values(i, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A block's list field (an array, or one string) as its non-empty texts.
pub fn list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(text).filter(|s| !s.is_empty()).collect(),
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The requests that deliver `subject` and `body` through a block of type `slug`; `Err` names
/// why the block can't send (a type this server doesn't send through, a malformed field).
pub fn requests(
    slug: &str,
    data: &Value,
    subject: &str,
    body: &str,
    cfg: &NotificationSettings,
) -> Result<Vec<Outgoing>, String> {
    let none = Map::new();
    let both = format!("{subject}\r\n{body}");
    Ok(match slug {
        "slack-webhook" => vec![post(
            text(&data["url"]),
            none,
            Body::Json(json!({"text": format!("*{subject}*\n{body}"), "mrkdwn": true})),
        )],
        "ms-teams-webhook" => vec![post(
            text(&data["url"]),
            none,
            Body::Json(json!({
                "@type": "MessageCard", "@context": "https://schema.org/extensions",
                "summary": subject, "title": subject, "text": body,
            })),
        )],
        "discord-webhook" => {
            let mut msg = json!({"content": format!("**{subject}**\r\n{body}")});
            if let Some(u) = data["username"].as_str().filter(|u| !u.is_empty()) {
                msg["username"] = json!(u);
            }
            if let Some(a) = data["avatar_url"].as_str().filter(|u| !u.is_empty()) {
                msg["avatar_url"] = json!(a);
            }
            if data["tts"] == json!(true) {
                msg["tts"] = json!(true);
            }
            let url = format!(
                "{}/api/webhooks/{}/{}",
                cfg.discord_url.trim_end_matches('/'),
                text(&data["webhook_id"]),
                text(&data["webhook_token"])
            );
            vec![post(url, none, Body::Json(msg))]
        }
        "mattermost-webhook" => {
            let host = text(&data["hostname"]);
            let port = data["port"].as_i64().unwrap_or(8065);
            let scheme = if data["secure"] == json!(true) {
                "https"
            } else {
                "http"
            };
            let url = format!("{scheme}://{host}:{port}/hooks/{}", text(&data["token"]));
            let mut msg = json!({"text": format!("**{subject}**\n{body}")});
            if let Some(b) = data["botname"].as_str().filter(|b| !b.is_empty()) {
                msg["username"] = json!(b);
            }
            let channels = list(&data["channels"]);
            if channels.is_empty() {
                vec![post(url, none, Body::Json(msg))]
            } else {
                channels
                    .into_iter()
                    .map(|c| {
                        let mut m = msg.clone();
                        m["channel"] = json!(c);
                        post(url.clone(), none.clone(), Body::Json(m))
                    })
                    .collect()
            }
        }
        "pager-duty-webhook" => {
            let severity = match data["notify_type"].as_str().unwrap_or("info") {
                "warning" => "warning",
                "failure" => "critical",
                _ => "info",
            };
            let mut payload = json!({
                "summary": both,
                "severity": severity,
                "source": data["source"].as_str().unwrap_or("Prefect"),
                "component": text(&data["component"]),
            });
            if let Some(g) = data["group"].as_str() {
                payload["group"] = json!(g);
            }
            if let Some(c) = data["class_id"].as_str() {
                payload["class"] = json!(c);
            }
            if let Some(d) = data["custom_details"].as_object() {
                payload["custom_details"] = Value::Object(d.clone());
            }
            let mut event = json!({
                "routing_key": text(&data["integration_key"]),
                "payload": payload,
                "client": "Prefect",
                "event_action": "trigger",
            });
            if let Some(href) = data["clickable_url"].as_str() {
                event["links"] = json!([{"href": href}]);
            }
            let url = if data["region_name"] == json!("eu") {
                &cfg.pagerduty_eu_url
            } else {
                &cfg.pagerduty_url
            };
            let auth = headers(&[(
                "authorization",
                format!("Token token={}", text(&data["api_key"])),
            )]);
            vec![post(url.clone(), auth, Body::Json(event))]
        }
        "opsgenie-webhook" => {
            let message: String = if subject.is_empty() { body } else { subject }
                .chars()
                .take(130)
                .collect();
            let mut alert = json!({
                "source": "Prefect",
                "message": message,
                "description": body,
                "details": data["details"].as_object().cloned().unwrap_or_default(),
                "priority": format!("P{}", data["priority"].as_i64().unwrap_or(3)),
            });
            let mut responders = Vec::new();
            for (field, kind, key) in [
                ("target_user", "user", "username"),
                ("target_team", "team", "name"),
                ("target_schedule", "schedule", "name"),
                ("target_escalation", "escalation", "name"),
            ] {
                for t in list(&data[field]) {
                    responders.push(json!({"type": kind, key: t}));
                }
            }
            if !responders.is_empty() {
                alert["responders"] = Value::Array(responders);
            }
            for field in ["alias", "entity"] {
                if let Some(v) = data[field].as_str() {
                    alert[field] = json!(v);
                }
            }
            let tags = list(&data["tags"]);
            if !tags.is_empty() {
                alert["tags"] = json!(tags);
            }
            let url = if data["region_name"] == json!("eu") {
                &cfg.opsgenie_eu_url
            } else {
                &cfg.opsgenie_url
            };
            let auth = headers(&[(
                "authorization",
                format!("GenieKey {}", text(&data["apikey"])),
            )]);
            vec![post(url.clone(), auth, Body::Json(alert))]
        }
        "twilio-sms" => {
            let sid = text(&data["account_sid"]);
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{sid}:{}", text(&data["auth_token"])));
            let url = format!(
                "{}/2010-04-01/Accounts/{sid}/Messages.json",
                cfg.twilio_url.trim_end_matches('/')
            );
            let from = text(&data["from_phone_number"]);
            let to = list(&data["to_phone_numbers"]);
            if to.is_empty() {
                return Err("the block has no phone number to send to".into());
            }
            to.into_iter()
                .map(|number| {
                    post(
                        url.clone(),
                        headers(&[("authorization", format!("Basic {basic}"))]),
                        Body::Form(vec![
                            ("Body".into(), both.clone()),
                            ("From".into(), from.clone()),
                            ("To".into(), number),
                        ]),
                    )
                })
                .collect()
        }
        "sendgrid-email" => {
            let url = format!("{}/v3/mail/send", cfg.sendgrid_url.trim_end_matches('/'));
            let auth = headers(&[(
                "authorization",
                format!("Bearer {}", text(&data["api_key"])),
            )]);
            let to = list(&data["to_emails"]);
            if to.is_empty() {
                return Err("the block has no address to send to".into());
            }
            to.into_iter()
                .map(|email| {
                    let mail = json!({
                        "personalizations": [{"to": [{"email": email}]}],
                        "from": {"email": text(&data["sender_email"])},
                        "subject": subject,
                        "content": [{"type": "text/plain", "value": body}],
                    });
                    post(url.clone(), auth.clone(), Body::Json(mail))
                })
                .collect()
        }
        "custom-webhook" => {
            let mut values = data["secrets"].as_object().cloned().unwrap_or_default();
            values.insert("subject".into(), json!(subject));
            values.insert("body".into(), json!(body));
            values.insert("name".into(), data["name"].clone());
            let url = text(&apply_values(&data["url"], &values));
            let mut url = url::Url::parse(&url).map_err(|e| format!("invalid URL: {e}"))?;
            if let Some(params) = apply_values(&data["params"], &values).as_object() {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, &text(v));
                }
            }
            let headers = apply_values(&data["headers"], &values)
                .as_object()
                .cloned()
                .unwrap_or_default();
            let payload = if !data["json_data"].is_null() {
                Body::Json(apply_values(&data["json_data"], &values))
            } else {
                match apply_values(&data["form_data"], &values) {
                    Value::String(s) => Body::Text(s),
                    Value::Object(m) => {
                        Body::Form(m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                    }
                    _ => Body::None,
                }
            };
            vec![Outgoing {
                method: data["method"].as_str().unwrap_or("POST").to_string(),
                url: url.to_string(),
                headers,
                body: payload,
            }]
        }
        other => {
            return Err(format!(
                "Notifications through {other:?} blocks are not sent by this server"
            ))
        }
    })
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
