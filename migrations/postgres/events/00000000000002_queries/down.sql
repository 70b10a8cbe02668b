DROP TABLE event_counts;
ALTER TABLE event_resources ALTER COLUMN resource_id TYPE TEXT COLLATE "default";
ALTER TABLE events ALTER COLUMN resource_id TYPE TEXT COLLATE "default";
ALTER TABLE events ALTER COLUMN event TYPE TEXT COLLATE "default";
