//! An account's members: its users and service accounts, their account roles, removing them
//! (with their keys, grants, team memberships and sessions), and their live keys.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{KeyRow, ServiceAccountRow, UserRow, USER};
use crate::db_run;
use crate::storage::schema::{
    api_keys, service_accounts, sessions, team_members, users, workspace_access,
};
use crate::storage::{Conn, StorageResult};

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
