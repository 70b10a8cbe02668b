//! Global transforms (`global_policy.py`): the bookkeeping that runs on every transition that
//! writes a state, after the policy rules, in Prefect's order.
//!
//! Owns: the run's denormalised state columns, start/end/run times, expected and next
//! scheduled start times, run counts, `state_details` back-references, the resuming flag and
//! unique flow-run state timestamps. Must not touch: I/O, clocks.

use super::engine::Ctx;
use super::proposal::RunKind;
use crate::time::{seconds_between, truncate_micros};
use chrono::TimeDelta;

/// Applies `GlobalFlowPolicy` or `GlobalTaskPolicy` to `ctx` (no-op when nothing is proposed).
pub(crate) fn apply(ctx: &mut Ctx) {
    if ctx.proposed.is_none() {
        return;
    }
    if ctx.kind == RunKind::Flow {
        ensure_flow_run_state_timestamp_is_unique(ctx);
    }
    set_run_state_type_name_timestamp(ctx);
    set_start_time(ctx);
    set_end_time(ctx);
    increment_run_time(ctx);
    set_expected_start_time(ctx);
    set_next_scheduled_start_time(ctx);
    update_state_details(ctx);
    match ctx.kind {
        RunKind::Flow => {
            update_subflow_parent_task(ctx);
            update_subflow_state_details(ctx);
            increment_flow_run_count(ctx);
            remove_resuming_indicator(ctx);
        }
        RunKind::Task => increment_task_run_count(ctx),
    }
}

/// EnsureFlowRunStateTimestampIsUnique: moves the proposed timestamp forward by a microsecond
/// at a time past any stored state timestamp of the run (the current state's included).
pub(crate) fn ensure_flow_run_state_timestamp_is_unique(ctx: &mut Ctx) {
    let mut taken: Vec<_> = ctx
        .run
        .taken_state_timestamps
        .iter()
        .copied()
        .map(truncate_micros)
        .collect();
    if let Some(initial) = &ctx.initial {
        taken.push(truncate_micros(initial.timestamp));
    }
    if let Some(p) = ctx.proposed.as_mut() {
        let mut candidate = truncate_micros(p.timestamp);
        while taken.contains(&candidate) {
            candidate += TimeDelta::microseconds(1);
        }
        p.timestamp = candidate;
    }
}

/// SetRunStateType, SetRunStateName, SetRunStateTimestamp: the denormalised columns.
pub(crate) fn set_run_state_type_name_timestamp(ctx: &mut Ctx) {
    if let Some(p) = &ctx.proposed {
        ctx.run_state = Some((p.state_type, p.name.clone(), p.timestamp));
    }
}

/// SetStartTime: the first entry into RUNNING.
pub(crate) fn set_start_time(ctx: &mut Ctx) {
    if let Some(p) = &ctx.proposed {
        if p.is_running() && ctx.run.start_time.is_none() {
            ctx.run.start_time = Some(p.timestamp);
        }
    }
}

/// SetEndTime: set on entering a terminal state (with start_time, if unset); cleared when
/// leaving a terminal state for a non-terminal one.
pub(crate) fn set_end_time(ctx: &mut Ctx) {
    let Some(p) = &ctx.proposed else { return };
    let leaving_final = ctx.initial.as_ref().is_some_and(|i| i.is_final());
    if leaving_final && !p.is_final() {
        ctx.run.end_time = None;
    }
    if p.is_final() && ctx.run.end_time.is_none() {
        if ctx.run.start_time.is_none() {
            ctx.run.start_time = Some(p.timestamp);
        }
        ctx.run.end_time = Some(p.timestamp);
    }
}

/// IncrementRunTime: adds the time spent in the RUNNING state being left.
pub(crate) fn increment_run_time(ctx: &mut Ctx) {
    if let (Some(i), Some(p)) = (&ctx.initial, &ctx.proposed) {
        if i.is_running() {
            ctx.run.total_run_time += seconds_between(p.timestamp, i.timestamp);
        }
    }
}

/// SetExpectedStartTime: if unset, the scheduled time (SCHEDULED) or the state's timestamp.
pub(crate) fn set_expected_start_time(ctx: &mut Ctx) {
    if ctx.run.expected_start_time.is_some() {
        return;
    }
    if let Some(p) = &ctx.proposed {
        ctx.run.expected_start_time = if p.is_scheduled() {
            p.state_details.scheduled_time
        } else {
            Some(p.timestamp)
        };
    }
}

/// SetNextScheduledStartTime: cleared when leaving SCHEDULED, set when entering it.
pub(crate) fn set_next_scheduled_start_time(ctx: &mut Ctx) {
    if ctx.initial.as_ref().is_some_and(|i| i.is_scheduled()) {
        ctx.run.next_scheduled_start_time = None;
    }
    if let Some(p) = &ctx.proposed {
        if p.is_scheduled() {
            ctx.run.next_scheduled_start_time = p.state_details.scheduled_time;
        }
    }
}

/// UpdateStateDetails: flows get `flow_run_id`; tasks get `task_run_id` and their
/// `flow_run_id` (overwritten, even with null).
pub(crate) fn update_state_details(ctx: &mut Ctx) {
    let run_id = ctx.run.id;
    let task_flow_run_id = ctx.run.flow_run_id;
    if let Some(p) = ctx.proposed.as_mut() {
        match ctx.kind {
            RunKind::Flow => p.state_details.flow_run_id = Some(run_id),
            RunKind::Task => {
                p.state_details.flow_run_id = task_flow_run_id;
                p.state_details.task_run_id = Some(run_id);
            }
        }
    }
}

/// UpdateSubflowParentTask: asks the caller to mirror the written state onto the parent task.
pub(crate) fn update_subflow_parent_task(ctx: &mut Ctx) {
    if ctx.proposed.is_some() {
        ctx.effects.update_subflow_parent_task = ctx.run.parent_task_run_id;
    }
}

/// UpdateSubflowStateDetails: a subflow's states point at its parent task run.
pub(crate) fn update_subflow_state_details(ctx: &mut Ctx) {
    if let (Some(parent), Some(p)) = (ctx.run.parent_task_run_id, ctx.proposed.as_mut()) {
        p.state_details.task_run_id = Some(parent);
    }
}

/// IncrementFlowRunCount: `run_count += 1` on entering RUNNING, unless resuming from a pause.
pub(crate) fn increment_flow_run_count(ctx: &mut Ctx) {
    if ctx.proposed.as_ref().is_some_and(|p| p.is_running()) && !ctx.run.flow_policy.is_resuming() {
        ctx.run.run_count += 1;
    }
}

/// RemoveResumingIndicator: clears `resuming` on entering RUNNING or a terminal state.
pub(crate) fn remove_resuming_indicator(ctx: &mut Ctx) {
    let clears = ctx
        .proposed
        .as_ref()
        .is_some_and(|p| p.is_running() || p.is_final());
    if clears && ctx.run.flow_policy.is_resuming() {
        ctx.run.flow_policy.resuming = Some(false);
    }
}

/// IncrementTaskRunCount: `run_count += 1` on entering RUNNING.
pub(crate) fn increment_task_run_count(ctx: &mut Ctx) {
    if ctx.proposed.as_ref().is_some_and(|p| p.is_running()) {
        ctx.run.run_count += 1;
    }
}
