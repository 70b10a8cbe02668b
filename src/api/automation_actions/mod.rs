//! The action executor: runs the actions automations' firings started. A firing writes each
//! action as a row (its durable record) and wakes the executor through the work role; the
//! executor claims due rows (SKIP LOCKED across replicas; a claim lasts
//! `services.automation_action_claim_seconds`, so the actions of a process that died are taken
//! over), runs them, and records how each ended together with
//! Prefect's `prefect.automation.action.triggered` and `.executed`/`.failed` events. A lost
//! wake-up (Redis flushed or down) delays an action to the next poll; it never loses it.
//!
//! Actions act through the same functions as this API's routes — as Prefect's call its API —
//! so a deployment run, a pause or a state change made by an automation is the one a client's
//! request would have made, events and orchestration rules included.

mod context;
mod deployment;
mod email;
mod notify;
mod perform;
mod services;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::broker::BrokerError;
use crate::events::automations::firing::TriggeredAction;
use crate::events::automations::triggers::ACTIONS_STREAM;
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::automation_state::{self as st, ActionRow};

const GROUP: &str = "automation-actions";
/// Most actions claimed at once.
const BATCH: i64 = 20;
/// Attempts before an action whose target keeps being unavailable (the database, a webhook's
/// service answering 5xx or not at all) is given up and reported as failed.
const MAX_ATTEMPTS: i32 = 5;
/// Days the record of a finished action is kept.
const KEEP_DAYS: i64 = 7;

pub struct Executor {
    pub state: Arc<AppState>,
    pub consumer: String,
    /// When finished records were last swept (Unix seconds).
    swept: AtomicI64,
}

impl Executor {
    pub fn new(state: Arc<AppState>, consumer: String) -> Executor {
        Executor {
            state,
            consumer,
            swept: AtomicI64::new(0),
        }
    }

    /// Waits for a wake-up on the work role (at most the consumer block time). A broker that is
    /// down is not an error here: the database is polled either way.
    async fn wait(&self) {
        let s = &self.state;
        let work = &s.brokers.work;
        let block = Duration::from_millis(s.settings.services.consumer_block_ms);
        let visibility = Duration::from_secs(s.settings.services.visibility_timeout_seconds);
        let mut read = work
            .read(
                ACTIONS_STREAM,
                GROUP,
                &self.consumer,
                100,
                block,
                visibility,
            )
            .await;
        if let Err(BrokerError::NoGroup { .. }) = read {
            if work.ensure_group(ACTIONS_STREAM, GROUP).await.is_ok() {
                read = work
                    .read(
                        ACTIONS_STREAM,
                        GROUP,
                        &self.consumer,
                        100,
                        block,
                        visibility,
                    )
                    .await;
            }
        }
        match read {
            Ok(msgs) if !msgs.is_empty() => {
                let ids: Vec<String> = msgs.into_iter().map(|m| m.id).collect();
                let _ = work.ack(ACTIONS_STREAM, GROUP, &ids).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "work role unavailable; polling for due actions");
                tokio::time::sleep(block).await;
            }
        }
    }

    async fn sweep(&self) -> Result<(), TickError> {
        let now = crate::time::now();
        let last = self.swept.load(Ordering::Relaxed);
        if now.timestamp() - last < 60 {
            return Ok(());
        }
        self.swept.store(now.timestamp(), Ordering::Relaxed);
        let before = (now - chrono::Duration::days(KEEP_DAYS)).naive_utc();
        self.state
            .stores
            .orion
            .write(async move |c| st::delete_finished_before(c, before).await)
            .await?;
        Ok(())
    }
}

/// Runs one claimed action and records its end.
async fn run(state: &AppState, row: ActionRow) -> Result<(), crate::storage::StorageError> {
    let now = crate::time::now();
    let ta: Option<TriggeredAction> = serde_json::from_str(&row.triggered_action).ok();
    let Some(ta) = ta else {
        // Written by a version that shaped it differently: it can't be run.
        let reason = "The action's record could not be read";
        let (id, attempts) = (row.id.clone(), row.attempts);
        state
            .stores
            .orion
            .write(async move |c| {
                st::finish(
                    c,
                    &id,
                    attempts,
                    st::FAILED,
                    Some(reason),
                    now.naive_utc(),
                    now.naive_utc(),
                )
                .await
            })
            .await?;
        return Ok(());
    };
    let outcome = perform::perform(state, &row.workspace_id, &ta).await;
    let now = crate::time::now();
    let (end, reason, resulting, details) = match outcome {
        perform::Outcome::Done(acted) => (st::DONE, None, acted.resulting, acted.details),
        perform::Outcome::Failed(reason, acted) => {
            tracing::warn!(automation = %ta.automation_id, action = ta.action.kind(), %reason, "action failed");
            (st::FAILED, Some(reason), acted.resulting, acted.details)
        }
        perform::Outcome::Retry(reason, _) if row.attempts < MAX_ATTEMPTS => {
            tracing::warn!(automation = %ta.automation_id, %reason, attempt = row.attempts, "action will be retried");
            let again = now + chrono::Duration::seconds(5 * i64::from(row.attempts));
            let (id, attempts) = (row.id.clone(), row.attempts);
            state
                .stores
                .orion
                .write(async move |c| {
                    st::finish(
                        c,
                        &id,
                        attempts,
                        st::PENDING,
                        None,
                        now.naive_utc(),
                        again.naive_utc(),
                    )
                    .await
                })
                .await?;
            return Ok(());
        }
        perform::Outcome::Retry(reason, acted) => {
            (st::FAILED, Some(reason), acted.resulting, acted.details)
        }
    };
    let events = ta.outcome_events(resulting, details, reason.as_deref(), now);
    let rows: Vec<_> = events
        .into_iter()
        .map(|e| crate::runs::events::outbox_row(&row.workspace_id, e, now))
        .collect();
    let (id, attempts) = (row.id.clone(), row.attempts);
    state
        .stores
        .orion
        .transaction(async move |c| {
            // Only the claim that still holds the row reports it.
            if st::finish(
                c,
                &id,
                attempts,
                end,
                reason.as_deref(),
                now.naive_utc(),
                now.naive_utc(),
            )
            .await?
            {
                crate::storage::outbox::insert(c, &rows).await?;
            }
            Ok(())
        })
        .await?;
    state.outbox_wake.notify_one();
    Ok(())
}

impl Service for Executor {
    fn name(&self) -> &'static str {
        "automation-actions"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.automation_actions_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let s = &self.state;
            let now = crate::time::now();
            let lease = s.settings.services.automation_action_claim_seconds;
            let until = now + chrono::Duration::seconds(i64::try_from(lease).unwrap_or(60));
            let claimed = s
                .stores
                .orion
                .transaction(async move |c| {
                    st::claim_due(c, now.naive_utc(), until.naive_utc(), BATCH).await
                })
                .await?;
            let full = claimed.len() as i64 >= BATCH;
            for row in claimed {
                run(s, row).await?;
            }
            self.sweep().await?;
            if full {
                return Ok(Tick::Busy);
            }
            self.wait().await;
            Ok(Tick::Busy)
        })
    }
}
