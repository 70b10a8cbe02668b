//! Accounts and workspaces (nebula): the default pair created at first start, and the lookups
//! that resolve a workspace-scoped URL.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{accounts, workspaces};
use super::{Conn, StorageResult};
use crate::db_run;

/// The account every installation has; documented in the README.
pub const DEFAULT_ACCOUNT_ID: &str = "00000000-0000-4000-8000-000000000001";
/// The workspace plain `/api/...` URLs resolve to; documented in the README.
pub const DEFAULT_WORKSPACE_ID: &str = "00000000-0000-4000-8000-000000000002";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workspaces)]
pub struct Workspace {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub handle: String,
}

/// Creates the default account and workspace if they are missing (idempotent).
pub async fn insert_defaults(c: &mut Conn) -> StorageResult<()> {
    let now = crate::time::now_naive();
    db_run!(c, |c| {
        diesel::insert_into(accounts::table)
            .values((
                accounts::id.eq(DEFAULT_ACCOUNT_ID),
                accounts::created.eq(now),
                accounts::updated.eq(now),
                accounts::name.eq("Default account"),
                accounts::handle.eq("default"),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await?;
        diesel::insert_into(workspaces::table)
            .values((
                workspaces::id.eq(DEFAULT_WORKSPACE_ID),
                workspaces::account_id.eq(DEFAULT_ACCOUNT_ID),
                workspaces::created.eq(now),
                workspaces::updated.eq(now),
                workspaces::name.eq("Default workspace"),
                workspaces::handle.eq("default"),
                workspaces::description
                    .eq("The workspace that /api/... URLs without an account resolve to."),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await?;
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// The workspace `workspace_id` of account `account_id`, if both exist and belong together.
pub async fn find_workspace(
    c: &mut Conn,
    account_id: &str,
    workspace_id: &str,
) -> StorageResult<Option<Workspace>> {
    let found = db_run!(c, |c| {
        workspaces::table
            .filter(workspaces::id.eq(workspace_id))
            .filter(workspaces::account_id.eq(account_id))
            .select(Workspace::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(found)
}
