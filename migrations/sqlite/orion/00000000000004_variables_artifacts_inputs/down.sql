DROP TABLE saved_searches;
DROP TABLE flow_run_inputs;
DROP TABLE artifact_collections;
DROP TABLE artifacts;
DROP TABLE variables;
