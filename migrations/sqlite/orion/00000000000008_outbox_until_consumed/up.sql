-- An outbox row now stays until every consumer that must see its event has it durably (the
-- persister has written it to the events database; the task-run recorder, for the client's task
-- run events, has recorded it), not only until the broker has it: a Redis that is flushed or
-- restarted without persistence, or an embedded server killed with its in-memory stream, loses
-- nothing the server acknowledged. `published` is when the relay last put the event on the
-- stream (NULL: not yet, or to be put again because the stream lost it); `pending` holds one bit
-- per consumer still to confirm it (1 persister, 2 task-run recorder; 1 unless the writer says).
ALTER TABLE event_outbox ADD COLUMN published TIMESTAMP;
ALTER TABLE event_outbox ADD COLUMN pending INTEGER NOT NULL DEFAULT 1;
-- The relay claims unpublished rows from the head of this index; published rows leave it.
CREATE INDEX event_outbox_unpublished ON event_outbox (seq) WHERE published IS NULL;
