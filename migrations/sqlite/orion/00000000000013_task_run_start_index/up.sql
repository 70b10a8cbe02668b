-- The dashboard's task-run counts (`/ui/task_runs/dashboard/counts`) and any task-run filter on
-- `start_time` read the runs started in a window (a day, usually): a range of this index instead
-- of every task run of the workspace (162 ms at 2,000,000 task runs, the reference 8 ms).
CREATE INDEX task_runs_workspace_start ON task_runs (workspace_id, start_time);
