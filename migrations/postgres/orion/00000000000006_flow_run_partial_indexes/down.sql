DROP INDEX flow_runs_deployment;
CREATE INDEX flow_runs_deployment ON flow_runs (deployment_id, state_type);
DROP INDEX flow_runs_work_queue;
CREATE INDEX flow_runs_work_queue ON flow_runs (work_queue_id, state_type, next_scheduled_start_time);
DROP INDEX flow_runs_parent_task_run;
CREATE INDEX flow_runs_parent_task_run ON flow_runs (parent_task_run_id);
DROP INDEX flow_runs_idempotency;
CREATE UNIQUE INDEX flow_runs_idempotency ON flow_runs (workspace_id, flow_id, idempotency_key);
