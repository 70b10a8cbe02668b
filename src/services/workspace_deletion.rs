//! Deletes the rows of deleted workspaces. `DELETE /api/accounts/{a}/workspaces/{w}` removes
//! the workspace from nebula and records the deletion in the same transaction; this service
//! then deletes its flows, runs, logs, deployments, blocks, events and the rest a batch at a
//! time, so no request waits and no transaction holds locks for long. It starts on a workspace
//! only after `services.workspace_deletion_delay_ms`, longer than a process may still resolve
//! it (`state::WORKSPACE_TTL`), so no row can be written behind it, and drops the record when every table is empty of it. A restart picks up
//! where it stopped; two replicas doing it at once delete disjoint or already-deleted rows.

use std::sync::Arc;
use std::time::Duration;

use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::identities;
use crate::storage::workspace_rows::{delete_batch, EVENTS_TABLES, ORION_TABLES};

/// Rows deleted per statement.
const BATCH: i64 = 2_000;

pub struct WorkspaceDeletion {
    pub state: Arc<AppState>,
}

impl Service for WorkspaceDeletion {
    fn name(&self) -> &'static str {
        "workspace-deletion"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let stores = &self.state.stores;
            let delay = self.state.settings.services.workspace_deletion_delay_ms;
            let wait = chrono::Duration::milliseconds(i64::try_from(delay).unwrap_or(i64::MAX));
            let before = crate::time::now_naive() - wait;
            let mut c = stores.nebula.read().await?;
            let pending = identities::pending_deletions(&mut c, before).await?;
            drop(c);
            let Some(ws) = pending.into_iter().next() else {
                return Ok(Tick::Idle);
            };
            for table in ORION_TABLES {
                let w = ws.clone();
                let n = stores
                    .orion
                    .write(async move |c| delete_batch(c, table, &w, BATCH).await)
                    .await?;
                if n > 0 {
                    return Ok(Tick::Busy);
                }
            }
            for table in EVENTS_TABLES {
                let w = ws.clone();
                let n = stores
                    .events
                    .write(async move |c| delete_batch(c, table, &w, BATCH).await)
                    .await?;
                if n > 0 {
                    return Ok(Tick::Busy);
                }
            }
            let w = ws.clone();
            stores
                .nebula
                .write(async move |c| identities::finish_deletion(c, &w).await)
                .await?;
            tracing::info!(workspace = %ws, "deleted a deleted workspace's rows");
            Ok(Tick::Busy)
        })
    }
}
