//! Prefect's websocket protocol (API.md §4.1) and `/events/in` (§4.2): the `prefect`
//! subprotocol, a first `{"type":"auth"}` message answered with `{"type":"auth_success"}`, then
//! one event per text frame. Pings are answered at once: the client uses them as delivery
//! checkpoints, so a pong means every earlier frame was accepted.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use serde_json::Value;

use super::Event;
use crate::api::workspace::Workspace;
use crate::app::AppState;

/// Largest frame accepted (Prefect's maximum event size is 1.5 MB).
const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Upgrades the request, offering the `prefect` subprotocol.
pub fn upgrade(
    req: &HttpRequest,
    body: web::Payload,
) -> actix_web::Result<(HttpResponse, Session, AggregatedMessageStream, bool)> {
    let wants_prefect = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "prefect"));
    let (resp, session, stream) = actix_ws::handle_with_protocols(req, body, &["prefect"])?;
    let stream = stream
        .max_frame_size(MAX_FRAME)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME);
    Ok((resp, session, stream, wants_prefect))
}

pub async fn close(session: Session, code: CloseCode, reason: &str) {
    let _ = session
        .close(Some(CloseReason {
            code,
            description: Some(reason.to_string()),
        }))
        .await;
}

/// Runs the auth handshake (when the client speaks the `prefect` subprotocol). Returns false
/// when the socket was closed instead.
pub async fn handshake(
    session: &mut Session,
    stream: &mut AggregatedMessageStream,
    prefect: bool,
) -> bool {
    if !prefect {
        return true;
    }
    loop {
        match stream.recv().await {
            Some(Ok(AggregatedMessage::Ping(p))) => {
                if session.pong(&p).await.is_err() {
                    return false;
                }
            }
            Some(Ok(AggregatedMessage::Text(text))) => {
                let msg: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if msg.get("type").and_then(Value::as_str) != Some("auth") {
                    let s = session.clone();
                    close(s, CloseCode::Policy, "Expected 'auth' message").await;
                    return false;
                }
                return session.text(r#"{"type":"auth_success"}"#).await.is_ok();
            }
            Some(Ok(AggregatedMessage::Pong(_))) => {}
            _ => return false,
        }
    }
}

/// `GET /events/in` (websocket).
pub async fn events_in(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    ws: Workspace,
) -> actix_web::Result<HttpResponse> {
    let (resp, mut session, mut stream, prefect) = upgrade(&req, body)?;
    actix_web::rt::spawn(async move {
        if !handshake(&mut session, &mut stream, prefect).await {
            return;
        }
        while let Some(msg) = stream.recv().await {
            match msg {
                Ok(AggregatedMessage::Text(text)) => match serde_json::from_str::<Event>(&text) {
                    Ok(event) => match event.validate() {
                        Ok(()) => {
                            if let Err(e) = super::ingest(&state, ws.id(), vec![event]).await {
                                tracing::error!(error = %e, "cannot accept an event; closing the socket so the client resends");
                                close(session, CloseCode::Error, "transient_server_error").await;
                                return;
                            }
                        }
                        Err(reason) => tracing::warn!(%reason, "ignoring an invalid event"),
                    },
                    Err(e) => tracing::warn!(error = %e, "ignoring a frame that is not an event"),
                },
                Ok(AggregatedMessage::Ping(p)) => {
                    if session.pong(&p).await.is_err() {
                        return;
                    }
                }
                Ok(AggregatedMessage::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = session.close(None).await;
    });
    Ok(resp)
}
