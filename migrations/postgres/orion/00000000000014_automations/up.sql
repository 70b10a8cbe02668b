-- Automations: a trigger and actions (JSON, as the API validated and filled them in), and the
-- resources each relates to (a deployment it runs, the resource that owns it).
CREATE TABLE automations (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    tags TEXT NOT NULL DEFAULT '[]',
    trigger TEXT NOT NULL,
    actions TEXT NOT NULL,
    actions_on_trigger TEXT NOT NULL DEFAULT '[]',
    actions_on_resolve TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX automations_workspace_name ON automations (workspace_id, name);

CREATE TABLE automation_related_resources (
    workspace_id TEXT NOT NULL,
    automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    resource_id TEXT NOT NULL,
    owned_by_resource BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (automation_id, resource_id)
);
CREATE INDEX automation_related_resources_lookup
    ON automation_related_resources (workspace_id, resource_id);
