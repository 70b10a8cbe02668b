-- nebula: who can sign in and what they may do. Users and service accounts (Prefect Cloud's
-- "bots") belong to an account with an account role; API keys are stored only as a keyed hash;
-- workspace access grants a workspace role to a user, a service account or a team.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    account_role TEXT NOT NULL,
    password_hash TEXT
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE service_accounts (
    id TEXT PRIMARY KEY NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    account_role TEXT NOT NULL
);
CREATE UNIQUE INDEX service_accounts_account_name ON service_accounts (account_id, name);

CREATE TABLE teams (
    id TEXT PRIMARY KEY NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX teams_account_name ON teams (account_id, name);

-- actor_kind: 'user' or 'service_account'.
CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    PRIMARY KEY (team_id, actor_kind, actor_id)
);
CREATE INDEX team_members_actor ON team_members (actor_id);

-- actor_kind: 'user', 'service_account' or 'team'; role: owner, developer, runner, viewer, worker.
CREATE TABLE workspace_access (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    role TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, actor_kind, actor_id)
);
CREATE INDEX workspace_access_actor ON workspace_access (actor_id);

-- key_hash: HMAC-SHA-256 of the whole key under the installation's secret (auth_secrets).
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    created TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    expires TIMESTAMP,
    last_used TIMESTAMP,
    revoked TIMESTAMP
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
CREATE INDEX api_keys_actor ON api_keys (actor_id);

-- One row: the secret API keys are hashed under, made at first start, shared by replicas.
CREATE TABLE auth_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
