DROP TABLE concurrency_leases;
DROP TABLE concurrency_limits;
DROP TABLE task_run_state_cache;
DROP TABLE configuration;
DROP TABLE event_outbox;
DROP TABLE logs;
