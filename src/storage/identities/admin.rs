//! Accounts and their workspaces as the admin API reads and changes them, and the record of a
//! deleted workspace whose rows are still being deleted. (Roles, members, teams, access and
//! sessions are beside this file. Ids double as Prefect Cloud's membership and access ids: a
//! membership is its user's or service account's id, an access is its grantee's id.)

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db_run;
use crate::storage::schema::{accounts, workspace_access, workspace_deletions, workspaces};
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

/// Workspace `id`, whatever its account.
pub async fn workspace_by_id(c: &mut Conn, id: &str) -> StorageResult<Option<WorkspaceRow>> {
    let row = db_run!(c, |c| {
        workspaces::table
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
