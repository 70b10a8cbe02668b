//! A deployment's schedules: reads, inserts, replacement, updates, deletes, and the removal of
//! the future auto-scheduled runs planned from them (for the scheduler to plan again from what
//! is stored). The caller's transaction puts a schedule's change and that removal together.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::super::schema::{deployment_schedules, flow_runs};
use super::super::{Conn, StorageResult};
use crate::db_run;
use crate::ids::{DeploymentId, WorkspaceId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = deployment_schedules, treat_none_as_null = true)]
pub struct ScheduleRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub deployment_id: DeploymentId,
    pub schedule: String,
    pub active: bool,
    pub max_scheduled_runs: Option<i32>,
    pub parameters: String,
    pub slug: Option<String>,
}

/// The schedules of these deployments, the most recently updated first (the reference's
/// order; rows written by one request are stamped a microsecond apart in the order sent).
pub async fn list_schedules(
    c: &mut Conn,
    deployment_ids: &[DeploymentId],
) -> StorageResult<Vec<ScheduleRow>> {
    let rows = db_run!(c, |c| {
        deployment_schedules::table
            .filter(deployment_schedules::deployment_id.eq_any(deployment_ids))
            .order((
                deployment_schedules::updated.desc(),
                deployment_schedules::created.desc(),
                deployment_schedules::id.desc(),
            ))
            .select(ScheduleRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Inserts schedules (a duplicate slug is a `Conflict`; in the caller's transaction, none of
/// them is then written).
pub async fn insert_schedules(c: &mut Conn, rows: &[ScheduleRow]) -> StorageResult<()> {
    db_run!(c, |c| {
        for r in rows {
            diesel::insert_into(deployment_schedules::table)
                .values(r)
                .execute(c)
                .await?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// Deletes every schedule of deployment `deployment_id`.
pub async fn delete_schedules_of(
    c: &mut Conn,
    deployment_id: &DeploymentId,
) -> StorageResult<usize> {
    let n = db_run!(c, |c| {
        diesel::delete(
            deployment_schedules::table
                .filter(deployment_schedules::deployment_id.eq(deployment_id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n)
}

/// Replaces the schedules of deployment `deployment_id` by `rows` (run it in the caller's
/// transaction).
pub async fn replace_schedules(
    c: &mut Conn,
    deployment_id: &DeploymentId,
    rows: &[ScheduleRow],
) -> StorageResult<()> {
    delete_schedules_of(c, deployment_id).await?;
    insert_schedules(c, rows).await
}

/// Saves every column of schedule `row.id`.
pub async fn update_schedule(c: &mut Conn, row: &ScheduleRow) -> StorageResult<()> {
    db_run!(c, |c| diesel::update(
        deployment_schedules::table.filter(deployment_schedules::id.eq(&row.id))
    )
    .set(row)
    .execute(c)
    .await)?;
    Ok(())
}

/// Deletes schedule `id` of deployment `deployment_id`; false when there is no such schedule.
pub async fn delete_schedule(
    c: &mut Conn,
    deployment_id: &DeploymentId,
    id: &str,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::delete(
            deployment_schedules::table
                .filter(deployment_schedules::deployment_id.eq(deployment_id))
                .filter(deployment_schedules::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// Deletes the auto-scheduled runs of deployment `deployment_id` still SCHEDULED from `from` on
/// (so the scheduler regenerates them from the current schedules); returns how many.
pub async fn delete_future_auto_runs(
    c: &mut Conn,
    deployment_id: &DeploymentId,
    from: NaiveDateTime,
) -> StorageResult<usize> {
    let n = db_run!(c, |c| {
        diesel::delete(
            flow_runs::table
                .filter(flow_runs::deployment_id.eq(deployment_id))
                .filter(flow_runs::auto_scheduled.eq(true))
                .filter(flow_runs::state_type.eq("SCHEDULED"))
                .filter(flow_runs::next_scheduled_start_time.ge(from)),
        )
        .execute(c)
        .await
    })?;
    Ok(n)
}
