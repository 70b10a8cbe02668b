-- Variables, artifacts (with the latest artifact per key), flow-run inputs and saved searches.
-- Every row carries workspace_id; JSON is stored as compact text.
CREATE TABLE variables (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL DEFAULT 'null',
    tags TEXT NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX variables_workspace_name ON variables (workspace_id, name);

-- No foreign keys to runs: the client reports artifacts of task runs that the task-run
-- recorder may not have written yet, and Prefect keeps artifacts of deleted runs.
CREATE TABLE artifacts (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    key TEXT,
    type TEXT,
    description TEXT,
    data TEXT,
    metadata_ TEXT,
    flow_run_id TEXT,
    task_run_id TEXT
);
CREATE INDEX artifacts_workspace_key ON artifacts (workspace_id, key, created);
CREATE INDEX artifacts_workspace_flow_run ON artifacts (workspace_id, flow_run_id);
CREATE INDEX artifacts_workspace_task_run ON artifacts (workspace_id, task_run_id);

-- The latest artifact of each key, kept up to date on create, update and delete.
CREATE TABLE artifact_collections (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    key TEXT NOT NULL,
    latest_id TEXT NOT NULL,
    type TEXT,
    description TEXT,
    data TEXT,
    metadata_ TEXT,
    flow_run_id TEXT,
    task_run_id TEXT
);
CREATE UNIQUE INDEX artifact_collections_workspace_key ON artifact_collections (workspace_id, key);
CREATE INDEX artifact_collections_latest ON artifact_collections (latest_id);

CREATE TABLE flow_run_inputs (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    flow_run_id TEXT NOT NULL REFERENCES flow_runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    sender TEXT
);
CREATE UNIQUE INDEX flow_run_inputs_run_key ON flow_run_inputs (flow_run_id, key);

CREATE TABLE saved_searches (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    filters TEXT NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX saved_searches_workspace_name ON saved_searches (workspace_id, name);
