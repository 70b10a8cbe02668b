//! The trigger evaluator: a consumer of the `events` stream that evaluates every event against
//! the enabled automations' event triggers (reactively), and the storage half of evaluation
//! shared with the proactive pass: buckets loaded and written under per-trigger locks, composite
//! triggers' child firings, and a firing's event and actions. Each batch is one transaction that
//! also records its events as evaluated, so an event redelivered (a crash before the
//! acknowledgement, a flushed Redis) or read by two replicas is evaluated once, and a firing's
//! actions are started once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::evaluate::{composite_ready, expected_firings, react, Bucket, Firing};
use super::firing::{act, Automation};
use super::model::EventTrigger;
use crate::event_model::{Envelope, ReceivedEvent};
use crate::ids::WorkspaceId;
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::automation_state::{self as st, ActionRow, BucketRow, ChildFiringRow};
use crate::storage::outbox::{self, NewOutboxRow};
use crate::storage::{Conn, StorageResult};

const GROUP: &str = "automation-triggers";
const MAX_DELIVERIES: u32 = 5;
/// The work-role stream that wakes the action executor.
pub const ACTIONS_STREAM: &str = "automation-actions";

pub struct Triggers {
    pub state: Arc<AppState>,
    pub consumer: String,
    pub size: crate::events::recorder::ReadSize,
}

/// Every enabled automation, parsed.
pub async fn enabled(state: &AppState) -> StorageResult<Vec<Arc<Automation>>> {
    let mut c = state.stores.orion.read().await?;
    let rows = crate::storage::automations::list_enabled(&mut c).await?;
    Ok(rows
        .iter()
        .filter_map(Automation::from_row)
        .map(Arc::new)
        .collect())
}

/// The lock key of a trigger (its buckets) or a composite trigger (its child firings).
pub fn lock_key(automation: &Automation, trigger: uuid::Uuid) -> String {
    format!("orrery.automation.{}.{trigger}", automation.id)
}

/// The lock keys a firing of `t` may need: its own and every composite above it.
pub fn lock_keys(a: &Automation, t: uuid::Uuid) -> Vec<String> {
    let mut keys = vec![lock_key(a, t)];
    let mut id = t;
    while let Some(parent) = a.trigger.parent_of(id) {
        id = parent.id();
        keys.push(lock_key(a, id));
    }
    keys
}

pub fn bucket_of(r: &BucketRow) -> Bucket {
    Bucket {
        start: r.window_start.and_utc(),
        end: r.window_end.and_utc(),
        count: r.count,
        last_event: r
            .last_event
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok()),
    }
}

/// Writes what evaluation left in a slot: the bucket, or no bucket.
pub async fn store_slot(
    c: &mut Conn,
    a: &Automation,
    t: &EventTrigger,
    key: &str,
    slot: &Option<Bucket>,
    now: DateTime<Utc>,
) -> StorageResult<()> {
    let (aid, tid) = (a.id.to_string(), t.id.to_string());
    match slot {
        None => st::delete_bucket(c, &aid, &tid, key).await,
        Some(b) => {
            let row = BucketRow {
                workspace_id: a.workspace_id.clone(),
                automation_id: aid,
                trigger_id: tid,
                bucketing_key: key.to_string(),
                window_start: b.start.naive_utc(),
                window_end: b.end.naive_utc(),
                count: b.count,
                last_event: b
                    .last_event
                    .as_ref()
                    .and_then(|e| serde_json::to_string(e).ok()),
                updated: now.naive_utc(),
            };
            st::put_bucket(c, &row).await
        }
    }
}

/// What firings wrote: events for the outbox and actions for the executor.
#[derive(Default)]
pub struct Written {
    pub events: Vec<NewOutboxRow>,
    pub actions: Vec<ActionRow>,
}

/// A trigger of `a` fired: an automation's own trigger acts; a composite's child is recorded
/// and the composite fires when its children make it ready (Prefect's `fire` and
/// `evaluate_composite_trigger`). The caller holds the locks of [`lock_keys`].
pub async fn fire(
    c: &mut Conn,
    a: &Automation,
    mut f: Firing,
    now: DateTime<Utc>,
    out: &mut Written,
) -> StorageResult<()> {
    loop {
        let Some(parent) = a.trigger.parent_of(f.trigger_id) else {
            let (event, actions) = act(a, &f, now);
            out.events
                .push(crate::runs::events::outbox_row(&a.workspace_id, event, now));
            out.actions.extend(actions);
            return Ok(());
        };
        let next = |f: &Firing, firings: Vec<Firing>| Firing {
            triggering_firings: firings,
            ..Firing::new(
                parent.id(),
                now,
                BTreeMap::new(),
                f.triggering_event.clone(),
            )
        };
        if expected_firings(parent) == 1 {
            f = next(&f, vec![f.clone()]);
            continue;
        }
        let (aid, pid) = (a.id.to_string(), parent.id().to_string());
        st::put_child_firing(
            c,
            &ChildFiringRow {
                automation_id: aid.clone(),
                parent_trigger_id: pid.clone(),
                child_trigger_id: f.trigger_id.to_string(),
                child_firing_id: f.id.to_string(),
                child_fired_at: f.triggered.naive_utc(),
                child_firing: serde_json::to_string(&f).unwrap_or_default(),
            },
        )
        .await?;
        let since = parent
            .composite_within()
            .map(|w| super::evaluate::shift(f.triggered, -super::evaluate::seconds(w)).naive_utc());
        let firings: Vec<Firing> = st::child_firings(c, &aid, &pid, since)
            .await?
            .iter()
            .filter_map(|r| serde_json::from_str(&r.child_firing).ok())
            .collect();
        if !firings.iter().any(|x| x.id == f.id) || !composite_ready(parent, &firings) {
            return Ok(());
        }
        let ids: Vec<String> = firings.iter().map(|x| x.id.to_string()).collect();
        if st::take_child_firings(c, &aid, &pid, &ids).await? != ids.len() {
            return Ok(());
        }
        f = next(&f, firings);
    }
}

/// Stores what firings wrote, in the caller's transaction.
pub async fn record(c: &mut Conn, out: &Written) -> StorageResult<()> {
    outbox::insert(c, &out.events).await?;
    st::insert_actions(c, &out.actions).await
}

/// After the transaction: wake the relay for the events and the executor for the actions.
pub async fn wake(state: &AppState, written: (usize, usize)) {
    if written.0 > 0 {
        state.outbox_wake.notify_one();
    }
    if written.1 > 0 {
        // A lost wake-up only delays the actions to the executor's next poll.
        if let Err(e) = state.brokers.work.publish(ACTIONS_STREAM, b"due").await {
            tracing::debug!(error = %e, "could not wake the action executor");
        }
    }
}

/// One covered event for one trigger.
struct Item {
    event: usize,
    automation: Arc<Automation>,
    trigger: EventTrigger,
    key: String,
    key_values: Vec<String>,
}

/// The covered (event, trigger) pairs of a batch, in event order.
fn covered(envs: &[Envelope], automations: &[Arc<Automation>]) -> Vec<Item> {
    let mut by_ws: BTreeMap<&WorkspaceId, Vec<&Arc<Automation>>> = BTreeMap::new();
    for a in automations {
        by_ws.entry(&a.workspace_id).or_default().push(a);
    }
    let mut items = Vec::new();
    for (i, env) in envs.iter().enumerate() {
        let e = &env.event.event;
        for a in by_ws.get(&env.workspace_id).into_iter().flatten() {
            for t in a.trigger.event_triggers() {
                if t.covers(e) {
                    let key_values = t.bucketing_key(e);
                    items.push(Item {
                        event: i,
                        automation: (*a).clone(),
                        trigger: t.clone(),
                        key: serde_json::to_string(&key_values).unwrap_or_default(),
                        key_values,
                    });
                }
            }
        }
    }
    items
}

/// Evaluates the batch's covered events in one transaction and settles the whole batch.
async fn evaluate_batch(
    state: &AppState,
    envs: Arc<Vec<Envelope>>,
    items: Arc<Vec<Item>>,
) -> StorageResult<(usize, usize)> {
    state
        .stores
        .orion
        .transaction(async move |c| {
            let now = crate::time::now();
            // Only the events no earlier delivery evaluated.
            let ids: Vec<String> = items
                .iter()
                .map(|i| envs[i.event].event.event.id.to_string())
                .collect();
            let new: BTreeSet<String> = st::first_evaluation(c, &ids, now.naive_utc())
                .await?
                .into_iter()
                .collect();
            let todo: Vec<&Item> = items
                .iter()
                .filter(|i| new.contains(&envs[i.event].event.event.id.to_string()))
                .collect();
            let keys: Vec<String> = todo
                .iter()
                .flat_map(|i| lock_keys(&i.automation, i.trigger.id))
                .collect();
            st::lock(c, &keys).await?;
            let mut slots: BTreeMap<(uuid::Uuid, uuid::Uuid, String), Option<Bucket>> =
                BTreeMap::new();
            let mut firings: Vec<(Arc<Automation>, Firing)> = Vec::new();
            for item in &todo {
                let slot_key = (item.automation.id, item.trigger.id, item.key.clone());
                if !slots.contains_key(&slot_key) {
                    let stored = st::buckets_of(
                        c,
                        &item.automation.id.to_string(),
                        &item.trigger.id.to_string(),
                        Some(&item.key),
                    )
                    .await?;
                    slots.insert(slot_key.clone(), stored.first().map(bucket_of));
                }
                let slot = slots.entry(slot_key).or_default();
                let mut fired = Vec::new();
                let event: &ReceivedEvent = &envs[item.event].event;
                react(
                    &item.trigger,
                    &item.key_values,
                    slot,
                    event,
                    now,
                    &mut fired,
                );
                firings.extend(fired.into_iter().map(|f| (item.automation.clone(), f)));
            }
            for item in &todo {
                let slot_key = (item.automation.id, item.trigger.id, item.key.clone());
                if let Some(slot) = slots.remove(&slot_key) {
                    store_slot(c, &item.automation, &item.trigger, &item.key, &slot, now).await?;
                }
            }
            let mut out = Written::default();
            for (a, f) in firings {
                fire(c, &a, f, now, &mut out).await?;
            }
            record(c, &out).await?;
            Ok((out.events.len(), out.actions.len()))
        })
        .await
}

impl Service for Triggers {
    fn name(&self) -> &'static str {
        "automation-triggers"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.automation_triggers_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let s = &self.state;
            let (msgs, full) =
                crate::events::recorder::read(s, GROUP, &self.consumer, &self.size).await?;
            let again = crate::events::recorder::again(s);
            if msgs.is_empty() {
                return Ok(again);
            }
            let given_up =
                crate::events::persister::dead_letter_exhausted(s, GROUP, &msgs, MAX_DELIVERIES)
                    .await;
            crate::events::settle(s, outbox::TO_TRIGGERS, given_up).await?;
            let envs: Vec<Envelope> = msgs
                .iter()
                .filter(|m| m.deliveries < MAX_DELIVERIES)
                .filter_map(|m| serde_json::from_slice(&m.payload).ok())
                .collect();
            let seqs: Vec<i64> = envs.iter().filter_map(|e| e.seq).collect();
            let automations = enabled(s).await?;
            let items = covered(&envs, &automations);
            if !items.is_empty() {
                let written = evaluate_batch(s, Arc::new(envs), Arc::new(items)).await?;
                wake(s, written).await;
            }
            // Evaluated (and recorded as such): the outbox rows can go, then the messages.
            crate::events::settle(s, outbox::TO_TRIGGERS, seqs).await?;
            let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
            s.brokers
                .streams
                .ack(crate::events::STREAM, GROUP, &ids)
                .await?;
            Ok(if full { Tick::Busy } else { again })
        })
    }
}
