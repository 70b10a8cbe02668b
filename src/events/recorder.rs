//! The task-run recorder: turns the client's `prefect.task-run.*` events (the 3.x client reports
//! task runs only as events) into task-run rows and their state history, in batches. Replaying
//! events changes nothing; out-of-order events never regress a run (the newest state wins).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Envelope, Event, STREAM};
use crate::broker::{BrokerError, Message};
use crate::ids::{FlowRunId, TaskRunId};
use crate::service::{BoxFuture, Service, Tick, TickError};
use crate::state::AppState;
use crate::storage::outbox;
use crate::storage::rows::{TaskRunRow, TaskRunStateRow};
use crate::storage::task_runs::{self, Recorded};

const GROUP: &str = "task-run-recorder";
const MAX_DELIVERIES: u32 = 5;

pub struct Recorder {
    pub state: Arc<AppState>,
    pub consumer: String,
    pub size: ReadSize,
}

/// Most bytes of messages a consumer asks for in one read (see [`ReadSize`]).
const READ_BYTES: usize = 16 * 1024 * 1024;

/// Sizes a consumer's reads by bytes as well as count: a read asks for as many messages as
/// [`READ_BYTES`] holds at the largest message of the previous read, and never more than the
/// configured batch. Streams hold no byte counts, so the previous read is the estimate; after
/// one read of large events the next ones shrink (500 events of 1.5 MB were 750 MB in memory).
#[derive(Default)]
pub struct ReadSize {
    largest: AtomicUsize,
}

impl ReadSize {
    pub fn count(&self, batch: usize) -> usize {
        match self.largest.load(Ordering::Relaxed) {
            0 => batch,
            largest => (READ_BYTES / largest).clamp(1, batch.max(1)),
        }
    }

    fn observe(&self, msgs: &[Message]) {
        let largest = msgs.iter().map(|m| m.payload.len()).max().unwrap_or(0);
        self.largest.store(largest, Ordering::Relaxed);
    }
}

/// What a consumer does after a batch that wasn't full (or an empty read): read again at once
/// when reads block (`consumer_block_ms` > 0) — the read itself waits for the next message, and
/// sleeping the service's interval on top is what every message arriving meanwhile waited out
/// (task runs readable 101 ms after their event at 20/s instead of ~25 ms, firings 0-100 ms
/// later); without blocking, sleep the interval rather than spin.
pub fn again(s: &AppState) -> Tick {
    if s.settings.services.consumer_block_ms > 0 {
        Tick::Busy
    } else {
        Tick::Idle
    }
}

/// Reads the next batch for `group` (creating the group when it is missing: first start, or a
/// Redis that lost its data), sized by `size`; answers the messages and whether the read was
/// full (more may be waiting).
pub async fn read(
    s: &AppState,
    group: &str,
    consumer: &str,
    size: &ReadSize,
) -> Result<(Vec<Message>, bool), BrokerError> {
    let count = size.count(s.settings.services.consumer_batch_size);
    let streams = &s.brokers.streams;
    let block = Duration::from_millis(s.settings.services.consumer_block_ms);
    let visibility = Duration::from_secs(s.settings.services.visibility_timeout_seconds);
    let msgs = match streams
        .read(STREAM, group, consumer, count, block, visibility)
        .await
    {
        Err(BrokerError::NoGroup { .. }) => {
            streams.ensure_group_from_start(STREAM, group).await?;
            streams
                .read(STREAM, group, consumer, count, block, visibility)
                .await
        }
        other => other,
    }?;
    size.observe(&msgs);
    let full = msgs.len() >= count;
    Ok((msgs, full))
}

impl Service for Recorder {
    fn name(&self) -> &'static str {
        "task-run-recorder"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.state.settings.services.task_run_recorder_interval_ms)
    }

    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
        Box::pin(async move {
            let s = &self.state;
            let (msgs, full) = read(s, GROUP, &self.consumer, &self.size).await?;
            if msgs.is_empty() {
                return Ok(again(s));
            }
            let envelopes: Vec<Envelope> = msgs
                .iter()
                .filter_map(|m| serde_json::from_slice(&m.payload).ok())
                .collect();
            let recorded = collect(&envelopes);
            // The outbox rows this batch settles for the recorder: its events, recorded below
            // (or skipped for good), and those given up on (dead-lettered).
            let seqs: Vec<i64> = envelopes
                .iter()
                .filter(|e| wants(&e.event.event))
                .filter_map(|e| e.seq)
                .collect();
            let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
            // Recorded (or skipped) below with the rest: their rows are in `seqs` already.
            super::persister::dead_letter_exhausted(s, GROUP, &msgs, MAX_DELIVERIES).await;
            let recorded = std::sync::Arc::new(recorded);
            let all = recorded.clone();
            // Most events are not task runs' (flow runs, workers...): nothing to write then.
            let whole = if recorded.is_empty() {
                Ok(0)
            } else {
                s.stores
                    .orion
                    .write(async move |c| task_runs::record(c, &all).await)
                    .await
            };
            if let Err(e) = whole {
                // One bad run (e.g. its flow run was deleted) must not hold back the others.
                tracing::warn!(error = %e, "batch failed; recording task runs one by one");
                for r in recorded.iter() {
                    let one = [r.clone()];
                    let written = s
                        .stores
                        .orion
                        .write(async move |c| task_runs::record(c, &one).await)
                        .await;
                    if let Err(e) = written {
                        tracing::error!(error = %e, task_run_id = %r.run.id, "cannot record a task run; skipping it");
                    }
                }
            }
            super::settle(s, outbox::TO_RECORDER, seqs).await?;
            s.brokers.streams.ack(STREAM, GROUP, &ids).await?;
            Ok(if full { Tick::Busy } else { again(s) })
        })
    }
}

/// Groups client task-run events by run: the newest event gives the row, every event a state.
pub fn collect(envelopes: &[Envelope]) -> Vec<Recorded> {
    let mut by_run: BTreeMap<TaskRunId, Vec<(&Envelope, TaskRunRow, TaskRunStateRow)>> =
        BTreeMap::new();
    for env in envelopes {
        if let Some((row, state)) = to_rows(env) {
            by_run
                .entry(row.id.clone())
                .or_default()
                .push((env, row, state));
        }
    }
    by_run
        .into_values()
        .filter_map(|mut items| {
            items.sort_by_key(|(_, _, s)| (s.timestamp, s.id.clone()));
            let states = items.iter().map(|(_, _, s)| s.clone()).collect();
            items.pop().map(|(_, run, _)| Recorded { run, states })
        })
        .collect()
}

fn s(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

fn time(v: Option<&Value>) -> Option<chrono::NaiveDateTime> {
    v.and_then(Value::as_str)
        .and_then(crate::time::parse)
        .map(|t| t.naive_utc())
}

fn json_text(v: Option<&Value>, default: &str) -> String {
    match v {
        Some(Value::Null) | None => default.to_string(),
        Some(v) => serde_json::to_string(v).unwrap_or_else(|_| default.to_string()),
    }
}

/// Whether the recorder must see `e`: a client's task-run state event. Its outbox row carries
/// the recorder's bit, which the recorder settles once it has recorded it.
pub fn wants(e: &Event) -> bool {
    e.event.starts_with("prefect.task-run.")
        && e.resource.get("prefect.orchestration").map(String::as_str) == Some("client")
}

/// The task-run row and state an event describes, or None when it is not a client task-run
/// state event.
pub fn to_rows(env: &Envelope) -> Option<(TaskRunRow, TaskRunStateRow)> {
    let e = &env.event.event;
    if !wants(e) {
        return None;
    }
    let task_run_id = e.resource_id().strip_prefix("prefect.task-run.")?;
    uuid::Uuid::parse_str(task_run_id).ok()?;
    let task_run_id = TaskRunId::new(task_run_id);
    let flow_run_id = e
        .related_id("flow-run")
        .and_then(|r| r.strip_prefix("prefect.flow-run."))
        .map(FlowRunId::new);
    let empty = Map::new();
    let tr = e
        .payload
        .get("task_run")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let vs = e
        .payload
        .get("validated_state")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let state_type = s(vs.get("type")).or_else(|| e.resource.get("prefect.state-type").cloned())?;
    let state_name = s(vs.get("name"))
        .or_else(|| e.resource.get("prefect.state-name").cloned())
        .unwrap_or_default();
    let mut details = vs
        .get("state_details")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    details.insert("task_run_id".into(), Value::String(task_run_id.to_string()));
    details.insert(
        "flow_run_id".into(),
        flow_run_id
            .as_ref()
            .map(|id| Value::String(id.to_string()))
            .unwrap_or(Value::Null),
    );
    let occurred = e.occurred.naive_utc();
    let now = env.event.received.naive_utc();
    let state = TaskRunStateRow {
        id: e.id.to_string(),
        workspace_id: env.workspace_id.clone(),
        created: now,
        task_run_id: task_run_id.clone(),
        state_type: state_type.clone(),
        name: state_name.clone(),
        timestamp: occurred,
        message: s(vs.get("message")),
        data: vs
            .get("data")
            .filter(|d| !d.is_null())
            .map(|d| d.to_string()),
        state_details: Value::Object(details.clone()).to_string(),
    };
    let next_scheduled = if state_type == "SCHEDULED" {
        time(details.get("scheduled_time"))
    } else {
        None
    };
    let run = TaskRunRow {
        id: task_run_id,
        workspace_id: env.workspace_id.clone(),
        created: now,
        updated: now,
        name: s(tr.get("name")).unwrap_or_default(),
        flow_run_id,
        task_key: s(tr.get("task_key")).unwrap_or_default(),
        dynamic_key: s(tr.get("dynamic_key")).unwrap_or_default(),
        cache_key: s(tr.get("cache_key")),
        cache_expiration: time(tr.get("cache_expiration")),
        task_version: s(tr.get("task_version")),
        empirical_policy: json_text(tr.get("empirical_policy"), "{}"),
        tags: json_text(tr.get("tags"), "[]"),
        labels: json_text(tr.get("labels"), "{}"),
        task_inputs: json_text(tr.get("task_inputs"), "{}"),
        state_id: Some(state.id.clone()),
        state_type: Some(state_type),
        state_name: Some(state_name),
        state_timestamp: Some(occurred),
        run_count: tr.get("run_count").and_then(Value::as_i64).unwrap_or(0),
        flow_run_run_count: tr
            .get("flow_run_run_count")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        expected_start_time: time(tr.get("expected_start_time")),
        next_scheduled_start_time: time(tr.get("next_scheduled_start_time")).or(next_scheduled),
        start_time: time(tr.get("start_time")),
        end_time: time(tr.get("end_time")),
        total_run_time: tr
            .get("total_run_time")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
    };
    Some((run, state))
}

#[cfg(test)]
mod read_size_tests {
    use super::*;

    fn msgs(sizes: &[usize]) -> Vec<Message> {
        sizes
            .iter()
            .map(|n| Message {
                id: "1-0".into(),
                payload: vec![b'x'; *n],
                deliveries: 1,
            })
            .collect()
    }

    #[test]
    fn reads_shrink_after_large_messages_and_grow_back() {
        let size = ReadSize::default();
        assert_eq!(size.count(500), 500, "nothing seen yet");
        size.observe(&msgs(&[100, 1_500_000, 200]));
        assert_eq!(size.count(500), READ_BYTES / 1_500_000);
        size.observe(&msgs(&[40 << 20]));
        assert_eq!(size.count(500), 1, "one at a time, never none");
        size.observe(&msgs(&[300; 10]));
        assert_eq!(size.count(500), 500);
    }
}
