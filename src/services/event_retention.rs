//! Event retention: events older than `events.retention_days` are deleted a batch at a time
//! (`storage::events::retention`), with their related resources and their counts, each batch its
//! own short transaction, so the persister is never blocked for long. Safe on every replica:
//! PostgreSQL batches skip rows another pass holds, and counts are taken off only for rows this
//! pass deleted.

use std::sync::Arc;
use std::time::Duration;

use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::events::retention;

/// Events deleted per transaction.
const BATCH: i64 = 2_000;

pub struct EventRetention {
    pub state: Arc<AppState>,
}

impl Service for EventRetention {
    fn name(&self) -> &'static str {
        "event-retention"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.events.retention_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let stores = &self.state.stores;
            let days = i64::from(self.state.settings.events.retention_days);
            let cutoff = crate::time::now_naive() - chrono::Duration::days(days);
            let mut c = stores.events.read().await?;
            let workspaces = retention::workspaces_with_events_before(&mut c, cutoff).await?;
            drop(c);
            let mut busy = false;
            for ws in workspaces {
                let n = stores
                    .events
                    .write(async move |c| retention::delete_batch(c, &ws, cutoff, BATCH).await)
                    .await?;
                busy |= n as i64 >= BATCH;
            }
            Ok(if busy { Tick::Busy } else { Tick::Idle })
        })
    }
}
