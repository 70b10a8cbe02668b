//! Webhooks and notifications, sent natively: the `call-webhook` action through a `webhook`
//! block, and `send-notification` through every notification block the client has (the HTTP
//! request each service takes is built in `services.rs`) and Orrery's own `smtp-email` block
//! (`email.rs`). A block that forbids private URLs is refused one that resolves to a private
//! address.
//! A service that answers 5xx or can't be reached is tried again with backoff (the executor's
//! retries), and the failure is reported after the last try.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::perform::{Acted, Fail};
use super::services::{self, text, Body, Outgoing};
use crate::events::automations::templates;
use crate::ids::WorkspaceId;
use crate::state::AppState;
use crate::storage::blocks::{documents, own};

/// How long a webhook or notification may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Most characters of a webhook's answer kept in the action's event.
const RESPONSE_CHARS: usize = 1000;

fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .user_agent("Prefect Notifications")
                .build()
                .ok()
        })
        .as_ref()
}

/// A block document with its secrets, as the API answers it: (its JSON, its type's slug).
async fn block(
    state: &AppState,
    ws: &WorkspaceId,
    id: Uuid,
    what: &str,
    acted: &mut Acted,
) -> Result<(Value, String), Fail> {
    let mut c = state
        .stores
        .orion
        .read()
        .await
        .map_err(super::perform::storage)?;
    let view = documents::find(&mut c, ws, &id.to_string(), true)
        .await
        .map_err(super::perform::storage)?;
    drop(c);
    let Some(view) = view else {
        acted.details.insert("status_code".into(), json!(404));
        return Err(Fail::Action(format!(
            "Unexpected status from {what:?} action: 404"
        )));
    };
    let doc =
        serde_json::to_value(crate::api::blocks::block_document_out(&view)).unwrap_or(Value::Null);
    let slug = doc["block_type"]["slug"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut r = BTreeMap::from([
        (
            "prefect.resource.id".to_string(),
            format!("prefect.block-document.{id}"),
        ),
        ("prefect.resource.role".to_string(), "block".to_string()),
    ]);
    if let Some(name) = doc["name"].as_str() {
        r.insert("prefect.resource.name".into(), name.to_string());
    }
    acted.resulting.push(r);
    acted.resulting.push(BTreeMap::from([
        (
            "prefect.resource.id".to_string(),
            format!("prefect.block-type.{slug}"),
        ),
        (
            "prefect.resource.role".to_string(),
            "block-type".to_string(),
        ),
    ]));
    Ok((doc, slug))
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_unspecified()
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped()
                    .is_some_and(|m| is_private(IpAddr::V4(m)))
        }
    }
}

/// Refuses a URL whose host is, or resolves to, a private address (`allow_private_urls: false`).
async fn check_public(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("Invalid URL: {e}"))?;
    let host = parsed.host_str().ok_or("URL has no host")?.to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("Cannot resolve {host}: {e}"))?;
    for a in addrs {
        if is_private(a.ip()) {
            return Err(format!("{url} resolves to a private address"));
        }
    }
    Ok(())
}

/// Sends one request; answers (status, body, headers) or why it could not be sent.
async fn send(out: Outgoing) -> Result<(u16, String, Map<String, Value>), String> {
    let client = client().ok_or("no HTTP client could be built")?;
    let method = reqwest::Method::from_bytes(out.method.to_uppercase().as_bytes())
        .map_err(|_| format!("Invalid method {:?}", out.method))?;
    let mut req = client.request(method, &out.url);
    for (k, v) in &out.headers {
        req = req.header(k.as_str(), text(v));
    }
    req = match out.body {
        Body::None => req,
        Body::Text(t) => req.body(t),
        Body::Json(v) => req
            .header("content-type", "application/json")
            .body(v.to_string()),
        Body::Form(pairs) => req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish(),
            ),
    };
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers: Map<String, Value> = resp
        .headers()
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            !(k.contains("auth")
                || k.contains("cookie")
                || k.contains("token")
                || k.contains("key"))
        })
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
        .collect();
    let body = resp.text().await.unwrap_or_default();
    Ok((status, body.chars().take(RESPONSE_CHARS).collect(), headers))
}

/// `call-webhook`: the block's method, URL and headers, the rendered payload as the body.
pub(super) async fn call_webhook(
    state: &AppState,
    ws: &WorkspaceId,
    block_id: Uuid,
    payload: &str,
    ctx: &Value,
    acted: &mut Acted,
) -> Result<(), Fail> {
    let (doc, slug) = block(state, ws, block_id, "call-webhook", acted).await?;
    if slug != "webhook" {
        return Err(Fail::Action(
            "The referenced block was not a webhook block".into(),
        ));
    }
    let data = &doc["data"];
    let payload = templates::render(payload, ctx)
        .map_err(|e| Fail::Action(format!("Webhook call failed: {e}")))?;
    let url = text(&data["url"]);
    let failed = |e: String| Fail::Action(format!("Webhook call failed: {e}"));
    if data["allow_private_urls"] == json!(false) {
        check_public(&url).await.map_err(failed)?;
    }
    let out = Outgoing {
        method: data["method"].as_str().unwrap_or("POST").to_string(),
        url,
        headers: data["headers"].as_object().cloned().unwrap_or_default(),
        body: if payload.is_empty() {
            Body::None
        } else {
            Body::Text(payload)
        },
    };
    let (status, body, headers) = send(out)
        .await
        .map_err(|e| Fail::Retry(format!("Webhook call failed: {e}")))?;
    if status >= 500 {
        return Err(Fail::Retry(format!("Webhook call failed: {status} {body}")));
    }
    acted.details.insert("status_code".into(), json!(status));
    acted.details.insert("response_body".into(), json!(body));
    acted
        .details
        .insert("response_headers".into(), Value::Object(headers));
    Ok(())
}

/// `send-notification`: the rendered subject and body through the block's service.
pub(super) async fn send_notification(
    state: &AppState,
    ws: &WorkspaceId,
    block_id: Uuid,
    subject: &str,
    body: &str,
    ctx: &Value,
    acted: &mut Acted,
) -> Result<(), Fail> {
    let (doc, slug) = block(state, ws, block_id, "send-notification", acted).await?;
    let render = |t: &str| {
        templates::render(t, ctx).map_err(|e| Fail::Action(format!("Notification failed: {e}")))
    };
    let (subject, body) = (render(subject)?, render(body)?);
    let notifies = doc["block_schema"]["capabilities"]
        .as_array()
        .is_some_and(|c| c.iter().any(|x| x == "notify"));
    if !notifies {
        return Err(Fail::Action(
            "The referenced block was not a notification block".into(),
        ));
    }
    let data = &doc["data"];
    if slug == own::SMTP_EMAIL {
        return super::email::send(data, &subject, &body).await;
    }
    let outgoing = services::requests(&slug, data, &subject, &body, &state.settings.notifications)
        .map_err(Fail::Action)?;
    for out in outgoing {
        if data["allow_private_urls"] == json!(false) {
            check_public(&out.url)
                .await
                .map_err(|e| Fail::Action(format!("Notification failed: {e}")))?;
        }
        match send(out).await {
            Ok((status, _, _)) if status < 300 => {}
            // The service may take it on another try: again later, failed after the last.
            Ok((status, body, _)) if status >= 500 => {
                return Err(Fail::Retry(format!("Notification failed: {status} {body}")))
            }
            Err(e) => return Err(Fail::Retry(format!("Notification failed: {e}"))),
            Ok((status, body, _)) => {
                acted.details.insert(
                    "notification_log".into(),
                    json!(format!("{status}: {body}")),
                );
                return Err(Fail::Action("Notification failed".into()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        assert!(is_private("10.1.2.3".parse().expect("ip")));
        assert!(is_private("127.0.0.1".parse().expect("ip")));
        assert!(is_private("100.64.0.1".parse().expect("ip")));
        assert!(is_private("::1".parse().expect("ip")));
        assert!(is_private("fd00::1".parse().expect("ip")));
        assert!(is_private("::ffff:192.168.1.1".parse().expect("ip")));
        assert!(!is_private("93.184.216.34".parse().expect("ip")));
    }
}
