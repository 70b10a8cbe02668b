//! The repossessor: leases whose holders stopped renewing them expire, and their slots go back
//! to their concurrency limits. Safe on every replica at once: a lease is released by whoever
//! deletes its row first.

use std::sync::Arc;
use std::time::Duration;

use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::concurrency;

const BATCH: i64 = 200;

pub struct Repossessor {
    pub state: Arc<AppState>,
}

impl Service for Repossessor {
    fn name(&self) -> &'static str {
        "repossessor"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.repossessor_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let db = &self.state.stores.orion;
            let now = crate::time::now().naive_utc();
            let mut c = db.read().await?;
            let expired = concurrency::expired_leases(&mut c, now, BATCH).await?;
            drop(c);
            for lease in &expired {
                let (ws, id) = (lease.workspace_id.clone(), lease.id.clone());
                let released = db
                    .write(async move |c| concurrency::release_lease(c, &ws, &id, now).await)
                    .await?;
                if released {
                    tracing::info!(lease_id = %lease.id, "revoked an expired concurrency lease");
                }
            }
            Ok(if expired.len() as i64 >= BATCH {
                Tick::Busy
            } else {
                Tick::Idle
            })
        })
    }
}
