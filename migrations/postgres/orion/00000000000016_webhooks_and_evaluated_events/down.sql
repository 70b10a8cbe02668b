DROP TABLE automation_evaluated_events;
DROP TABLE webhooks;
