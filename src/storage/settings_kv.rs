//! Per-workspace server configuration values (e.g. the default result storage block).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::configuration;
use super::{Conn, StorageResult};
use crate::db_run;
use crate::ids::WorkspaceId;

/// The value of `key` in the workspace (`None` when unset).
pub async fn find(c: &mut Conn, ws: &WorkspaceId, key: &str) -> StorageResult<Option<String>> {
    let v = db_run!(c, |c| {
        configuration::table
            .filter(configuration::workspace_id.eq(ws))
            .filter(configuration::key.eq(key))
            .select(configuration::value)
            .first::<Option<String>>(c)
            .await
            .optional()
    })?;
    Ok(v.flatten())
}

/// Sets (or, with `None`, clears) the value of `key` in the workspace.
pub async fn upsert(
    c: &mut Conn,
    ws: &WorkspaceId,
    key: &str,
    value: Option<&str>,
) -> StorageResult<()> {
    let now = crate::time::now_naive();
    db_run!(c, |c| {
        diesel::insert_into(configuration::table)
            .values((
                configuration::workspace_id.eq(ws),
                configuration::key.eq(key),
                configuration::value.eq(value),
                configuration::updated.eq(now),
            ))
            .on_conflict((configuration::workspace_id, configuration::key))
            .do_update()
            .set((
                configuration::value.eq(value),
                configuration::updated.eq(now),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}
