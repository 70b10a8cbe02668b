//! What the admin API reads and changes: accounts, workspaces (and their deletion record),
//! custom workspace roles, members (users and service accounts), teams and their members, and
//! workspace access. Ids double as Prefect Cloud's membership and access ids: a membership is
//! its user's or service account's id, an access is its grantee's id within the workspace.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{KeyRow, ServiceAccountRow, UserRow, SERVICE_ACCOUNT, TEAM, USER};
use crate::db_run;
use crate::storage::schema::{
    accounts, api_keys, service_accounts, sessions, team_members, teams, users, workspace_access,
    workspace_deletions, workspace_roles, workspaces,
};
use crate::storage::{Conn, StorageResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct AccountRow {
    pub id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub handle: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workspaces)]
pub struct WorkspaceRow {
    pub id: String,
    pub account_id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub handle: String,
    pub description: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = workspace_roles)]
pub struct WorkspaceRoleRow {
    pub id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub account_id: String,
    pub name: String,
    pub description: String,
    /// A JSON array of scope names.
    pub scopes: String,
    /// The built-in role it inherits (its lowercase name).
    pub inherited_role: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = teams)]
pub struct TeamRow {
    pub id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub account_id: String,
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workspace_access)]
pub struct AccessRow {
    pub workspace_id: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub role: String,
    pub created: NaiveDateTime,
}

/// A page: `limit` rows after `offset`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

pub async fn account(c: &mut Conn, id: &str) -> StorageResult<Option<AccountRow>> {
    let row = db_run!(c, |c| {
        accounts::table
            .filter(accounts::id.eq(id))
            .select(AccountRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// Adds an account (`Conflict` when the handle is taken).
pub async fn insert_account(
    c: &mut Conn,
    id: &str,
    name: &str,
    handle: &str,
    now: NaiveDateTime,
) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(accounts::table)
            .values((
                accounts::id.eq(id),
                accounts::created.eq(now),
                accounts::updated.eq(now),
                accounts::name.eq(name),
                accounts::handle.eq(handle),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Renames account `id` or changes its handle (`Conflict` when the handle is taken).
pub async fn update_account(
    c: &mut Conn,
    id: &str,
    name: Option<&str>,
    handle: Option<&str>,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        let target = accounts::table.filter(accounts::id.eq(id));
        let mut n = diesel::update(target)
            .set(accounts::updated.eq(now))
            .execute(c)
            .await?;
        if let Some(name) = name {
            n = diesel::update(target)
                .set(accounts::name.eq(name))
                .execute(c)
                .await?;
        }
        if let Some(handle) = handle {
            n = diesel::update(target)
                .set(accounts::handle.eq(handle))
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(n)
    })?;
    Ok(n > 0)
}

/// The workspaces of `account_id`, by handle: those of `handles` when given, of `ids` when
/// given (what a member may see).
pub async fn list_workspaces(
    c: &mut Conn,
    account_id: &str,
    handles: Option<&[String]>,
    ids: Option<&[String]>,
    page: Page,
) -> StorageResult<Vec<WorkspaceRow>> {
    let rows = db_run!(c, |c| {
        let mut q = workspaces::table
            .filter(workspaces::account_id.eq(account_id))
            .into_boxed();
        if let Some(h) = handles {
            q = q.filter(workspaces::handle.eq_any(h));
        }
        if let Some(ids) = ids {
            q = q.filter(workspaces::id.eq_any(ids));
        }
        q.order((workspaces::handle.asc(), workspaces::id.asc()))
            .limit(page.limit)
            .offset(page.offset)
            .select(WorkspaceRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn workspace(
    c: &mut Conn,
    account_id: &str,
    id: &str,
) -> StorageResult<Option<WorkspaceRow>> {
    let row = db_run!(c, |c| {
        workspaces::table
            .filter(workspaces::account_id.eq(account_id))
            .filter(workspaces::id.eq(id))
            .select(WorkspaceRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// Changes a workspace's name, handle or description (`Conflict` on a taken handle).
pub async fn update_workspace(
    c: &mut Conn,
    id: &str,
    name: Option<&str>,
    handle: Option<&str>,
    description: Option<&str>,
    now: NaiveDateTime,
) -> StorageResult<()> {
    db_run!(c, |c| {
        let target = workspaces::table.filter(workspaces::id.eq(id));
        diesel::update(target)
            .set(workspaces::updated.eq(now))
            .execute(c)
            .await?;
        if let Some(v) = name {
            diesel::update(target)
                .set(workspaces::name.eq(v))
                .execute(c)
                .await?;
        }
        if let Some(v) = handle {
            diesel::update(target)
                .set(workspaces::handle.eq(v))
                .execute(c)
                .await?;
        }
        if let Some(v) = description {
            diesel::update(target)
                .set(workspaces::description.eq(v))
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// Removes workspace `id` (and its access grants) from nebula and records that its orion rows
/// are to be deleted; false when it did not exist. Run it in a transaction.
pub async fn delete_workspace(
    c: &mut Conn,
    account_id: &str,
    id: &str,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        let n = diesel::delete(
            workspaces::table
                .filter(workspaces::id.eq(id))
                .filter(workspaces::account_id.eq(account_id)),
        )
        .execute(c)
        .await?;
        if n > 0 {
            diesel::delete(workspace_access::table.filter(workspace_access::workspace_id.eq(id)))
                .execute(c)
                .await?;
            diesel::insert_into(workspace_deletions::table)
                .values((
                    workspace_deletions::workspace_id.eq(id),
                    workspace_deletions::account_id.eq(account_id),
                    workspace_deletions::requested.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(n)
    })?;
    Ok(n > 0)
}

/// Workspaces deleted before `before` whose orion rows are still to be deleted, oldest
/// request first.
pub async fn pending_deletions(c: &mut Conn, before: NaiveDateTime) -> StorageResult<Vec<String>> {
    let ids = db_run!(c, |c| {
        workspace_deletions::table
            .filter(workspace_deletions::requested.le(before))
            .order(workspace_deletions::requested.asc())
            .select(workspace_deletions::workspace_id)
            .load::<String>(c)
            .await
    })?;
    Ok(ids)
}

pub async fn finish_deletion(c: &mut Conn, workspace_id: &str) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::delete(
            workspace_deletions::table.filter(workspace_deletions::workspace_id.eq(workspace_id)),
        )
        .execute(c)
        .await
    })?;
    Ok(())
}

// ---- custom workspace roles ----

/// The custom roles among the grants of `roles`.
pub async fn custom_roles_in(
    c: &mut Conn,
    roles: &BTreeMap<String, Vec<String>>,
) -> StorageResult<Vec<WorkspaceRoleRow>> {
    // Built-in roles are stored by name, which no custom role's id equals.
    let ids: Vec<&String> = roles.values().flatten().collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db_run!(c, |c| {
        workspace_roles::table
            .filter(workspace_roles::id.eq_any(&ids))
            .select(WorkspaceRoleRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn insert_workspace_role(c: &mut Conn, row: &WorkspaceRoleRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(workspace_roles::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Replaces a custom role's fields (`Conflict` on a taken name).
pub async fn update_workspace_role(c: &mut Conn, row: &WorkspaceRoleRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::update(workspace_roles::table.filter(workspace_roles::id.eq(&row.id)))
            .set((
                workspace_roles::updated.eq(row.updated),
                workspace_roles::name.eq(&row.name),
                workspace_roles::description.eq(&row.description),
                workspace_roles::scopes.eq(&row.scopes),
                workspace_roles::inherited_role.eq(&row.inherited_role),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn workspace_role(
    c: &mut Conn,
    account_id: &str,
    id: &str,
) -> StorageResult<Option<WorkspaceRoleRow>> {
    let row = db_run!(c, |c| {
        workspace_roles::table
            .filter(workspace_roles::account_id.eq(account_id))
            .filter(workspace_roles::id.eq(id))
            .select(WorkspaceRoleRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// The account's custom roles by name.
pub async fn list_workspace_roles(
    c: &mut Conn,
    account_id: &str,
) -> StorageResult<Vec<WorkspaceRoleRow>> {
    let rows = db_run!(c, |c| {
        workspace_roles::table
            .filter(workspace_roles::account_id.eq(account_id))
            .order((workspace_roles::name.asc(), workspace_roles::id.asc()))
            .select(WorkspaceRoleRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// How many grants name role `id`.
pub async fn role_grants(c: &mut Conn, id: &str) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        workspace_access::table
            .filter(workspace_access::role.eq(id))
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}

pub async fn delete_workspace_role(
    c: &mut Conn,
    account_id: &str,
    id: &str,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::delete(
            workspace_roles::table
                .filter(workspace_roles::account_id.eq(account_id))
                .filter(workspace_roles::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n > 0)
}

// ---- members ----

/// The account's users, by email.
pub async fn list_users(c: &mut Conn, account_id: &str) -> StorageResult<Vec<UserRow>> {
    let rows = db_run!(c, |c| {
        users::table
            .filter(users::account_id.eq(account_id))
            .order((users::email.asc(), users::id.asc()))
            .select(UserRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// The account's service accounts, by name.
pub async fn list_service_accounts(
    c: &mut Conn,
    account_id: &str,
) -> StorageResult<Vec<ServiceAccountRow>> {
    let rows = db_run!(c, |c| {
        service_accounts::table
            .filter(service_accounts::account_id.eq(account_id))
            .order((service_accounts::name.asc(), service_accounts::id.asc()))
            .select(ServiceAccountRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn user(c: &mut Conn, account_id: &str, id: &str) -> StorageResult<Option<UserRow>> {
    let row = db_run!(c, |c| {
        users::table
            .filter(users::account_id.eq(account_id))
            .filter(users::id.eq(id))
            .select(UserRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn user_by_id(c: &mut Conn, id: &str) -> StorageResult<Option<UserRow>> {
    let row = db_run!(c, |c| {
        users::table
            .filter(users::id.eq(id))
            .select(UserRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn service_account(
    c: &mut Conn,
    account_id: &str,
    id: &str,
) -> StorageResult<Option<ServiceAccountRow>> {
    let row = db_run!(c, |c| {
        service_accounts::table
            .filter(service_accounts::account_id.eq(account_id))
            .filter(service_accounts::id.eq(id))
            .select(ServiceAccountRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// Sets a member's account role; false when no such member.
pub async fn set_account_role(
    c: &mut Conn,
    kind: &str,
    id: &str,
    role: &str,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        if kind == USER {
            diesel::update(users::table.filter(users::id.eq(id)))
                .set((users::account_role.eq(role), users::updated.eq(now)))
                .execute(c)
                .await
        } else {
            diesel::update(service_accounts::table.filter(service_accounts::id.eq(id)))
                .set((
                    service_accounts::account_role.eq(role),
                    service_accounts::updated.eq(now),
                ))
                .execute(c)
                .await
        }
    })?;
    Ok(n > 0)
}

pub async fn rename_service_account(
    c: &mut Conn,
    id: &str,
    name: &str,
    now: NaiveDateTime,
) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::update(service_accounts::table.filter(service_accounts::id.eq(id)))
            .set((
                service_accounts::name.eq(name),
                service_accounts::updated.eq(now),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Removes a member with its keys, sessions, grants and team memberships; the hashes of the
/// keys it had (to drop from the cache). Run it in a transaction.
pub async fn delete_member(c: &mut Conn, kind: &str, id: &str) -> StorageResult<Vec<String>> {
    let hashes = db_run!(c, |c| {
        let hashes = api_keys::table
            .filter(api_keys::actor_id.eq(id))
            .filter(api_keys::actor_kind.eq(kind))
            .select(api_keys::key_hash)
            .load::<String>(c)
            .await?;
        diesel::delete(
            api_keys::table
                .filter(api_keys::actor_id.eq(id))
                .filter(api_keys::actor_kind.eq(kind)),
        )
        .execute(c)
        .await?;
        diesel::delete(
            workspace_access::table
                .filter(workspace_access::actor_kind.eq(kind))
                .filter(workspace_access::actor_id.eq(id)),
        )
        .execute(c)
        .await?;
        diesel::delete(
            team_members::table
                .filter(team_members::actor_kind.eq(kind))
                .filter(team_members::actor_id.eq(id)),
        )
        .execute(c)
        .await?;
        if kind == USER {
            diesel::delete(sessions::table.filter(sessions::user_id.eq(id)))
                .execute(c)
                .await?;
            diesel::delete(users::table.filter(users::id.eq(id)))
                .execute(c)
                .await?;
        } else {
            diesel::delete(service_accounts::table.filter(service_accounts::id.eq(id)))
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(hashes)
    })?;
    Ok(hashes)
}

/// The live (unrevoked) keys of an actor, newest first.
pub async fn keys_of(c: &mut Conn, kind: &str, actor_id: &str) -> StorageResult<Vec<KeyRow>> {
    let rows = db_run!(c, |c| {
        api_keys::table
            .filter(api_keys::actor_kind.eq(kind))
            .filter(api_keys::actor_id.eq(actor_id))
            .filter(api_keys::revoked.is_null())
            .order((api_keys::created.desc(), api_keys::id.desc()))
            .select(KeyRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

// ---- teams ----

pub async fn insert_team(c: &mut Conn, row: &TeamRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(teams::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn list_teams(c: &mut Conn, account_id: &str) -> StorageResult<Vec<TeamRow>> {
    let rows = db_run!(c, |c| {
        teams::table
            .filter(teams::account_id.eq(account_id))
            .order((teams::name.asc(), teams::id.asc()))
            .select(TeamRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn team(c: &mut Conn, account_id: &str, id: &str) -> StorageResult<Option<TeamRow>> {
    let row = db_run!(c, |c| {
        teams::table
            .filter(teams::account_id.eq(account_id))
            .filter(teams::id.eq(id))
            .select(TeamRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// Replaces a team's name and description (`Conflict` on a taken name).
pub async fn update_team(c: &mut Conn, row: &TeamRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::update(teams::table.filter(teams::id.eq(&row.id)))
            .set((
                teams::updated.eq(row.updated),
                teams::name.eq(&row.name),
                teams::description.eq(&row.description),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Removes a team, its members and its grants. Run it in a transaction.
pub async fn delete_team(c: &mut Conn, account_id: &str, id: &str) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        let n = diesel::delete(
            teams::table
                .filter(teams::account_id.eq(account_id))
                .filter(teams::id.eq(id)),
        )
        .execute(c)
        .await?;
        if n > 0 {
            diesel::delete(
                workspace_access::table
                    .filter(workspace_access::actor_kind.eq(TEAM))
                    .filter(workspace_access::actor_id.eq(id)),
            )
            .execute(c)
            .await?;
            diesel::delete(team_members::table.filter(team_members::team_id.eq(id)))
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(n)
    })?;
    Ok(n > 0)
}

/// (kind, id) of each member of team `team_id`.
pub async fn team_members(c: &mut Conn, team_id: &str) -> StorageResult<Vec<(String, String)>> {
    let rows = db_run!(c, |c| {
        team_members::table
            .filter(team_members::team_id.eq(team_id))
            .order((team_members::actor_kind.asc(), team_members::actor_id.asc()))
            .select((team_members::actor_kind, team_members::actor_id))
            .load::<(String, String)>(c)
            .await
    })?;
    Ok(rows)
}

pub async fn add_team_member(
    c: &mut Conn,
    team_id: &str,
    kind: &str,
    actor_id: &str,
) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(team_members::table)
            .values((
                team_members::team_id.eq(team_id),
                team_members::actor_kind.eq(kind),
                team_members::actor_id.eq(actor_id),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Removes `actor_id` (of either kind) from team `team_id`; false when it was not a member.
pub async fn remove_team_member(
    c: &mut Conn,
    team_id: &str,
    actor_id: &str,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::delete(
            team_members::table
                .filter(team_members::team_id.eq(team_id))
                .filter(team_members::actor_id.eq(actor_id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n > 0)
}

/// The teams (id, name) `actor_id` is a member of.
pub async fn teams_of(c: &mut Conn, actor_id: &str) -> StorageResult<Vec<(String, String)>> {
    let rows = db_run!(c, |c| {
        team_members::table
            .inner_join(teams::table.on(teams::id.eq(team_members::team_id)))
            .filter(team_members::actor_id.eq(actor_id))
            .order(teams::name.asc())
            .select((teams::id, teams::name))
            .load::<(String, String)>(c)
            .await
    })?;
    Ok(rows)
}

// ---- workspace access ----

/// The grants of workspace `ws` to actors of `kind` (all kinds with `None`).
pub async fn access_in(
    c: &mut Conn,
    ws: &str,
    kind: Option<&str>,
) -> StorageResult<Vec<AccessRow>> {
    let rows = db_run!(c, |c| {
        let mut q = workspace_access::table
            .filter(workspace_access::workspace_id.eq(ws))
            .into_boxed();
        if let Some(k) = kind {
            q = q.filter(workspace_access::actor_kind.eq(k));
        }
        q.order((
            workspace_access::created.asc(),
            workspace_access::actor_id.asc(),
        ))
        .select(AccessRow::as_select())
        .load(c)
        .await
    })?;
    Ok(rows)
}

/// The workspaces (id, role) a team holds roles in.
pub async fn access_of(c: &mut Conn, kind: &str, actor_id: &str) -> StorageResult<Vec<AccessRow>> {
    let rows = db_run!(c, |c| {
        workspace_access::table
            .filter(workspace_access::actor_kind.eq(kind))
            .filter(workspace_access::actor_id.eq(actor_id))
            .select(AccessRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Removes the grant of `ws` to `actor_id` of `kind`; false when there was none.
pub async fn revoke_access(
    c: &mut Conn,
    ws: &str,
    kind: &str,
    actor_id: &str,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::delete(
            workspace_access::table
                .filter(workspace_access::workspace_id.eq(ws))
                .filter(workspace_access::actor_kind.eq(kind))
                .filter(workspace_access::actor_id.eq(actor_id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n > 0)
}

/// The kind constant for a Cloud accessor name (`user`, `bot`/`service_account`, `team`).
pub fn kind_named(name: &str) -> Option<&'static str> {
    match name {
        "user" => Some(USER),
        "bot" | "service_account" => Some(SERVICE_ACCOUNT),
        "team" => Some(TEAM),
        _ => None,
    }
}

// ---- browser sessions ----

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: String,
    pub created: NaiveDateTime,
    pub expires: NaiveDateTime,
    pub csrf_token: String,
    pub revoked: Option<NaiveDateTime>,
}

pub async fn insert_session(c: &mut Conn, row: &SessionRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(sessions::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// The live session whose token hash is `hash` (not revoked, not expired at `now`).
pub async fn live_session(
    c: &mut Conn,
    hash: &str,
    now: NaiveDateTime,
) -> StorageResult<Option<SessionRow>> {
    let row = db_run!(c, |c| {
        sessions::table
            .filter(sessions::token_hash.eq(hash))
            .filter(sessions::revoked.is_null())
            .filter(sessions::expires.gt(now))
            .select(SessionRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// Revokes the session whose token hash is `hash`.
pub async fn revoke_session(c: &mut Conn, hash: &str, now: NaiveDateTime) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::update(sessions::table.filter(sessions::token_hash.eq(hash)))
            .set(sessions::revoked.eq(now))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Revokes every live session of `user_id`; the token hashes revoked (to drop from the cache).
pub async fn revoke_sessions_of(
    c: &mut Conn,
    user_id: &str,
    now: NaiveDateTime,
) -> StorageResult<Vec<String>> {
    let hashes = db_run!(c, |c| {
        let hashes = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked.is_null())
            .select(sessions::token_hash)
            .load::<String>(c)
            .await?;
        diesel::update(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::revoked.is_null()),
        )
        .set(sessions::revoked.eq(now))
        .execute(c)
        .await?;
        Ok::<_, diesel::result::Error>(hashes)
    })?;
    Ok(hashes)
}

/// Sets a user's password hash.
pub async fn set_password(
    c: &mut Conn,
    user_id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::update(users::table.filter(users::id.eq(user_id)))
            .set((users::password_hash.eq(hash), users::updated.eq(now)))
            .execute(c)
            .await
    })?;
    Ok(n > 0)
}
