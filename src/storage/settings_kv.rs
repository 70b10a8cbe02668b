//! Per-workspace server configuration values (e.g. the default result storage block).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::configuration;
use super::{Database, StorageResult};
use crate::db_run;

pub async fn get(db: &Database, ws: &str, key: &str) -> StorageResult<Option<String>> {
    let mut conn = db.read().await?;
    let v = db_run!(conn, |c| {
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

pub async fn set(db: &Database, ws: &str, key: &str, value: Option<&str>) -> StorageResult<()> {
    let now = crate::time::now_naive();
    let mut conn = db.session().await?;
    db_run!(conn, |c| {
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
