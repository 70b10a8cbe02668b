//! The rule runner: Prefect's nested-context orchestration loop (`rules.py`) as a pure
//! function over a working context.
//!
//! Semantics kept from Prefect:
//! * a policy's rules are filtered by the *intended* transition (FROM/TO sets);
//! * a rule enters only if the transition is still the intended one when its turn comes
//!   (an earlier reject/abort/wait that changed the proposed type makes it inert);
//! * a rule that rejects/aborts/delays itself does not "fizzle";
//! * after the global transforms ("validation"), rules exit in reverse order: a rule whose
//!   transition still holds runs its after-hook, one whose transition was changed by a later
//!   rule runs its cleanup instead.
//!
//! Owns: `Ctx`, `Rule`, the loop, and `orchestrate*`. Must not touch: I/O, clocks.

use super::global;
use super::proposal::{
    CacheInsert, OrchestrationConfig, Outcome, PolicyKind, Proposal, RunKind, RunSnapshot,
    RunUpdate, SideEffects, TaskQueueAction,
};
use super::results::{OrchestrationDetails, SetStateStatus};
use super::run_policy::FlowRunPolicy;
use super::states::{State, StateType};
use crate::time::truncate_micros;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A set of `Option<StateType>` (`None` = "no state"), as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateSet(u16);

const NONE_BIT: u16 = 1 << 9;

const fn bit(t: StateType) -> u16 {
    1 << (t as u16)
}

impl StateSet {
    /// Every state type and "no state" (`ALL_ORCHESTRATION_STATES`).
    pub(crate) const ALL: StateSet = StateSet(0x3FF);
    /// COMPLETED, FAILED, CANCELLED, CRASHED.
    pub(crate) const TERMINAL: StateSet = StateSet::of(&[
        StateType::Completed,
        StateType::Failed,
        StateType::Cancelled,
        StateType::Crashed,
    ]);

    pub(crate) const fn of(types: &[StateType]) -> StateSet {
        let mut mask = 0;
        let mut i = 0;
        while i < types.len() {
            mask |= bit(types[i]);
            i += 1;
        }
        StateSet(mask)
    }

    pub(crate) const fn without(self, t: StateType) -> StateSet {
        StateSet(self.0 & !bit(t))
    }

    pub(crate) fn contains(self, t: Option<StateType>) -> bool {
        let b = match t {
            Some(t) => bit(t),
            None => NONE_BIT,
        };
        self.0 & b != 0
    }
}

/// Work a rule defers to its exit: `after` if its transition holds, `cleanup` if it fizzled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Deferred {
    RestoreFlowPolicy(Box<FlowRunPolicy>),
    RestoreRunCount(i64),
    AddPauseKey(String),
    MarkResuming,
    TrackFlowRunRunCount(i64),
    InsertCache,
    EnqueueTask,
    ReleaseTaskSlots,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Hooks {
    pub(crate) after: Vec<Deferred>,
    pub(crate) cleanup: Vec<Deferred>,
}

impl Hooks {
    pub(crate) fn none() -> Hooks {
        Hooks::default()
    }
    pub(crate) fn after(d: Deferred) -> Hooks {
        Hooks {
            after: vec![d],
            cleanup: Vec::new(),
        }
    }
    pub(crate) fn cleanup(d: Deferred) -> Hooks {
        Hooks {
            after: Vec::new(),
            cleanup: vec![d],
        }
    }
}

pub(crate) type RuleFn = fn(&mut Ctx) -> Hooks;

#[derive(Clone, Copy)]
pub(crate) enum RuleKind {
    /// An orchestration rule, guarded by FROM/TO and fizzling.
    Guarded(RuleFn),
    /// A universal transform inside a policy: always enters, always exits.
    Universal(RuleFn),
}

#[derive(Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) name: &'static str,
    pub(crate) from: StateSet,
    pub(crate) to: StateSet,
    pub(crate) kind: RuleKind,
}

/// The working context every rule reads and mutates.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) kind: RunKind,
    pub(crate) run: RunSnapshot,
    pub(crate) initial: Option<State>,
    pub(crate) proposed: Option<State>,
    pub(crate) status: SetStateStatus,
    pub(crate) details: OrchestrationDetails,
    pub(crate) now: DateTime<Utc>,
    pub(crate) cached_state: Option<State>,
    pub(crate) config: OrchestrationConfig,
    pub(crate) effects: SideEffects,
    pub(crate) fired: Vec<&'static str>,
    /// Set by the `SetRunState*` transforms.
    pub(crate) run_state: Option<(StateType, String, DateTime<Utc>)>,
    /// Id for alternative states (the proposal's id).
    alt_id: Uuid,
    current_rule: &'static str,
    /// `Some(t)` once the running rule rejected/aborted/delayed to type `t`.
    own_to: Option<Option<StateType>>,
}

impl Ctx {
    pub(crate) fn new(p: Proposal) -> Ctx {
        let mut proposed = p.proposed;
        proposed.timestamp = truncate_micros(proposed.timestamp);
        Ctx {
            kind: p.kind,
            run: p.run,
            initial: p.current,
            alt_id: proposed.id,
            proposed: Some(proposed),
            status: SetStateStatus::Accept,
            details: OrchestrationDetails::Accept,
            now: truncate_micros(p.now),
            cached_state: p.cached_state,
            config: p.config,
            effects: SideEffects::default(),
            fired: Vec::new(),
            run_state: None,
            current_rule: "",
            own_to: None,
        }
    }

    pub(crate) fn initial_type(&self) -> Option<StateType> {
        self.initial.as_ref().map(|s| s.state_type)
    }

    pub(crate) fn proposed_type(&self) -> Option<StateType> {
        self.proposed.as_ref().map(|s| s.state_type)
    }

    /// A new state for a rule to propose instead: the proposal's id, timestamp `now`.
    pub(crate) fn new_state(&self, t: StateType) -> State {
        State::new(t, self.alt_id, self.now)
    }

    /// Records the running rule as having changed something.
    pub(crate) fn mark_fired(&mut self) {
        if !self.current_rule.is_empty() && self.fired.last() != Some(&self.current_rule) {
            self.fired.push(self.current_rule);
        }
    }

    /// REJECT: propose `state` instead, or (with `None`) write nothing and answer with the
    /// current state.
    pub(crate) fn reject(&mut self, state: Option<State>, reason: &str) {
        if state.is_none() && self.initial.is_none() {
            // Prefect raises here; its handler turns the error into an ABORT.
            let reason = format!(
                "Aborting orchestration due to error in {}: !The current run has no state; \
                 this transition cannot be rejected without providing a new state.",
                self.current_rule
            );
            self.abort(&reason);
            return;
        }
        self.own_to = Some(state.as_ref().map(|s| s.state_type));
        self.proposed = state;
        self.status = SetStateStatus::Reject;
        self.details = OrchestrationDetails::Reject {
            reason: Some(reason.to_owned()),
        };
        self.mark_fired();
    }

    /// ABORT: write nothing; the client stops orchestrating this run.
    pub(crate) fn abort(&mut self, reason: &str) {
        self.own_to = Some(None);
        self.proposed = None;
        self.status = SetStateStatus::Abort;
        self.details = OrchestrationDetails::Abort {
            reason: Some(reason.to_owned()),
        };
        self.mark_fired();
    }

    /// WAIT: write nothing; the client retries after `delay_seconds`.
    pub(crate) fn wait(&mut self, delay_seconds: i64, reason: &str) {
        self.own_to = Some(None);
        self.proposed = None;
        self.status = SetStateStatus::Wait;
        self.details = OrchestrationDetails::Wait {
            delay_seconds,
            reason: Some(reason.to_owned()),
        };
        self.mark_fired();
    }

    /// Renames the proposed state (does not change the transition).
    pub(crate) fn rename(&mut self, name: &str) {
        if let Some(p) = self.proposed.as_mut() {
            p.name = name.to_owned();
            self.mark_fired();
        }
    }
}

struct Entered {
    name: &'static str,
    universal: bool,
    own_to: Option<StateType>,
    hooks: Hooks,
}

/// Runs `rules`, then the global transforms, then the exit hooks.
pub(crate) fn run_rules(rules: &[Rule], mut ctx: Ctx) -> Ctx {
    let from = ctx.initial_type();
    let to = ctx.proposed_type();
    let mut entered = Vec::new();
    for rule in rules {
        if !(rule.from.contains(from) && rule.to.contains(to)) {
            continue;
        }
        let (f, universal) = match rule.kind {
            RuleKind::Guarded(f) => (f, false),
            RuleKind::Universal(f) => (f, true),
        };
        if !universal && (ctx.initial_type() != from || ctx.proposed_type() != to) {
            continue;
        }
        ctx.current_rule = rule.name;
        ctx.own_to = None;
        let hooks = f(&mut ctx);
        let own_to = ctx.own_to.take().unwrap_or(to);
        entered.push(Entered {
            name: rule.name,
            universal,
            own_to,
            hooks,
        });
    }
    ctx.current_rule = "";
    if ctx.proposed.is_some() {
        global::apply(&mut ctx);
    }
    let final_type = ctx.proposed_type();
    for e in entered.into_iter().rev() {
        let holds = e.universal || e.own_to == final_type;
        let work = if holds {
            e.hooks.after
        } else {
            e.hooks.cleanup
        };
        ctx.current_rule = e.name;
        for d in work {
            apply_deferred(&mut ctx, d);
        }
    }
    ctx.current_rule = "";
    ctx
}

fn apply_deferred(ctx: &mut Ctx, d: Deferred) {
    match d {
        Deferred::RestoreFlowPolicy(p) => ctx.run.flow_policy = *p,
        Deferred::RestoreRunCount(n) => ctx.run.run_count = n,
        Deferred::AddPauseKey(key) => {
            ctx.run.flow_policy.add_pause_key(key);
            ctx.mark_fired();
        }
        Deferred::MarkResuming => {
            ctx.run.flow_policy.resuming = Some(true);
            ctx.mark_fired();
        }
        Deferred::TrackFlowRunRunCount(n) => {
            ctx.run.flow_run_run_count = n;
            ctx.mark_fired();
        }
        Deferred::InsertCache => {
            let insert = ctx.proposed.as_ref().and_then(|s| {
                s.state_details
                    .cache_key
                    .clone()
                    .map(|cache_key| CacheInsert {
                        cache_key,
                        cache_expiration: s.state_details.cache_expiration,
                        task_run_state_id: s.id,
                    })
            });
            if insert.is_some() {
                ctx.effects.cache_insert = insert;
                ctx.mark_fired();
            }
        }
        Deferred::EnqueueTask => {
            let action = ctx.proposed.as_ref().and_then(|s| {
                (s.state_details.deferred == Some(true)).then(|| {
                    if s.name == "AwaitingRetry" {
                        TaskQueueAction::Retry
                    } else {
                        TaskQueueAction::Enqueue
                    }
                })
            });
            if action.is_some() {
                ctx.effects.enqueue_task_run = action;
                ctx.mark_fired();
            }
        }
        Deferred::ReleaseTaskSlots => {
            let release = ctx.proposed.as_ref().is_some_and(|s| {
                !matches!(s.state_type, StateType::Running | StateType::Cancelling)
            });
            if release {
                ctx.effects.release_task_concurrency_slots = true;
            }
        }
    }
}

/// Orchestrates a proposal with the policy Prefect would pick ([`PolicyKind::select`]).
pub fn orchestrate(p: Proposal) -> Outcome {
    let policy = PolicyKind::select(p.kind, p.force, &p.proposed);
    orchestrate_with(policy, p)
}

/// Orchestrates with `MarkLateRunsPolicy` (the late-runs service proposing `Late`). The Late
/// state keeps the run's scheduled time, as the reference's service proposes
/// `Late(scheduled_time=flow_run.next_scheduled_start_time)`.
pub fn mark_late(mut p: Proposal) -> Outcome {
    if let Some(t) = p.run.next_scheduled_start_time {
        p.proposed.state_details.scheduled_time = Some(t);
    }
    orchestrate_with(PolicyKind::MarkLateRuns, p)
}

/// Orchestrates a background service's proposal as [`orchestrate`] would, but only while the
/// run's state satisfies `from` (as when the service read it); otherwise it aborts.
/// A service reads its runs before proposing, and on several replicas another one (or the
/// client) may have moved the run since: a forced or terminal-over-terminal proposal would
/// write the same move a second time.
pub fn orchestrate_from(p: Proposal, from: fn(StateType) -> bool) -> Outcome {
    if p.current.as_ref().is_some_and(|s| from(s.state_type)) {
        return orchestrate(p);
    }
    let policy = PolicyKind::select(p.kind, p.force, &p.proposed);
    let original_policy = p.run.flow_policy.clone();
    let mut ctx = Ctx::new(p);
    ctx.abort("The run is no longer in the state this service read it in.");
    finish(policy, ctx, original_policy)
}

/// Orchestrates a proposal with an explicit policy.
pub fn orchestrate_with(policy: PolicyKind, p: Proposal) -> Outcome {
    let original_policy = p.run.flow_policy.clone();
    let ctx = run_rules(super::policy::rules(policy), Ctx::new(p));
    finish(policy, ctx, original_policy)
}

/// The outcome of a context whose rules have run.
fn finish(policy: PolicyKind, ctx: Ctx, original_policy: FlowRunPolicy) -> Outcome {
    let written = ctx.proposed.clone();
    let (state_type, state_name, state_timestamp) = match ctx.run_state.clone() {
        Some((t, n, ts)) => (Some(t), Some(n), Some(ts)),
        None => (None, None, None),
    };
    let policy_changed = ctx.kind == RunKind::Flow && ctx.run.flow_policy != original_policy;
    let run = &ctx.run;
    let run_update = RunUpdate {
        state_id: written.as_ref().map(|s| s.id),
        state_type,
        state_name,
        state_timestamp,
        run_count: run.run_count,
        start_time: run.start_time,
        end_time: run.end_time,
        total_run_time: run.total_run_time,
        expected_start_time: run.expected_start_time,
        next_scheduled_start_time: run.next_scheduled_start_time,
        flow_run_run_count: run.flow_run_run_count,
        empirical_policy: policy_changed.then(|| run.flow_policy.clone()),
    };
    Outcome {
        policy,
        status: ctx.status,
        details: ctx.details,
        state_to_write: written,
        run_update,
        effects: ctx.effects,
        fired_rules: ctx.fired,
    }
}
