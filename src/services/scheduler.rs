//! The scheduler service: creates future SCHEDULED runs for the active schedules of unpaused
//! deployments (planned by `scheduling::plan`). A full pass runs every `scheduler_interval_ms`; a
//! quick pass every `recent_scheduler_interval_ms` picks up deployments changed in the last
//! seconds.

use std::sync::Arc;
use std::time::Duration;

use crate::scheduling::plan::{plan_runs, Window};
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::deployments as deps;

pub struct Scheduler {
    pub state: Arc<AppState>,
    /// Only deployments updated in the last few seconds.
    pub recent: bool,
}

impl Service for Scheduler {
    fn name(&self) -> &'static str {
        if self.recent {
            "recent-deployments-scheduler"
        } else {
            "scheduler"
        }
    }

    fn interval(&self) -> Duration {
        let s = &self.state.settings.services;
        Duration::from_millis(if self.recent {
            s.recent_scheduler_interval_ms
        } else {
            s.scheduler_interval_ms
        })
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let db = &self.state.stores.orion;
            let started = std::time::Instant::now();
            let now = crate::time::now();
            let window = Window::from_now(now);
            let since = self
                .recent
                .then(|| (now - chrono::Duration::seconds(10)).naive_utc());
            // The next batch is planned (reads, then rows built here) while the inserts of the
            // ones before run, as many at a time as the backend takes (storage decides).
            let deps::Batching { parallel, batch } = deps::scheduler_batching(db);
            let mut inserts: std::collections::VecDeque<
                tokio::task::JoinHandle<crate::storage::StorageResult<usize>>,
            > = Default::default();
            let mut after = String::new();
            let mut created = 0;
            let mut seen = 0;
            loop {
                let page = {
                    let mut c = db.read().await?;
                    deps::list_schedulable(&mut c, &after, batch, since).await?
                };
                let Some(last) = page.last() else { break };
                after = last.id.to_string();
                seen += page.len();
                let rows = plan_runs(&self.state, &page, &window).await?;
                if inserts.len() >= parallel {
                    if let Some(done) = inserts.pop_front() {
                        created += done.await??;
                    }
                }
                let state = Arc::clone(&self.state);
                inserts.push_back(tokio::spawn(async move {
                    state
                        .stores
                        .orion
                        .write_bulk(async move |c| {
                            deps::insert_scheduled_runs(c, rows, deps::IfPaused::Skip).await
                        })
                        .await
                }));
                if (page.len() as i64) < batch {
                    break;
                }
            }
            for done in inserts {
                created += done.await??;
            }
            if created > 0 {
                tracing::info!(
                    created,
                    deployments = seen,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    recent = self.recent,
                    "scheduled flow runs"
                );
            }
            Ok(Tick::Idle)
        })
    }
}
