//! Global transforms and end-to-end sequences: a script run, flow retries, task retries,
//! pause/resume and suspend/resume, cancellation with and without infrastructure, a worker
//! submission, and `force`.

use super::support::*;
use crate::orchestration::*;
use StateType::*;

fn assert_accept(o: &Outcome) {
    assert_eq!(o.status, SetStateStatus::Accept, "{:?}", o.details);
    assert!(o.state_to_write.is_some());
}

// Global transforms

#[test]
fn global_transforms_set_denormalised_state_columns() {
    let proposed = named(Pending, "Submitting", 3);
    let id = proposed.id;
    let o = orchestrate(flow(Some(st(Scheduled, 0)), proposed));
    let u = &o.run_update;
    assert_eq!(u.state_id, Some(id));
    assert_eq!(u.state_type, Some(Pending));
    assert_eq!(u.state_name.as_deref(), Some("Submitting"));
    assert_eq!(u.state_timestamp, Some(at(3)));
}

#[test]
fn set_start_time_only_on_first_running() {
    let o = orchestrate(flow(Some(st(Pending, 0)), st(Running, 5)));
    assert_eq!(o.run_update.start_time, Some(at(5)));
    let mut p = flow(Some(st(Pending, 0)), st(Running, 9));
    p.run.start_time = Some(at(5));
    assert_eq!(orchestrate(p).run_update.start_time, Some(at(5)));
}

#[test]
fn set_end_time_on_terminal_and_cleared_when_leaving() {
    let o = orchestrate(flow(Some(st(Pending, 0)), st(Failed, 4)));
    assert_eq!(
        (o.run_update.start_time, o.run_update.end_time),
        (Some(at(4)), Some(at(4)))
    );
    let mut p = flow(Some(st(Failed, 0)), st(Crashed, 6));
    p.force = true;
    p.run.end_time = Some(at(4));
    assert_eq!(orchestrate(p).run_update.end_time, Some(at(4)));
    let mut p = flow(Some(st(Failed, 0)), st(Running, 6));
    p.run.end_time = Some(at(4));
    assert_eq!(orchestrate(p).run_update.end_time, None);
}

#[test]
fn increment_run_time_counts_time_in_running() {
    let mut p = flow(Some(st(Running, 10)), st(Completed, 12));
    p.run.total_run_time = 1.5;
    assert_eq!(orchestrate(p).run_update.total_run_time, 3.5);
    let o = orchestrate(flow(Some(st(Pending, 10)), st(Running, 12)));
    assert_eq!(o.run_update.total_run_time, 0.0);
}

#[test]
fn set_expected_and_next_scheduled_start_time() {
    let o = orchestrate(flow(None, scheduled("Scheduled", 0, 50)));
    assert_eq!(o.run_update.expected_start_time, Some(at(50)));
    assert_eq!(o.run_update.next_scheduled_start_time, Some(at(50)));
    let mut p = flow(Some(scheduled("Scheduled", 0, 50)), st(Pending, 60));
    p.run.expected_start_time = Some(at(50));
    p.run.next_scheduled_start_time = Some(at(50));
    let o = orchestrate(p);
    assert_eq!(o.run_update.expected_start_time, Some(at(50)));
    assert_eq!(o.run_update.next_scheduled_start_time, None);
    let o = orchestrate(flow(None, st(Pending, 7)));
    assert_eq!(o.run_update.expected_start_time, Some(at(7)));
}

#[test]
fn update_state_details_fills_run_ids() {
    let o = orchestrate(flow(None, st(Pending, 0)));
    let d = o.state_to_write.unwrap().state_details;
    assert_eq!((d.flow_run_id, d.task_run_id), (Some(FLOW_RUN_ID), None));
    let mut p = flow(None, st(Pending, 0));
    p.run.parent_task_run_id = Some(TASK_RUN_ID);
    let o = orchestrate(p);
    assert_eq!(
        o.state_to_write.unwrap().state_details.task_run_id,
        Some(TASK_RUN_ID)
    );
    assert_eq!(o.effects.update_subflow_parent_task, Some(TASK_RUN_ID));
    let mut p = task(None, st(Pending, 0));
    p.run.flow_run_id = Some(FLOW_RUN_ID);
    let d = orchestrate(p).state_to_write.unwrap().state_details;
    assert_eq!(
        (d.flow_run_id, d.task_run_id),
        (Some(FLOW_RUN_ID), Some(TASK_RUN_ID))
    );
}

#[test]
fn increment_flow_run_count_and_remove_resuming_indicator() {
    let o = orchestrate(flow(Some(st(Pending, 0)), st(Running, 1)));
    assert_eq!(o.run_update.run_count, 1);
    let mut p = flow(Some(scheduled("Resuming", 0, 0)), st(Pending, 1));
    p.run.flow_policy.resuming = Some(true);
    p.run.run_count = 1;
    let o = orchestrate(p);
    assert_eq!(
        (
            o.run_update.run_count,
            o.run_update.empirical_policy.clone()
        ),
        (1, None)
    );
    let mut p = flow(Some(st(Pending, 0)), st(Running, 1));
    p.run.flow_policy.resuming = Some(true);
    p.run.run_count = 1;
    let o = orchestrate(p);
    assert_eq!(o.run_update.run_count, 1);
    assert_eq!(o.run_update.empirical_policy.unwrap().resuming, Some(false));
}

#[test]
fn ensure_flow_run_state_timestamp_is_unique_moves_past_collisions() {
    let current = st(Pending, 5);
    let mut p = flow(Some(current), st(Running, 5));
    p.run.taken_state_timestamps = vec![at(5) + chrono::TimeDelta::microseconds(1)];
    let o = orchestrate(p);
    let expected = at(5) + chrono::TimeDelta::microseconds(2);
    assert_eq!(o.state_to_write.unwrap().timestamp, expected);
    assert_eq!(o.run_update.start_time, Some(expected));
    // Tasks are left alone.
    let o = orchestrate(task(Some(st(Pending, 5)), st(Running, 5)));
    assert_eq!(o.state_to_write.unwrap().timestamp, at(5));
}

#[test]
fn nothing_written_means_no_column_changes() {
    let o = orchestrate(flow(Some(st(Pending, 0)), st(Pending, 1)));
    assert_eq!(o.status, SetStateStatus::Abort);
    assert_eq!(o.run_update.state_type, None);
    assert_eq!(o.run_update.state_id, None);
    let current = st(Pending, 0);
    let body = serde_json::to_value(o.response(Some(&current))).unwrap();
    assert_eq!(body["state"]["id"], current.id.to_string());
    assert_eq!(body["status"], "ABORT");
    assert_eq!(body["details"]["type"], "abort_details");
}

// End-to-end sequences

#[test]
fn e2e_script_run_pending_running_completed() {
    let mut run = Sim::flow();
    let o = run.propose(create(Pending, None), 0, true);
    assert_accept(&o);
    assert_eq!(run.run.expected_start_time, Some(at(0)));
    assert_accept(&run.propose(create(Running, None), 2, false));
    let o = run.propose(create(Completed, None), 7, false);
    assert_accept(&o);
    assert_eq!(run.run.run_count, 1);
    assert_eq!(run.run.start_time, Some(at(2)));
    assert_eq!(run.run.end_time, Some(at(7)));
    assert_eq!(run.run.total_run_time, 5.0);
    let names: Vec<_> = run.history.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Pending", "Running", "Completed"]);
    assert!(run
        .history
        .iter()
        .all(|s| s.state_details.flow_run_id == Some(FLOW_RUN_ID)));
}

#[test]
fn e2e_flow_retry_once_then_complete() {
    let mut run = Sim::flow();
    run.run.flow_policy.retries = Some(1);
    run.run.flow_policy.retry_delay = Some(10.into());
    run.propose(create(Pending, None), 0, true);
    run.propose(create(Running, None), 1, false);
    let o = run.propose(create(Failed, None), 4, false);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(run.state().name, "AwaitingRetry");
    assert_eq!(run.state().state_details.scheduled_time, Some(at(14)));
    assert_eq!(
        run.run.flow_policy.retry_type.as_deref(),
        Some("in_process")
    );
    let o = run.propose(create(Running, None), 5, false);
    assert_eq!(
        o.details,
        OrchestrationDetails::Wait {
            delay_seconds: 9,
            reason: Some("Scheduled time is in the future".into())
        }
    );
    let o = run.propose(create(Running, None), 14, false);
    assert_accept(&o);
    // Flows have no RenameReruns: the retry keeps the client's name.
    assert_eq!(run.state().name, "Running");
    assert_eq!(run.run.run_count, 2);
    assert_accept(&run.propose(create(Completed, None), 20, false));
    assert_eq!(run.run.total_run_time, 9.0);
    assert_eq!(run.run.start_time, Some(at(1)));
    assert_eq!(run.run.end_time, Some(at(20)));
}

#[test]
fn e2e_flow_retries_exhausted_fails() {
    let mut run = Sim::flow();
    run.run.flow_policy.retries = Some(1);
    run.propose(create(Pending, None), 0, true);
    run.propose(create(Running, None), 1, false);
    run.propose(create(Failed, None), 2, false);
    run.propose(create(Running, None), 3, false);
    let o = run.propose(create(Failed, None), 4, false);
    assert_accept(&o);
    assert_eq!(run.state().state_type, Failed);
    assert_eq!(run.run.flow_policy.retry_type, None);
}

#[test]
fn e2e_task_retry_sequence() {
    let mut run = Sim::task();
    run.run.task_policy.retries = Some(1);
    run.run.task_policy.retry_delay = Some(TaskRetryDelay::Seconds(0.into()));
    assert_accept(&run.propose(create(Pending, None), 0, false));
    assert_accept(&run.propose(create(Running, None), 1, false));
    let o = run.propose(create(Failed, None), 2, false);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(run.state().name, "AwaitingRetry");
    assert_accept(&run.propose(create(Running, None), 2, false));
    assert_eq!(run.state().name, "Retrying");
    assert_accept(&run.propose(create(Completed, None), 3, false));
    assert_eq!(run.run.run_count, 2);
    assert!(run
        .history
        .iter()
        .all(|s| s.state_details.task_run_id == Some(TASK_RUN_ID)));
}

#[test]
fn e2e_pause_and_resume_in_process() {
    let mut run = Sim::flow();
    run.propose(create(Pending, None), 0, true);
    run.propose(create(Running, None), 1, false);
    let mut pause = create(Paused, None);
    pause.state_details = Some(StateDetails {
        pause_key: Some("p1".into()),
        ..StateDetails::default()
    });
    assert_accept(&run.propose(pause.clone(), 2, false));
    assert!(run.run.flow_policy.has_pause_key("p1"));
    assert_accept(&run.propose(create(Running, None), 5, false));
    assert_eq!(run.run.flow_policy.resuming, Some(true));
    // Same pause key again: already fired.
    let o = run.propose(pause, 6, false);
    assert_eq!(reason(&o), Some("This pause has already fired."));
    assert_accept(&run.propose(create(Completed, None), 8, false));
    assert_eq!(run.run.flow_policy.resuming, Some(false));
    assert_eq!(run.run.total_run_time, 4.0);
}

#[test]
fn e2e_suspend_and_resume_with_reschedule() {
    let mut run = Sim::flow();
    run.run.deployment_id = Some(DEPLOYMENT_ID);
    run.propose(create(Pending, None), 0, true);
    run.propose(create(Running, None), 1, false);
    let mut suspend = create(Paused, Some("Suspended"));
    suspend.state_details = Some(StateDetails {
        pause_reschedule: true,
        ..StateDetails::default()
    });
    assert_accept(&run.propose(suspend, 2, false));
    // The /resume endpoint proposes Scheduled "Resuming".
    assert_accept(&run.propose(create(Scheduled, Some("Resuming")), 3, false));
    assert_eq!(run.run.flow_policy.resuming, Some(true));
    assert_accept(&run.propose(create(Pending, None), 4, false));
    assert_accept(&run.propose(create(Running, None), 5, false));
    assert_eq!(run.run.run_count, 1, "a resume is not a new attempt");
    assert_eq!(run.run.flow_policy.resuming, Some(false));
}

#[test]
fn e2e_cancel_with_infrastructure() {
    let mut run = Sim::flow();
    run.run.infrastructure_pid = Some("worker:4242".into());
    run.propose(create(Scheduled, None), 0, true);
    run.propose(create(Pending, None), 1, false);
    run.propose(create(Running, None), 2, false);
    assert_accept(&run.propose(create(Cancelling, None), 3, false));
    let o = run.propose(create(Completed, None), 4, false);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_accept(&run.propose(create(Cancelled, None), 5, false));
    assert_eq!(run.run.end_time, Some(at(5)));
}

#[test]
fn e2e_cancel_scheduled_run_without_infrastructure() {
    let mut run = Sim::flow();
    run.run.deployment_id = Some(DEPLOYMENT_ID);
    run.propose_at(create(Scheduled, None), at(0), true);
    let o = run.propose(create(Cancelling, None), 1, false);
    assert_eq!(o.status, SetStateStatus::Reject);
    assert_eq!(
        reason(&o),
        Some("Scheduled flow run has no infrastructure to terminate.")
    );
    assert_eq!(run.state().state_type, Cancelled);
    assert_eq!(run.run.next_scheduled_start_time, None);
}

#[test]
fn e2e_worker_submission_of_future_run() {
    let mut run = Sim::flow();
    run.run.deployment_id = Some(DEPLOYMENT_ID);
    let mut sched = create(Scheduled, None);
    sched.state_details = Some(StateDetails {
        scheduled_time: Some(at(100)),
        ..StateDetails::default()
    });
    run.propose(sched, 0, true);
    assert_eq!(run.run.expected_start_time, Some(at(100)));
    assert_accept(&run.propose(create(Pending, None), 90, false));
    assert_eq!(run.state().state_details.scheduled_time, Some(at(100)));
    let o = run.propose(create(Pending, None), 90, false);
    assert_eq!(o.status, SetStateStatus::Abort);
    assert_accept(&run.propose(create(Pending, Some("Submitting")), 91, false));
    let o = run.propose(create(Running, None), 95, false);
    assert_eq!(o.status, SetStateStatus::Wait);
    assert_accept(&run.propose(create(Running, None), 100, false));
    assert_eq!(run.run.start_time, Some(at(100)));
}

#[test]
fn e2e_force_bypasses_rules() {
    let mut run = Sim::flow();
    run.propose(create(Pending, None), 0, true);
    run.propose(create(Running, None), 1, false);
    let mut done = create(Completed, None);
    done.data = Some(persisted());
    run.propose(done, 2, false);
    let o = run.propose(create(Running, None), 3, false);
    assert_eq!(o.status, SetStateStatus::Reject);
    let o = run.propose(create(Crashed, None), 3, true);
    assert_accept(&o);
    assert_eq!(
        run.run.end_time,
        Some(at(2)),
        "end time kept across terminal states"
    );
    assert_accept(&run.propose(create(Pending, None), 4, true));
    assert_accept(&run.propose(create(Pending, None), 5, true));
    assert_eq!(run.run.end_time, None);
}
