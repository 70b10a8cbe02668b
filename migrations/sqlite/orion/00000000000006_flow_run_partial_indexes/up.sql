-- Every state change rewrites the flow run's row with a new state_type, so it cannot be a HOT
-- update: each index of flow_runs gets a new entry. Ad-hoc runs (no deployment, no work queue,
-- no parent task, no idempotency key) need no entry in the indexes on those columns; partial
-- indexes skip them. Lookups by equality or IN on these columns still use them.
DROP INDEX flow_runs_deployment;
CREATE INDEX flow_runs_deployment ON flow_runs (deployment_id, state_type)
    WHERE deployment_id IS NOT NULL;
DROP INDEX flow_runs_work_queue;
CREATE INDEX flow_runs_work_queue ON flow_runs (work_queue_id, state_type, next_scheduled_start_time)
    WHERE work_queue_id IS NOT NULL;
DROP INDEX flow_runs_parent_task_run;
CREATE INDEX flow_runs_parent_task_run ON flow_runs (parent_task_run_id)
    WHERE parent_task_run_id IS NOT NULL;
DROP INDEX flow_runs_idempotency;
CREATE UNIQUE INDEX flow_runs_idempotency ON flow_runs (workspace_id, flow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
