//! The outbox relay: puts events from the outbox table on the `events` stream, in order, and
//! marks them published; the consumers delete them once they have them durably (see
//! `storage::outbox`). While the broker is down the rows wait. When the stream has lost what it
//! was given — its epoch changed (Redis flushed or restarted empty; a new process for the
//! in-memory stream), or a row stayed unconfirmed for `outbox_redeliver_after_seconds` — the
//! relay puts the unconfirmed rows on it again. Nothing acknowledged is lost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::STREAM;
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::outbox::{self, Relayed};
use crate::storage::Database;

/// Most rows claimed by one pass, and most bytes of events (the first row always goes, however
/// large): a backlog of 1.5 MB events is moved a few at a time, not 500 at once.
const BATCH: i64 = 500;
const BATCH_BYTES: i64 = 16 * 1024 * 1024;
/// Vacuum the outbox after this many published rows.
const VACUUM_EVERY: usize = 2_000;
/// How long a woken relay waits before claiming rows.
const LINGER: Duration = Duration::from_millis(20);
/// Most bytes of events published in one broker round trip.
const PUBLISH_BYTES: usize = 8 * 1024 * 1024;
/// How often the relay looks for rows published too long ago.
const REDELIVERY_SWEEP: Duration = Duration::from_secs(30);

pub struct Relay {
    state: Arc<AppState>,
    /// The last pass moved a full batch: more rows are waiting, so the next one starts at once.
    backlog: AtomicBool,
    /// Rows published by this relay since its last `VACUUM` of the outbox.
    since_vacuum: AtomicUsize,
    /// The stream epoch the rows published so far went to (None before the first pass).
    epoch: Mutex<Option<String>>,
    /// When the relay last looked for rows to deliver again.
    last_sweep: Mutex<Instant>,
}

impl Relay {
    pub fn new(state: Arc<AppState>) -> Self {
        Relay {
            state,
            backlog: AtomicBool::new(false),
            since_vacuum: AtomicUsize::new(0),
            epoch: Mutex::new(None),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// PostgreSQL: the outbox is a queue — every row is inserted, claimed from the head of its
    /// index and deleted within milliseconds. Autovacuum visits it at most once a minute, so in
    /// between each claim walks the dead index entries and heap tuples of every row relayed
    /// since; at a few hundred events a second that doubled the database's CPU per state change
    /// (measured with the lifecycle bench). Vacuuming the small table every few thousand
    /// rows keeps the head clean. It runs on its own connection in the background, so
    /// relaying never waits for it; a failure only costs speed, so it is logged, not returned.
    /// `TRUNCATE false`: the table's tail is emptied every few milliseconds, so a plain VACUUM
    /// kept trying to cut it off, which takes an ACCESS EXCLUSIVE lock that every transition's
    /// outbox INSERT then waited on — 707 ms per VACUUM in pg_stat_statements during the
    /// lifecycle bench; 2.3 ms without the truncation.
    fn vacuum_when_due(&self, db: &Database, moved: usize) {
        let total = self.since_vacuum.fetch_add(moved, Ordering::Relaxed) + moved;
        if total < VACUUM_EVERY {
            return;
        }
        self.since_vacuum.store(0, Ordering::Relaxed);
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

    /// Puts the unconfirmed rows back to unpublished when the stream lost what it had: at once
    /// for a new epoch, and every `REDELIVERY_SWEEP` for rows published too long ago.
    async fn redeliver_lost(&self, epoch: String) -> Result<(), TickError> {
        let db = &self.state.stores.orion;
        let changed = {
            let mut seen = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
            let changed = seen.as_deref() != Some(epoch.as_str());
            *seen = Some(epoch);
            changed
        };
        if changed {
            let n = db
                .write(async move |c| outbox::unpublish_all(c).await)
                .await?;
            if n > 0 {
                tracing::warn!(
                    events = n,
                    "the event stream is new (first start, or the broker lost its data): \
                     publishing the unconfirmed events again"
                );
            }
        }
        let due = {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.elapsed() >= REDELIVERY_SWEEP;
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            let after = self.state.settings.services.outbox_redeliver_after_seconds;
            // A setting too large for a date means "never": nothing is that old.
            let Some(before) = i64::try_from(after)
                .ok()
                .and_then(chrono::TimeDelta::try_seconds)
                .and_then(|d| crate::time::now_naive().checked_sub_signed(d))
            else {
                return Ok(());
            };
            let n = db
                .write(async move |c| outbox::unpublish_older(c, before).await)
                .await?;
            if n > 0 {
                tracing::warn!(
                    events = n,
                    after_seconds = after,
                    "events published long ago are still unconfirmed: publishing them again"
                );
            }
            let age = Duration::from_secs(self.state.settings.redis.stream_max_age_seconds);
            let trimmed = self.state.brokers.streams.trim_older(STREAM, age).await?;
            if trimmed > 0 {
                tracing::debug!(entries = trimmed, "trimmed the event stream by age");
            }
        }
        Ok(())
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
            // Before publishing: rows published to a stream that has since been lost go first.
            self.redeliver_lost(streams.epoch().await?).await?;
            let db = &self.state.stores.orion;
            let now = crate::time::now_naive();
            let unreadable = Arc::new(Mutex::new(Vec::new()));
            let dropped = unreadable.clone();
            let sent_bytes = Arc::new(AtomicUsize::new(0));
            let sent = sent_bytes.clone();
            let mut c = db.read().await?;
            let relayed = outbox::relay(&mut c, BATCH, BATCH_BYTES, now, move |rows| async move {
                let mut done = Vec::with_capacity(rows.len());
                let mut payloads = Vec::with_capacity(rows.len());
                let mut seqs = Vec::with_capacity(rows.len());
                for row in rows {
                    let Ok(event) = serde_json::from_str::<super::ReceivedEvent>(&row.event) else {
                        tracing::error!(seq = row.seq, "dropping an unreadable outbox row");
                        done.push(row.seq);
                        dropped
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(row.seq);
                        continue;
                    };
                    let env = super::Envelope {
                        workspace_id: row.workspace_id,
                        event,
                        seq: Some(row.seq),
                    };
                    payloads.push(serde_json::to_vec(&env).unwrap_or_default());
                    sent.fetch_add(row.event.len(), Ordering::Relaxed);
                    seqs.push(row.seq);
                }
                // In pipelines of at most PUBLISH_BYTES, so large events never make one huge
                // command (a 1.1 GB XADD timed out and took the server to 8 GB); the rows of a
                // pipeline that fails wait, and so do those after it, to keep the order.
                let mut start = 0;
                while start < payloads.len() {
                    let mut end = start;
                    let mut bytes = 0;
                    while end < payloads.len()
                        && (end == start || bytes + payloads[end].len() <= PUBLISH_BYTES)
                    {
                        bytes += payloads[end].len();
                        end += 1;
                    }
                    match streams.publish_many(STREAM, &payloads[start..end]).await {
                        Ok(_) => done.extend_from_slice(&seqs[start..end]),
                        Err(e) => {
                            tracing::warn!(error = %e, "broker unavailable; outbox rows wait");
                            break;
                        }
                    }
                    start = end;
                }
                done
            })
            .await?;
            drop(c);
            let moved = match relayed {
                Relayed::Marked(n) => n,
                // The published rows are marked on the writer.
                Relayed::Published(done) => {
                    let n = done.len();
                    if n > 0 {
                        db.write(async move |c| outbox::mark_published(c, &done, now).await)
                            .await?;
                    }
                    n
                }
            };
            let unreadable =
                std::mem::take(&mut *unreadable.lock().unwrap_or_else(|p| p.into_inner()));
            if !unreadable.is_empty() {
                db.write(async move |c| outbox::delete(c, &unreadable).await)
                    .await?;
            }
            self.vacuum_when_due(db, moved);
            // A batch cut by size leaves rows waiting as surely as a full one.
            let big = sent_bytes.load(Ordering::Relaxed) as i64 >= BATCH_BYTES;
            let full = moved as i64 >= BATCH || (moved > 0 && big);
            self.backlog.store(full, Ordering::Relaxed);
            Ok(if full { Tick::Busy } else { Tick::Idle })
        })
    }
}
