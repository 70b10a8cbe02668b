DROP TABLE automation_related_resources;
DROP TABLE automations;
