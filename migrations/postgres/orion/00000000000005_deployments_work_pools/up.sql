-- Work pools, their queues and workers; deployments and their schedules.
CREATE TABLE work_pools (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    type TEXT NOT NULL,
    base_job_template TEXT NOT NULL DEFAULT '{}',
    is_paused BOOLEAN NOT NULL DEFAULT FALSE,
    concurrency_limit INTEGER,
    status TEXT NOT NULL DEFAULT 'NOT_READY',
    default_queue_id TEXT,
    storage_configuration TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX work_pools_workspace_name ON work_pools (workspace_id, name);

CREATE TABLE work_queues (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    is_paused BOOLEAN NOT NULL DEFAULT FALSE,
    concurrency_limit INTEGER,
    priority INTEGER NOT NULL DEFAULT 1,
    work_pool_id TEXT NOT NULL REFERENCES work_pools (id) ON DELETE CASCADE,
    filter TEXT,
    last_polled TIMESTAMP,
    status TEXT NOT NULL DEFAULT 'NOT_READY'
);
CREATE UNIQUE INDEX work_queues_pool_name ON work_queues (work_pool_id, name);

CREATE TABLE workers (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    work_pool_id TEXT NOT NULL REFERENCES work_pools (id) ON DELETE CASCADE,
    last_heartbeat_time TIMESTAMP NOT NULL,
    heartbeat_interval_seconds INTEGER,
    status TEXT NOT NULL DEFAULT 'ONLINE'
);
CREATE UNIQUE INDEX workers_pool_name ON workers (work_pool_id, name);

CREATE TABLE deployments (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    description TEXT,
    flow_id TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    concurrency_limit INTEGER,
    concurrency_options TEXT,
    global_concurrency_limit_id TEXT,
    job_variables TEXT NOT NULL DEFAULT '{}',
    parameters TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{}',
    work_queue_name TEXT,
    work_queue_id TEXT,
    last_polled TIMESTAMP,
    parameter_openapi_schema TEXT,
    path TEXT,
    pull_steps TEXT,
    entrypoint TEXT,
    storage_document_id TEXT,
    infrastructure_document_id TEXT,
    created_by TEXT,
    updated_by TEXT,
    status TEXT NOT NULL DEFAULT 'NOT_READY',
    enforce_parameter_schema BOOLEAN NOT NULL DEFAULT TRUE,
    version_info TEXT
);
CREATE UNIQUE INDEX deployments_flow_name ON deployments (workspace_id, flow_id, name);

CREATE TABLE deployment_schedules (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    schedule TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    max_scheduled_runs INTEGER,
    parameters TEXT NOT NULL DEFAULT '{}',
    slug TEXT
);
CREATE INDEX deployment_schedules_deployment ON deployment_schedules (deployment_id);
CREATE UNIQUE INDEX deployment_schedules_slug ON deployment_schedules (deployment_id, slug);
CREATE INDEX flow_runs_deployment ON flow_runs (deployment_id, state_type);
CREATE INDEX flow_runs_work_queue ON flow_runs (work_queue_id, state_type, next_scheduled_start_time);
