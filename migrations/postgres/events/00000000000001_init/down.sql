DROP TABLE event_resources;
DROP TABLE events;
