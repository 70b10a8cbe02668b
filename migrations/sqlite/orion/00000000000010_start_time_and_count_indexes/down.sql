DROP INDEX task_runs_workspace;
CREATE INDEX task_runs_workspace_flow_run ON task_runs (workspace_id, flow_run_id);
DROP INDEX flow_runs_workspace_start;
