-- Lists sorted per workspace read a range of an index instead of sorting the workspace:
-- * task runs by expected start (the task-runs page's EXPECTED_START_TIME_DESC, and the task-run
--   history, a window of expected starts);
-- * flow and task runs by id (ID_DESC, both lists' default sort; deep `offset` pages): SQLite
--   otherwise picks a workspace index and sorts every run of the workspace in a temporary B-tree,
--   and PostgreSQL walks the primary key skipping other workspaces' rows.
-- The narrow task_runs (workspace_id) index stays: a count over it reads a fraction of the bytes.
CREATE INDEX task_runs_workspace_expected ON task_runs (workspace_id, expected_start_time, id);
CREATE INDEX task_runs_workspace_id ON task_runs (workspace_id, id);
CREATE INDEX flow_runs_workspace_id ON flow_runs (workspace_id, id);
