DROP TABLE task_run_states;
DROP TABLE task_runs;
DROP TABLE flow_run_states;
DROP TABLE flow_runs;
DROP TABLE flows;
