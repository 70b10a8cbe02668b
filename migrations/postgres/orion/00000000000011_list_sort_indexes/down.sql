DROP INDEX flow_runs_workspace_id;
DROP INDEX task_runs_workspace_id;
DROP INDEX task_runs_workspace_expected;
