//! Prefect's websocket protocol (API.md §4.1) and `/events/in` (§4.2): the `prefect`
//! subprotocol, a first `{"type":"auth"}` message answered with `{"type":"auth_success"}`, then
//! one event per text frame. Pings are answered at once: the client uses them as delivery
//! checkpoints, so a pong means every earlier frame was accepted.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use futures_util::FutureExt;
use serde_json::Value;

use super::Event;
use crate::extract::workspace::Workspace;
use crate::identity::{self, Presented, Principal};
use crate::state::AppState;

/// Largest frame accepted: one event, at most Prefect's maximum event size.
const MAX_FRAME: usize = crate::event_model::MAX_EVENT_BYTES;
/// How long a client has to send its `auth` message before the socket is closed.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Most events of one socket published in one broker round trip.
const BATCH: usize = 500;

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

/// What the socket's `auth` message must prove (in `auth.mode = "required"`, when the upgrade
/// request carried no credential): a credential whose roles in the workspace grant `scope` (the
/// workspace scope the route table names for the socket's route).
pub struct TokenCheck {
    pub state: web::Data<AppState>,
    /// The workspace's account, as the URL names it (the default account for plain URLs; the
    /// workspace's resolution checked they belong together).
    pub account: String,
    pub workspace: String,
    pub scope: &'static str,
    /// The peer's address (password guesses are throttled per address).
    pub client: Option<String>,
}

impl TokenCheck {
    /// The check a socket of `req` needs, if any.
    pub fn of(
        req: &HttpRequest,
        state: &web::Data<AppState>,
        ws: &Workspace,
        scope: &'static str,
    ) -> Option<TokenCheck> {
        let authenticated = req.extensions().get::<Principal>().is_some();
        (state.settings.auth.required() && !authenticated).then(|| TokenCheck {
            state: state.clone(),
            account: req
                .match_info()
                .get("account_id")
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| crate::storage::accounts::DEFAULT_ACCOUNT_ID.to_string()),
            workspace: ws.id().as_str().to_string(),
            scope,
            client: req.peer_addr().map(|a| a.ip().to_string()),
        })
    }
}

/// Runs the auth handshake (when the client speaks the `prefect` subprotocol). Returns false
/// when the socket was closed instead.
pub async fn handshake(
    session: &mut Session,
    stream: &mut AggregatedMessageStream,
    prefect: bool,
    check: Option<TokenCheck>,
) -> bool {
    if !prefect {
        if check.is_some() {
            close(session.clone(), CloseCode::Policy, "Not authenticated").await;
            return false;
        }
        return true;
    }
    let auth = tokio::time::timeout(HANDSHAKE_TIMEOUT, auth_message(session, stream, check)).await;
    match auth {
        Ok(done) => done,
        Err(_) => {
            close(
                session.clone(),
                CloseCode::Policy,
                "Auth handshake timed out",
            )
            .await;
            false
        }
    }
}

async fn auth_message(
    session: &mut Session,
    stream: &mut AggregatedMessageStream,
    check: Option<TokenCheck>,
) -> bool {
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
                if let Some(check) = &check {
                    if let Err(reason) = check_token(check, msg.get("token")).await {
                        close(session.clone(), CloseCode::Policy, reason).await;
                        return false;
                    }
                }
                return session.text(r#"{"type":"auth_success"}"#).await.is_ok();
            }
            Some(Ok(AggregatedMessage::Pong(_))) => {}
            _ => return false,
        }
    }
}

/// Verifies the `token` of an `auth` message (the client's auth string, `user:password` or a
/// key); the reason to close with otherwise, as the reference words it.
async fn check_token(check: &TokenCheck, token: Option<&Value>) -> Result<(), &'static str> {
    let Some(token) = token.and_then(Value::as_str).filter(|t| !t.is_empty()) else {
        return Err("Auth required but no token provided");
    };
    let Some(presented) = Presented::parse(token) else {
        return Err("Invalid token");
    };
    match identity::verify_from(&check.state, presented, check.client.as_deref()).await {
        Ok(Some(mut p)) => {
            // An account's owners and admins own its workspaces, as on HTTP.
            p.own_if_account_wide(&check.account, &check.workspace);
            if p.may(&check.workspace, check.scope) {
                Ok(())
            } else {
                Err("Invalid token")
            }
        }
        Ok(_) => Err("Invalid token"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot verify a websocket credential");
            Err("Authentication is unavailable")
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
    let check = TokenCheck::of(&req, &state, &ws, "run_flows");
    let (resp, mut session, mut stream, prefect) = upgrade(&req, body)?;
    actix_web::rt::spawn(async move {
        if !handshake(&mut session, &mut stream, prefect, check).await {
            return;
        }
        // Frames that have already arrived are taken together, up to `BATCH`, and their events
        // published in one round trip to the broker: a client flushing its queue sends them
        // back to back, and one broker round trip per frame was what bounded the rate (about
        // 4,500 events/s per socket on Redis). A ping is answered only after every earlier
        // frame's events are published.
        let mut events = Vec::new();
        let mut next = stream.recv().await;
        while let Some(msg) = next.take() {
            let mut pong = None;
            let mut end = false;
            let mut too_large = false;
            match msg {
                Ok(AggregatedMessage::Text(text)) => match serde_json::from_str::<Event>(&text) {
                    Ok(event) => match event.validate() {
                        Ok(()) => events.push(event),
                        Err(reason) => tracing::warn!(%reason, "ignoring an invalid event"),
                    },
                    Err(e) => tracing::warn!(error = %e, "ignoring a frame that is not an event"),
                },
                Ok(AggregatedMessage::Ping(p)) => pong = Some(p),
                Err(actix_ws::ProtocolError::Overflow) => {
                    // The events before it are still accepted; the socket ends with the reason.
                    too_large = true;
                    end = true;
                }
                Ok(AggregatedMessage::Close(_)) | Err(_) => end = true,
                Ok(_) => {}
            }
            if pong.is_none() && !end && events.len() < BATCH {
                // Another frame only if it is already here; dropping the unready future loses
                // nothing.
                next = stream.recv().now_or_never().flatten();
                if next.is_some() {
                    continue;
                }
            }
            if !events.is_empty() {
                if let Err(e) = super::ingest(&state, ws.id(), std::mem::take(&mut events)).await {
                    tracing::error!(error = %e, "cannot accept an event; closing the socket so the client resends");
                    close(session, CloseCode::Error, "transient_server_error").await;
                    return;
                }
            }
            if let Some(p) = pong {
                if session.pong(&p).await.is_err() {
                    return;
                }
            }
            if too_large {
                let reason = format!(
                    "Event is too large (over {} bytes)",
                    crate::event_model::MAX_EVENT_BYTES
                );
                close(session, CloseCode::Size, &reason).await;
                return;
            }
            if end {
                break;
            }
            next = stream.recv().await;
        }
        let _ = session.close(None).await;
    });
    Ok(resp)
}
