-- nebula: accounts and workspaces. The default account and workspace are created at first start.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    handle TEXT NOT NULL
);
CREATE UNIQUE INDEX accounts_handle ON accounts (handle);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    handle TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX workspaces_account_handle ON workspaces (account_id, handle);
