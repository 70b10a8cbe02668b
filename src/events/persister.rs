//! The event persister: consumes every event on the `events` stream and writes it, with its
//! related resources, to the events database in batches, idempotent on event id.

use std::sync::Arc;
use std::time::Duration;

use super::{Envelope, STREAM};
use crate::broker::{BrokerError, Message};
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::events::{self, EventResourceRow, EventRow};
use crate::storage::outbox;

const GROUP: &str = "event-persister";
/// Messages delivered this often without being acknowledged are dead-lettered.
const MAX_DELIVERIES: u32 = 5;

pub struct Persister {
    pub state: Arc<AppState>,
    pub consumer: String,
    pub size: super::recorder::ReadSize,
}

impl Service for Persister {
    fn name(&self) -> &'static str {
        "event-persister"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.event_persister_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let s = &self.state;
            let (msgs, full) = super::recorder::read(s, GROUP, &self.consumer, &self.size).await?;
            if msgs.is_empty() {
                return Ok(super::recorder::again(s));
            }
            let mut rows = Vec::with_capacity(msgs.len());
            let mut seqs = Vec::with_capacity(msgs.len());
            for m in &msgs {
                match serde_json::from_slice::<Envelope>(&m.payload) {
                    Ok(env) => {
                        seqs.extend(env.seq);
                        rows.push(to_rows(&env));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, id = %m.id, "skipping an unreadable message")
                    }
                }
            }
            let inserted = s
                .stores
                .events
                .write(async move |c| events::insert(c, &rows).await)
                .await;
            match inserted {
                Ok(_) => {
                    // Durable in the events database: the outbox rows can go, then the messages.
                    super::settle(s, outbox::TO_PERSISTER, seqs).await?;
                    ack(s, &msgs).await?
                }
                Err(e) => {
                    let given_up = dead_letter_exhausted(s, GROUP, &msgs, MAX_DELIVERIES).await;
                    super::settle(s, outbox::TO_PERSISTER, given_up).await?;
                    return Err(e.into());
                }
            }
            Ok(if full {
                Tick::Busy
            } else {
                super::recorder::again(s)
            })
        })
    }
}

async fn ack(s: &AppState, msgs: &[Message]) -> Result<(), BrokerError> {
    let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
    s.brokers.streams.ack(STREAM, GROUP, &ids).await
}

/// Moves messages that failed `max` deliveries to the dead-letter stream; answers their outbox
/// rows, which the consumer gives up on (settles) too, so they are not delivered again.
pub async fn dead_letter_exhausted(
    s: &AppState,
    group: &str,
    msgs: &[Message],
    max: u32,
) -> Vec<i64> {
    let mut seqs = Vec::new();
    for m in msgs.iter().filter(|m| m.deliveries >= max) {
        tracing::error!(id = %m.id, deliveries = m.deliveries, group, "dead-lettering a message");
        let _ = s.brokers.streams.dead_letter(STREAM, group, m).await;
        if let Ok(env) = serde_json::from_slice::<Envelope>(&m.payload) {
            seqs.extend(env.seq);
        }
    }
    seqs
}

pub fn to_rows(env: &Envelope) -> (EventRow, Vec<EventResourceRow>) {
    let e = &env.event.event;
    let occurred = e.occurred.naive_utc();
    // The primary resource too (role ""), as Prefect stores it: a query for any resource
    // involved in an event is then one indexed lookup.
    let primary = EventResourceRow {
        event_id: e.id.to_string(),
        workspace_id: env.workspace_id.clone(),
        occurred,
        resource_id: e.resource_id().to_string(),
        resource_role: String::new(),
        resource: serde_json::to_string(&e.resource).unwrap_or_default(),
    };
    let resources = std::iter::once(primary)
        .chain(e.related.iter().map(|r| EventResourceRow {
            event_id: e.id.to_string(),
            workspace_id: env.workspace_id.clone(),
            occurred,
            resource_id: r.get("prefect.resource.id").cloned().unwrap_or_default(),
            resource_role: r.get("prefect.resource.role").cloned().unwrap_or_default(),
            resource: serde_json::to_string(r).unwrap_or_default(),
        }))
        .collect();
    let row = EventRow {
        id: e.id.to_string(),
        workspace_id: env.workspace_id.clone(),
        occurred,
        received: env.event.received.naive_utc(),
        event: e.event.clone(),
        resource_id: e.resource_id().to_string(),
        resource: serde_json::to_string(&e.resource).unwrap_or_default(),
        related: serde_json::to_string(&e.related).unwrap_or_default(),
        payload: serde_json::to_string(&e.payload).unwrap_or_default(),
        follows: e.follows.map(|f| f.to_string()),
    };
    (row, resources)
}
