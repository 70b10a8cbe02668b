//! API keys: their rows, the installation's hashing secret, and the credential a key's hash
//! stands for.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{actor, custom_roles_in, roles_of, Actor, WorkspaceRoleRow};
use crate::db_run;
use crate::storage::schema::{api_keys, auth_secrets};
use crate::storage::{Conn, StorageError, StorageResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct KeyRow {
    pub id: String,
    pub created: NaiveDateTime,
    pub name: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub key_hash: String,
    pub expires: Option<NaiveDateTime>,
    pub last_used: Option<NaiveDateTime>,
    pub revoked: Option<NaiveDateTime>,
}

/// A live key's actor and the workspace roles it holds (directly or through its teams; an
/// account owner or admin is owner of every workspace of its account).
#[derive(Debug, Clone)]
pub struct Credential {
    pub key_id: String,
    pub expires: Option<NaiveDateTime>,
    pub actor: Actor,
    /// Workspace id → roles granted: built-in role names or custom role ids.
    pub roles: BTreeMap<String, Vec<String>>,
    /// The custom roles among them.
    pub custom: Vec<WorkspaceRoleRow>,
}

/// The installation's secret named `name`, if it was made.
pub async fn find_secret(c: &mut Conn, name: &str) -> StorageResult<Option<String>> {
    let value = db_run!(c, |c| {
        auth_secrets::table
            .filter(auth_secrets::name.eq(name))
            .select(auth_secrets::value)
            .first::<String>(c)
            .await
            .optional()
    })?;
    Ok(value)
}

/// The installation's secret named `name`, made from `fresh` when missing (concurrent first
/// starts agree: the first insert wins and everyone reads it back). A write.
pub async fn ensure_secret(c: &mut Conn, name: &str, fresh: &str) -> StorageResult<String> {
    db_run!(c, |c| {
        diesel::insert_into(auth_secrets::table)
            .values((auth_secrets::name.eq(name), auth_secrets::value.eq(fresh)))
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    find_secret(c, name).await?.ok_or(StorageError::NotFound)
}

pub async fn insert_key(c: &mut Conn, row: &KeyRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(api_keys::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Revokes key `id`; false when there is no such key or it was revoked already.
pub async fn revoke_key(c: &mut Conn, id: &str, now: NaiveDateTime) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::update(
            api_keys::table
                .filter(api_keys::id.eq(id))
                .filter(api_keys::revoked.is_null()),
        )
        .set(api_keys::revoked.eq(now))
        .execute(c)
        .await
    })?;
    Ok(n > 0)
}

/// Sets when key `id` expires (rotation's grace period for the old key); false when no key has
/// that id.
pub async fn set_key_expiry(
    c: &mut Conn,
    id: &str,
    expires: Option<NaiveDateTime>,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::update(api_keys::table.filter(api_keys::id.eq(id)))
            .set(api_keys::expires.eq(expires))
            .execute(c)
            .await
    })?;
    Ok(n > 0)
}

/// The hash of key `id` (to drop it from the cache when it is revoked).
pub async fn key_hash(c: &mut Conn, id: &str) -> StorageResult<Option<String>> {
    let h = db_run!(c, |c| {
        api_keys::table
            .filter(api_keys::id.eq(id))
            .select(api_keys::key_hash)
            .first::<String>(c)
            .await
            .optional()
    })?;
    Ok(h)
}

/// Every key, oldest first, with the name of its actor (email for users).
pub async fn list_keys(c: &mut Conn) -> StorageResult<Vec<(KeyRow, Option<String>)>> {
    let keys = db_run!(c, |c| {
        api_keys::table
            .order((api_keys::created.asc(), api_keys::id.asc()))
            .select(KeyRow::as_select())
            .load(c)
            .await
    })?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let who = actor(c, &k.actor_kind, &k.actor_id).await?.map(|a| a.name);
        out.push((k, who));
    }
    Ok(out)
}

/// The live key (not revoked, not expired at `now`) whose hash is `hash`, with its actor's
/// workspace roles. A read: [`touch_key`] records the use.
pub async fn credential(
    c: &mut Conn,
    hash: &str,
    now: NaiveDateTime,
) -> StorageResult<Option<Credential>> {
    let key = db_run!(c, |c| {
        api_keys::table
            .filter(api_keys::key_hash.eq(hash))
            .filter(api_keys::revoked.is_null())
            .select(KeyRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    let Some(key) = key.filter(|k| k.expires.is_none_or(|e| e > now)) else {
        return Ok(None);
    };
    let Some(actor) = actor(c, &key.actor_kind, &key.actor_id).await? else {
        return Ok(None);
    };
    let roles = roles_of(c, &actor).await?;
    let custom = custom_roles_in(c, &roles).await?;
    Ok(Some(Credential {
        key_id: key.id,
        expires: key.expires,
        actor,
        roles,
        custom,
    }))
}

/// Records that key `id` was used at `now`.
pub async fn touch_key(c: &mut Conn, id: &str, now: NaiveDateTime) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::update(api_keys::table.filter(api_keys::id.eq(id)))
            .set(api_keys::last_used.eq(now))
            .execute(c)
            .await
    })?;
    Ok(())
}
