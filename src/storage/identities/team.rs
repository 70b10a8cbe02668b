//! Teams of an account and their members.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::TEAM;
use crate::db_run;
use crate::storage::schema::{team_members, teams, workspace_access};
use crate::storage::{Conn, StorageResult};

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
