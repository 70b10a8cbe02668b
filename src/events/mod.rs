//! Events: the Prefect 3 event model, ingestion (the `/events/in` websocket and `POST /events`,
//! into the outbox, like the events API writes produce), the relay that puts outbox rows on the
//! `events` stream, and the stream's consumers — the persister and the task-run recorder — which
//! settle each outbox row once they have its event durably.

pub mod automations;
pub mod counting;
pub mod filter;
pub mod persister;
pub mod recorder;
pub mod relay;
pub mod stream_out;
pub mod websocket;

pub use crate::event_model::{Envelope, Event, ReceivedEvent};

use crate::ids::WorkspaceId;
use crate::state::AppState;
use crate::storage::outbox::{self, NewOutboxRow};

/// The stream every event goes through.
pub const STREAM: &str = "events";

/// Accepts events from a client (`/events/in`, `POST /events`): they are written to the outbox
/// before the caller answers, so an accepted event survives a broker that loses its data and a
/// process crash; the relay puts them on the stream. Each carries the consumers that must
/// confirm it (the persister; the task-run recorder for the client's task-run events).
pub async fn ingest(
    state: &AppState,
    workspace_id: &WorkspaceId,
    events: Vec<Event>,
) -> Result<(), crate::storage::StorageError> {
    let now = crate::time::now();
    let rows: Vec<NewOutboxRow> = events
        .into_iter()
        .map(|event| {
            let to_recorder = recorder::wants(&event);
            let mut row = crate::runs::events::outbox_row(workspace_id, event, now);
            if to_recorder {
                row.pending |= outbox::TO_RECORDER;
            }
            row
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    state
        .stores
        .orion
        .write(async move |c| outbox::insert(c, &rows).await)
        .await?;
    state.outbox_wake.notify_one();
    Ok(())
}

/// A consumer (`outbox::TO_*`) has done its work for these outbox rows.
pub async fn settle(
    state: &AppState,
    consumer: i32,
    seqs: Vec<i64>,
) -> Result<(), crate::storage::StorageError> {
    if seqs.is_empty() {
        return Ok(());
    }
    state
        .stores
        .orion
        .write(async move |c| outbox::settle(c, consumer, &seqs).await)
        .await?;
    Ok(())
}
