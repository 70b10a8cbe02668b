//! Custom workspace roles: a set of scopes and the built-in role they inherit.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db_run;
use crate::storage::schema::{workspace_access, workspace_roles};
use crate::storage::{Conn, StorageResult};

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
