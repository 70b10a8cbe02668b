-- `/ui/flows/next-runs` (the flows page) asks for each flow's earliest SCHEDULED run: with this
-- partial index that is one short range read per flow, whatever the history; without it, every
-- scheduled run of the flow (or, at a million runs, the workspace's) is read and sorted.
CREATE INDEX flow_runs_flow_scheduled_next ON flow_runs (flow_id, next_scheduled_start_time)
    WHERE state_type = 'SCHEDULED';
