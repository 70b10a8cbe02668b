DROP INDEX event_outbox_unpublished;
ALTER TABLE event_outbox DROP COLUMN pending;
ALTER TABLE event_outbox DROP COLUMN published;
