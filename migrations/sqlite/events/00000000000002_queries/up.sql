-- event_counts holds the events of each workspace, hour and event name, so totals and counts over
-- whole hours read one row per name and hour instead of every event. (SQLite compares text byte by
-- byte already, so a name prefix is an index range.)
CREATE TABLE event_counts (
    workspace_id TEXT NOT NULL,
    hour TIMESTAMP NOT NULL,
    event TEXT NOT NULL,
    count BIGINT NOT NULL,
    first_occurred TIMESTAMP NOT NULL,
    last_occurred TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, hour, event)
);

INSERT INTO event_counts (workspace_id, hour, event, count, first_occurred, last_occurred)
SELECT workspace_id, strftime('%Y-%m-%d %H:00:00', occurred), event, count(*), min(occurred),
       max(occurred)
FROM events
GROUP BY workspace_id, strftime('%Y-%m-%d %H:00:00', occurred), event;

CREATE INDEX event_counts_hour ON event_counts (hour);

-- The feed's index also carries the name, so counting the events of a window's partial hours
-- by name reads only the index.
CREATE INDEX events_workspace_occurred_event ON events (workspace_id, occurred, event);
DROP INDEX events_workspace_occurred;

-- Each event's primary resource in event_resources too (role ''), as Prefect stores it, so a
-- query for any resource involved in an event is one indexed lookup.
INSERT OR IGNORE INTO event_resources (event_id, workspace_id, occurred, resource_id, resource_role, resource)
SELECT id, workspace_id, occurred, resource_id, '', resource FROM events;
