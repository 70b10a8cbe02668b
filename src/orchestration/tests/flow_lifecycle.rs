//! Unit tests of the flow-run rules that govern pausing, resuming, scheduled times, retries
//! and forced transitions (HandlePausingFlows, HandleResumingPausedFlows, CopyScheduledTime,
//! WaitForScheduledTime, RetryFailedFlows, MinimalFlowPolicy), plus policy rule order.

use super::support::*;
use crate::orchestration::*;
use StateType::*;

fn accepted(o: &Outcome) -> bool {
    o.status == SetStateStatus::Accept && o.state_to_write.is_some()
}

// HandlePausingFlows

#[test]
fn handle_pausing_flows_rejects_when_not_running() {
    let o = orchestrate(flow(Some(st(Pending, 0)), st(Paused, 1)));
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(
        reason(&o),
        Some("Cannot pause flows that are not currently running.")
    );
    assert_eq!(o.run_update.empirical_policy, None);
    let o = orchestrate(flow(Some(st(Scheduled, 0)), named(Paused, "Suspended", 1)));
    assert_eq!(
        reason(&o),
        Some("Cannot suspend flows that are not currently running.")
    );
    let o = orchestrate(flow(None, st(Paused, 1)));
    assert_eq!(o.status, SetStateStatus::Abort);
    assert_eq!(reason(&o), Some("Cannot pause flows with no state."));
}

#[test]
fn handle_pausing_flows_records_pause_key_and_refuses_repeats() {
    let mut proposed = st(Paused, 1);
    proposed.state_details.pause_key = Some("approval".into());
    let o = orchestrate(flow(Some(st(Running, 0)), proposed.clone()));
    assert!(accepted(&o));
    let policy = o.run_update.empirical_policy.unwrap();
    assert!(policy.has_pause_key("approval"));
    let mut p = flow(Some(st(Running, 0)), proposed);
    p.run.flow_policy = policy;
    let o = orchestrate(p);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(reason(&o), Some("This pause has already fired."));
}

#[test]
fn handle_pausing_flows_defaults_key_to_the_proposal_id() {
    let proposed = st(Paused, 1);
    let id = proposed.id.to_string();
    let o = orchestrate(flow(Some(st(Running, 0)), proposed));
    assert!(o.run_update.empirical_policy.unwrap().has_pause_key(&id));
}

#[test]
fn handle_pausing_flows_aborts_reschedule_for_subflows_and_deploymentless_runs() {
    let mut suspend = named(Paused, "Suspended", 1);
    suspend.state_details.pause_reschedule = true;
    let mut p = flow(Some(st(Running, 0)), suspend.clone());
    p.run.parent_task_run_id = Some(TASK_RUN_ID);
    p.run.deployment_id = Some(DEPLOYMENT_ID);
    let o = orchestrate(p);
    assert_eq!(o.status, SetStateStatus::Abort);
    assert_eq!(reason(&o), Some("Cannot suspend subflows."));
    let o = orchestrate(flow(Some(st(Running, 0)), suspend.clone()));
    assert_eq!(
        reason(&o),
        Some("Cannot suspend flows without a deployment.")
    );
    // Prefect still records the key after an abort.
    assert!(o.run_update.empirical_policy.is_some());
    let mut p = flow(Some(st(Running, 0)), suspend);
    p.run.deployment_id = Some(DEPLOYMENT_ID);
    assert!(accepted(&orchestrate(p)));
}

// HandleResumingPausedFlows

#[test]
fn handle_resuming_paused_flows_rejects_non_resume_targets() {
    for target in [Pending, Cancelling] {
        let o = orchestrate(flow(Some(st(Paused, 0)), st(target, 1)));
        assert_eq!(o.status, SetStateStatus::Reject, "{target}");
        let expected = format!(
            "This run cannot transition to the StateType.{target} state from the StateType.PAUSED state."
        );
        assert_eq!(reason(&o), Some(expected.as_str()));
        assert_eq!(o.run_update.empirical_policy.unwrap().resuming, Some(true));
    }
}

#[test]
fn handle_resuming_paused_flows_accepts_running_and_flags_resuming() {
    let mut p = flow(Some(st(Paused, 0)), st(Running, 1));
    p.run.run_count = 1;
    let o = orchestrate(p);
    assert!(accepted(&o));
    assert_eq!(o.run_update.empirical_policy.unwrap().resuming, Some(true));
    // The flag is set after the run count transform ran, so this resume counts.
    assert_eq!(o.run_update.run_count, 2);
    for target in [Completed, Cancelled, Scheduled] {
        let mut p = flow(Some(st(Paused, 0)), st(target, 1));
        p.run.deployment_id = Some(DEPLOYMENT_ID);
        assert!(accepted(&orchestrate(p)), "{target}");
    }
}

#[test]
fn handle_resuming_paused_flows_rejects_rescheduled_pause_without_deployment() {
    let mut suspended = named(Paused, "Suspended", 0);
    suspended.state_details.pause_reschedule = true;
    let o = orchestrate(flow(Some(suspended), scheduled("Resuming", 1, 1)));
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(
        reason(&o),
        Some("Cannot reschedule a resuming flow run without a deployment.")
    );
}

#[test]
fn handle_resuming_paused_flows_fails_after_pause_timeout() {
    let mut paused = st(Paused, 0);
    paused.state_details.pause_timeout = Some(at(10));
    let o = orchestrate(flow(Some(paused.clone()), st(Running, 11)));
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(
        reason(&o),
        Some("The flow run pause has timed out and can no longer resume.")
    );
    let written = o.state_to_write.unwrap();
    assert_eq!(written.state_type, Failed);
    assert_eq!(
        written.message.as_deref(),
        Some("The flow was running and never resumed.")
    );
    assert!(accepted(&orchestrate(flow(Some(paused), st(Running, 9)))));
}

// CopyScheduledTime

#[test]
fn copy_scheduled_time_copies_into_pending() {
    let o = orchestrate(flow(Some(scheduled("Scheduled", 0, 5)), st(Pending, 1)));
    assert_eq!(
        o.state_to_write
            .as_ref()
            .unwrap()
            .state_details
            .scheduled_time,
        Some(at(5))
    );
    assert!(fired(&o, "CopyScheduledTime"));
    let mut own = st(Pending, 1);
    own.state_details.scheduled_time = Some(at(7));
    let o = orchestrate(flow(Some(scheduled("Scheduled", 0, 5)), own));
    assert_eq!(
        o.state_to_write.unwrap().state_details.scheduled_time,
        Some(at(7))
    );
}

// WaitForScheduledTime

#[test]
fn wait_for_scheduled_time_waits_until_scheduled_time() {
    let o = orchestrate(flow(Some(scheduled("Scheduled", 0, 100)), st(Running, 10)));
    assert_eq!(o.status, SetStateStatus::Wait);
    assert_eq!(
        o.details,
        OrchestrationDetails::Wait {
            delay_seconds: 90,
            reason: Some("Scheduled time is in the future".into())
        }
    );
    assert!(o.state_to_write.is_none());
    assert_eq!(o.run_update.state_type, None);
    // PENDING carries the scheduled time too.
    let mut pending = st(Pending, 0);
    pending.state_details.scheduled_time = Some(at(100));
    let o = orchestrate(flow(Some(pending), st(Running, 10)));
    assert_eq!(o.status, SetStateStatus::Wait);
}

#[test]
fn wait_for_scheduled_time_accepts_when_due() {
    for now in [100, 101] {
        let o = orchestrate(flow(Some(scheduled("Scheduled", 0, 100)), st(Running, now)));
        assert!(accepted(&o));
    }
}

#[test]
fn wait_for_scheduled_time_rounds_like_prefect() {
    let mut cases = vec![(10_700, 11), (10_300, 10), (10_500, 10), (400, 0), (600, 1)];
    cases.push((-1_500, -2));
    for (ms, expected) in cases {
        let delay = crate::orchestration::common_rules::wait_delay_seconds(at_ms(ms), at(0));
        assert_eq!(delay, expected, "{ms}ms");
    }
    // 0.4 s early rounds to 0: no wait.
    let mut s = st(Scheduled, 0);
    s.state_details.scheduled_time = Some(at_ms(10_400));
    assert!(accepted(&orchestrate(flow(Some(s), st(Running, 10)))));
}

// RetryFailedFlows

#[test]
fn retry_failed_flows_rejects_to_awaiting_retry_while_retries_remain() {
    let mut failed = st(Failed, 100);
    failed.message = Some("boom".into());
    failed.data = Some(persisted());
    let mut p = flow(Some(st(Running, 90)), failed);
    p.run.run_count = 1;
    p.run.flow_policy.retries = Some(1);
    p.run.flow_policy.retry_delay = Some(10.into());
    p.run.flow_policy.pause_keys = Some(vec!["old".into()]);
    let o = orchestrate(p);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(reason(&o), Some("Retrying"));
    let w = o.state_to_write.clone().unwrap();
    assert_eq!(
        (w.state_type, w.name.as_str()),
        (Scheduled, "AwaitingRetry")
    );
    assert_eq!(w.state_details.scheduled_time, Some(at(110)));
    assert_eq!(w.message.as_deref(), Some("boom"));
    assert_eq!(w.data, Some(persisted()));
    let policy = o.run_update.empirical_policy.unwrap();
    assert_eq!(policy.retry_type.as_deref(), Some("in_process"));
    assert_eq!(policy.pause_keys, Some(vec![]));
    assert_eq!(o.run_update.next_scheduled_start_time, Some(at(110)));
    assert_eq!(o.run_update.end_time, None);
    assert_eq!(o.run_update.total_run_time, 10.0);
}

#[test]
fn retry_failed_flows_accepts_failure_when_retries_exhausted() {
    let mut p = flow(Some(st(Running, 0)), st(Failed, 1));
    p.run.run_count = 2;
    p.run.flow_policy.retries = Some(1);
    p.run.flow_policy.retry_type = Some("in_process".into());
    let o = orchestrate(p);
    assert!(accepted(&o));
    assert_eq!(o.run_update.empirical_policy.unwrap().retry_type, None);
    let o = orchestrate(flow(Some(st(Running, 0)), st(Failed, 1)));
    assert!(accepted(&o));
    assert!(o.fired_rules.is_empty());
}

// MinimalFlowPolicy / PreventResultDataLoss

#[test]
fn minimal_flow_policy_bypasses_core_rules_with_force() {
    let mut completed = st(Completed, 0);
    completed.data = Some(persisted());
    for (current, target) in [
        (completed, Running),
        (st(Pending, 0), Pending),
        (st(Cancelling, 0), Completed),
    ] {
        let mut p = flow(Some(current), st(target, 1));
        p.force = true;
        let o = orchestrate(p);
        assert!(accepted(&o), "{target}");
        assert_eq!(o.policy, PolicyKind::MinimalFlow);
    }
}

#[test]
fn prevent_result_data_loss_rejects_forced_overwrite_of_persisted_result() {
    let mut completed = st(Completed, 0);
    completed.data = Some(persisted());
    let mut p = flow(Some(completed.clone()), st(Completed, 1));
    p.force = true;
    let o = orchestrate(p);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(o.fired_rules, ["PreventResultDataLoss"]);
    let mut p = flow(Some(completed), st(Failed, 1));
    p.force = true;
    assert!(accepted(&orchestrate(p)));
}

#[test]
fn policy_rule_lists_follow_prefect_order() {
    assert_eq!(
        rule_names(PolicyKind::CoreFlow),
        [
            "PreserveDeploymentConcurrencyLeaseId",
            "PreventDuplicateTransitions",
            "HandleFlowTerminalStateTransitions",
            "EnforceCancellingToCancelledTransition",
            "BypassCancellingFlowRunsWithNoInfra",
            "PreventPendingTransitions",
            "ValidateDeploymentConcurrencyAtRunning",
            "SecureFlowConcurrencySlots",
            "EnsureOnlyScheduledFlowsMarkedLate",
            "HandlePausingFlows",
            "HandleResumingPausedFlows",
            "CopyScheduledTime",
            "WaitForScheduledTime",
            "RetryFailedFlows",
        ]
    );
    assert_eq!(
        rule_names(PolicyKind::MinimalFlow),
        [
            "PreventResultDataLoss",
            "BypassCancellingFlowRunsWithNoInfra"
        ]
    );
    assert_eq!(
        rule_names(PolicyKind::MarkLateRuns),
        ["EnsureOnlyScheduledFlowsMarkedLate"]
    );
}
