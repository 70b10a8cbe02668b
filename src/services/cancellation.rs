//! Cancellation cleanup (the reference's `cancellation_cleanup` service): for flow runs
//! CANCELLED within the last day, their unfinished task runs are forced to CANCELLED and their
//! unfinished subflow runs are cancelled (CANCELLED, or CANCELLING for a subflow with a
//! deployment, so that its worker stops it); runs stuck in CANCELLING for longer than five
//! minutes (their infrastructure never reported back) become CANCELLED.
//!
//! Every replica runs this loop: each move is proposed through `runs::service_*_state`, which
//! writes nothing when the run has meanwhile left the states it was read in (another replica's
//! pass got there first), so each run is moved once.

use std::sync::Arc;
use std::time::Duration;

use crate::orchestration::{StateCreate, StateType};
use crate::runs::Request;
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::flow_runs;

const BATCH: i64 = 200;
/// Prefect's `cancelling_timeout_seconds`.
const CANCELLING_TIMEOUT_SECONDS: i64 = 300;
/// How far back cancelled parents are looked at (the reference's one day).
const LOOKBACK_HOURS: i64 = 24;
const PARENT_CANCELLED: &str = "The parent flow run was cancelled.";
/// The states a run is cancelled from: all but the terminal ones.
fn unfinished(t: StateType) -> bool {
    !t.is_terminal()
}
/// The states a subflow with a deployment is moved to CANCELLING from.
fn unfinished_not_cancelling(t: StateType) -> bool {
    !t.is_terminal() && t != StateType::Cancelling
}
const TIMEOUT_MESSAGE: &str = "Flow run cancellation timed out; marked this flow run as Cancelled.";

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

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let s = &self.state;
            let db = &s.stores.orion;
            let since = (crate::time::now() - chrono::Duration::hours(LOOKBACK_HOURS)).naive_utc();

            let tasks = async {
                let mut c = db.read().await?;
                flow_runs::list_orphaned_task_runs(&mut c, since, BATCH).await
            }
            .await?;
            for (ws, id) in &tasks {
                let req = Request {
                    state: StateCreate {
                        message: Some(PARENT_CANCELLED.into()),
                        ..StateCreate::of(StateType::Cancelled)
                    },
                    force: true,
                    client_version: None,
                };
                crate::runs::service_task_run_state(s, ws, id, req, unfinished).await?;
            }

            let subflows = async {
                let mut c = db.read().await?;
                flow_runs::list_orphaned_subflows(&mut c, since, BATCH).await
            }
            .await?;
            let mut moved = 0usize;
            for (ws, id, deployment) in &subflows {
                // A subflow with a deployment runs on its own infrastructure: CANCELLING lets
                // its worker stop it. Without one it stops with its parent.
                let target = if deployment.is_some() {
                    StateType::Cancelling
                } else {
                    StateType::Cancelled
                };
                let req = Request {
                    state: StateCreate {
                        message: Some(PARENT_CANCELLED.into()),
                        ..StateCreate::of(target)
                    },
                    force: false,
                    client_version: None,
                };
                let from = if target == StateType::Cancelling {
                    unfinished_not_cancelling
                } else {
                    unfinished
                };
                let out = crate::runs::service_flow_run_state(s, ws, id, req, from).await?;
                if out.is_some_and(|a| a.written) {
                    moved += 1;
                }
            }

            let cutoff = crate::time::now() - chrono::Duration::seconds(CANCELLING_TIMEOUT_SECONDS);
            let stuck = async {
                let mut c = db.read().await?;
                flow_runs::list_stuck_cancelling(&mut c, cutoff.naive_utc(), BATCH).await
            }
            .await?;
            for (ws, id) in &stuck {
                let req = Request {
                    state: StateCreate {
                        message: Some(TIMEOUT_MESSAGE.into()),
                        ..StateCreate::of(StateType::Cancelled)
                    },
                    force: false,
                    client_version: None,
                };
                crate::runs::service_flow_run_state(s, ws, id, req, |t| t == StateType::Cancelling)
                    .await?;
            }
            // Busy (run again at once) only while full batches make progress; a subflow whose
            // transition is refused stays a candidate and must not spin the loop.
            let busy = tasks.len() as i64 >= BATCH
                || (subflows.len() as i64 >= BATCH && moved > 0)
                || stuck.len() as i64 >= BATCH;
            Ok(if busy { Tick::Busy } else { Tick::Idle })
        })
    }
}
