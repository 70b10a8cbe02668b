//! Flows: created idempotently by name, read, filtered, counted, updated and deleted, always
//! within one workspace.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::build;
use super::rows::FlowRow;
use super::schema::flows;
use super::{Conn, StorageResult};
use crate::db_run;
use crate::ids::{FlowId, WorkspaceId};
use crate::query::{FlowSort, Page, Related};

/// Inserts the flow unless one of that name exists; returns the flow and whether it is new.
pub async fn insert_or_get(
    c: &mut Conn,
    ws: &WorkspaceId,
    name: &str,
    tags: &str,
    labels: &str,
) -> StorageResult<(FlowRow, bool)> {
    let now = crate::time::now_naive();
    let row = FlowRow {
        id: FlowId::random(),
        workspace_id: ws.clone(),
        created: now,
        updated: now,
        name: name.to_string(),
        tags: tags.to_string(),
        labels: labels.to_string(),
    };
    let (flow, inserted) = db_run!(c, |c| {
        let inserted = diesel::insert_into(flows::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c)
            .await?;
        let flow = flows::table
            .filter(flows::workspace_id.eq(ws))
            .filter(flows::name.eq(name))
            .select(FlowRow::as_select())
            .first(c)
            .await?;
        Ok::<_, diesel::result::Error>((flow, inserted == 1))
    })?;
    Ok((flow, inserted))
}

pub async fn find(c: &mut Conn, ws: &WorkspaceId, id: &FlowId) -> StorageResult<Option<FlowRow>> {
    let row = db_run!(c, |c| {
        flows::table
            .filter(flows::workspace_id.eq(ws))
            .filter(flows::id.eq(id))
            .select(FlowRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// The names of the flows of `ids` that exist.
pub async fn names_of(
    c: &mut Conn,
    ws: &WorkspaceId,
    ids: &[FlowId],
) -> StorageResult<Vec<(FlowId, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db_run!(c, |c| {
        flows::table
            .filter(flows::workspace_id.eq(ws))
            .filter(flows::id.eq_any(ids))
            .select((flows::id, flows::name))
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn find_by_name(
    c: &mut Conn,
    ws: &WorkspaceId,
    name: &str,
) -> StorageResult<Option<FlowRow>> {
    let row = db_run!(c, |c| {
        flows::table
            .filter(flows::workspace_id.eq(ws))
            .filter(flows::name.eq(name))
            .select(FlowRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    sort: FlowSort,
    page: Page,
) -> StorageResult<Vec<FlowRow>> {
    let rows = db_run!(c, |c| {
        let cond = build::flows_related(related);
        let mut q = flows::table
            .filter(flows::workspace_id.eq(ws))
            .filter(cond)
            .select(FlowRow::as_select())
            .into_boxed();
        q = match sort {
            FlowSort::CreatedDesc => q.order((flows::created.desc(), flows::id.desc())),
            FlowSort::UpdatedDesc => q.order((flows::updated.desc(), flows::id.desc())),
            FlowSort::NameAsc => q.order((flows::name.asc(), flows::id.asc())),
            FlowSort::NameDesc => q.order((flows::name.desc(), flows::id.desc())),
        };
        q.limit(page.limit).offset(page.offset).load(c).await
    })?;
    Ok(rows)
}

pub async fn count(c: &mut Conn, ws: &WorkspaceId, related: &Related) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = build::flows_related(related);
        flows::table
            .filter(flows::workspace_id.eq(ws))
            .filter(cond)
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}

/// Replaces the flow's tags; false when no such flow.
pub async fn update_tags(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &FlowId,
    tags: &str,
) -> StorageResult<bool> {
    let now = crate::time::now_naive();
    let n = db_run!(c, |c| {
        diesel::update(
            flows::table
                .filter(flows::workspace_id.eq(ws))
                .filter(flows::id.eq(id)),
        )
        .set((flows::tags.eq(tags), flows::updated.eq(now)))
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// Deletes the flow (and, by cascade, its runs); false when no such flow.
pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &FlowId) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::delete(
            flows::table
                .filter(flows::workspace_id.eq(ws))
                .filter(flows::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// Deletes up to `limit` flows matching `related`; returns their ids. Run it in a transaction.
pub async fn bulk_delete(
    c: &mut Conn,
    ws: &WorkspaceId,
    related: &Related,
    limit: i64,
) -> StorageResult<Vec<FlowId>> {
    let ids = db_run!(c, |c| {
        let cond = build::flows_related(related);
        let ids: Vec<FlowId> = flows::table
            .filter(flows::workspace_id.eq(ws))
            .filter(cond)
            .select(flows::id)
            .order(flows::id.asc())
            .limit(limit)
            .load(c)
            .await?;
        diesel::delete(
            flows::table
                .filter(flows::workspace_id.eq(ws))
                .filter(flows::id.eq_any(&ids)),
        )
        .execute(c)
        .await?;
        Ok::<_, diesel::result::Error>(ids)
    })?;
    Ok(ids)
}
