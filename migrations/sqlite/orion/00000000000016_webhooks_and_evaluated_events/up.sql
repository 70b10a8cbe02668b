-- Incoming webhooks (Prefect Cloud's): a public URL, /hooks/{slug}, whose requests a Jinja
-- template turns into events of the webhook's workspace. The slug is random and unique across
-- every workspace (it alone finds the webhook).
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    enabled BOOLEAN NOT NULL,
    template TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    service_account_id TEXT
);
CREATE INDEX webhooks_workspace_name ON webhooks (workspace_id, name);

-- The events the trigger evaluator has evaluated (inserted in the evaluating transaction), so an
-- event delivered again — a crash before the acknowledgement, a flushed Redis, two replicas —
-- is evaluated once. Kept a day.
CREATE TABLE automation_evaluated_events (
    event_id TEXT PRIMARY KEY NOT NULL,
    evaluated TIMESTAMP NOT NULL
);
CREATE INDEX automation_evaluated_events_age ON automation_evaluated_events (evaluated);
