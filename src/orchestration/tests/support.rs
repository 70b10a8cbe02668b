//! Test builders for orchestration: fixed instants, states, run snapshots, proposals, and a
//! tiny in-memory "caller" that applies outcomes the way storage will.

use crate::orchestration::*;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

pub(crate) const FLOW_RUN_ID: Uuid = Uuid::from_u128(0xF10);
pub(crate) const TASK_RUN_ID: Uuid = Uuid::from_u128(0x7A5C);
pub(crate) const DEPLOYMENT_ID: Uuid = Uuid::from_u128(0xDE9);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn fresh_id() -> Uuid {
    Uuid::from_u128(0x1000_0000 + u128::from(NEXT_ID.fetch_add(1, Ordering::Relaxed)))
}

/// 2026-01-01T00:00:00Z + `secs`.
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap() + TimeDelta::seconds(secs)
}

pub(crate) fn at_ms(ms: i64) -> DateTime<Utc> {
    at(0) + TimeDelta::milliseconds(ms)
}

/// A state of type `t` with timestamp `at(secs)`.
pub(crate) fn st(t: StateType, secs: i64) -> State {
    State::new(t, fresh_id(), at(secs))
}

pub(crate) fn named(t: StateType, name: &str, secs: i64) -> State {
    st(t, secs).named(name)
}

/// A SCHEDULED state (name `name`) for `at(scheduled)`, stamped `at(secs)`.
pub(crate) fn scheduled(name: &str, secs: i64, scheduled: i64) -> State {
    let mut s = named(StateType::Scheduled, name, secs);
    s.state_details.scheduled_time = Some(at(scheduled));
    s
}

pub(crate) fn persisted() -> Value {
    json!({"type": "reference", "storage_key": "/tmp/result", "serializer": {"type": "pickle"}})
}

pub(crate) fn flow_run() -> RunSnapshot {
    RunSnapshot {
        id: FLOW_RUN_ID,
        ..RunSnapshot::default()
    }
}

pub(crate) fn task_run() -> RunSnapshot {
    RunSnapshot {
        id: TASK_RUN_ID,
        ..RunSnapshot::default()
    }
}

fn proposal(kind: RunKind, run: RunSnapshot, current: Option<State>, proposed: State) -> Proposal {
    Proposal {
        kind,
        run,
        current,
        now: proposed.timestamp,
        proposed,
        force: false,
        client_version: Some("3.9.1".into()),
        cached_state: None,
        config: OrchestrationConfig::default(),
    }
}

/// A flow-run proposal; `now` is the proposed state's timestamp.
pub(crate) fn flow(current: Option<State>, proposed: State) -> Proposal {
    proposal(RunKind::Flow, flow_run(), current, proposed)
}

/// A task-run proposal; `now` is the proposed state's timestamp.
pub(crate) fn task(current: Option<State>, proposed: State) -> Proposal {
    proposal(RunKind::Task, task_run(), current, proposed)
}

pub(crate) fn reason(o: &Outcome) -> Option<&str> {
    o.details.reason()
}

pub(crate) fn fired(o: &Outcome, rule: &str) -> bool {
    o.fired_rules.contains(&rule)
}

/// An in-memory run driven through successive proposals, applying each outcome like the
/// storage layer will.
pub(crate) struct Sim {
    pub(crate) kind: RunKind,
    pub(crate) run: RunSnapshot,
    pub(crate) current: Option<State>,
    pub(crate) history: Vec<State>,
}

impl Sim {
    pub(crate) fn flow() -> Sim {
        Sim {
            kind: RunKind::Flow,
            run: flow_run(),
            current: None,
            history: Vec::new(),
        }
    }

    pub(crate) fn task() -> Sim {
        Sim {
            kind: RunKind::Task,
            run: task_run(),
            current: None,
            history: Vec::new(),
        }
    }

    /// Proposes `create` at `at(secs)`.
    pub(crate) fn propose(&mut self, create: StateCreate, secs: i64, force: bool) -> Outcome {
        self.propose_at(create, at(secs), force)
    }

    pub(crate) fn propose_at(
        &mut self,
        create: StateCreate,
        now: DateTime<Utc>,
        force: bool,
    ) -> Outcome {
        let proposed = State::from_create(create, fresh_id(), now);
        let p = Proposal {
            kind: self.kind,
            run: self.run.clone(),
            current: self.current.clone(),
            proposed,
            force,
            now,
            client_version: None,
            cached_state: None,
            config: OrchestrationConfig::default(),
        };
        let outcome = orchestrate(p);
        self.apply(&outcome);
        outcome
    }

    pub(crate) fn apply(&mut self, o: &Outcome) {
        let u = &o.run_update;
        if let Some(s) = &o.state_to_write {
            self.current = Some(s.clone());
            self.history.push(s.clone());
            self.run.run_count = u.run_count;
            self.run.start_time = u.start_time;
            self.run.end_time = u.end_time;
            self.run.total_run_time = u.total_run_time;
            self.run.expected_start_time = u.expected_start_time;
            self.run.next_scheduled_start_time = u.next_scheduled_start_time;
            self.run.flow_run_run_count = u.flow_run_run_count;
        }
        if let Some(p) = &u.empirical_policy {
            self.run.flow_policy = p.clone();
        }
    }

    pub(crate) fn state(&self) -> &State {
        self.current.as_ref().unwrap()
    }
}

/// A `StateCreate` of `t` named `name`.
pub(crate) fn create(t: StateType, name: Option<&str>) -> StateCreate {
    StateCreate {
        name: name.map(str::to_owned),
        ..StateCreate::of(t)
    }
}
