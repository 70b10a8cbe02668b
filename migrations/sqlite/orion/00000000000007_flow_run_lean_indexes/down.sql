DROP INDEX flow_runs_scheduled_next;
DROP INDEX flow_runs_idempotency;
CREATE UNIQUE INDEX flow_runs_idempotency ON flow_runs (workspace_id, flow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
