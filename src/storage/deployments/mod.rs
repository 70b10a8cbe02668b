//! Deployments and their schedules: upsert by (flow, name), reads, filters, updates, deletes
//! (here), schedule CRUD and the removal of future auto-scheduled runs when schedules change
//! (`schedules.rs`), the runner poll (`get_scheduled_flow_runs` by deployment) and what the
//! scheduler reads and inserts (`scheduled.rs`).
//!
//! A change of several statements (a deployment's upsert or PATCH with its schedules, a
//! schedule's change with the removal of the runs planned from it) is one transaction of the
//! caller that calls several of these functions.

mod scheduled;
mod schedules;

pub use scheduled::{
    insert_scheduled_runs, list_schedulable, scheduled_keys_in_window, scheduled_runs,
    scheduler_batching, Batching, IfPaused,
};
pub use schedules::{
    delete_future_auto_runs, delete_schedule, delete_schedules_of, insert_schedules,
    list_schedules, replace_schedules, update_schedule, ScheduleRow,
};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::pools;
use super::schema::{deployments, flow_runs, flows};
use super::{Conn, StorageResult};
use crate::db_run;
use crate::ids::{DeploymentId, FlowId, WorkspaceId};
use crate::query::DeploymentSort;
use crate::query::{Page, Related};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = deployments, treat_none_as_null = true)]
pub struct DeploymentRow {
    pub id: DeploymentId,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub flow_id: FlowId,
    pub paused: bool,
    pub concurrency_limit: Option<i32>,
    pub concurrency_options: Option<String>,
    pub global_concurrency_limit_id: Option<String>,
    pub job_variables: String,
    pub parameters: String,
    pub tags: String,
    pub labels: String,
    pub work_queue_name: Option<String>,
    pub work_queue_id: Option<String>,
    pub last_polled: Option<NaiveDateTime>,
    pub parameter_openapi_schema: Option<String>,
    pub path: Option<String>,
    pub pull_steps: Option<String>,
    pub entrypoint: Option<String>,
    pub storage_document_id: Option<String>,
    pub infrastructure_document_id: Option<String>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub status: String,
    pub enforce_parameter_schema: bool,
    pub version_info: Option<String>,
}

/// Inserts the deployment, or updates the one with the same flow and name (keeping its id,
/// creation time, status and last poll) and replaces its schedules, deleting that deployment's
/// future auto-scheduled runs. Returns (row, created). Run it inside the caller's transaction:
/// its statements belong together.
pub async fn upsert(
    c: &mut Conn,
    row: &DeploymentRow,
    schedules: &[ScheduleRow],
    now: NaiveDateTime,
) -> StorageResult<(DeploymentRow, bool)> {
    let existing = find_by_flow(c, &row.workspace_id, &row.flow_id, &row.name).await?;
    let (saved, created) = match existing {
        Some(old) => {
            let mut next = row.clone();
            next.id = old.id.clone();
            next.created = old.created;
            next.status = old.status.clone();
            next.last_polled = old.last_polled;
            update(c, &next).await?;
            delete_schedules_of(c, &old.id).await?;
            delete_future_auto_runs(c, &old.id, now).await?;
            (next, false)
        }
        None => {
            insert(c, row).await?;
            (row.clone(), true)
        }
    };
    let rows: Vec<ScheduleRow> = schedules
        .iter()
        .map(|s| ScheduleRow {
            deployment_id: saved.id.clone(),
            ..s.clone()
        })
        .collect();
    insert_schedules(c, &rows).await?;
    Ok((saved, created))
}

/// The deployment of flow `flow_id` named `name`.
pub async fn find_by_flow(
    c: &mut Conn,
    ws: &WorkspaceId,
    flow_id: &FlowId,
    name: &str,
) -> StorageResult<Option<DeploymentRow>> {
    let row = db_run!(c, |c| {
        deployments::table
            .filter(deployments::workspace_id.eq(ws))
            .filter(deployments::flow_id.eq(flow_id))
            .filter(deployments::name.eq(name))
            .select(DeploymentRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn insert(c: &mut Conn, row: &DeploymentRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::insert_into(deployments::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Saves every column of the deployment `row.id`.
pub async fn update(c: &mut Conn, row: &DeploymentRow) -> StorageResult<()> {
    db_run!(c, |c| {
        diesel::update(deployments::table.filter(deployments::id.eq(&row.id)))
            .set(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn find(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &DeploymentId,
) -> StorageResult<Option<DeploymentRow>> {
    let row = db_run!(c, |c| {
        deployments::table
            .filter(deployments::workspace_id.eq(ws))
            .filter(deployments::id.eq(id))
            .select(DeploymentRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn find_by_name(
    c: &mut Conn,
    ws: &WorkspaceId,
    flow_name: &str,
    name: &str,
) -> StorageResult<Option<DeploymentRow>> {
    let row = db_run!(c, |c| {
        deployments::table
            .inner_join(flows::table.on(flows::id.eq(deployments::flow_id)))
            .filter(deployments::workspace_id.eq(ws))
            .filter(flows::name.eq(flow_name))
            .filter(deployments::name.eq(name))
            .select(DeploymentRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// One page of the deployments matching the filters (deployment, flow, flow run, task run,
/// work pool and queue filters), in `sort` order.
pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    sort: DeploymentSort,
    page: Page,
) -> StorageResult<Vec<DeploymentRow>> {
    let rows = db_run!(c, |c| {
        let cond = pools::deployments_related(related);
        let mut q = deployments::table
            .filter(deployments::workspace_id.eq(ws))
            .filter(cond)
            .select(DeploymentRow::as_select())
            .into_boxed();
        q = match sort {
            DeploymentSort::NameDesc => q.order((deployments::name.desc(), deployments::id.desc())),
            DeploymentSort::CreatedDesc => {
                q.order((deployments::created.desc(), deployments::id.desc()))
            }
            DeploymentSort::UpdatedDesc => {
                q.order((deployments::updated.desc(), deployments::id.desc()))
            }
            DeploymentSort::NameAsc => q.order((deployments::name.asc(), deployments::id.asc())),
        };
        q.limit(page.limit).offset(page.offset).load(c).await
    })?;
    Ok(rows)
}

/// How many deployments match the filters (one COUNT query).
pub async fn count(c: &mut Conn, ws: &WorkspaceId, related: &Related) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = pools::deployments_related(related);
        deployments::table
            .filter(deployments::workspace_id.eq(ws))
            .filter(cond)
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}

/// The number of deployments of each of `flows` that has any (one grouped query).
pub async fn count_by_flow(
    c: &mut Conn,
    ws: &WorkspaceId,
    flows: &[FlowId],
) -> StorageResult<Vec<(FlowId, i64)>> {
    if flows.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db_run!(c, |c| {
        deployments::table
            .filter(deployments::workspace_id.eq(ws))
            .filter(deployments::flow_id.eq_any(flows))
            .group_by(deployments::flow_id)
            .select((deployments::flow_id, diesel::dsl::count_star()))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Pauses or resumes deployment `id` of `ws`, writing only `paused` and `updated` (so a
/// concurrent PATCH or poll is not undone); false when there is no such deployment.
pub async fn set_paused(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &DeploymentId,
    paused: bool,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| diesel::update(
        deployments::table
            .filter(deployments::workspace_id.eq(ws))
            .filter(deployments::id.eq(id))
    )
    .set((deployments::paused.eq(paused), deployments::updated.eq(now)))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// Deletes deployment `id` of `ws` with its SCHEDULED auto-scheduled runs, in one transaction;
/// false when there is no such deployment.
pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &DeploymentId) -> StorageResult<bool> {
    c.transaction(async |c| {
        // The deployment first: its row lock waits for a scheduler pass that holds the row
        // (`insert_scheduled_runs` reads it `FOR SHARE`), so the runs are deleted after that
        // pass committed, its runs included. Runs first would miss them (orphans).
        let n = db_run!(c, |c| {
            let n = diesel::delete(
                deployments::table
                    .filter(deployments::workspace_id.eq(ws))
                    .filter(deployments::id.eq(id)),
            )
            .execute(c)
            .await?;
            // Only the runs of a deployment of this workspace that was there.
            if n == 1 {
                diesel::delete(
                    flow_runs::table
                        .filter(flow_runs::deployment_id.eq(id))
                        .filter(flow_runs::auto_scheduled.eq(true))
                        .filter(flow_runs::state_type.eq("SCHEDULED")),
                )
                .execute(c)
                .await?;
            }
            Ok::<_, diesel::result::Error>(n)
        })?;
        Ok(n == 1)
    })
    .await
}
