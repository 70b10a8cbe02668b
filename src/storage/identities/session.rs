//! Browser sessions (only their token's hash) and users' passwords.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db_run;
use crate::storage::schema::{sessions, users};
use crate::storage::{Conn, StorageResult};

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
