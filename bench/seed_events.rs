//! Fills Orrery's events database with a history of events through the storage layer (the
//! persister's own insert, so `event_resources` and `event_counts` are written as in
//! production), for bench/events.sh. It reads the same settings as the server (`ORRERY__…`
//! environment, `--config`), runs the events migrations, and writes into the default workspace.
//!
//!     cargo run --release --example seed_events -- EVENTS DAYS NOW_EPOCH
//!
//! The history is a pure function of (i, EVENTS, DAYS, NOW_EPOCH), the same one
//! bench/events_reference_load.py writes into the reference server's database:
//! * event `i` (0 = newest) occurred at `NOW - DAYS * 86400 * i / EVENTS` seconds, with id
//!   `uuid(0x0e0e0000_0000_4000_8000_000000000000 | i)`;
//! * its name is `NAMES[i % 10]`; its resource is flow run `r = (i / 10) % 20000`
//!   (`prefect.flow-run.uuid(0x0f0f0000_0000_4000_8000_000000000000 | r)`, named `run-{r}`)
//!   for flow-run names, task run `i / 3` for task-run names, deployment `r % 500` for
//!   `prefect.deployment.updated`, `custom.order.{i % 1000}` for `custom.order.received`;
//! * related: flow `r % 50`, deployment `r % 500`, work pool `r % 5` (roles flow, deployment,
//!   work-pool; named `flow-{n}`, `deployment-{n}`, `pool-{n}`);
//! * payload `{"n": i, "note": "..."}` (about 150 bytes).

use std::time::Instant;

use chrono::{DateTime, Utc};
use orrery::events::{Envelope, Event, ReceivedEvent};
use orrery::ids::WorkspaceId;
use orrery::storage::{migrations, DbName, Stores};
use serde_json::json;

pub const NAMES: [&str; 10] = [
    "prefect.flow-run.Scheduled",
    "prefect.flow-run.Pending",
    "prefect.flow-run.Running",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.task-run.Pending",
    "prefect.task-run.Running",
    "prefect.task-run.Completed",
    "prefect.deployment.updated",
    "custom.order.received",
];

fn id(base: u128, n: u64) -> uuid::Uuid {
    uuid::Uuid::from_u128(base | u128::from(n))
}

fn resource(pairs: &[(&str, String)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn event(i: u64, total: u64, days: u64, now: i64) -> Event {
    let micros = (days as i128 * 86_400_000_000 * i128::from(i) / i128::from(total.max(1))) as i64;
    let occurred =
        DateTime::<Utc>::from_timestamp_micros(now * 1_000_000 - micros).unwrap_or_default();
    let name = NAMES[(i % 10) as usize];
    let r = (i / 10) % 20_000;
    let run = id(0x0f0f0000_0000_4000_8000_000000000000, r);
    let primary = match name {
        n if n.starts_with("prefect.flow-run.") => resource(&[
            ("prefect.resource.id", format!("prefect.flow-run.{run}")),
            ("prefect.resource.name", format!("run-{r}")),
        ]),
        n if n.starts_with("prefect.task-run.") => resource(&[
            (
                "prefect.resource.id",
                format!(
                    "prefect.task-run.{}",
                    id(0x0d0d0000_0000_4000_8000_000000000000, i / 3)
                ),
            ),
            ("prefect.resource.name", format!("task-{}", i / 3)),
        ]),
        "prefect.deployment.updated" => resource(&[
            (
                "prefect.resource.id",
                format!(
                    "prefect.deployment.{}",
                    id(0x0c0c0000_0000_4000_8000_000000000000, r % 500)
                ),
            ),
            ("prefect.resource.name", format!("deployment-{}", r % 500)),
        ]),
        _ => resource(&[("prefect.resource.id", format!("custom.order.{}", i % 1000))]),
    };
    let related = vec![
        resource(&[
            (
                "prefect.resource.id",
                format!(
                    "prefect.flow.{}",
                    id(0x0b0b0000_0000_4000_8000_000000000000, r % 50)
                ),
            ),
            ("prefect.resource.role", "flow".into()),
            ("prefect.resource.name", format!("flow-{}", r % 50)),
        ]),
        resource(&[
            (
                "prefect.resource.id",
                format!(
                    "prefect.deployment.{}",
                    id(0x0c0c0000_0000_4000_8000_000000000000, r % 500)
                ),
            ),
            ("prefect.resource.role", "deployment".into()),
            ("prefect.resource.name", format!("deployment-{}", r % 500)),
        ]),
        resource(&[
            (
                "prefect.resource.id",
                format!(
                    "prefect.work-pool.{}",
                    id(0x0a0a0000_0000_4000_8000_000000000000, r % 5)
                ),
            ),
            ("prefect.resource.role", "work-pool".into()),
            ("prefect.resource.name", format!("pool-{}", r % 5)),
        ]),
    ];
    let payload = json!({"n": i, "note": "a benchmark event with a payload of a realistic size, about one hundred and fifty bytes"});
    serde_json::from_value(json!({
        "occurred": occurred,
        "event": name,
        "resource": primary,
        "related": related,
        "payload": payload,
        "id": id(0x0e0e0000_0000_4000_8000_000000000000, i),
    }))
    .unwrap_or_else(|e| panic!("event {i}: {e}"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: usize, default: u64| {
        args.get(n)
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let (total, days) = (arg(1, 2_000_000), arg(2, 7));
    let now = args
        .get(3)
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or_else(|| Utc::now().timestamp());
    let settings =
        orrery::settings::Settings::load(None).unwrap_or_else(|e| panic!("settings: {e:?}"));
    let stores = Stores::connect(&settings)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    migrations::run(DbName::Events, &stores.events, true)
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    let ws = WorkspaceId::new(orrery::storage::accounts::DEFAULT_WORKSPACE_ID);
    let received = DateTime::<Utc>::from_timestamp(now, 0).unwrap_or_default();
    let started = Instant::now();
    const BATCH: u64 = 5_000;
    let mut i = 0;
    while i < total {
        let end = (i + BATCH).min(total);
        let rows: Vec<_> = (i..end)
            .map(|n| {
                let env = Envelope {
                    workspace_id: ws.clone(),
                    event: ReceivedEvent {
                        event: event(n, total, days, now),
                        received,
                    },
                    seq: None,
                };
                orrery::events::persister::to_rows(&env)
            })
            .collect();
        stores
            .events
            .write(async move |c| orrery::storage::events::insert(c, &rows).await)
            .await
            .unwrap_or_else(|e| panic!("insert: {e}"));
        i = end;
        if i % 200_000 == 0 || i == total {
            eprintln!(
                "seed_events: {i}/{total} events, {:.0}/s",
                i as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
}
