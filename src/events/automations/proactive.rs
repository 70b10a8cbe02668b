//! The proactive pass: every few seconds, each enabled automation's proactive event triggers are
//! evaluated against the clock — a window that closed with too few of the expected events fires
//! — windows closed for over a minute are swept, and evaluations recorded over a day ago
//! forgotten. Each trigger is one transaction under the
//! trigger's lock, so replicas running the pass together fire a window once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::evaluate::proactive;
use super::firing::Automation;
use super::model::{EventTrigger, Posture};
use super::triggers::{bucket_of, enabled, fire, lock_keys, record, store_slot, wake, Written};
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::automation_state as st;
use crate::storage::StorageResult;

/// How long a closed window is kept (Prefect's `expired_bucket_buffer`).
const EXPIRED_BUCKET_BUFFER_SECONDS: i64 = 60;

pub struct Proactive {
    pub state: Arc<AppState>,
}

async fn evaluate_trigger(
    state: &AppState,
    a: Arc<Automation>,
    t: EventTrigger,
) -> StorageResult<(usize, usize)> {
    state
        .stores
        .orion
        .transaction(async move |c| {
            let now = crate::time::now();
            st::lock(c, &lock_keys(&a, t.id)).await?;
            let stored = st::buckets_of(c, &a.id.to_string(), &t.id.to_string(), None).await?;
            let mut slots: BTreeMap<Vec<String>, Option<_>> = stored
                .iter()
                .filter_map(|r| {
                    let key: Vec<String> = serde_json::from_str(&r.bucketing_key).ok()?;
                    Some((key, Some(bucket_of(r))))
                })
                .collect();
            let before = slots.clone();
            let mut fired = Vec::new();
            proactive(&t, &mut slots, now, &mut fired);
            for (key, slot) in &slots {
                if before.get(key) != Some(slot) {
                    let text = serde_json::to_string(key).unwrap_or_default();
                    store_slot(c, &a, &t, &text, slot, now).await?;
                }
            }
            let mut out = Written::default();
            for f in fired {
                fire(c, &a, f, now, &mut out).await?;
            }
            record(c, &out).await?;
            Ok((out.events.len(), out.actions.len()))
        })
        .await
}

impl Service for Proactive {
    fn name(&self) -> &'static str {
        "proactive-triggers"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.proactive_triggers_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let s = &self.state;
            for a in enabled(s).await? {
                for t in a.trigger.event_triggers() {
                    if t.posture != Posture::Proactive {
                        continue;
                    }
                    match evaluate_trigger(s, a.clone(), t.clone()).await {
                        Ok(written) => wake(s, written).await,
                        Err(e) => {
                            tracing::warn!(error = %e, automation = %a.id, trigger = %t.id, "proactive evaluation failed")
                        }
                    }
                }
            }
            let cutoff = (crate::time::now()
                - chrono::Duration::seconds(EXPIRED_BUCKET_BUFFER_SECONDS))
            .naive_utc();
            s.stores
                .orion
                .write(async move |c| st::sweep_buckets(c, cutoff).await)
                .await?;
            let day_ago = (crate::time::now() - chrono::Duration::days(1)).naive_utc();
            s.stores
                .orion
                .write(async move |c| st::prune_evaluated(c, day_ago).await)
                .await?;
            Ok(Tick::Idle)
        })
    }
}
