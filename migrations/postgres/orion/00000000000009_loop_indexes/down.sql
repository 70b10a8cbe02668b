DROP INDEX flow_runs_paused;
DROP INDEX flow_runs_cancelling;
DROP INDEX flow_runs_cancelled_end;
