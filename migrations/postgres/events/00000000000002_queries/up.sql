-- Queries over events: names and resource ids compare byte by byte (the "C" collation), so a
-- prefix is an index range; event_counts holds the events of each workspace, hour and event name,
-- so totals and counts over whole hours read one row per name and hour instead of every event.
ALTER TABLE events ALTER COLUMN event TYPE TEXT COLLATE "C";
ALTER TABLE events ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE event_resources ALTER COLUMN resource_id TYPE TEXT COLLATE "C";

CREATE TABLE event_counts (
    workspace_id TEXT NOT NULL,
    hour TIMESTAMP NOT NULL,
    event TEXT COLLATE "C" NOT NULL,
    count BIGINT NOT NULL,
    first_occurred TIMESTAMP NOT NULL,
    last_occurred TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, hour, event)
);

INSERT INTO event_counts (workspace_id, hour, event, count, first_occurred, last_occurred)
SELECT workspace_id, date_trunc('hour', occurred), event, count(*), min(occurred), max(occurred)
FROM events
GROUP BY workspace_id, date_trunc('hour', occurred), event;

CREATE INDEX event_counts_hour ON event_counts (hour);

-- The feed's index also carries the name, so counting the events of a window's partial hours
-- by name reads only the index.
CREATE INDEX events_workspace_occurred_event ON events (workspace_id, occurred, event);
DROP INDEX events_workspace_occurred;

-- Each event's primary resource in event_resources too (role ''), as Prefect stores it, so a
-- query for any resource involved in an event is one indexed lookup.
INSERT INTO event_resources (event_id, workspace_id, occurred, resource_id, resource_role, resource)
SELECT id, workspace_id, occurred, resource_id, '', resource FROM events
ON CONFLICT DO NOTHING;
