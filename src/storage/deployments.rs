//! Deployments and their schedules: upsert by (flow, name), reads, filters, updates, deletes,
//! schedule CRUD, the runner poll (`get_scheduled_flow_runs` by deployment), and the removal
//! of future auto-scheduled runs when schedules change.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;

use super::filters::{NameFilter, Page, StringsFilter, TagsFilter};
use super::rows::{FlowRow, FlowRunRow};
use super::schema::{deployment_schedules, deployments, flow_runs, flows};
use super::{Database, StorageResult};
use crate::db_run;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = deployments, treat_none_as_null = true)]
pub struct DeploymentRow {
    pub id: String,
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub flow_id: String,
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

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = deployment_schedules, treat_none_as_null = true)]
pub struct ScheduleRow {
    pub id: String,
    pub workspace_id: String,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub deployment_id: String,
    pub schedule: String,
    pub active: bool,
    pub max_scheduled_runs: Option<i32>,
    pub parameters: String,
    pub slug: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeploymentFilter {
    pub operator: super::filters::Operator,
    pub concurrency_limit: Option<serde_json::Value>,
    pub id: Option<super::filters::IdFilter>,
    pub name: Option<NameFilter>,
    pub flow_or_deployment_name: Option<NameFilter>,
    pub paused: Option<EqBool>,
    pub tags: Option<TagsFilter>,
    pub work_queue_name: Option<StringsFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EqBool {
    pub eq_: Option<bool>,
}

/// Inserts the deployment, or updates the one with the same flow and name (keeping its id and
/// creation time) and replaces its schedules; deletes the old deployment's future
/// auto-scheduled runs. Returns (row, created).
pub async fn upsert(
    db: &Database,
    row: &DeploymentRow,
    schedules: &[ScheduleRow],
    now: NaiveDateTime,
) -> StorageResult<(DeploymentRow, bool)> {
    let mut conn = db.write().await?;
    let out = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let existing: Option<DeploymentRow> = deployments::table
                .filter(deployments::workspace_id.eq(&row.workspace_id))
                .filter(deployments::flow_id.eq(&row.flow_id))
                .filter(deployments::name.eq(&row.name))
                .select(DeploymentRow::as_select())
                .first(c)
                .await
                .optional()?;
            let (saved, created) = match existing {
                Some(old) => {
                    let mut next = row.clone();
                    next.id = old.id.clone();
                    next.created = old.created;
                    next.status = old.status.clone();
                    next.last_polled = old.last_polled;
                    diesel::update(deployments::table.filter(deployments::id.eq(&old.id)))
                        .set(&next)
                        .execute(c)
                        .await?;
                    diesel::delete(
                        deployment_schedules::table
                            .filter(deployment_schedules::deployment_id.eq(&old.id)),
                    )
                    .execute(c)
                    .await?;
                    diesel::delete(
                        flow_runs::table
                            .filter(flow_runs::deployment_id.eq(&old.id))
                            .filter(flow_runs::auto_scheduled.eq(true))
                            .filter(flow_runs::state_type.eq("SCHEDULED"))
                            .filter(flow_runs::next_scheduled_start_time.ge(now)),
                    )
                    .execute(c)
                    .await?;
                    (next, false)
                }
                None => {
                    diesel::insert_into(deployments::table)
                        .values(row)
                        .execute(c)
                        .await?;
                    (row.clone(), true)
                }
            };
            for s in schedules {
                let s = ScheduleRow {
                    deployment_id: saved.id.clone(),
                    ..s.clone()
                };
                diesel::insert_into(deployment_schedules::table)
                    .values(&s)
                    .execute(c)
                    .await?;
            }
            Ok((saved, created))
        })
        .await
    })?;
    Ok(out)
}

pub async fn find(db: &Database, ws: &str, id: &str) -> StorageResult<Option<DeploymentRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
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
    db: &Database,
    ws: &str,
    flow_name: &str,
    name: &str,
) -> StorageResult<Option<DeploymentRow>> {
    let mut conn = db.read().await?;
    let row = db_run!(conn, |c| {
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

/// Deployments matching the filter (plus a flow-name filter), with their flows.
pub async fn list(
    db: &Database,
    ws: &str,
    f: &DeploymentFilter,
    flow_names: Option<&[String]>,
    pool_names: Option<&[String]>,
    sort_name_desc: Option<&str>,
    page: Page,
) -> StorageResult<Vec<(DeploymentRow, FlowRow)>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        let mut q = deployments::table
            .inner_join(flows::table.on(flows::id.eq(deployments::flow_id)))
            .filter(deployments::workspace_id.eq(ws))
            .select((DeploymentRow::as_select(), FlowRow::as_select()))
            .into_boxed();
        if let Some(v) = f.id.as_ref().and_then(|i| i.any_.as_ref()) {
            q = q.filter(
                deployments::id.eq_any(v.iter().map(|u| u.to_string()).collect::<Vec<_>>()),
            );
        }
        if let Some(v) = f.id.as_ref().and_then(|i| i.not_any_.as_ref()) {
            q = q.filter(
                deployments::id.ne_all(v.iter().map(|u| u.to_string()).collect::<Vec<_>>()),
            );
        }
        if let Some(n) = &f.name {
            if let Some(v) = &n.any_ {
                q = q.filter(deployments::name.eq_any(v.clone()));
            }
            if let Some(l) = &n.like_ {
                q = q.filter(
                    super::filters::lower(deployments::name)
                        .like(format!("%{}%", l.to_lowercase())),
                );
            }
        }
        if let Some(l) = f
            .flow_or_deployment_name
            .as_ref()
            .and_then(|n| n.like_.as_ref())
        {
            let pat = format!("%{}%", l.to_lowercase());
            q = q.filter(
                super::filters::lower(deployments::name)
                    .like(pat.clone())
                    .or(super::filters::lower(flows::name).like(pat)),
            );
        }
        if let Some(p) = f.paused.as_ref().and_then(|p| p.eq_) {
            q = q.filter(deployments::paused.eq(p));
        }
        if let Some(t) = &f.tags {
            for tag in t.all_.iter().flatten() {
                q = q.filter(
                    deployments::tags
                        .like(super::filters::tag_pattern(tag))
                        .escape('\\'),
                );
            }
            if let Some(true) = t.is_null_ {
                q = q.filter(deployments::tags.eq("[]"));
            }
        }
        if let Some(v) = f.work_queue_name.as_ref().and_then(|w| w.any_.as_ref()) {
            q = q.filter(deployments::work_queue_name.eq_any(v.clone()));
        }
        if let Some(names) = flow_names {
            q = q.filter(flows::name.eq_any(names.to_vec()));
        }
        if let Some(names) = pool_names {
            use super::schema::{work_pools, work_queues};
            let pools = work_pools::table
                .filter(work_pools::name.eq_any(names.to_vec()))
                .select(work_pools::id);
            let queues = work_queues::table
                .filter(work_queues::work_pool_id.eq_any(pools))
                .select(work_queues::id.nullable());
            q = q.filter(deployments::work_queue_id.eq_any(queues));
        }
        q = match sort_name_desc {
            Some("NAME_DESC") => q.order((deployments::name.desc(), deployments::id.desc())),
            Some("CREATED_DESC") => q.order((deployments::created.desc(), deployments::id.desc())),
            Some("UPDATED_DESC") => q.order((deployments::updated.desc(), deployments::id.desc())),
            _ => q.order((deployments::name.asc(), deployments::id.asc())),
        };
        q.limit(page.limit).offset(page.offset).load(c).await
    })?;
    Ok(rows)
}

pub async fn save(db: &Database, row: &DeploymentRow) -> StorageResult<()> {
    let mut conn = db.write().await?;
    db_run!(conn, |c| diesel::update(
        deployments::table.filter(deployments::id.eq(&row.id))
    )
    .set(row)
    .execute(c)
    .await)?;
    Ok(())
}

pub async fn delete(db: &Database, ws: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.write().await?;
    let n = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            diesel::delete(
                flow_runs::table
                    .filter(flow_runs::deployment_id.eq(id))
                    .filter(flow_runs::auto_scheduled.eq(true))
                    .filter(flow_runs::state_type.eq("SCHEDULED")),
            )
            .execute(c)
            .await?;
            diesel::delete(
                deployments::table
                    .filter(deployments::workspace_id.eq(ws))
                    .filter(deployments::id.eq(id)),
            )
            .execute(c)
            .await
        })
        .await
    })?;
    Ok(n == 1)
}

/// Deletes the deployment's SCHEDULED auto-scheduled runs at or after `from` (so the scheduler
/// regenerates them from the current schedules).
pub async fn delete_future_auto_runs(
    db: &Database,
    deployment_id: &str,
    from: NaiveDateTime,
) -> StorageResult<usize> {
    let mut conn = db.write().await?;
    let n = db_run!(conn, |c| {
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

pub async fn schedules(
    db: &Database,
    deployment_ids: &[String],
) -> StorageResult<Vec<ScheduleRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        deployment_schedules::table
            .filter(deployment_schedules::deployment_id.eq_any(deployment_ids))
            .order((
                deployment_schedules::created.asc(),
                deployment_schedules::id.asc(),
            ))
            .select(ScheduleRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn insert_schedules(db: &Database, rows: &[ScheduleRow]) -> StorageResult<()> {
    let mut conn = db.write().await?;
    db_run!(conn, |c| {
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

pub async fn save_schedule(db: &Database, row: &ScheduleRow) -> StorageResult<()> {
    let mut conn = db.write().await?;
    db_run!(conn, |c| diesel::update(
        deployment_schedules::table.filter(deployment_schedules::id.eq(&row.id))
    )
    .set(row)
    .execute(c)
    .await)?;
    Ok(())
}

pub async fn delete_schedule(db: &Database, deployment_id: &str, id: &str) -> StorageResult<bool> {
    let mut conn = db.write().await?;
    let n = db_run!(conn, |c| {
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

/// SCHEDULED runs of the deployments due by `before`, soonest first; marks the deployments
/// polled and READY.
pub async fn scheduled_runs(
    db: &Database,
    ws: &str,
    ids: &[String],
    before: NaiveDateTime,
    limit: i64,
    now: NaiveDateTime,
) -> StorageResult<Vec<FlowRunRow>> {
    let mut conn = db.write().await?;
    let rows = db_run!(conn, |c| {
        diesel::update(
            deployments::table
                .filter(deployments::workspace_id.eq(ws))
                .filter(deployments::id.eq_any(ids)),
        )
        .set((
            deployments::last_polled.eq(now),
            deployments::status.eq("READY"),
        ))
        .execute(c)
        .await?;
        flow_runs::table
            .filter(flow_runs::workspace_id.eq(ws))
            .filter(flow_runs::deployment_id.eq_any(ids))
            .filter(flow_runs::state_type.eq("SCHEDULED"))
            .filter(flow_runs::next_scheduled_start_time.le(before))
            .order(flow_runs::next_scheduled_start_time.asc())
            .limit(limit)
            .select(FlowRunRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Active deployments (not paused) with at least one active schedule, after `after_id`, in id
/// order (the scheduler walks them in batches).
pub async fn schedulable(
    db: &Database,
    after_id: &str,
    limit: i64,
) -> StorageResult<Vec<DeploymentRow>> {
    let mut conn = db.read().await?;
    let rows = db_run!(conn, |c| {
        deployments::table
            .filter(deployments::paused.eq(false))
            .filter(deployments::id.gt(after_id))
            .filter(
                deployments::id.eq_any(
                    deployment_schedules::table
                        .filter(deployment_schedules::active.eq(true))
                        .select(deployment_schedules::deployment_id),
                ),
            )
            .order(deployments::id.asc())
            .limit(limit)
            .select(DeploymentRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Inserts auto-scheduled runs with their first state; runs whose idempotency key exists are
/// skipped, so concurrent schedulers never create a run twice. Returns how many were new.
pub async fn insert_scheduled_runs(
    db: &Database,
    runs: &[(FlowRunRow, super::rows::FlowRunStateRow)],
) -> StorageResult<usize> {
    if runs.is_empty() {
        return Ok(0);
    }
    let mut conn = db.write().await?;
    let n = db_run!(conn, |c| {
        use diesel_async::AsyncConnection;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            let mut n = 0;
            for (run, state) in runs {
                let inserted = diesel::insert_into(flow_runs::table)
                    .values(run)
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await?;
                if inserted == 1 {
                    diesel::insert_into(super::schema::flow_run_states::table)
                        .values(state)
                        .execute(c)
                        .await?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    })?;
    Ok(n)
}

/// SCHEDULED auto-scheduled runs per deployment in the future (to respect max_scheduled_runs).
pub async fn future_auto_runs(
    db: &Database,
    deployment_id: &str,
    now: NaiveDateTime,
) -> StorageResult<i64> {
    let mut conn = db.read().await?;
    let n = db_run!(conn, |c| {
        flow_runs::table
            .filter(flow_runs::deployment_id.eq(deployment_id))
            .filter(flow_runs::auto_scheduled.eq(true))
            .filter(flow_runs::state_type.eq("SCHEDULED"))
            .filter(flow_runs::next_scheduled_start_time.ge(now))
            .count()
            .get_result(c)
            .await
    })?;
    Ok(n)
}
