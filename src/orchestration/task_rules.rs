//! Task-run rules of `CoreTaskPolicy`, `BackgroundTaskPolicy` and `MinimalTaskPolicy`
//! (`core_policy.py`): cache retrieval and insertion, terminal states, stopped parent flows,
//! retries (with jitter), flow-run attempt tracking, parameters ids and the task queue.
//!
//! Owns: these rules' conditions, alternative states and reasons. Must not touch: I/O, clocks,
//! randomness (jitter draws a reproducible number from the run id and run count).

use super::engine::{Ctx, Deferred, Hooks};
use super::flow_rules::holds_persisted_result;
use super::states::StateType;
use crate::time::add_seconds;

/// CacheRetrieval (→ RUNNING): with a `cache_key` (and no `refresh_cache`) and a cached
/// state supplied by the caller, REJECT into a fresh copy of it named "Cached".
pub(crate) fn cache_retrieval(ctx: &mut Ctx) -> Hooks {
    let Some(p) = &ctx.proposed else {
        return Hooks::none();
    };
    let wants_cache =
        p.state_details.cache_key.is_some() && p.state_details.refresh_cache != Some(true);
    if !wants_cache {
        return Hooks::none();
    }
    let id = p.id;
    if let Some(cached) = &ctx.cached_state {
        let copy = cached.fresh_copy(id, ctx.now).named("Cached");
        ctx.reject(Some(copy), "Retrieved state from cache");
    }
    Hooks::none()
}

/// HandleTaskTerminalStateTransitions (terminal → any): ABORT leaving for
/// CANCELLING/PAUSED/CRASHED, REJECT leaving a COMPLETED state with a persisted result, reset
/// `run_count` (so retries start over) when leaving for a non-terminal state, and name a
/// re-run "Retrying" when the enclosing flow run is on a newer attempt.
pub(crate) fn handle_task_terminal_state_transitions(ctx: &mut Ctx) -> Hooks {
    let (Some(i), Some(p)) = (&ctx.initial, &ctx.proposed) else {
        return Hooks::none();
    };
    let restore = Hooks::cleanup(Deferred::RestoreRunCount(ctx.run.run_count));
    if matches!(
        p.state_type,
        StateType::Cancelling | StateType::Paused | StateType::Crashed
    ) {
        let reason = format!("Run is already {}.", i.state_type.as_str());
        ctx.abort(&reason);
        return restore;
    }
    if i.is_completed() && holds_persisted_result(i.data.as_ref()) {
        ctx.reject(None, "This run is already completed.");
        return restore;
    }
    let (final_, running) = (p.is_final(), p.is_running());
    if !final_ {
        ctx.run.run_count = 0;
        ctx.mark_fired();
    }
    if running && ctx.run.flow_run_id.is_some() {
        if let Some(flow_run) = &ctx.run.flow_run {
            if ctx.run.flow_run_run_count < flow_run.run_count {
                ctx.rename("Retrying");
            }
        }
    }
    restore
}

const FLOW_NOT_RUNNING: &str = "The enclosing flow must be running to begin task execution.";

/// PreventRunningTasksFromStoppedFlows (→ RUNNING): a task runs only while its flow runs;
/// a PAUSED flow gives a REJECT to `Paused "NotReady"` carrying the flow's pause settings.
pub(crate) fn prevent_running_tasks_from_stopped_flows(ctx: &mut Ctx) -> Hooks {
    let Some(flow_run) = &ctx.run.flow_run else {
        return Hooks::none();
    };
    let flow_run_id = flow_run.id;
    match &flow_run.state {
        None => ctx.abort(FLOW_NOT_RUNNING),
        Some(s) if s.is_paused() => {
            let (timeout, reschedule) = (
                s.state_details.pause_timeout,
                s.state_details.pause_reschedule,
            );
            let mut paused = ctx.new_state(StateType::Paused).named("NotReady");
            paused.state_details.pause_timeout = timeout;
            paused.state_details.pause_reschedule = reschedule;
            let reason = format!(
                "The flow is paused, new tasks can execute after resuming flow run: {flow_run_id}."
            );
            ctx.reject(Some(paused), &reason);
        }
        Some(s) if !s.is_running() => ctx.abort(FLOW_NOT_RUNNING),
        Some(_) => {}
    }
    Hooks::none()
}

/// A reproducible number in `[0, 1)` from the run id and attempt (SplitMix64), standing in for
/// Python's `random.random()` so orchestration stays a pure function.
pub(crate) fn unit_sample(seed_id: uuid::Uuid, run_count: i64) -> f64 {
    let v = seed_id.as_u128();
    let mut x =
        (v as u64) ^ ((v >> 64) as u64) ^ (run_count as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Prefect's `clamped_poisson_interval(average, clamping_factor)` with `sample` in `[0, 1)`
/// as the uniform draw: an exponential variate bounded to
/// `[average * c, average * (1 + clamping_factor)]`, `c` chosen to keep the mean.
pub(crate) fn clamped_poisson_interval(average: f64, clamping_factor: f64, sample: f64) -> f64 {
    let exponential_cdf = |x: f64| 1.0 - (-x / average).exp();
    let upper_multiple = 1.0 + clamping_factor;
    let lower_multiple = if upper_multiple >= 50.0 {
        0.0
    } else {
        let p = 2f64.powf(upper_multiple);
        (p / (p - 1.0)).max(1e-10).log2()
    };
    let upper_bound = average * upper_multiple;
    let lower_bound = (average * lower_multiple).max(0.0);
    let (lower_rv, upper_rv) = (exponential_cdf(lower_bound), exponential_cdf(upper_bound));
    let u = lower_rv + (upper_rv - lower_rv) * sample;
    -(1.0 - u).max(1e-10).ln() * average
}

/// RetryFailedTasks (RUNNING → FAILED): unless the client marked the failure not
/// `retriable`, REJECT to `AwaitingRetry` while `run_count <= retries`, after the delay for
/// this attempt (jittered when `retry_jitter_factor` is set).
pub(crate) fn retry_failed_tasks(ctx: &mut Ctx) -> Hooks {
    let (Some(_), Some(p)) = (&ctx.initial, &ctx.proposed) else {
        return Hooks::none();
    };
    let policy = &ctx.run.task_policy;
    let run_count = ctx.run.run_count;
    let base = policy.base_delay_secs(run_count);
    let delay = match policy.retry_jitter_factor {
        Some(factor) if factor > 0.0 && base > 0.0 => {
            clamped_poisson_interval(base, factor, unit_sample(ctx.run.id, run_count))
        }
        _ => base,
    };
    if p.state_details.retriable == Some(false) {
        return Hooks::none();
    }
    if policy.retries.is_some_and(|r| run_count <= r) {
        let (message, data) = (p.message.clone(), p.data.clone());
        let mut retry = ctx.new_state(StateType::Scheduled).named("AwaitingRetry");
        retry.state_details.scheduled_time = Some(add_seconds(ctx.now, delay));
        retry.message = message;
        retry.data = data;
        ctx.reject(Some(retry), "Retrying");
    }
    Hooks::none()
}

/// UpdateFlowRunTrackerOnTasks (→ RUNNING): on exit, remember which flow-run attempt the
/// task ran under (skipped if the caller could not find the flow run).
pub(crate) fn update_flow_run_tracker_on_tasks(ctx: &mut Ctx) -> Hooks {
    match (&ctx.run.flow_run_id, &ctx.run.flow_run) {
        (Some(_), Some(flow_run)) => {
            Hooks::after(Deferred::TrackFlowRunRunCount(flow_run.run_count))
        }
        _ => Hooks::none(),
    }
}

/// CacheInsertion (→ COMPLETED): an over-long cache key gives a REJECT that still writes the
/// proposed state (as Prefect does); on exit the written state is cached under its key.
pub(crate) fn cache_insertion(ctx: &mut Ctx) -> Hooks {
    let Some(p) = &ctx.proposed else {
        return Hooks::none();
    };
    let max = ctx.config.max_cache_key_length;
    if p.state_details
        .cache_key
        .as_ref()
        .is_some_and(|k| k.chars().count() > max)
    {
        let same = p.clone();
        let reason = format!("Cache key exceeded maximum allowed length of {max} characters.");
        ctx.reject(Some(same), &reason);
    }
    Hooks::after(Deferred::InsertCache)
}

/// ReleaseTaskConcurrencySlots (universal): on a written state other than RUNNING or
/// CANCELLING, ask the caller to release the run's tag concurrency slots.
pub(crate) fn release_task_concurrency_slots(_ctx: &mut Ctx) -> Hooks {
    Hooks::after(Deferred::ReleaseTaskSlots)
}

/// CopyTaskParametersID (SCHEDULED/PENDING → PENDING/RUNNING, background tasks): the
/// parameters id travels with the run unless the new state names one.
pub(crate) fn copy_task_parameters_id(ctx: &mut Ctx) -> Hooks {
    let initial_id = ctx
        .initial
        .as_ref()
        .and_then(|i| i.state_details.task_parameters_id);
    if let Some(p) = ctx.proposed.as_mut() {
        if p.state_details.task_parameters_id.is_none() && initial_id.is_some() {
            p.state_details.task_parameters_id = initial_id;
            ctx.mark_fired();
        }
    }
    Hooks::none()
}

/// EnqueueScheduledTasks (→ SCHEDULED, background tasks): on exit, a written deferred state
/// is pushed to task workers (`retry` for AwaitingRetry, else `enqueue`).
pub(crate) fn enqueue_scheduled_tasks(_ctx: &mut Ctx) -> Hooks {
    Hooks::after(Deferred::EnqueueTask)
}
