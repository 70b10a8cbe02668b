-- events: Prefect 3 events as received, one row per event id, with their related resources.
CREATE TABLE events (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    occurred TIMESTAMP NOT NULL,
    received TIMESTAMP NOT NULL,
    event TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    related TEXT NOT NULL DEFAULT '[]',
    payload TEXT NOT NULL DEFAULT '{}',
    follows TEXT
);
CREATE INDEX events_workspace_occurred ON events (workspace_id, occurred);
CREATE INDEX events_workspace_event ON events (workspace_id, event, occurred);
CREATE INDEX events_workspace_resource ON events (workspace_id, resource_id, occurred);

CREATE TABLE event_resources (
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    occurred TIMESTAMP NOT NULL,
    resource_id TEXT NOT NULL,
    resource_role TEXT NOT NULL,
    resource TEXT NOT NULL,
    PRIMARY KEY (event_id, resource_id, resource_role)
);
CREATE INDEX event_resources_lookup ON event_resources (workspace_id, resource_id, occurred);
