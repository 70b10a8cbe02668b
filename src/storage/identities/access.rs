//! Workspace access: which role a user, service account or team holds in a workspace.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db_run;
use crate::storage::schema::workspace_access;
use crate::storage::{Conn, StorageResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workspace_access)]
pub struct AccessRow {
    pub workspace_id: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub role: String,
    pub created: NaiveDateTime,
}

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
