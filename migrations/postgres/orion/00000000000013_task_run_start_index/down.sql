DROP INDEX task_runs_workspace_start;
