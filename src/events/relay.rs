//! The outbox relay: moves events written by API transactions from the outbox table to the
//! `events` stream, in order, deleting each row once the broker has it. While the broker is
//! down the rows wait; nothing is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::STREAM;
use crate::service::{BoxFuture, Service, Tick};
use crate::state::AppState;
use crate::storage::outbox;

const BATCH: i64 = 500;
/// How long a woken relay waits before claiming rows.
const LINGER: Duration = Duration::from_millis(20);

pub struct Relay {
    state: Arc<AppState>,
    /// The last pass moved a full batch: more rows are waiting, so the next one starts at once.
    backlog: AtomicBool,
}

impl Relay {
    pub fn new(state: Arc<AppState>) -> Self {
        Relay {
            state,
            backlog: AtomicBool::new(false),
        }
    }
}

impl Service for Relay {
    fn name(&self) -> &'static str {
        "outbox-relay"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.outbox_relay_interval_ms)
    }

    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.state.outbox_wake.clone())
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, String>> {
        Box::pin(async move {
            let streams = self.state.brokers.streams.clone();
            // Let a burst of transitions land first, so one claim moves many rows: each relay
            // is a transaction on the orion writer, which transitions wait for. A backlog is
            // already a burst.
            if !self.backlog.load(Ordering::Relaxed) {
                tokio::time::sleep(LINGER).await;
            }
            let moved = outbox::relay(&self.state.stores.orion, BATCH, move |rows| async move {
                let mut done = Vec::with_capacity(rows.len());
                let mut payloads = Vec::with_capacity(rows.len());
                let mut seqs = Vec::with_capacity(rows.len());
                for row in rows {
                    let Ok(event) = serde_json::from_str::<super::ReceivedEvent>(&row.event) else {
                        tracing::error!(seq = row.seq, "dropping an unreadable outbox row");
                        done.push(row.seq);
                        continue;
                    };
                    let env = super::Envelope {
                        workspace_id: row.workspace_id,
                        event,
                    };
                    payloads.push(serde_json::to_vec(&env).unwrap_or_default());
                    seqs.push(row.seq);
                }
                match streams.publish_many(STREAM, &payloads).await {
                    Ok(_) => done.extend(seqs),
                    Err(e) => tracing::warn!(error = %e, "broker unavailable; outbox rows wait"),
                }
                done
            })
            .await
            .map_err(|e| e.to_string())?;
            let full = moved as i64 >= BATCH;
            self.backlog.store(full, Ordering::Relaxed);
            Ok(if full { Tick::Busy } else { Tick::Idle })
        })
    }
}
