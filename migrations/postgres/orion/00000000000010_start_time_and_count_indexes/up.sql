-- Flow runs sorted or filtered by START_TIME use the time a run started or, before it starts,
-- the time it is expected to (Prefect's coalesce(start_time, expected_start_time)), so scheduled
-- and late runs sort among the others instead of last. The runs page sorts on it per workspace.
CREATE INDEX flow_runs_workspace_start ON flow_runs
    (workspace_id, coalesce(start_time, expected_start_time), id);
-- POST /task_runs/count {} counts a workspace's task runs. The index it scanned was
-- (workspace_id, flow_run_id): two text ids per entry. An index on the workspace alone holds each
-- workspace once with a list of rows (PostgreSQL's B-tree deduplication), a fraction of the size.
-- Lookups by flow run use the natural key (flow_run_id, task_key, dynamic_key).
DROP INDEX task_runs_workspace_flow_run;
CREATE INDEX task_runs_workspace ON task_runs (workspace_id);
