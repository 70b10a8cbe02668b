-- The background loops look for runs in one state across every workspace (paused runs whose
-- timeout passed, runs stuck in CANCELLING, runs CANCELLED in the last day whose children must
-- stop). Each gets a partial index that holds only the runs in that state, so a loop's query
-- costs what is in that state, not the whole history (at a million runs each was a sequential
-- scan of 0.3-0.6 s, every few seconds). The queries spell the state as a literal so both
-- databases match them to these indexes.
CREATE INDEX flow_runs_paused ON flow_runs (id) WHERE state_type = 'PAUSED';
CREATE INDEX flow_runs_cancelling ON flow_runs (state_timestamp) WHERE state_type = 'CANCELLING';
CREATE INDEX flow_runs_cancelled_end ON flow_runs (end_time) WHERE state_type = 'CANCELLED';
