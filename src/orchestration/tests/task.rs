//! Unit tests of the task-run rules (CoreTaskPolicy, BackgroundTaskPolicy, MinimalTaskPolicy),
//! one group per rule, accepting and refusing cases.

use super::support::*;
use crate::orchestration::*;
use uuid::Uuid;
use StateType::*;

fn accepted(o: &Outcome) -> bool {
    o.status == SetStateStatus::Accept && o.state_to_write.is_some()
}

fn in_running_flow(mut p: Proposal, flow_run_count: i64) -> Proposal {
    p.run.flow_run_id = Some(FLOW_RUN_ID);
    p.run.flow_run = Some(EnclosingFlowRun {
        id: FLOW_RUN_ID,
        run_count: flow_run_count,
        state: Some(st(Running, 0)),
    });
    p
}

fn with_cache_key(mut s: State, key: &str) -> State {
    s.state_details.cache_key = Some(key.into());
    s
}

// Policy selection

#[test]
fn policy_select_matches_prefect() {
    let plain = st(Running, 0);
    let mut deferred = st(Scheduled, 0);
    deferred.state_details.deferred = Some(true);
    assert_eq!(
        PolicyKind::select(RunKind::Task, false, &plain),
        PolicyKind::CoreTask
    );
    assert_eq!(
        PolicyKind::select(RunKind::Task, true, &plain),
        PolicyKind::MinimalTask
    );
    assert_eq!(
        PolicyKind::select(RunKind::Task, true, &deferred),
        PolicyKind::BackgroundTask
    );
    assert_eq!(
        PolicyKind::select(RunKind::Flow, false, &deferred),
        PolicyKind::CoreFlow
    );
    assert_eq!(
        PolicyKind::select(RunKind::Flow, true, &plain),
        PolicyKind::MinimalFlow
    );
}

// CacheRetrieval

#[test]
fn cache_retrieval_rejects_into_cached_copy() {
    let mut cached = st(Completed, -100);
    cached.data = Some(persisted());
    cached.message = Some("done".into());
    let proposed = with_cache_key(st(Running, 1), "k");
    let proposed_id = proposed.id;
    let mut p = task(Some(st(Pending, 0)), proposed);
    p.cached_state = Some(cached.clone());
    let o = orchestrate(p);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(reason(&o), Some("Retrieved state from cache"));
    let w = o.state_to_write.clone().unwrap();
    assert_eq!((w.state_type, w.name.as_str()), (Completed, "Cached"));
    assert_eq!((w.id, w.timestamp), (proposed_id, at(1)));
    assert_eq!(w.data, cached.data);
    assert_eq!(w.state_details.task_run_id, Some(TASK_RUN_ID));
    // Later rules were inert: no run-count increment, and CacheInsertion did not run.
    assert_eq!(o.run_update.run_count, 0);
    assert_eq!(o.effects.cache_insert, None);
    assert_eq!(o.fired_rules, ["CacheRetrieval"]);
}

#[test]
fn cache_retrieval_skips_on_refresh_missing_key_or_empty_cache() {
    let cached = st(Completed, -100);
    let mut refresh = with_cache_key(st(Running, 1), "k");
    refresh.state_details.refresh_cache = Some(true);
    for (proposed, cache) in [
        (refresh, Some(cached.clone())),
        (st(Running, 1), Some(cached)),
        (with_cache_key(st(Running, 1), "k"), None),
    ] {
        let mut p = task(Some(st(Pending, 0)), proposed);
        p.cached_state = cache;
        let o = orchestrate(p);
        assert!(accepted(&o));
        assert_eq!(o.state_to_write.unwrap().state_type, Running);
    }
}

// HandleTaskTerminalStateTransitions

#[test]
fn handle_task_terminal_state_transitions_aborts_cancelling_paused_crashed() {
    for target in [Cancelling, Paused, Crashed] {
        let o = orchestrate(task(Some(st(Failed, 0)), st(target, 1)));
        assert_eq!(o.status, SetStateStatus::Abort);
        assert_eq!(reason(&o), Some("Run is already FAILED."));
    }
}

#[test]
fn handle_task_terminal_state_transitions_rejects_leaving_persisted_completed() {
    let mut completed = st(Completed, 0);
    completed.data = Some(persisted());
    for target in [Running, Completed, Failed] {
        let o = orchestrate(task(Some(completed.clone()), st(target, 1)));
        assert_eq!(o.status, SetStateStatus::Reject, "{target}");
        assert_eq!(reason(&o), Some("This run is already completed."));
        assert!(o.state_to_write.is_none());
    }
}

#[test]
fn handle_task_terminal_state_transitions_resets_run_count_on_rerun() {
    let mut p = task(Some(st(Failed, 0)), st(Running, 1));
    p.run.run_count = 3;
    let o = orchestrate(p);
    assert!(accepted(&o));
    // Reset to 0, then entering RUNNING counts 1; no "Rerunning" since the count was reset.
    assert_eq!(o.run_update.run_count, 1);
    assert_eq!(o.state_to_write.unwrap().name, "Running");
    // Terminal → terminal keeps the count.
    let mut p = task(Some(st(Failed, 0)), st(Completed, 1));
    p.run.run_count = 3;
    assert_eq!(orchestrate(p).run_update.run_count, 3);
}

#[test]
fn handle_task_terminal_state_transitions_names_flow_retry_reruns_retrying() {
    let mut p = in_running_flow(task(Some(st(Failed, 0)), st(Running, 1)), 2);
    p.run.flow_run_run_count = 1;
    let o = orchestrate(p);
    assert_eq!(o.state_to_write.unwrap().name, "Retrying");
    assert_eq!(o.run_update.flow_run_run_count, 2);
    let mut p = in_running_flow(task(Some(st(Failed, 0)), st(Running, 1)), 2);
    p.run.flow_run_run_count = 2;
    assert_eq!(orchestrate(p).state_to_write.unwrap().name, "Running");
}

#[test]
fn handle_task_terminal_state_transitions_restores_run_count_when_fizzled() {
    let mut p = task(Some(st(Failed, 0)), st(Running, 1));
    p.run.run_count = 3;
    p.run.flow_run_id = Some(FLOW_RUN_ID);
    p.run.flow_run = Some(EnclosingFlowRun {
        id: FLOW_RUN_ID,
        run_count: 1,
        state: Some(st(Completed, 0)),
    });
    let o = orchestrate(p);
    assert_eq!(o.status, SetStateStatus::Abort);
    assert_eq!(o.run_update.run_count, 3);
}

// PreventRunningTasksFromStoppedFlows

#[test]
fn prevent_running_tasks_from_stopped_flows_aborts_unless_flow_running() {
    for flow_state in [None, Some(st(Completed, 0)), Some(st(Pending, 0))] {
        let mut p = task(Some(st(Pending, 0)), st(Running, 1));
        p.run.flow_run_id = Some(FLOW_RUN_ID);
        p.run.flow_run = Some(EnclosingFlowRun {
            id: FLOW_RUN_ID,
            run_count: 1,
            state: flow_state,
        });
        let o = orchestrate(p);
        assert_eq!(o.status, SetStateStatus::Abort);
        assert_eq!(
            reason(&o),
            Some("The enclosing flow must be running to begin task execution.")
        );
    }
    assert!(accepted(&orchestrate(in_running_flow(
        task(Some(st(Pending, 0)), st(Running, 1)),
        1
    ))));
    assert!(accepted(&orchestrate(task(
        Some(st(Pending, 0)),
        st(Running, 1)
    ))));
}

#[test]
fn prevent_running_tasks_from_stopped_flows_rejects_to_not_ready_when_flow_paused() {
    let mut flow_paused = st(Paused, 0);
    flow_paused.state_details.pause_timeout = Some(at(500));
    flow_paused.state_details.pause_reschedule = true;
    let mut p = task(Some(st(Pending, 0)), st(Running, 1));
    p.run.flow_run_id = Some(FLOW_RUN_ID);
    p.run.flow_run = Some(EnclosingFlowRun {
        id: FLOW_RUN_ID,
        run_count: 1,
        state: Some(flow_paused),
    });
    let o = orchestrate(p);
    assert_eq!(o.status, SetStateStatus::Reject);
    let expected = format!(
        "The flow is paused, new tasks can execute after resuming flow run: {FLOW_RUN_ID}."
    );
    assert_eq!(reason(&o), Some(expected.as_str()));
    let w = o.state_to_write.unwrap();
    assert_eq!((w.state_type, w.name.as_str()), (Paused, "NotReady"));
    assert_eq!(w.state_details.pause_timeout, Some(at(500)));
    assert!(w.state_details.pause_reschedule);
}

// RetryFailedTasks

#[test]
fn retry_failed_tasks_rejects_to_awaiting_retry_with_attempt_delay() {
    for (run_count, expected) in [(1, 1), (2, 2), (3, 4)] {
        let mut p = task(Some(st(Running, 0)), st(Failed, 10));
        p.run.run_count = run_count;
        p.run.task_policy.retries = Some(3);
        p.run.task_policy.retry_delay = Some(TaskRetryDelay::PerAttempt(vec![
            1.into(),
            2.into(),
            4.into(),
        ]));
        let o = orchestrate(p);
        assert_eq!(o.status, SetStateStatus::Reject);
        assert_eq!(reason(&o), Some("Retrying"));
        let w = o.state_to_write.unwrap();
        assert_eq!(w.name, "AwaitingRetry");
        assert_eq!(w.state_details.scheduled_time, Some(at(10 + expected)));
    }
}

#[test]
fn retry_failed_tasks_accepts_when_exhausted_or_not_retriable() {
    let mut p = task(Some(st(Running, 0)), st(Failed, 1));
    p.run.run_count = 3;
    p.run.task_policy.retries = Some(2);
    assert!(accepted(&orchestrate(p)));
    let mut failed = st(Failed, 1);
    failed.state_details.retriable = Some(false);
    let mut p = task(Some(st(Running, 0)), failed);
    p.run.run_count = 1;
    p.run.task_policy.retries = Some(2);
    assert!(accepted(&orchestrate(p)));
    assert!(accepted(&orchestrate(task(
        Some(st(Running, 0)),
        st(Failed, 1)
    ))));
}

#[test]
fn retry_failed_tasks_jitter_stays_within_prefect_bounds() {
    use crate::orchestration::task_rules::{clamped_poisson_interval, unit_sample};
    let lower = 10.0 * (2f64.powf(1.5) / (2f64.powf(1.5) - 1.0)).log2();
    for u in [0.0, 0.25, 0.5, 0.999_999] {
        let d = clamped_poisson_interval(10.0, 0.5, u);
        assert!(d >= lower - 1e-9 && d <= 15.0 + 1e-9, "{d}");
    }
    let a = unit_sample(TASK_RUN_ID, 1);
    assert_eq!(a, unit_sample(TASK_RUN_ID, 1));
    assert!((0.0..1.0).contains(&a));
    let mut p = task(Some(st(Running, 0)), st(Failed, 0));
    p.run.run_count = 1;
    p.run.task_policy.retries = Some(1);
    p.run.task_policy.retry_delay = Some(TaskRetryDelay::Seconds(10.into()));
    p.run.task_policy.retry_jitter_factor = Some(0.5);
    let when = orchestrate(p)
        .state_to_write
        .unwrap()
        .state_details
        .scheduled_time
        .unwrap();
    assert!(
        when >= at(0) + chrono::TimeDelta::milliseconds((lower * 1000.0) as i64) && when <= at(15)
    );
}

// RenameReruns

#[test]
fn rename_reruns_names_retrying_and_rerunning() {
    let mut p = task(Some(scheduled("AwaitingRetry", 0, 0)), st(Running, 1));
    p.run.run_count = 1;
    let o = orchestrate(p);
    assert_eq!(o.state_to_write.unwrap().name, "Retrying");
    assert_eq!(o.run_update.run_count, 2);
    let mut p = task(Some(st(Pending, 0)), st(Running, 1));
    p.run.run_count = 1;
    assert_eq!(orchestrate(p).state_to_write.unwrap().name, "Rerunning");
    let o = orchestrate(task(Some(st(Pending, 0)), st(Running, 1)));
    assert_eq!(o.state_to_write.as_ref().unwrap().name, "Running");
    assert!(!fired(&o, "RenameReruns"));
}

// UpdateFlowRunTrackerOnTasks

#[test]
fn update_flow_run_tracker_on_tasks_records_flow_attempt() {
    let o = orchestrate(in_running_flow(
        task(Some(st(Pending, 0)), st(Running, 1)),
        3,
    ));
    assert_eq!(o.run_update.flow_run_run_count, 3);
    assert!(fired(&o, "UpdateFlowRunTrackerOnTasks"));
    let o = orchestrate(task(Some(st(Pending, 0)), st(Running, 1)));
    assert_eq!(o.run_update.flow_run_run_count, 0);
}

// CacheInsertion

#[test]
fn cache_insertion_asks_caller_to_cache_completed_state() {
    let mut done = with_cache_key(st(Completed, 1), "key");
    done.state_details.cache_expiration = Some(at(1000));
    let id = done.id;
    let o = orchestrate(task(Some(st(Running, 0)), done));
    assert!(accepted(&o));
    assert_eq!(
        o.effects.cache_insert,
        Some(CacheInsert {
            cache_key: "key".into(),
            cache_expiration: Some(at(1000)),
            task_run_state_id: id
        })
    );
    let o = orchestrate(task(Some(st(Running, 0)), st(Completed, 1)));
    assert_eq!(o.effects.cache_insert, None);
}

#[test]
fn cache_insertion_rejects_overlong_key_but_still_writes() {
    let mut p = task(
        Some(st(Running, 0)),
        with_cache_key(st(Completed, 1), "abcdef"),
    );
    p.config.max_cache_key_length = 5;
    let o = orchestrate(p);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(
        reason(&o),
        Some("Cache key exceeded maximum allowed length of 5 characters.")
    );
    assert_eq!(o.state_to_write.unwrap().state_type, Completed);
    assert!(o.effects.cache_insert.is_some());
}

// ReleaseTaskConcurrencySlots / MinimalTaskPolicy

#[test]
fn release_task_concurrency_slots_on_leaving_running() {
    let o = orchestrate(task(Some(st(Running, 0)), st(Completed, 1)));
    assert!(o.effects.release_task_concurrency_slots);
    let o = orchestrate(task(Some(st(Pending, 0)), st(Running, 1)));
    assert!(!o.effects.release_task_concurrency_slots);
    let o = orchestrate(task(Some(st(Failed, 0)), st(Crashed, 1)));
    assert!(!o.effects.release_task_concurrency_slots, "nothing written");
    let mut p = task(Some(st(Failed, 0)), st(Crashed, 1));
    p.force = true;
    let o = orchestrate(p);
    assert_eq!(o.policy, PolicyKind::MinimalTask);
    assert!(accepted(&o) && o.effects.release_task_concurrency_slots);
}

// BackgroundTaskPolicy: PreventPendingTransitions, CopyTaskParametersID, EnqueueScheduledTasks

fn deferred(mut s: State) -> State {
    s.state_details.deferred = Some(true);
    s
}

#[test]
fn background_task_prevent_pending_transitions() {
    let o = orchestrate(task(Some(st(Pending, 0)), deferred(st(Pending, 1))));
    assert_eq!(o.policy, PolicyKind::BackgroundTask);
    assert_eq!(o.status, SetStateStatus::Abort);
    assert_eq!(
        reason(&o),
        Some("This run is in a PENDING state and cannot transition to a PENDING state.")
    );
    // CoreTaskPolicy has no such rule.
    assert!(accepted(&orchestrate(task(
        Some(st(Pending, 0)),
        st(Pending, 1)
    ))));
}

#[test]
fn copy_task_parameters_id_carries_id_forward() {
    let params = Uuid::from_u128(99);
    let mut current = st(Scheduled, 0);
    current.state_details.task_parameters_id = Some(params);
    let o = orchestrate(task(Some(current.clone()), deferred(st(Pending, 1))));
    assert_eq!(
        o.state_to_write.unwrap().state_details.task_parameters_id,
        Some(params)
    );
    let mut own = deferred(st(Pending, 1));
    own.state_details.task_parameters_id = Some(Uuid::from_u128(1));
    let o = orchestrate(task(Some(current), own));
    assert_eq!(
        o.state_to_write.unwrap().state_details.task_parameters_id,
        Some(Uuid::from_u128(1))
    );
}

#[test]
fn enqueue_scheduled_tasks_enqueues_deferred_runs() {
    let o = orchestrate(task(None, deferred(st(Scheduled, 1))));
    assert!(accepted(&o));
    assert_eq!(o.effects.enqueue_task_run, Some(TaskQueueAction::Enqueue));
    let o = orchestrate(task(
        Some(st(Running, 0)),
        deferred(named(Scheduled, "AwaitingRetry", 1)),
    ));
    assert_eq!(o.effects.enqueue_task_run, Some(TaskQueueAction::Retry));
    let o = orchestrate(task(None, st(Scheduled, 1)));
    assert_eq!(o.effects.enqueue_task_run, None);
}

#[test]
fn task_policy_rule_lists_follow_prefect_order() {
    assert_eq!(
        rule_names(PolicyKind::CoreTask),
        [
            "CacheRetrieval",
            "HandleTaskTerminalStateTransitions",
            "PreventRunningTasksFromStoppedFlows",
            "CopyScheduledTime",
            "WaitForScheduledTime",
            "RetryFailedTasks",
            "RenameReruns",
            "UpdateFlowRunTrackerOnTasks",
            "CacheInsertion",
            "ReleaseTaskConcurrencySlots",
        ]
    );
    assert_eq!(
        rule_names(PolicyKind::MinimalTask),
        ["ReleaseTaskConcurrencySlots"]
    );
    assert_eq!(rule_names(PolicyKind::BackgroundTask).len(), 12);
}
