//! Cancellation cleanup: unfinished subflows of CANCELLED runs are cancelled, and runs stuck in
//! CANCELLING for longer than five minutes (their infrastructure never reported back) are forced
//! to CANCELLED.

use std::sync::Arc;
use std::time::Duration;

use super::{BoxFuture, Service, Tick};
use crate::app::AppState;
use crate::orchestration::{StateCreate, StateType};
use crate::runs::Request;

const BATCH: i64 = 200;
/// Prefect's `cancelling_timeout_seconds`.
const CANCELLING_TIMEOUT_SECONDS: i64 = 300;

pub struct CancellationCleanup {
    pub state: Arc<AppState>,
}

impl Service for CancellationCleanup {
    fn name(&self) -> &'static str {
        "cancellation-cleanup"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(
            self.state
                .settings
                .services
                .cancellation_cleanup_interval_ms,
        )
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, String>> {
        Box::pin(async move {
            let s = &self.state;
            let db = &s.stores.orion;
            let subflows = crate::storage::flow_runs::orphaned_subflows(db, BATCH)
                .await
                .map_err(|e| e.to_string())?;
            for (ws, id) in &subflows {
                let req = Request {
                    state: StateCreate {
                        message: Some("The parent flow run was cancelled.".into()),
                        ..StateCreate::of(StateType::Cancelling)
                    },
                    force: false,
                    client_version: None,
                };
                crate::runs::set_flow_run_state(s, ws, id, req)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let cutoff = crate::time::now() - chrono::Duration::seconds(CANCELLING_TIMEOUT_SECONDS);
            let stuck = crate::storage::flow_runs::stuck_cancelling(db, cutoff.naive_utc(), BATCH)
                .await
                .map_err(|e| e.to_string())?;
            for (ws, id) in &stuck {
                let req = Request {
                    state: StateCreate {
                        message: Some("The run did not finish cancelling within 300 seconds and was marked cancelled.".into()),
                        ..StateCreate::of(StateType::Cancelled)
                    },
                    force: true,
                    client_version: None,
                };
                crate::runs::set_flow_run_state(s, ws, id, req)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(
                if subflows.len() as i64 >= BATCH || stuck.len() as i64 >= BATCH {
                    Tick::Busy
                } else {
                    Tick::Idle
                },
            )
        })
    }
}
