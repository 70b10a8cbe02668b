-- The late-runs service looks for SCHEDULED runs past their start time in every workspace. This
-- partial index holds SCHEDULED runs only: runs in any other state, and every state change of a
-- run that is never scheduled, add no entry to it. It replaces (workspace_id, state_type,
-- next_scheduled_start_time), which took an entry on every state change of every run.
DROP INDEX flow_runs_workspace_next;
CREATE INDEX flow_runs_scheduled_next ON flow_runs (next_scheduled_start_time)
    WHERE state_type = 'SCHEDULED';
-- Flow ids are unique across workspaces, so (flow_id, idempotency_key) is as unique as the same
-- key behind the workspace id, with shorter entries (the scheduler writes one per run).
DROP INDEX flow_runs_idempotency;
CREATE UNIQUE INDEX flow_runs_idempotency ON flow_runs (flow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
