//! The outbox relay: moves events written by API transactions from the outbox table to the
//! `events` stream, in order, deleting each row once the broker has it. While the broker is
//! down the rows wait; nothing is lost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::STREAM;
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::outbox::{self, Relayed};
use crate::storage::Database;

const BATCH: i64 = 500;
/// Vacuum the outbox after this many deletions.
const VACUUM_EVERY: usize = 2_000;
/// How long a woken relay waits before claiming rows.
const LINGER: Duration = Duration::from_millis(20);

pub struct Relay {
    state: Arc<AppState>,
    /// The last pass moved a full batch: more rows are waiting, so the next one starts at once.
    backlog: AtomicBool,
    /// Rows deleted by this relay since its last `VACUUM` of the outbox.
    deleted_since_vacuum: AtomicUsize,
}

impl Relay {
    pub fn new(state: Arc<AppState>) -> Self {
        Relay {
            state,
            backlog: AtomicBool::new(false),
            deleted_since_vacuum: AtomicUsize::new(0),
        }
    }

    /// PostgreSQL: the outbox is a queue — every row is inserted, claimed from the head of its
    /// index and deleted within milliseconds. Autovacuum visits it at most once a minute, so in
    /// between each claim walks the dead index entries and heap tuples of every row relayed
    /// since; at a few hundred events a second that doubled the database's CPU per state change
    /// (measured with the lifecycle bench). Vacuuming the small table every few thousand
    /// deletions keeps the head clean. It runs on its own connection in the background, so
    /// relaying never waits for it; a failure only costs speed, so it is logged, not returned.
    /// `TRUNCATE false`: the table's tail is emptied every few milliseconds, so a plain VACUUM
    /// kept trying to cut it off, which takes an ACCESS EXCLUSIVE lock that every transition's
    /// outbox INSERT then waited on — 707 ms per VACUUM in pg_stat_statements during the
    /// lifecycle bench; 2.3 ms without the truncation.
    fn vacuum_when_due(&self, db: &Database, deleted: usize) {
        let total = self
            .deleted_since_vacuum
            .fetch_add(deleted, Ordering::Relaxed)
            + deleted;
        if total < VACUUM_EVERY {
            return;
        }
        self.deleted_since_vacuum.store(0, Ordering::Relaxed);
        let db = db.clone();
        tokio::spawn(async move {
            let result = match db.read().await {
                Ok(mut c) => outbox::vacuum(&mut c).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "outbox: vacuum failed");
            }
        });
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

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let streams = self.state.brokers.streams.clone();
            // Let a burst of transitions land first, so one claim moves many rows: each relay
            // is a transaction on the orion writer, which transitions wait for. A backlog is
            // already a burst.
            if !self.backlog.load(Ordering::Relaxed) {
                tokio::time::sleep(LINGER).await;
            }
            let db = &self.state.stores.orion;
            let mut c = db.read().await?;
            let relayed = outbox::relay(&mut c, BATCH, move |rows| async move {
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
            .await?;
            drop(c);
            let moved = match relayed {
                Relayed::Deleted(n) => {
                    self.vacuum_when_due(db, n);
                    n
                }
                // The published rows are deleted on the writer.
                Relayed::Published(done) => {
                    let n = done.len();
                    if n > 0 {
                        db.write(async move |c| outbox::delete(c, &done).await)
                            .await?;
                    }
                    n
                }
            };
            let full = moved as i64 >= BATCH;
            self.backlog.store(full, Ordering::Relaxed);
            Ok(if full { Tick::Busy } else { Tick::Idle })
        })
    }
}
