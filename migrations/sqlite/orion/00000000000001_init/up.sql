-- orion: flows, flow runs, task runs and their state histories. Every row carries workspace_id.
CREATE TABLE flows (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX flows_workspace_name ON flows (workspace_id, name);

CREATE TABLE flow_runs (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    flow_id TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    state_id TEXT,
    state_type TEXT,
    state_name TEXT,
    state_timestamp TIMESTAMP,
    deployment_id TEXT,
    deployment_version TEXT,
    work_queue_id TEXT,
    work_queue_name TEXT,
    work_pool_id TEXT,
    work_pool_name TEXT,
    flow_version TEXT,
    parameters TEXT NOT NULL DEFAULT '{}',
    idempotency_key TEXT,
    context TEXT NOT NULL DEFAULT '{}',
    empirical_policy TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{}',
    parent_task_run_id TEXT,
    run_count BIGINT NOT NULL DEFAULT 0,
    expected_start_time TIMESTAMP,
    next_scheduled_start_time TIMESTAMP,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    total_run_time REAL NOT NULL DEFAULT 0,
    auto_scheduled BOOLEAN NOT NULL DEFAULT FALSE,
    infrastructure_document_id TEXT,
    infrastructure_pid TEXT,
    created_by TEXT,
    job_variables TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX flow_runs_workspace_flow ON flow_runs (workspace_id, flow_id);
CREATE INDEX flow_runs_workspace_expected ON flow_runs (workspace_id, expected_start_time);
CREATE INDEX flow_runs_workspace_next ON flow_runs (workspace_id, state_type, next_scheduled_start_time);
CREATE INDEX flow_runs_parent_task_run ON flow_runs (parent_task_run_id);
CREATE UNIQUE INDEX flow_runs_idempotency ON flow_runs (workspace_id, flow_id, idempotency_key);

CREATE TABLE flow_run_states (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    flow_run_id TEXT NOT NULL REFERENCES flow_runs (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    message TEXT,
    data TEXT,
    state_details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX flow_run_states_run ON flow_run_states (flow_run_id, timestamp);

CREATE TABLE task_runs (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    flow_run_id TEXT REFERENCES flow_runs (id) ON DELETE CASCADE,
    task_key TEXT NOT NULL,
    dynamic_key TEXT NOT NULL,
    cache_key TEXT,
    cache_expiration TIMESTAMP,
    task_version TEXT,
    empirical_policy TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{}',
    task_inputs TEXT NOT NULL DEFAULT '{}',
    state_id TEXT,
    state_type TEXT,
    state_name TEXT,
    state_timestamp TIMESTAMP,
    run_count BIGINT NOT NULL DEFAULT 0,
    flow_run_run_count BIGINT NOT NULL DEFAULT 0,
    expected_start_time TIMESTAMP,
    next_scheduled_start_time TIMESTAMP,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    total_run_time REAL NOT NULL DEFAULT 0
);
CREATE INDEX task_runs_workspace_flow_run ON task_runs (workspace_id, flow_run_id);
CREATE UNIQUE INDEX task_runs_natural_key ON task_runs (flow_run_id, task_key, dynamic_key);

CREATE TABLE task_run_states (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    task_run_id TEXT NOT NULL REFERENCES task_runs (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    message TEXT,
    data TEXT,
    state_details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX task_run_states_run ON task_run_states (task_run_id, timestamp);
