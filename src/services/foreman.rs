//! The foreman: workers whose heartbeats stop go OFFLINE (after 3 × their interval), pools with
//! no online worker become NOT_READY, and queues and deployments nobody polled for 60 seconds
//! become NOT_READY; each change emits the event the reference server emits.

use std::sync::Arc;
use std::time::Duration;

use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;

const INACTIVITY_MULTIPLE: i64 = 3;
const FALLBACK_HEARTBEAT_SECONDS: i64 = 30;
const POLL_TIMEOUT_SECONDS: i64 = 60;

pub struct Foreman {
    pub state: Arc<AppState>,
}

impl Service for Foreman {
    fn name(&self) -> &'static str {
        "foreman"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.foreman_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let s = &self.state;
            let now = crate::time::now();
            let polled_before = (now - chrono::Duration::seconds(POLL_TIMEOUT_SECONDS)).naive_utc();
            let at = now.naive_utc();
            let (workers, pools, queues, deployments) = s
                .stores
                .orion
                .write(async move |c| {
                    crate::storage::work_pools::mark_unhealthy(
                        c,
                        at,
                        INACTIVITY_MULTIPLE,
                        FALLBACK_HEARTBEAT_SECONDS,
                        polled_before,
                    )
                    .await
                })
                .await?;
            for w in &workers {
                tracing::info!(worker = %w.name, "worker went offline");
            }
            for p in &pools {
                crate::runs::events::emit_work_pool(
                    s,
                    &p.workspace_id,
                    p,
                    "prefect.work-pool.not-ready",
                )
                .await;
            }
            if !queues.is_empty() || !deployments.is_empty() {
                tracing::debug!(
                    queues = queues.len(),
                    deployments = deployments.len(),
                    "marked not ready"
                );
            }
            Ok(Tick::Idle)
        })
    }
}
