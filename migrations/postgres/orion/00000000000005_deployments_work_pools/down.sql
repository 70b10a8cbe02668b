DROP INDEX flow_runs_work_queue;
DROP INDEX flow_runs_deployment;
DROP TABLE deployment_schedules;
DROP TABLE deployments;
DROP TABLE workers;
DROP TABLE work_queues;
DROP TABLE work_pools;
