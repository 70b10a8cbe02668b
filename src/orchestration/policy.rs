//! The orchestration policies: which rules run, in which order, for which transitions
//! (`CoreFlowPolicy`, `MinimalFlowPolicy`, `MarkLateRunsPolicy`, `CoreTaskPolicy`,
//! `BackgroundTaskPolicy`, `MinimalTaskPolicy`).
//!
//! Extension points (not implemented, no behaviour; their place in Prefect's order is marked
//! below): deployment concurrency (`SecureFlowConcurrencySlots`, lease validation in
//! `ValidateDeploymentConcurrencyAtRunning`,
//! `RemoveDeploymentConcurrencyLeaseForOldClientVersions`, `ReleaseFlowConcurrencySlots`,
//! `EnforceDeploymentConcurrencyOnLate`) and tag concurrency (`SecureTaskConcurrencySlots`).
//! To add one, write a rule taking the limits it needs from `Proposal`/`RunSnapshot` (filled
//! by the caller) and returning its writes through `SideEffects`, then list it here.
//! `InstrumentFlowRunStateTransitions` (events) is the caller's job after commit.
//!
//! Owns: rule order and FROM/TO sets. Must not touch: I/O.

use super::common_rules as common;
use super::engine::{Rule, RuleFn, RuleKind, StateSet};
use super::flow_rules as flow;
use super::proposal::PolicyKind;
use super::states::StateType::{
    Cancelled, Cancelling, Completed, Failed, Paused, Pending, Running, Scheduled,
};
use super::task_rules as task;

const ALL: StateSet = StateSet::ALL;
const TERMINAL: StateSet = StateSet::TERMINAL;

const fn guarded(name: &'static str, from: StateSet, to: StateSet, f: RuleFn) -> Rule {
    Rule {
        name,
        from,
        to,
        kind: RuleKind::Guarded(f),
    }
}

const fn universal(name: &'static str, f: RuleFn) -> Rule {
    Rule {
        name,
        from: ALL,
        to: ALL,
        kind: RuleKind::Universal(f),
    }
}

const PRESERVE_LEASE: Rule = universal(
    "PreserveDeploymentConcurrencyLeaseId",
    flow::preserve_deployment_concurrency_lease_id,
);
const PREVENT_DUPLICATES: Rule = guarded(
    "PreventDuplicateTransitions",
    ALL,
    ALL,
    flow::prevent_duplicate_transitions,
);
const FLOW_TERMINAL: Rule = guarded(
    "HandleFlowTerminalStateTransitions",
    TERMINAL,
    ALL,
    flow::handle_flow_terminal_state_transitions,
);
const CANCELLING_TO_CANCELLED: Rule = guarded(
    "EnforceCancellingToCancelledTransition",
    StateSet::of(&[Cancelling]),
    ALL.without(Cancelled),
    flow::enforce_cancelling_to_cancelled_transition,
);
const BYPASS_CANCELLING: Rule = guarded(
    "BypassCancellingFlowRunsWithNoInfra",
    StateSet::of(&[Scheduled, Paused]),
    StateSet::of(&[Cancelling]),
    flow::bypass_cancelling_flow_runs_with_no_infra,
);
const PREVENT_PENDING: Rule = guarded(
    "PreventPendingTransitions",
    StateSet::of(&[Pending, Cancelling, Running, Cancelled]),
    StateSet::of(&[Pending]),
    common::prevent_pending_transitions,
);
const VALIDATE_LEASE_AT_RUNNING: Rule = guarded(
    "ValidateDeploymentConcurrencyAtRunning",
    StateSet::of(&[Pending]),
    StateSet::of(&[Running]),
    flow::validate_deployment_concurrency_at_running,
);
const SECURE_FLOW_SLOTS: Rule = guarded(
    "SecureFlowConcurrencySlots",
    ALL.without(Pending).without(Running).without(Cancelling),
    StateSet::of(&[Pending]),
    flow::secure_flow_concurrency_slots,
);
const MARK_LATE: Rule = guarded(
    "EnsureOnlyScheduledFlowsMarkedLate",
    ALL,
    StateSet::of(&[Scheduled]),
    flow::ensure_only_scheduled_flows_marked_late,
);
const PAUSING: Rule = guarded(
    "HandlePausingFlows",
    ALL,
    StateSet::of(&[Paused]),
    flow::handle_pausing_flows,
);
const RESUMING: Rule = guarded(
    "HandleResumingPausedFlows",
    StateSet::of(&[Paused]),
    ALL,
    flow::handle_resuming_paused_flows,
);
const COPY_SCHEDULED_TIME: Rule = guarded(
    "CopyScheduledTime",
    StateSet::of(&[Scheduled]),
    StateSet::of(&[Pending]),
    common::copy_scheduled_time,
);
const WAIT_FOR_SCHEDULED_TIME: Rule = guarded(
    "WaitForScheduledTime",
    StateSet::of(&[Scheduled, Pending]),
    StateSet::of(&[Running]),
    common::wait_for_scheduled_time,
);
const RETRY_FLOWS: Rule = guarded(
    "RetryFailedFlows",
    StateSet::of(&[Running]),
    StateSet::of(&[Failed]),
    flow::retry_failed_flows,
);
const RESULT_DATA_LOSS: Rule = guarded(
    "PreventResultDataLoss",
    TERMINAL,
    TERMINAL,
    flow::prevent_result_data_loss,
);

const CORE_FLOW: &[Rule] = &[
    PRESERVE_LEASE,
    PREVENT_DUPLICATES,
    FLOW_TERMINAL,
    CANCELLING_TO_CANCELLED,
    BYPASS_CANCELLING,
    PREVENT_PENDING,
    VALIDATE_LEASE_AT_RUNNING,
    SECURE_FLOW_SLOTS,
    // extension point: RemoveDeploymentConcurrencyLeaseForOldClientVersions (PENDING → RUNNING/CANCELLING)
    MARK_LATE,
    PAUSING,
    RESUMING,
    COPY_SCHEDULED_TIME,
    WAIT_FOR_SCHEDULED_TIME,
    RETRY_FLOWS,
    // extension point: ReleaseFlowConcurrencySlots (universal, after commit)
];

const MINIMAL_FLOW: &[Rule] = &[
    RESULT_DATA_LOSS,
    BYPASS_CANCELLING,
    // extension point: ReleaseFlowConcurrencySlots
];

const MARK_LATE_RUNS: &[Rule] = &[
    MARK_LATE,
    // extension point: EnforceDeploymentConcurrencyOnLate (CANCEL_NEW strategy)
];

const CACHE_RETRIEVAL: Rule = guarded(
    "CacheRetrieval",
    ALL,
    StateSet::of(&[Running]),
    task::cache_retrieval,
);
const TASK_TERMINAL: Rule = guarded(
    "HandleTaskTerminalStateTransitions",
    TERMINAL,
    ALL,
    task::handle_task_terminal_state_transitions,
);
const STOPPED_FLOWS: Rule = guarded(
    "PreventRunningTasksFromStoppedFlows",
    ALL,
    StateSet::of(&[Running]),
    task::prevent_running_tasks_from_stopped_flows,
);
const RETRY_TASKS: Rule = guarded(
    "RetryFailedTasks",
    StateSet::of(&[Running]),
    StateSet::of(&[Failed]),
    task::retry_failed_tasks,
);
const RENAME_RERUNS: Rule = guarded(
    "RenameReruns",
    ALL,
    StateSet::of(&[Running]),
    common::rename_reruns,
);
const FLOW_RUN_TRACKER: Rule = guarded(
    "UpdateFlowRunTrackerOnTasks",
    ALL,
    StateSet::of(&[Running]),
    task::update_flow_run_tracker_on_tasks,
);
const CACHE_INSERTION: Rule = guarded(
    "CacheInsertion",
    ALL,
    StateSet::of(&[Completed]),
    task::cache_insertion,
);
const RELEASE_TASK_SLOTS: Rule = universal(
    "ReleaseTaskConcurrencySlots",
    task::release_task_concurrency_slots,
);
const COPY_PARAMETERS_ID: Rule = guarded(
    "CopyTaskParametersID",
    StateSet::of(&[Scheduled, Pending]),
    StateSet::of(&[Pending, Running]),
    task::copy_task_parameters_id,
);
const ENQUEUE: Rule = guarded(
    "EnqueueScheduledTasks",
    ALL,
    StateSet::of(&[Scheduled]),
    task::enqueue_scheduled_tasks,
);

const CORE_TASK: &[Rule] = &[
    CACHE_RETRIEVAL,
    TASK_TERMINAL,
    STOPPED_FLOWS,
    // extension point: SecureTaskConcurrencySlots (→ RUNNING; v1/v2 tag limits)
    COPY_SCHEDULED_TIME,
    WAIT_FOR_SCHEDULED_TIME,
    RETRY_TASKS,
    RENAME_RERUNS,
    FLOW_RUN_TRACKER,
    CACHE_INSERTION,
    RELEASE_TASK_SLOTS,
];

const BACKGROUND_TASK: &[Rule] = &[
    PREVENT_PENDING,
    CACHE_RETRIEVAL,
    TASK_TERMINAL,
    COPY_SCHEDULED_TIME,
    COPY_PARAMETERS_ID,
    WAIT_FOR_SCHEDULED_TIME,
    RETRY_TASKS,
    RENAME_RERUNS,
    FLOW_RUN_TRACKER,
    CACHE_INSERTION,
    RELEASE_TASK_SLOTS,
    ENQUEUE,
];

const MINIMAL_TASK: &[Rule] = &[RELEASE_TASK_SLOTS];

/// The rules of `policy`, in priority order.
pub(crate) fn rules(policy: PolicyKind) -> &'static [Rule] {
    match policy {
        PolicyKind::CoreFlow => CORE_FLOW,
        PolicyKind::MinimalFlow => MINIMAL_FLOW,
        PolicyKind::MarkLateRuns => MARK_LATE_RUNS,
        PolicyKind::CoreTask => CORE_TASK,
        PolicyKind::BackgroundTask => BACKGROUND_TASK,
        PolicyKind::MinimalTask => MINIMAL_TASK,
    }
}

/// The names of the rules of `policy`, in priority order (for logs and tests).
pub fn rule_names(policy: PolicyKind) -> Vec<&'static str> {
    rules(policy).iter().map(|r| r.name).collect()
}
