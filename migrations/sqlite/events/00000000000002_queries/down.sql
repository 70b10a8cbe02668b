CREATE INDEX events_workspace_occurred ON events (workspace_id, occurred);
DROP INDEX events_workspace_occurred_event;
DELETE FROM event_resources WHERE resource_role = '';
DROP TABLE event_counts;
