//! Rules shared by flow and task policies: PreventPendingTransitions, CopyScheduledTime,
//! WaitForScheduledTime and RenameReruns (`core_policy.py`).
//!
//! Owns: these rules' conditions and messages. Must not touch: I/O, clocks (`ctx.now`).

use super::engine::{Ctx, Hooks};
use super::states::StateType;
use chrono::{DateTime, Utc};

/// PreventPendingTransitions (PENDING/CANCELLING/RUNNING/CANCELLED → PENDING): ABORT duplicate
/// submissions. PENDING → PENDING is allowed to a different name that is not "Pending"
/// (Pending → Submitting → InfrastructurePending); then the scheduled time and the deployment
/// concurrency lease id are carried over from the current state.
pub(crate) fn prevent_pending_transitions(ctx: &mut Ctx) -> Hooks {
    let (Some(initial), Some(proposed)) = (&ctx.initial, &ctx.proposed) else {
        return Hooks::none();
    };
    let sub_state = initial.state_type == StateType::Pending
        && proposed.state_type == StateType::Pending
        && initial.name != proposed.name
        && proposed.name != "Pending";
    if sub_state {
        let scheduled_time = initial.state_details.scheduled_time;
        let lease = initial.state_details.deployment_concurrency_lease_id;
        if let Some(p) = ctx.proposed.as_mut() {
            p.state_details.scheduled_time = scheduled_time;
            p.state_details.deployment_concurrency_lease_id = lease;
        }
        return Hooks::none();
    }
    let reason = format!(
        "This run is in a {} state and cannot transition to a PENDING state.",
        initial.state_type.as_str()
    );
    ctx.abort(&reason);
    Hooks::none()
}

/// CopyScheduledTime (SCHEDULED → PENDING): the pending state inherits the scheduled time
/// unless it proposes its own.
pub(crate) fn copy_scheduled_time(ctx: &mut Ctx) -> Hooks {
    let Some(initial_time) = ctx.initial.as_ref().map(|i| i.state_details.scheduled_time) else {
        return Hooks::none();
    };
    if let Some(p) = ctx.proposed.as_mut() {
        if p.state_details.scheduled_time.is_none() && initial_time.is_some() {
            p.state_details.scheduled_time = initial_time;
            ctx.mark_fired();
        }
    }
    Hooks::none()
}

/// The whole seconds Prefect asks a client to wait: floor of the remaining time plus the
/// rounded (half to even) fraction, i.e. `floor(s) + round(frac)`.
pub(crate) fn wait_delay_seconds(scheduled: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let delta = scheduled - now;
    let micros = delta
        .num_microseconds()
        .unwrap_or_else(|| delta.num_seconds().saturating_mul(1_000_000));
    let whole = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    whole + i64::from(frac > 500_000)
}

/// WaitForScheduledTime (SCHEDULED/PENDING → RUNNING): WAIT while the current state's
/// scheduled time is in the future; nothing is written.
pub(crate) fn wait_for_scheduled_time(ctx: &mut Ctx) -> Hooks {
    if ctx.proposed.is_none() {
        return Hooks::none();
    }
    let Some(scheduled) = ctx
        .initial
        .as_ref()
        .and_then(|i| i.state_details.scheduled_time)
    else {
        return Hooks::none();
    };
    let delay = wait_delay_seconds(scheduled, ctx.now);
    if delay > 0 {
        ctx.wait(delay, "Scheduled time is in the future");
    }
    Hooks::none()
}

/// RenameReruns (→ RUNNING, task policies): a run that has run before is "Retrying" when it
/// leaves AwaitingRetry, "Rerunning" otherwise.
pub(crate) fn rename_reruns(ctx: &mut Ctx) -> Hooks {
    let Some(initial) = &ctx.initial else {
        return Hooks::none();
    };
    if ctx.proposed.is_none() || ctx.run.run_count <= 0 {
        return Hooks::none();
    }
    let name = if initial.name == "AwaitingRetry" {
        "Retrying"
    } else {
        "Rerunning"
    };
    ctx.rename(name);
    Hooks::none()
}
