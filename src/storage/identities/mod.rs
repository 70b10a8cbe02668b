//! Nebula identities: users, service accounts, teams and workspace access; API keys and the
//! one question the request path asks — "whose key has this hash, and what may it do where"
//! ([`credential`]) — are in `keys`. Role and kind names are stored as the text Prefect Cloud uses.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

mod access;
mod admin;
mod keys;
mod members;
mod roles;
mod session;
mod team;
pub use access::*;
pub use admin::*;
pub use keys::*;
pub use members::*;
pub use roles::*;
pub use session::*;
pub use team::*;

use super::accounts::Workspace;
use super::schema::{
    accounts, service_accounts, team_members, teams, users, workspace_access, workspaces,
};
use super::{Conn, StorageResult};
use crate::db_run;

/// `user` or `service_account` (and `team` in workspace access).
pub const USER: &str = "user";
pub const SERVICE_ACCOUNT: &str = "service_account";
pub const TEAM: &str = "team";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub account_id: String,
    pub email: String,
    pub name: String,
    pub account_role: String,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = service_accounts)]
pub struct ServiceAccountRow {
    pub id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub account_id: String,
    pub name: String,
    pub account_role: String,
}

/// Who an actor is: its kind, id, display name (email for users), account and account role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: String,
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub account_role: String,
}

pub async fn account_by_handle(c: &mut Conn, handle: &str) -> StorageResult<Option<String>> {
    let id = db_run!(c, |c| {
        accounts::table
            .filter(accounts::handle.eq(handle))
            .select(accounts::id)
            .first::<String>(c)
            .await
            .optional()
    })?;
    Ok(id)
}

pub async fn workspace_by_handle(
    c: &mut Conn,
    account_id: &str,
    handle: &str,
) -> StorageResult<Option<Workspace>> {
    let ws = db_run!(c, |c| {
        workspaces::table
            .filter(workspaces::account_id.eq(account_id))
            .filter(workspaces::handle.eq(handle))
            .select(Workspace::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(ws)
}

/// Adds a workspace (`Conflict` when the account has the handle already).
pub async fn insert_workspace(
    c: &mut Conn,
    id: &str,
    account_id: &str,
    handle: &str,
    name: &str,
    now: NaiveDateTime,
) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(workspaces::table)
            .values((
                workspaces::id.eq(id),
                workspaces::account_id.eq(account_id),
                workspaces::created.eq(now),
                workspaces::updated.eq(now),
                workspaces::handle.eq(handle),
                workspaces::name.eq(name),
                workspaces::description.eq(""),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Adds a user (`Conflict` when the email is taken).
pub async fn insert_user(c: &mut Conn, row: &UserRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(users::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Adds a service account (`Conflict` when the account has the name already).
pub async fn insert_service_account(c: &mut Conn, row: &ServiceAccountRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(service_accounts::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn user_by_email(c: &mut Conn, email: &str) -> StorageResult<Option<UserRow>> {
    let row = db_run!(c, |c| {
        users::table
            .filter(users::email.eq(email))
            .select(UserRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn service_account_by_name(
    c: &mut Conn,
    account_id: &str,
    name: &str,
) -> StorageResult<Option<ServiceAccountRow>> {
    let row = db_run!(c, |c| {
        service_accounts::table
            .filter(service_accounts::account_id.eq(account_id))
            .filter(service_accounts::name.eq(name))
            .select(ServiceAccountRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn team_by_name(
    c: &mut Conn,
    account_id: &str,
    name: &str,
) -> StorageResult<Option<String>> {
    let id = db_run!(c, |c| {
        teams::table
            .filter(teams::account_id.eq(account_id))
            .filter(teams::name.eq(name))
            .select(teams::id)
            .first::<String>(c)
            .await
            .optional()
    })?;
    Ok(id)
}

pub async fn count_users(c: &mut Conn) -> StorageResult<i64> {
    let n = db_run!(c, |c| users::table.count().get_result::<i64>(c).await)?;
    Ok(n)
}

/// Grants `role` in a workspace to an actor or team, replacing a role it had there.
pub async fn grant(
    c: &mut Conn,
    workspace_id: &str,
    actor_kind: &str,
    actor_id: &str,
    role: &str,
    now: NaiveDateTime,
) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(workspace_access::table)
            .values((
                workspace_access::workspace_id.eq(workspace_id),
                workspace_access::actor_kind.eq(actor_kind),
                workspace_access::actor_id.eq(actor_id),
                workspace_access::role.eq(role),
                workspace_access::created.eq(now),
            ))
            .on_conflict((
                workspace_access::workspace_id,
                workspace_access::actor_kind,
                workspace_access::actor_id,
            ))
            .do_update()
            .set(workspace_access::role.eq(role))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// The actor of kind `kind` with id `id`.
pub async fn actor(c: &mut Conn, kind: &str, id: &str) -> StorageResult<Option<Actor>> {
    let found = db_run!(c, |c| {
        if kind == USER {
            users::table
                .filter(users::id.eq(id))
                .select((users::email, users::account_id, users::account_role))
                .first::<(String, String, String)>(c)
                .await
                .optional()
        } else {
            service_accounts::table
                .filter(service_accounts::id.eq(id))
                .select((
                    service_accounts::name,
                    service_accounts::account_id,
                    service_accounts::account_role,
                ))
                .first::<(String, String, String)>(c)
                .await
                .optional()
        }
    })?;
    Ok(found.map(|(name, account_id, account_role)| Actor {
        kind: kind.to_string(),
        id: id.to_string(),
        name,
        account_id,
        account_role,
    }))
}

/// What [`user_credential`] finds: the user as an actor, its grants, the custom roles among
/// them, and its password hash.
pub type UserCredential = (
    Actor,
    BTreeMap<String, Vec<String>>,
    Vec<WorkspaceRoleRow>,
    Option<String>,
);

/// The user whose email is `email`, as an actor with its roles, and its password hash.
pub async fn user_credential(c: &mut Conn, email: &str) -> StorageResult<Option<UserCredential>> {
    let Some(user) = user_by_email(c, email).await? else {
        return Ok(None);
    };
    let actor = Actor {
        kind: USER.into(),
        id: user.id,
        name: user.email,
        account_id: user.account_id,
        account_role: user.account_role,
    };
    let roles = roles_of(c, &actor).await?;
    let custom = custom_roles_in(c, &roles).await?;
    Ok(Some((actor, roles, custom, user.password_hash)))
}

/// Workspace id → roles `actor` holds: its own grants, its teams' grants, and owner of every
/// workspace of its account when it is the account's owner or admin.
pub async fn roles_of(c: &mut Conn, actor: &Actor) -> StorageResult<BTreeMap<String, Vec<String>>> {
    let (direct, through_teams, account_wide) = db_run!(c, |c| {
        let direct = workspace_access::table
            .filter(workspace_access::actor_kind.eq(&actor.kind))
            .filter(workspace_access::actor_id.eq(&actor.id))
            .select((workspace_access::workspace_id, workspace_access::role))
            .load::<(String, String)>(c)
            .await?;
        let team_ids = team_members::table
            .filter(team_members::actor_kind.eq(&actor.kind))
            .filter(team_members::actor_id.eq(&actor.id))
            .select(team_members::team_id);
        let through_teams = workspace_access::table
            .filter(workspace_access::actor_kind.eq(TEAM))
            .filter(workspace_access::actor_id.eq_any(team_ids))
            .select((workspace_access::workspace_id, workspace_access::role))
            .load::<(String, String)>(c)
            .await?;
        let account_wide = if matches!(actor.account_role.as_str(), "owner" | "admin") {
            workspaces::table
                .filter(workspaces::account_id.eq(&actor.account_id))
                .select(workspaces::id)
                .load::<String>(c)
                .await?
        } else {
            Vec::new()
        };
        Ok::<_, diesel::result::Error>((direct, through_teams, account_wide))
    })?;
    let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (ws, role) in direct.into_iter().chain(through_teams) {
        roles.entry(ws).or_default().push(role);
    }
    for ws in account_wide {
        roles.entry(ws).or_default().push("owner".into());
    }
    Ok(roles)
}

/// What `/me/workspaces` lists: each workspace of `ids` with its account.
#[derive(Debug, Clone, Queryable)]
pub struct WorkspaceListing {
    pub account_id: String,
    pub account_name: String,
    pub account_handle: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub workspace_description: String,
    pub workspace_handle: String,
}

/// The workspaces `ids` (every workspace with `None`) with their accounts, by handle.
pub async fn workspace_listings(
    c: &mut Conn,
    ids: Option<&[String]>,
) -> StorageResult<Vec<WorkspaceListing>> {
    let rows = db_run!(c, |c| {
        let mut q = workspaces::table
            .inner_join(accounts::table.on(accounts::id.eq(workspaces::account_id)))
            .into_boxed();
        if let Some(ids) = ids {
            q = q.filter(workspaces::id.eq_any(ids));
        }
        q.order((accounts::handle.asc(), workspaces::handle.asc()))
            .select((
                accounts::id,
                accounts::name,
                accounts::handle,
                workspaces::id,
                workspaces::name,
                workspaces::description,
                workspaces::handle,
            ))
            .load::<WorkspaceListing>(c)
            .await
    })?;
    Ok(rows)
}
