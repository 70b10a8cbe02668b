//! Late runs: SCHEDULED runs more than `late_runs_after_seconds` past their start time become
//! `Scheduled "Late"` through the late-runs policy (which emits `prefect.flow-run.Late`).
//! Safe on every replica: a run already Late is left alone by the policy.

use std::sync::Arc;
use std::time::Duration;

use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::flow_runs;

const BATCH: i64 = 500;

pub struct LateRuns {
    pub state: Arc<AppState>,
}

impl Service for LateRuns {
    fn name(&self) -> &'static str {
        "late-runs"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.late_runs_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let s = &self.state;
            let cutoff = crate::time::now()
                - chrono::Duration::seconds(s.settings.services.late_runs_after_seconds as i64);
            let late = async {
                let mut c = s.stores.orion.read().await?;
                flow_runs::list_late_candidates(&mut c, cutoff.naive_utc(), BATCH).await
            }
            .await?;
            for (ws, id) in &late {
                crate::runs::mark_flow_run_late(s, ws, id).await?;
            }
            Ok(if late.len() as i64 >= BATCH {
                Tick::Busy
            } else {
                Tick::Idle
            })
        })
    }
}
