DROP TABLE automation_actions;
DROP TABLE automation_child_firings;
DROP TABLE automation_buckets;
