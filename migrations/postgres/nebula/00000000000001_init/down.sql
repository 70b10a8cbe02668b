DROP TABLE workspaces;
DROP TABLE accounts;
