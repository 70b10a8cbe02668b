DROP TABLE auth_secrets;
DROP TABLE api_keys;
DROP TABLE workspace_access;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE service_accounts;
DROP TABLE users;
