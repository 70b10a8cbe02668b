DROP TABLE workspace_deletions;
DROP TABLE sessions;
DROP TABLE workspace_roles;
