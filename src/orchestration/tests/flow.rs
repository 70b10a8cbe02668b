//! Unit tests of the flow-run rules for duplicates, terminal states, cancellation, pending
//! submissions, leases and lateness, one group per rule, accepting and refusing cases.

use super::support::*;
use crate::orchestration::*;
use uuid::Uuid;
use StateType::*;

fn accepted(o: &Outcome) -> bool {
    o.status == SetStateStatus::Accept && o.state_to_write.is_some()
}

// PreserveDeploymentConcurrencyLeaseId

#[test]
fn preserve_deployment_concurrency_lease_id_copies_lease_forward() {
    let lease = Uuid::from_u128(42);
    let mut current = st(Pending, 0);
    current.state_details.deployment_concurrency_lease_id = Some(lease);
    let o = orchestrate(flow(Some(current), named(Pending, "Submitting", 1)));
    assert!(accepted(&o));
    let written = o.state_to_write.unwrap();
    assert_eq!(
        written.state_details.deployment_concurrency_lease_id,
        Some(lease)
    );
}

#[test]
fn preserve_deployment_concurrency_lease_id_keeps_a_proposed_lease() {
    let mut current = st(Scheduled, 0);
    current.state_details.deployment_concurrency_lease_id = Some(Uuid::from_u128(1));
    let mut proposed = st(Pending, 1);
    proposed.state_details.deployment_concurrency_lease_id = Some(Uuid::from_u128(2));
    let o = orchestrate(flow(Some(current), proposed));
    let lease = o
        .state_to_write
        .as_ref()
        .unwrap()
        .state_details
        .deployment_concurrency_lease_id;
    assert_eq!(lease, Some(Uuid::from_u128(2)));
    assert!(!fired(&o, "PreserveDeploymentConcurrencyLeaseId"));
}

// PreventDuplicateTransitions

#[test]
fn prevent_duplicate_transitions_rejects_same_transition_id() {
    let tid = Uuid::from_u128(77);
    let mut current = st(Running, 0);
    current.state_details.transition_id = Some(tid);
    let mut proposed = st(Running, 1);
    proposed.state_details.transition_id = Some(tid);
    let o = orchestrate(flow(Some(current), proposed));
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(
        reason(&o),
        Some("This run has already made this state transition.")
    );
    assert!(o.state_to_write.is_none());
    assert_eq!(o.fired_rules, ["PreventDuplicateTransitions"]);
}

#[test]
fn prevent_duplicate_transitions_accepts_new_or_missing_transition_ids() {
    let mut current = st(Pending, 0);
    current.state_details.transition_id = Some(Uuid::from_u128(1));
    let mut proposed = st(Running, 1);
    proposed.state_details.transition_id = Some(Uuid::from_u128(2));
    assert!(accepted(&orchestrate(flow(
        Some(current.clone()),
        proposed
    ))));
    assert!(accepted(&orchestrate(flow(Some(current), st(Running, 1)))));
    let mut a = st(Pending, 0);
    a.state_details.transition_id = None;
    assert!(accepted(&orchestrate(flow(Some(a), st(Running, 1)))));
}

// HandleFlowTerminalStateTransitions

#[test]
fn handle_flow_terminal_state_transitions_aborts_cancelling_paused_crashed() {
    for target in [Cancelling, Paused, Crashed] {
        let o = orchestrate(flow(Some(st(Completed, 0)), st(target, 1)));
        assert_eq!(o.status, SetStateStatus::Abort, "{target}");
        assert_eq!(
            reason(&o),
            Some("Run is already in terminal state COMPLETED.")
        );
        assert!(o.state_to_write.is_none());
    }
    let o = orchestrate(flow(Some(st(Failed, 0)), st(Crashed, 1)));
    assert_eq!(reason(&o), Some("Run is already in terminal state FAILED."));
}

#[test]
fn handle_flow_terminal_state_transitions_rejects_leaving_persisted_completed() {
    let mut current = st(Completed, 0);
    current.data = Some(persisted());
    for target in [Running, Pending] {
        let o = orchestrate(flow(Some(current.clone()), st(target, 1)));
        assert_eq!(o.status, SetStateStatus::Reject);
        assert_eq!(reason(&o), Some("Run is already COMPLETED."));
        assert!(o.state_to_write.is_none());
    }
    // Terminal → terminal with a persisted result is allowed.
    assert!(accepted(&orchestrate(flow(Some(current), st(Failed, 1)))));
}

#[test]
fn handle_flow_terminal_state_transitions_allows_rerun_without_persisted_result() {
    for data in [
        None,
        Some(serde_json::json!({"type": "unpersisted"})),
        Some(serde_json::json!({})),
    ] {
        let mut current = st(Completed, 0);
        current.data = data;
        let mut p = flow(Some(current), st(Running, 1));
        p.run.flow_policy.pause_keys = Some(vec!["k".into()]);
        p.run.flow_policy.resuming = Some(true);
        p.run.flow_policy.retry_type = Some("in_process".into());
        p.run.end_time = Some(at(0));
        let o = orchestrate(p);
        assert!(accepted(&o));
        let policy = o.run_update.empirical_policy.clone().unwrap();
        assert_eq!(policy.pause_keys, Some(vec![]));
        assert_eq!(policy.resuming, Some(false));
        assert_eq!(policy.retry_type, None);
        assert_eq!(o.run_update.end_time, None);
    }
}

#[test]
fn handle_flow_terminal_state_transitions_rejects_completed_overwrite_dropping_result() {
    let mut current = st(Completed, 0);
    current.data = Some(persisted());
    let o = orchestrate(flow(Some(current.clone()), st(Completed, 1)));
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(
        reason(&o),
        Some("Cannot overwrite a COMPLETED state that carries persisted result data with one that does not.")
    );
    let mut with_data = st(Completed, 1);
    with_data.data = Some(persisted());
    assert!(accepted(&orchestrate(flow(Some(current), with_data))));
}

#[test]
fn handle_flow_terminal_state_transitions_aborts_reschedule_without_deployment() {
    let o = orchestrate(flow(Some(st(Failed, 0)), st(Scheduled, 1)));
    assert_eq!(o.status, SetStateStatus::Abort);
    assert_eq!(
        reason(&o),
        Some("Cannot reschedule a run without an associated deployment.")
    );
    let mut p = flow(Some(st(Failed, 0)), st(Scheduled, 1));
    p.run.deployment_id = Some(DEPLOYMENT_ID);
    let o = orchestrate(p);
    assert!(accepted(&o));
    let policy = o.run_update.empirical_policy.unwrap();
    assert_eq!(policy.retry_type.as_deref(), Some("reschedule"));
}

#[test]
fn handle_flow_terminal_state_transitions_restores_policy_when_fizzled() {
    // CANCELLED → PENDING: the terminal rule resets pause metadata, then
    // PreventPendingTransitions aborts, so the reset is undone.
    let mut p = flow(Some(st(Cancelled, 0)), st(Pending, 1));
    p.run.flow_policy.pause_keys = Some(vec!["k".into()]);
    let o = orchestrate(p);
    assert_eq!(o.status, SetStateStatus::Abort);
    assert_eq!(
        reason(&o),
        Some("This run is in a CANCELLED state and cannot transition to a PENDING state.")
    );
    assert_eq!(o.run_update.empirical_policy, None);
}

// EnforceCancellingToCancelledTransition

#[test]
fn enforce_cancelling_to_cancelled_transition_rejects_other_targets() {
    for target in [Completed, Running, Failed, Scheduled, Crashed] {
        let o = orchestrate(flow(Some(st(Cancelling, 0)), st(target, 1)));
        assert_eq!(o.status, SetStateStatus::Reject, "{target}");
        assert_eq!(
            reason(&o),
            Some("Cannot transition flows that are cancelling to a state other than Cancelled.")
        );
        assert!(o.state_to_write.is_none());
    }
}

#[test]
fn enforce_cancelling_to_cancelled_transition_accepts_cancelled() {
    let o = orchestrate(flow(Some(st(Cancelling, 0)), st(Cancelled, 1)));
    assert!(accepted(&o));
    assert!(o.fired_rules.is_empty());
}

// BypassCancellingFlowRunsWithNoInfra

#[test]
fn bypass_cancelling_flow_runs_with_no_infra_cancels_scheduled_runs_directly() {
    for pid in [None, Some(String::new())] {
        let mut p = flow(Some(st(Scheduled, 0)), st(Cancelling, 1));
        p.run.infrastructure_pid = pid;
        let o = orchestrate(p);
        assert_eq!(o.status, SetStateStatus::Reject);
        assert_eq!(
            reason(&o),
            Some("Scheduled flow run has no infrastructure to terminate.")
        );
        let written = o.state_to_write.unwrap();
        assert_eq!(
            (written.state_type, written.name.as_str()),
            (Cancelled, "Cancelled")
        );
        assert_eq!(written.state_details.flow_run_id, Some(FLOW_RUN_ID));
        assert_eq!(o.run_update.end_time, Some(at(1)));
    }
}

#[test]
fn bypass_cancelling_flow_runs_with_no_infra_keeps_cancelling_with_infra() {
    let mut p = flow(Some(st(Scheduled, 0)), st(Cancelling, 1));
    p.run.infrastructure_pid = Some("host:1234".into());
    assert!(accepted(&orchestrate(p)));
    // ... unless the scheduled state is a resume of a suspended run.
    let mut p = flow(Some(scheduled("Resuming", 0, 0)), st(Cancelling, 1));
    p.run.infrastructure_pid = Some("host:1234".into());
    let o = orchestrate(p);
    assert_eq!(o.state_to_write.unwrap().state_type, Cancelled);
}

#[test]
fn bypass_cancelling_flow_runs_with_no_infra_cancels_suspended_runs() {
    let mut suspended = named(Paused, "Suspended", 0);
    suspended.state_details.pause_reschedule = true;
    let mut p = flow(Some(suspended), st(Cancelling, 1));
    p.run.infrastructure_pid = Some("host:1".into());
    let o = orchestrate(p);
    assert_eq!(
        reason(&o),
        Some("Suspended flow run has no infrastructure to terminate.")
    );
    assert_eq!(o.state_to_write.unwrap().state_type, Cancelled);
}

#[test]
fn bypass_cancelling_flow_runs_with_no_infra_applies_with_force() {
    let mut p = flow(Some(st(Scheduled, 0)), st(Cancelling, 1));
    p.force = true;
    let o = orchestrate(p);
    assert_eq!(o.policy, PolicyKind::MinimalFlow);
    assert_eq!(o.state_to_write.unwrap().state_type, Cancelled);
}

// PreventPendingTransitions

#[test]
fn prevent_pending_transitions_aborts_duplicate_submission() {
    for from in [Pending, Running, Cancelled] {
        let o = orchestrate(flow(Some(st(from, 0)), st(Pending, 1)));
        assert_eq!(o.status, SetStateStatus::Abort, "{from}");
        let expected =
            format!("This run is in a {from} state and cannot transition to a PENDING state.");
        assert_eq!(reason(&o), Some(expected.as_str()));
        assert!(o.state_to_write.is_none());
    }
    // CANCELLING → PENDING is refused earlier, by EnforceCancellingToCancelledTransition.
    let o = orchestrate(flow(Some(st(Cancelling, 0)), st(Pending, 1)));
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(o.fired_rules, ["EnforceCancellingToCancelledTransition"]);
    // ... but the rule itself covers CANCELLING (BackgroundTaskPolicy has no earlier rule).
    let mut p = task(Some(st(Cancelling, 0)), st(Pending, 1));
    p.proposed.state_details.deferred = Some(true);
    let o = orchestrate(p);
    assert_eq!(
        reason(&o),
        Some("This run is in a CANCELLING state and cannot transition to a PENDING state.")
    );
}

#[test]
fn prevent_pending_transitions_allows_named_pending_sub_states() {
    let mut current = st(Pending, 0);
    current.state_details.scheduled_time = Some(at(-5));
    let mut proposed = named(Pending, "Submitting", 1);
    proposed.state_details.scheduled_time = Some(at(99));
    let o = orchestrate(flow(Some(current.clone()), proposed));
    assert!(accepted(&o));
    let written = o.state_to_write.unwrap();
    assert_eq!(written.name, "Submitting");
    assert_eq!(written.state_details.scheduled_time, Some(at(-5)));
    // Back to the default name is a duplicate submission.
    let o = orchestrate(flow(Some(named(Pending, "Submitting", 0)), st(Pending, 1)));
    assert_eq!(o.status, SetStateStatus::Abort);
    // Same name twice too.
    let o = orchestrate(flow(
        Some(named(Pending, "Submitting", 0)),
        named(Pending, "Submitting", 1),
    ));
    assert_eq!(o.status, SetStateStatus::Abort);
}

#[test]
fn prevent_pending_transitions_ignores_other_sources() {
    assert!(accepted(&orchestrate(flow(
        Some(st(Scheduled, 0)),
        st(Pending, 1)
    ))));
    let o = orchestrate(flow(Some(st(Paused, 0)), st(Pending, 1)));
    assert!(!fired(&o, "PreventPendingTransitions"));
    assert!(accepted(&orchestrate(flow(None, st(Pending, 1)))));
}

// ValidateDeploymentConcurrencyAtRunning (lease carry-over only)

#[test]
fn validate_deployment_concurrency_at_running_carries_pending_lease() {
    let mut current = st(Pending, 0);
    current.state_details.deployment_concurrency_lease_id = Some(Uuid::from_u128(5));
    let mut proposed = st(Running, 1);
    proposed.state_details.deployment_concurrency_lease_id = Some(Uuid::from_u128(6));
    let o = orchestrate(flow(Some(current), proposed));
    let lease = o
        .state_to_write
        .unwrap()
        .state_details
        .deployment_concurrency_lease_id;
    assert_eq!(lease, Some(Uuid::from_u128(5)));
}

// EnsureOnlyScheduledFlowsMarkedLate

#[test]
fn ensure_only_scheduled_flows_marked_late_rejects_non_scheduled_and_already_late() {
    let o = mark_late(flow(Some(st(Running, 0)), scheduled("Late", 1, 0)));
    assert_eq!(o.policy, PolicyKind::MarkLateRuns);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(reason(&o), Some("Only scheduled flows can be marked late."));
    let o = mark_late(flow(Some(scheduled("Late", 0, 0)), scheduled("Late", 1, 0)));
    assert_eq!(reason(&o), Some("This flow run is already marked late."));
    let o = orchestrate(flow(Some(st(Pending, 0)), scheduled("Late", 1, 0)));
    assert_eq!(reason(&o), Some("Only scheduled flows can be marked late."));
}

#[test]
fn ensure_only_scheduled_flows_marked_late_accepts_scheduled() {
    let o = mark_late(flow(
        Some(scheduled("Scheduled", 0, 0)),
        scheduled("Late", 1, 0),
    ));
    assert!(accepted(&o));
    assert_eq!(o.run_update.state_name.as_deref(), Some("Late"));
    assert_eq!(o.run_update.next_scheduled_start_time, Some(at(0)));
    let o = orchestrate(flow(
        Some(st(Scheduled, 0)),
        scheduled("AwaitingRetry", 1, 5),
    ));
    assert!(accepted(&o));
}

mod secure_flow_concurrency_slots {
    use crate::orchestration::tests::support::*;
    use crate::orchestration::*;

    fn with_limit(limit: i64, active: i64, strategy: &str) -> Proposal {
        let mut p = flow(
            Some(scheduled("Scheduled", 0, 0)),
            st(StateType::Pending, 10),
        );
        p.run.deployment_concurrency = Some(DeploymentConcurrency {
            limit,
            active,
            collision_strategy: strategy.into(),
        });
        p
    }

    #[test]
    fn secure_flow_concurrency_slots_admits_below_the_limit() {
        let o = orchestrate(with_limit(2, 1, "ENQUEUE"));
        assert_eq!(o.status, SetStateStatus::Accept);
    }

    #[test]
    fn secure_flow_concurrency_slots_enqueues_when_full() {
        let o = orchestrate(with_limit(2, 2, "ENQUEUE"));
        assert_eq!(o.status, SetStateStatus::Reject);
        let s = o.state_to_write.clone().expect("a waiting state");
        assert_eq!(
            (s.state_type, s.name.as_str()),
            (StateType::Scheduled, "AwaitingConcurrencySlot")
        );
        assert!(fired(&o, "SecureFlowConcurrencySlots"));
    }

    #[test]
    fn secure_flow_concurrency_slots_cancels_new_runs_with_cancel_new() {
        let o = orchestrate(with_limit(1, 1, "CANCEL_NEW"));
        assert_eq!(
            o.state_to_write.map(|s| s.state_type),
            Some(StateType::Cancelled)
        );
    }

    #[test]
    fn secure_flow_concurrency_slots_aborts_a_zero_limit() {
        let o = orchestrate(with_limit(0, 0, "ENQUEUE"));
        assert_eq!(o.status, SetStateStatus::Abort);
    }
}
