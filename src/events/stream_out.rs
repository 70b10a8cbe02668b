//! `/events/out` (API.md §4.3) and the distributor behind it: each process reads every event
//! from the streams role with a consumer group of its own and fans it out to its local
//! subscribers, who get a backfill of stored matching events first (at most 15 minutes back),
//! then the live events, de-duplicated against the backfill.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode};
use serde_json::{json, Value};

use super::filter::EventFilter;
use super::websocket::{close, handshake, upgrade, TokenCheck};
use super::{Envelope, ReceivedEvent, STREAM};
use crate::extract::workspace::Workspace;
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;

/// Prefect's `maximum_websocket_backfill`.
const MAX_BACKFILL: chrono::Duration = chrono::Duration::minutes(15);
const BACKFILL_LIMIT: i64 = 1000;

/// Every process's distributor group is named `distributor-<host>-<uuid>`.
pub const GROUP_PREFIX: &str = "distributor-";
/// How often a distributor looks for groups and consumers of processes that are gone, at most.
const REAP_EVERY: Duration = Duration::from_secs(60);

pub struct Distributor {
    pub state: Arc<AppState>,
    pub group: String,
    /// When this distributor last reaped (see [`Distributor::reap`]).
    pub reaped: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Distributor {
    pub fn new(state: Arc<AppState>, group: String) -> Distributor {
        Distributor {
            state,
            group,
            reaped: std::sync::Mutex::new(None),
        }
    }

    /// Every `min(REAP_EVERY, reap_after / 2)`: keeps this process's group alive for
    /// `reap_after`, and removes the distributor groups of processes that are gone (killed; a
    /// clean stop removes its own) and the consumers of the shared groups that stopped reading,
    /// so Redis does not keep a backlog for them forever.
    async fn reap(&self) -> Result<(), TickError> {
        let after = Duration::from_secs(self.state.settings.redis.consumer_reap_after_seconds);
        let every = REAP_EVERY.min(after / 2);
        {
            let mut last = self
                .reaped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < every) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
        let streams = &self.state.brokers.streams;
        streams.keep_alive(STREAM, &self.group, after).await?;
        let reaped = streams.reap(STREAM, GROUP_PREFIX, after).await?;
        for group in &reaped.groups {
            tracing::info!(
                group,
                "removed the live-event group of a process that is gone"
            );
        }
        for (group, consumer) in &reaped.consumers {
            tracing::info!(
                group,
                consumer,
                "removed a stream consumer that stopped reading"
            );
        }
        Ok(())
    }
}

impl Service for Distributor {
    fn name(&self) -> &'static str {
        "distributor"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(50)
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let streams = &self.state.brokers.streams;
            if let Err(e) = streams.destroy_group(STREAM, &self.group).await {
                tracing::warn!(error = %e, group = %self.group, "could not remove the live-event group");
            }
        })
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            // Reaping is housekeeping: a failure is logged, and reading goes on.
            if let Err(e) = self.reap().await {
                tracing::warn!(error = %e, "could not reap stream consumers");
            }
            let s = &self.state;
            let streams = &s.brokers.streams;
            // Nobody here is listening: move the group past what arrived instead of reading it.
            // Every process has a group, so reading each event N times on N replicas cost
            // Redis and every replica CPU on every event (bench/replicas.sh).
            if s.live_events.receiver_count() == 0 {
                return match streams.skip_to_end(STREAM, &self.group).await {
                    Err(crate::broker::BrokerError::NoGroup { .. }) => {
                        streams.ensure_group(STREAM, &self.group).await?;
                        Ok(Tick::Idle)
                    }
                    other => other.map(|()| Tick::Idle).map_err(Into::into),
                };
            }
            let read = streams
                .read(
                    STREAM,
                    &self.group,
                    &self.group,
                    500,
                    Duration::from_millis(500),
                    Duration::from_secs(3600),
                )
                .await;
            let msgs = match read {
                Err(crate::broker::BrokerError::NoGroup { .. }) => {
                    streams.ensure_group(STREAM, &self.group).await?;
                    return Ok(Tick::Busy);
                }
                other => other?,
            };
            if msgs.is_empty() {
                return Ok(Tick::Idle);
            }
            let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
            for m in &msgs {
                if let Ok(env) = serde_json::from_slice::<Envelope>(&m.payload) {
                    let _ = s.live_events.send(Arc::new(env));
                }
            }
            streams.ack(STREAM, &self.group, &ids).await?;
            Ok(Tick::Busy)
        })
    }
}

fn frame(e: &ReceivedEvent) -> String {
    json!({"type": "event", "event": e}).to_string()
}

/// `GET /events/out` (websocket).
pub async fn events_out(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    ws: Workspace,
) -> actix_web::Result<HttpResponse> {
    let check = TokenCheck::of(&req, &state, &ws, "see_events");
    let (resp, mut session, mut stream, prefect) = upgrade(&req, body)?;
    let mut live = state.live_events.subscribe();
    actix_web::rt::spawn(async move {
        if !handshake(&mut session, &mut stream, prefect, check).await {
            return;
        }
        // The first message is the filter.
        let filter = loop {
            match stream.recv().await {
                Some(Ok(AggregatedMessage::Text(t))) => {
                    let msg: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if msg.get("type").and_then(Value::as_str) != Some("filter") {
                        close(session, CloseCode::Protocol, "Expected 'filter' message").await;
                        return;
                    }
                    match serde_json::from_value::<EventFilter>(
                        msg.get("filter").cloned().unwrap_or(Value::Null),
                    ) {
                        Ok(f) => break f,
                        Err(e) => {
                            close(
                                session,
                                CloseCode::Protocol,
                                &format!("Invalid filter: {e}"),
                            )
                            .await;
                            return;
                        }
                    }
                }
                Some(Ok(AggregatedMessage::Ping(p))) => {
                    if session.pong(&p).await.is_err() {
                        return;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                _ => return,
            }
        };
        let now = crate::time::now();
        let since = filter
            .occurred
            .as_ref()
            .and_then(|o| o.since)
            .unwrap_or(now)
            .max(now - MAX_BACKFILL);
        let mut seen = HashSet::new();
        let stored = match state.stores.events.read().await {
            Ok(mut c) => {
                crate::storage::events::list_since(
                    &mut c,
                    ws.id(),
                    since.naive_utc(),
                    BACKFILL_LIMIT,
                )
                .await
            }
            Err(e) => Err(e),
        }
        .unwrap_or_default();
        for row in stored {
            let Some(e) = received_from_row(&row) else {
                continue;
            };
            if filter.matches(&e.event) {
                seen.insert(e.event.id);
                if session.text(frame(&e)).await.is_err() {
                    return;
                }
            }
        }
        loop {
            tokio::select! {
                msg = stream.recv() => match msg {
                    Some(Ok(AggregatedMessage::Ping(p))) => {
                        if session.pong(&p).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(AggregatedMessage::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
                ev = live.recv() => match ev {
                    Ok(env) => {
                        if env.workspace_id == ws.id()
                            && filter.matches(&env.event.event)
                            && !seen.contains(&env.event.event.id)
                            && session.text(frame(&env.event)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "an /events/out subscriber fell behind");
                    }
                    Err(_) => return,
                },
            }
        }
    });
    Ok(resp)
}

pub(crate) fn received_from_row(r: &crate::storage::events::EventRow) -> Option<ReceivedEvent> {
    Some(ReceivedEvent {
        event: super::Event {
            occurred: r.occurred.and_utc(),
            event: r.event.clone(),
            resource: serde_json::from_str(&r.resource).ok()?,
            related: serde_json::from_str(&r.related).ok()?,
            payload: serde_json::from_str(&r.payload).ok()?,
            id: uuid::Uuid::parse_str(&r.id).ok()?,
            follows: r
                .follows
                .as_deref()
                .and_then(|f| uuid::Uuid::parse_str(f).ok()),
        },
        received: r.received.and_utc(),
    })
}
