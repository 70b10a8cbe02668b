//! `[services]`: how often each background service runs, and the stream consumers' batch.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    pub outbox_relay_interval_ms: u64,
    pub outbox_redeliver_after_seconds: u64,
    pub event_persister_interval_ms: u64,
    pub task_run_recorder_interval_ms: u64,
    pub automation_triggers_interval_ms: u64,
    pub proactive_triggers_interval_ms: u64,
    pub automation_actions_interval_ms: u64,
    pub automation_action_claim_seconds: u64,
    pub repossessor_interval_ms: u64,
    pub pause_expirations_interval_ms: u64,
    pub scheduler_interval_ms: u64,
    pub recent_scheduler_interval_ms: u64,
    pub late_runs_interval_ms: u64,
    pub late_runs_after_seconds: u64,
    pub foreman_interval_ms: u64,
    pub cancellation_cleanup_interval_ms: u64,
    pub heap_trim_interval_ms: u64,
    pub workspace_deletion_delay_ms: u64,
    pub consumer_batch_size: usize,
    pub consumer_block_ms: u64,
    pub visibility_timeout_seconds: u64,
}
