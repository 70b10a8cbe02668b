-- Logs sent by the client (POST /logs/), and the outbox of events produced by API transactions:
-- written in the same transaction as the change that produced them, then moved to the streams
-- role by the relay, so API writes never depend on the broker.
CREATE TABLE logs (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    level INTEGER NOT NULL,
    message TEXT NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    flow_run_id TEXT,
    task_run_id TEXT,
    worker_id TEXT
);
CREATE INDEX logs_workspace_flow_run ON logs (workspace_id, flow_run_id, timestamp);
CREATE INDEX logs_workspace_timestamp ON logs (workspace_id, timestamp);

CREATE TABLE event_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL
);

-- Per-workspace server configuration, such as the default result storage block.
CREATE TABLE configuration (
    workspace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    updated TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, key)
);

-- Cached task-run states by cache key (CacheInsertion / CacheRetrieval).
CREATE TABLE task_run_state_cache (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    cache_key TEXT NOT NULL,
    cache_expiration TIMESTAMP,
    task_run_state_id TEXT NOT NULL
);
CREATE INDEX task_run_state_cache_key ON task_run_state_cache (workspace_id, cache_key, created);

-- Global (v2) concurrency limits and the leases that hold their slots.
CREATE TABLE concurrency_limits (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    name TEXT NOT NULL,
    "limit" INTEGER NOT NULL,
    active_slots INTEGER NOT NULL DEFAULT 0,
    denied_slots INTEGER NOT NULL DEFAULT 0,
    slot_decay_per_second REAL NOT NULL DEFAULT 0,
    avg_slot_occupancy_seconds REAL NOT NULL DEFAULT 2
);
CREATE UNIQUE INDEX concurrency_limits_workspace_name ON concurrency_limits (workspace_id, name);

CREATE TABLE concurrency_leases (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    expiration TIMESTAMP NOT NULL,
    limit_ids TEXT NOT NULL DEFAULT '[]',
    slots INTEGER NOT NULL,
    holder TEXT
);
CREATE INDEX concurrency_leases_expiration ON concurrency_leases (expiration);
