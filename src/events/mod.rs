//! Events: the Prefect 3 event model, ingestion (the `/events/in` websocket and `POST /events`,
//! through the streams role, falling back to the outbox when the broker is down), and the
//! consumers of the `events` stream — the persister and the task-run recorder — plus the relay
//! that moves outbox rows to the stream.

pub mod filter;
pub mod persister;
pub mod recorder;
pub mod relay;
pub mod stream_out;
pub mod websocket;

use std::time::Duration;

pub use crate::event_model::{Envelope, Event, ReceivedEvent};

use crate::ids::WorkspaceId;
use crate::state::AppState;
use crate::storage::outbox::{self, NewOutboxRow};

/// The stream every event goes through.
pub const STREAM: &str = "events";

/// Publishes events to the streams role; any that cannot be published go to the outbox, so
/// nothing accepted is lost while the broker is down.
pub async fn ingest(
    state: &AppState,
    workspace_id: &WorkspaceId,
    events: Vec<Event>,
) -> Result<(), crate::storage::StorageError> {
    let now = crate::time::now();
    let mut envelopes = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for event in events {
        let envelope = Envelope {
            workspace_id: workspace_id.clone(),
            event: event.receive(now),
        };
        match serde_json::to_vec(&envelope) {
            Ok(p) => payloads.push(p),
            Err(e) => {
                tracing::warn!(error = %e, "dropping an event that cannot be serialised");
                continue;
            }
        }
        envelopes.push(envelope);
    }
    if payloads.is_empty() {
        return Ok(());
    }
    // All of them in one round trip to the broker (a Redis pipeline). If that fails, all of them
    // go to the outbox: some may then reach the stream twice, which its consumers ignore (they
    // are idempotent on event id).
    let published = tokio::time::timeout(
        Duration::from_secs(2),
        state.brokers.streams.publish_many(STREAM, &payloads),
    )
    .await;
    if matches!(published, Ok(Ok(_))) {
        return Ok(());
    }
    let fallback: Vec<NewOutboxRow> = envelopes
        .iter()
        .map(|envelope| NewOutboxRow {
            workspace_id: workspace_id.clone(),
            created: now.naive_utc(),
            event_id: envelope.event.event.id.to_string(),
            event: serde_json::to_string(&envelope.event).unwrap_or_default(),
        })
        .collect();
    tracing::warn!(
        count = fallback.len(),
        "streams unavailable; events kept in the outbox"
    );
    state
        .stores
        .orion
        .write(async move |c| outbox::insert(c, &fallback).await)
        .await?;
    state.outbox_wake.notify_one();
    Ok(())
}
