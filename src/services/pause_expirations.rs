//! Pause expirations: PAUSED flow runs whose `state_details.pause_timeout` has passed are set
//! to FAILED ("The flow was paused and never resumed.") through orchestration, with force, as
//! Prefect's `monitor_expired_pauses` does. Each run is read again just before it is failed,
//! so a run resumed meanwhile (or already failed by another replica) is left alone.

use std::sync::Arc;
use std::time::Duration;

use crate::ids::{FlowRunId, WorkspaceId};
use crate::orchestration::{StateCreate, StateDetails, StateType};
use crate::runs::convert::flow_state;
use crate::runs::{self, Request};
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::{flow_run_input, flow_runs, StorageResult};

const BATCH: i64 = 200;

pub struct PauseExpirations {
    pub state: Arc<AppState>,
}

/// Whether the pause described by `details` (state-details JSON) has timed out.
fn expired(details: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    serde_json::from_str::<StateDetails>(details)
        .ok()
        .and_then(|d| d.pause_timeout)
        .is_some_and(|t| t < now)
}

/// Reads the run again just before failing it, so a run resumed (or failed by another replica)
/// since the sweep's read is left alone.
async fn still_expired(state: &AppState, ws: &WorkspaceId, run: &FlowRunId) -> StorageResult<bool> {
    let found = async {
        let mut c = state.stores.orion.read().await?;
        flow_runs::find(&mut c, ws, run).await
    }
    .await?;
    let current = found.and_then(|(_, s)| s.as_ref().and_then(flow_state));
    Ok(current.is_some_and(|s| {
        s.state_type == StateType::Paused
            && s.state_details
                .pause_timeout
                .is_some_and(|t| t < crate::time::now())
    }))
}

impl PauseExpirations {
    async fn sweep(&self) -> Result<Tick, TickError> {
        let db = &self.state.stores.orion;
        let mut after = String::new();
        loop {
            let runs = async {
                let mut c = db.read().await?;
                flow_run_input::list_paused_runs(&mut c, &after, BATCH).await
            }
            .await?;
            let now = crate::time::now();
            for (ws, run, details) in &runs {
                if !expired(details, now) || !still_expired(&self.state, ws, run).await? {
                    continue;
                }
                let request = Request {
                    state: StateCreate {
                        message: Some("The flow was paused and never resumed.".into()),
                        ..StateCreate::of(StateType::Failed)
                    },
                    force: true,
                    client_version: None,
                };
                // Another replica may have got there first: the transition re-reads the run
                // and writes only while it is still PAUSED.
                let paused = |t| t == StateType::Paused;
                match runs::service_flow_run_state(&self.state, ws, run, request, paused).await {
                    Ok(Some(a)) if a.written => {
                        tracing::info!(flow_run_id = %run, "failed a flow run whose pause expired")
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match runs.last() {
                Some((_, id, _)) if runs.len() as i64 >= BATCH => after = id.to_string(),
                _ => return Ok(Tick::Idle),
            }
        }
    }
}

impl Service for PauseExpirations {
    fn name(&self) -> &'static str {
        "pause_expirations"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.pause_expirations_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(self.sweep())
    }
}

#[cfg(test)]
mod tests {
    use super::expired;

    #[test]
    fn only_past_timeouts_expire() {
        let now = crate::time::now();
        let past = crate::time::format(&(now - chrono::Duration::seconds(5)));
        let future = crate::time::format(&(now + chrono::Duration::seconds(5)));
        assert!(expired(&format!(r#"{{"pause_timeout":"{past}"}}"#), now));
        assert!(!expired(&format!(r#"{{"pause_timeout":"{future}"}}"#), now));
        assert!(!expired(r#"{"pause_timeout":null}"#, now));
        assert!(!expired("not json", now));
    }
}
