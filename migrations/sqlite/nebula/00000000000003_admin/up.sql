-- nebula: custom workspace roles, browser sessions and workspaces being deleted.

-- A custom workspace role: the scopes of the built-in role it inherits (a built-in role's name,
-- or none) plus its own `scopes` (a JSON array of scope names).
CREATE TABLE workspace_roles (
    id TEXT PRIMARY KEY NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL,
    inherited_role TEXT
);
CREATE UNIQUE INDEX workspace_roles_account_name ON workspace_roles (account_id, name);

-- A signed-in browser: token_hash is the HMAC-SHA-256 of the cookie's value; csrf_token is the
-- value unsafe cookie-authenticated requests must echo.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created TIMESTAMP NOT NULL,
    expires TIMESTAMP NOT NULL,
    csrf_token TEXT NOT NULL,
    revoked TIMESTAMP
);
CREATE INDEX sessions_user ON sessions (user_id);

-- A workspace whose orion rows are being deleted in the background (the row goes when the last
-- batch is gone; a restart picks the job up again).
CREATE TABLE workspace_deletions (
    workspace_id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    requested TIMESTAMP NOT NULL
);
