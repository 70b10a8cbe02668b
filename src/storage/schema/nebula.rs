//! The nebula tables besides accounts and workspaces: users, service accounts, teams, workspace
//! access, API keys, the installation's key-hashing secret, custom workspace roles, browser
//! sessions and workspaces being deleted.

use super::{accounts, workspaces};

diesel::table! {
    users (id) {
        id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        account_id -> Text,
        email -> Text,
        name -> Text,
        account_role -> Text,
        password_hash -> Nullable<Text>,
    }
}

diesel::table! {
    service_accounts (id) {
        id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        account_id -> Text,
        name -> Text,
        account_role -> Text,
    }
}

diesel::table! {
    teams (id) {
        id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        account_id -> Text,
        name -> Text,
        description -> Text,
    }
}

diesel::table! {
    team_members (team_id, actor_kind, actor_id) {
        team_id -> Text,
        actor_kind -> Text,
        actor_id -> Text,
    }
}

diesel::table! {
    workspace_access (workspace_id, actor_kind, actor_id) {
        workspace_id -> Text,
        actor_kind -> Text,
        actor_id -> Text,
        role -> Text,
        created -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        created -> Timestamp,
        name -> Text,
        actor_kind -> Text,
        actor_id -> Text,
        key_hash -> Text,
        expires -> Nullable<Timestamp>,
        last_used -> Nullable<Timestamp>,
        revoked -> Nullable<Timestamp>,
    }
}

diesel::table! {
    auth_secrets (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    workspace_roles (id) {
        id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        account_id -> Text,
        name -> Text,
        description -> Text,
        scopes -> Text,
        inherited_role -> Nullable<Text>,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        created -> Timestamp,
        expires -> Timestamp,
        csrf_token -> Text,
        revoked -> Nullable<Timestamp>,
    }
}

diesel::table! {
    workspace_deletions (workspace_id) {
        workspace_id -> Text,
        account_id -> Text,
        requested -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    workspaces,
    users,
    service_accounts,
    teams,
    team_members,
    workspace_access,
    api_keys,
    workspace_roles,
    sessions,
);
