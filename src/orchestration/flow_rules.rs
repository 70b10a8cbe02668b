//! Flow-run rules of `CoreFlowPolicy`, `MinimalFlowPolicy` and `MarkLateRunsPolicy`
//! (`core_policy.py`): duplicate transitions, terminal states, cancellation, lateness,
//! pausing and resuming, retries.
//!
//! Owns: these rules' conditions, alternative states and reason strings (Prefect's wording).
//! Must not touch: I/O, clocks (`ctx.now`), deployment concurrency (see `policy.rs`).

use super::engine::{Ctx, Deferred, Hooks};
use super::states::StateType;
use crate::time::add_seconds;
use serde_json::Value;

/// Prefect's `_has_persisted_result`: a result-record dict that is not `"unpersisted"`.
pub(crate) fn has_persisted_result(data: Option<&Value>) -> bool {
    match data {
        Some(Value::Object(map)) => map.get("type").and_then(Value::as_str) != Some("unpersisted"),
        _ => false,
    }
}

/// `initial.data and _has_persisted_result(initial.data)`: a non-empty persisted result.
pub(crate) fn holds_persisted_result(data: Option<&Value>) -> bool {
    matches!(data, Some(Value::Object(map)) if !map.is_empty()) && has_persisted_result(data)
}

const OVERWRITE_RESULT: &str =
    "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not.";

/// COMPLETED (with a persisted result) → COMPLETED without one.
fn would_drop_result(ctx: &Ctx) -> bool {
    let (Some(i), Some(p)) = (&ctx.initial, &ctx.proposed) else {
        return false;
    };
    i.is_completed()
        && p.is_completed()
        && holds_persisted_result(i.data.as_ref())
        && !has_persisted_result(p.data.as_ref())
}

/// PreserveDeploymentConcurrencyLeaseId (universal): carries the lease id forward when the
/// proposed state does not name one.
pub(crate) fn preserve_deployment_concurrency_lease_id(ctx: &mut Ctx) -> Hooks {
    let lease = ctx
        .initial
        .as_ref()
        .and_then(|i| i.state_details.deployment_concurrency_lease_id);
    if let (Some(lease), Some(p)) = (lease, ctx.proposed.as_mut()) {
        if p.state_details.deployment_concurrency_lease_id.is_none() {
            p.state_details.deployment_concurrency_lease_id = Some(lease);
            ctx.mark_fired();
        }
    }
    Hooks::none()
}

/// PreventDuplicateTransitions: the same `transition_id` twice in a row is a client retry;
/// REJECT and answer with the current state.
pub(crate) fn prevent_duplicate_transitions(ctx: &mut Ctx) -> Hooks {
    let (Some(i), Some(p)) = (&ctx.initial, &ctx.proposed) else {
        return Hooks::none();
    };
    let (a, b) = (i.state_details.transition_id, p.state_details.transition_id);
    if a.is_some() && a == b {
        ctx.reject(None, "This run has already made this state transition.");
    }
    Hooks::none()
}

/// HandleFlowTerminalStateTransitions (terminal → any).
pub(crate) fn handle_flow_terminal_state_transitions(ctx: &mut Ctx) -> Hooks {
    let (Some(i), Some(p)) = (&ctx.initial, &ctx.proposed) else {
        return Hooks::none();
    };
    let (initial_type, proposed_type) = (i.state_type, p.state_type);
    let leaves_completed_result = i.is_completed() && holds_persisted_result(i.data.as_ref());
    let proposed_final = p.is_final();
    let original = Box::new(ctx.run.flow_policy.clone());
    let restore = Hooks::cleanup(Deferred::RestoreFlowPolicy(original));

    if matches!(
        proposed_type,
        StateType::Cancelling | StateType::Paused | StateType::Crashed
    ) {
        let reason = format!(
            "Run is already in terminal state {}.",
            initial_type.as_str()
        );
        ctx.abort(&reason);
        return restore;
    }
    if leaves_completed_result && !proposed_final {
        ctx.reject(None, "Run is already COMPLETED.");
        return restore;
    }
    if would_drop_result(ctx) {
        ctx.reject(None, OVERWRITE_RESULT);
        return restore;
    }
    if proposed_type == StateType::Scheduled && ctx.run.deployment_id.is_none() {
        ctx.abort("Cannot reschedule a run without an associated deployment.");
        return restore;
    }
    if !proposed_final {
        let policy = &mut ctx.run.flow_policy;
        policy.resuming = Some(false);
        policy.pause_keys = Some(Vec::new());
        policy.retry_type = (proposed_type == StateType::Scheduled).then(|| "reschedule".into());
        ctx.mark_fired();
    }
    restore
}

/// PreventResultDataLoss (terminal → terminal, MinimalFlowPolicy): REJECT a COMPLETED state
/// that would replace a persisted result with none.
pub(crate) fn prevent_result_data_loss(ctx: &mut Ctx) -> Hooks {
    if would_drop_result(ctx) {
        ctx.reject(None, OVERWRITE_RESULT);
    }
    Hooks::none()
}

/// EnforceCancellingToCancelledTransition (CANCELLING → anything but CANCELLED): REJECT.
pub(crate) fn enforce_cancelling_to_cancelled_transition(ctx: &mut Ctx) -> Hooks {
    ctx.reject(
        None,
        "Cannot transition flows that are cancelling to a state other than Cancelled.",
    );
    Hooks::none()
}

/// BypassCancellingFlowRunsWithNoInfra (SCHEDULED/PAUSED → CANCELLING): with no
/// infrastructure to tear down, go straight to CANCELLED.
pub(crate) fn bypass_cancelling_flow_runs_with_no_infra(ctx: &mut Ctx) -> Hooks {
    let (Some(i), Some(_)) = (&ctx.initial, &ctx.proposed) else {
        return Hooks::none();
    };
    let no_infra = ctx
        .run
        .infrastructure_pid
        .as_deref()
        .is_none_or(str::is_empty);
    let reason = if (i.is_scheduled() && no_infra) || i.name == "Resuming" {
        "Scheduled flow run has no infrastructure to terminate."
    } else if i.is_paused() && i.state_details.pause_reschedule {
        "Suspended flow run has no infrastructure to terminate."
    } else {
        return Hooks::none();
    };
    let cancelled = ctx.new_state(StateType::Cancelled);
    ctx.reject(Some(cancelled), reason);
    Hooks::none()
}

/// ValidateDeploymentConcurrencyAtRunning (PENDING → RUNNING), lease carry-over part: the
/// running state takes the pending state's lease id. Renewing/validating the lease belongs to
/// deployment concurrency (not implemented; see `policy.rs`).
pub(crate) fn validate_deployment_concurrency_at_running(ctx: &mut Ctx) -> Hooks {
    let lease = ctx
        .initial
        .as_ref()
        .and_then(|i| i.state_details.deployment_concurrency_lease_id);
    if let Some(p) = ctx.proposed.as_mut() {
        p.state_details.deployment_concurrency_lease_id = lease;
    }
    Hooks::none()
}

/// EnsureOnlyScheduledFlowsMarkedLate (→ SCHEDULED "Late").
pub(crate) fn ensure_only_scheduled_flows_marked_late(ctx: &mut Ctx) -> Hooks {
    let (Some(i), Some(p)) = (&ctx.initial, &ctx.proposed) else {
        return Hooks::none();
    };
    if !(p.is_scheduled() && p.name == "Late") {
        return Hooks::none();
    }
    if !i.is_scheduled() {
        ctx.reject(None, "Only scheduled flows can be marked late.");
    } else if i.name == "Late" {
        ctx.reject(None, "This flow run is already marked late.");
    }
    Hooks::none()
}

/// HandlePausingFlows (→ PAUSED): only RUNNING flows pause, each pause key fires once, and a
/// rescheduling pause ("Suspended") needs a deployment and is refused for subflows. The key
/// (the proposal's id when none is given) is recorded in `pause_keys` on exit.
pub(crate) fn handle_pausing_flows(ctx: &mut Ctx) -> Hooks {
    let Some(p) = &ctx.proposed else {
        return Hooks::none();
    };
    let verb = if p.name == "Suspended" {
        "suspend"
    } else {
        "pause"
    };
    let Some(i) = &ctx.initial else {
        ctx.abort(&format!("Cannot {verb} flows with no state."));
        return Hooks::none();
    };
    if !i.is_running() {
        // Prefect records no key here (its after-hook would fail on the unset key).
        ctx.reject(
            None,
            &format!("Cannot {verb} flows that are not currently running."),
        );
        return Hooks::none();
    }
    let key = p
        .state_details
        .pause_key
        .clone()
        .unwrap_or_else(|| p.id.to_string());
    let reschedule = p.state_details.pause_reschedule;
    let hooks = Hooks::after(Deferred::AddPauseKey(key.clone()));
    if ctx.run.flow_policy.has_pause_key(&key) {
        ctx.reject(None, &format!("This {verb} has already fired."));
    } else if reschedule && ctx.run.parent_task_run_id.is_some() {
        ctx.abort(&format!("Cannot {verb} subflows."));
    } else if reschedule && ctx.run.deployment_id.is_none() {
        ctx.abort(&format!("Cannot {verb} flows without a deployment."));
    }
    hooks
}

/// HandleResumingPausedFlows (PAUSED → any): only RUNNING, SCHEDULED or terminal may follow;
/// a rescheduling pause needs a deployment; past `pause_timeout` the run fails. On exit the
/// run is flagged `resuming`.
pub(crate) fn handle_resuming_paused_flows(ctx: &mut Ctx) -> Hooks {
    let (Some(i), Some(p)) = (&ctx.initial, &ctx.proposed) else {
        return Hooks::none();
    };
    let hooks = Hooks::after(Deferred::MarkResuming);
    if !(p.is_running() || p.is_scheduled() || p.is_final()) {
        // Python 3.11+ formats Prefect's str-Enum in f-strings as "StateType.X".
        let reason = format!(
            "This run cannot transition to the StateType.{} state from the StateType.{} state.",
            p.state_type.as_str(),
            i.state_type.as_str()
        );
        ctx.reject(None, &reason);
        return hooks;
    }
    let verb = if p.name == "Suspended" {
        "suspend"
    } else {
        "pause"
    };
    let display = p.name.to_lowercase();
    if i.state_details.pause_reschedule && ctx.run.deployment_id.is_none() {
        let reason = format!("Cannot reschedule a {display} flow run without a deployment.");
        ctx.reject(None, &reason);
        return hooks;
    }
    if i.state_details.pause_timeout.is_some_and(|t| t < ctx.now) {
        let failed = ctx
            .new_state(StateType::Failed)
            .with_message(Some(format!("The flow was {display} and never resumed.")));
        let reason = format!("The flow run {verb} has timed out and can no longer resume.");
        ctx.reject(Some(failed), &reason);
    }
    hooks
}

/// RetryFailedFlows (RUNNING → FAILED): while `run_count <= retries`, REJECT to
/// `AwaitingRetry` at `now + retry_delay`, marking the run as retrying in-process (so workers
/// leave it alone) and resetting pause bookkeeping. Once retries are exhausted, clear
/// `retry_type` and let FAILED through.
pub(crate) fn retry_failed_flows(ctx: &mut Ctx) -> Hooks {
    let (Some(_), Some(p)) = (&ctx.initial, &ctx.proposed) else {
        return Hooks::none();
    };
    let retries = ctx.run.flow_policy.retries;
    if retries.is_none_or(|r| ctx.run.run_count > r) {
        if ctx.run.flow_policy.retry_type.is_some() {
            ctx.run.flow_policy.retry_type = None;
            ctx.mark_fired();
        }
        return Hooks::none();
    }
    let (message, data) = (p.message.clone(), p.data.clone());
    let scheduled = add_seconds(ctx.now, ctx.run.flow_policy.retry_delay_secs());
    let policy = &mut ctx.run.flow_policy;
    policy.resuming = Some(false);
    policy.pause_keys = Some(Vec::new());
    policy.retry_type = Some("in_process".into());
    let mut retry = ctx.new_state(StateType::Scheduled).named("AwaitingRetry");
    retry.state_details.scheduled_time = Some(scheduled);
    retry.message = message;
    retry.data = data;
    ctx.reject(Some(retry), "Retrying");
    Hooks::none()
}

/// Seconds a run waits for a deployment concurrency slot before it is offered again
/// (PREFECT_DEPLOYMENT_CONCURRENCY_SLOT_WAIT_SECONDS).
pub(crate) const CONCURRENCY_SLOT_WAIT_SECONDS: i64 = 30;

/// SecureFlowConcurrencySlots (non-active → PENDING): a deployment with a concurrency limit
/// admits a run only while fewer than `limit` of its runs are PENDING, RUNNING or CANCELLING.
/// When full: `Scheduled "AwaitingConcurrencySlot"` a little later (ENQUEUE) or `Cancelled`
/// (CANCEL_NEW); a limit of 0 would deadlock, so the proposal is aborted.
pub(crate) fn secure_flow_concurrency_slots(ctx: &mut Ctx) -> Hooks {
    let Some(dc) = ctx.run.deployment_concurrency.clone() else {
        return Hooks::none();
    };
    if dc.limit == 0 {
        ctx.abort(
            "The deployment concurrency limit is 0. The flow will deadlock if submitted again.",
        );
        return Hooks::none();
    }
    if dc.active < dc.limit {
        return Hooks::none();
    }
    let reason = "Deployment concurrency limit reached.";
    if dc.collision_strategy == "CANCEL_NEW" {
        let cancelled = ctx.new_state(StateType::Cancelled);
        ctx.reject(Some(cancelled), reason);
    } else {
        let mut waiting = ctx
            .new_state(StateType::Scheduled)
            .named("AwaitingConcurrencySlot");
        waiting.state_details.scheduled_time =
            Some(ctx.now + chrono::Duration::seconds(CONCURRENCY_SLOT_WAIT_SECONDS));
        ctx.reject(Some(waiting), reason);
    }
    Hooks::none()
}
