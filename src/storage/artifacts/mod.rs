//! Artifacts and artifact collections (the latest artifact of each key). Creating, updating or
//! deleting an artifact keeps its key's collection row current in the same transaction, as
//! Prefect's server does. Filters combine `ArtifactFilter` with flow-run, flow, task-run and
//! deployment sub-filters (as "the artifact's run matches").

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

mod write;

pub use write::{delete, insert, update};

use super::filters::build::{self, combine};
use super::filters::sql::{Col, Where};
use super::{Conn, StorageResult};
use crate::col;
use crate::db_run;
use crate::query::{Page, Related};

pub(crate) use crate::storage::schema;

use crate::ids::WorkspaceId;
use crate::query::artifacts::{AnyIdFilter, ArtifactSort, Query};
use schema::{artifact_collections, artifacts};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = artifacts)]
pub struct ArtifactRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub key: Option<String>,
    pub artifact_type: Option<String>,
    pub description: Option<String>,
    /// Compact JSON text (`None` for JSON null).
    pub data: Option<String>,
    /// Compact JSON object text of string pairs.
    pub metadata_: Option<String>,
    pub flow_run_id: Option<String>,
    pub task_run_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = artifact_collections)]
pub struct CollectionRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub key: String,
    pub latest_id: String,
    pub artifact_type: Option<String>,
    pub description: Option<String>,
    pub data: Option<String>,
    pub metadata_: Option<String>,
    pub flow_run_id: Option<String>,
    pub task_run_id: Option<String>,
}

/// What `PATCH /artifacts/{id}` changes: `None` leaves a column alone, `Some(None)` nulls it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = artifacts)]
pub struct ArtifactChanges {
    pub updated: Option<NaiveDateTime>,
    pub data: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub metadata_: Option<Option<String>>,
}

fn ids(v: &[Uuid]) -> Vec<String> {
    v.iter().map(|u| u.to_string()).collect()
}

/// The columns a filter names, in one of the two tables (they share their names).
struct Cols {
    id: Col,
    key: Col,
    flow_run_id: Col,
    task_run_id: Col,
    artifact_type: Col,
    /// Collections only: Prefect's `ArtifactFilter` has no `latest_id`.
    latest_id: Option<Col>,
}

const ARTIFACTS: Cols = Cols {
    id: col!(artifacts::id),
    key: col!(artifacts::key),
    flow_run_id: col!(artifacts::flow_run_id),
    task_run_id: col!(artifacts::task_run_id),
    artifact_type: col!(artifacts::artifact_type),
    latest_id: None,
};

const COLLECTIONS: Cols = Cols {
    id: col!(artifact_collections::id),
    key: col!(artifact_collections::key),
    flow_run_id: col!(artifact_collections::flow_run_id),
    task_run_id: col!(artifact_collections::task_run_id),
    artifact_type: col!(artifact_collections::artifact_type),
    latest_id: Some(col!(artifact_collections::latest_id)),
};

/// The rows of one of the two tables that `q` selects: the artifact filter, and "the
/// artifact's run matches" the related flow-run, flow, deployment and task-run filters.
fn cond(t: &Cols, ws: &WorkspaceId, q: &Query) -> Where {
    let f = &q.artifacts;
    let mut c = Vec::new();
    if let Some(AnyIdFilter { any_: Some(v) }) = &f.id {
        c.push(Where::is_in(t.id, ids(v)));
    }
    if let (Some(latest), Some(AnyIdFilter { any_: Some(v) })) = (t.latest_id, &f.latest_id) {
        c.push(Where::is_in(latest, ids(v)));
    }
    if let Some(k) = &f.key {
        if let Some(v) = &k.any_ {
            c.push(Where::is_in(t.key, v.clone()));
        }
        if let Some(like) = k.like_.as_deref().filter(|l| !l.is_empty()) {
            let pattern = format!("%{}%", like.to_lowercase());
            c.push(Where::all(vec![
                Where::ilike(t.key, pattern, false),
                Where::not_null(t.key),
            ]));
        }
        match k.exists_ {
            Some(true) => c.push(Where::not_null(t.key)),
            Some(false) => c.push(Where::is_null(t.key)),
            None => {}
        }
    }
    if let Some(AnyIdFilter { any_: Some(v) }) = &f.flow_run_id {
        c.push(Where::is_in(t.flow_run_id, ids(v)));
    }
    if let Some(AnyIdFilter { any_: Some(v) }) = &f.task_run_id {
        c.push(Where::is_in(t.task_run_id, ids(v)));
    }
    if let Some(ty) = &f.artifact_type {
        if let Some(v) = &ty.any_ {
            c.push(Where::is_in(t.artifact_type, v.clone()));
        }
        if let Some(v) = ty.not_any_.as_ref().filter(|v| !v.is_empty()) {
            c.push(Where::not_in(t.artifact_type, v.clone()));
        }
    }
    let mut all = vec![combine(f.operator, c)];
    let r = &q.related;
    if r.flow_runs.is_some() || r.flows.is_some() || r.deployments.is_some() {
        let runs = Related {
            flow_runs: r.flow_runs.clone(),
            flows: r.flows.clone(),
            deployments: r.deployments.clone(),
            ..Default::default()
        };
        all.push(Where::in_select(
            t.flow_run_id,
            col!(flow_runs::id),
            Where::all(vec![
                Where::eq(col!(flow_runs::workspace_id), ws),
                build::flow_runs_related(&runs),
            ]),
        ));
    }
    if let Some(tf) = &r.task_runs {
        all.push(Where::in_select(
            t.task_run_id,
            col!(task_runs::id),
            Where::all(vec![
                Where::eq(col!(task_runs::workspace_id), ws),
                build::task_run(tf),
            ]),
        ));
    }
    Where::all(all)
}

pub async fn find(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<Option<ArtifactRow>> {
    let row = db_run!(c, |c| artifacts::table
        .filter(artifacts::workspace_id.eq(ws))
        .filter(artifacts::id.eq(id))
        .select(ArtifactRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// The collection (latest artifact) of `key`.
pub async fn find_latest(
    c: &mut Conn,
    ws: &WorkspaceId,
    key: &str,
) -> StorageResult<Option<CollectionRow>> {
    let row = db_run!(c, |c| artifact_collections::table
        .filter(artifact_collections::workspace_id.eq(ws))
        .filter(artifact_collections::key.eq(key))
        .select(CollectionRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// An artifact as a flow run's graph shows it.
#[derive(Debug, Clone, Queryable)]
pub struct GraphArtifact {
    pub id: String,
    pub created: NaiveDateTime,
    pub key: Option<String>,
    pub artifact_type: Option<String>,
    pub data: Option<String>,
    pub task_run_id: Option<String>,
    /// The id of the collection whose latest artifact this is, if any.
    pub latest_of: Option<String>,
}

/// The artifacts of flow run `flow_run_id` (not of its subflows), oldest first, at most
/// `limit`, results excluded (as the reference's graph).
pub async fn of_flow_run_for_graph(
    c: &mut Conn,
    ws: &WorkspaceId,
    flow_run_id: &str,
    limit: i64,
) -> StorageResult<Vec<GraphArtifact>> {
    let rows = db_run!(c, |c| {
        artifacts::table
            .left_join(
                artifact_collections::table.on(artifact_collections::latest_id
                    .eq(artifacts::id)
                    .and(artifact_collections::workspace_id.eq(artifacts::workspace_id))),
            )
            .filter(artifacts::workspace_id.eq(ws))
            .filter(artifacts::flow_run_id.eq(flow_run_id))
            .filter(
                artifacts::artifact_type
                    .ne("result")
                    .or(artifacts::artifact_type.is_null()),
            )
            .order((artifacts::created.asc(), artifacts::id.asc()))
            .limit(limit)
            .select((
                artifacts::id,
                artifacts::created,
                artifacts::key,
                artifacts::artifact_type,
                artifacts::data,
                artifacts::task_run_id,
                artifact_collections::id.nullable(),
            ))
            .load::<GraphArtifact>(c)
            .await
    })?;
    Ok(rows)
}

pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    q: &Query,
    sort: ArtifactSort,
    page: Page,
) -> StorageResult<Vec<ArtifactRow>> {
    let rows = db_run!(c, |c| {
        let cond = cond(&ARTIFACTS, ws, q);
        let mut b = artifacts::table
            .filter(artifacts::workspace_id.eq(ws))
            .filter(cond)
            .select(ArtifactRow::as_select())
            .into_boxed();
        b = match sort {
            ArtifactSort::CreatedDesc => b.order((artifacts::created.desc(), artifacts::id.desc())),
            ArtifactSort::UpdatedDesc => b.order((artifacts::updated.desc(), artifacts::id.desc())),
            ArtifactSort::IdDesc => b.order(artifacts::id.desc()),
            ArtifactSort::KeyDesc => b.order((artifacts::key.desc(), artifacts::id.desc())),
            ArtifactSort::KeyAsc => b.order((artifacts::key.asc(), artifacts::id.asc())),
        };
        b.limit(page.limit).offset(page.offset).load(c).await
    })?;
    Ok(rows)
}

pub async fn count(c: &mut Conn, ws: &WorkspaceId, q: &Query) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = cond(&ARTIFACTS, ws, q);
        artifacts::table
            .filter(artifacts::workspace_id.eq(ws))
            .filter(cond)
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}

pub async fn list_latest(
    c: &mut Conn,
    ws: &WorkspaceId,
    q: &Query,
    sort: ArtifactSort,
    page: Page,
) -> StorageResult<Vec<CollectionRow>> {
    use artifact_collections as ac;
    let rows = db_run!(c, |c| {
        let cond = cond(&COLLECTIONS, ws, q);
        let mut b = ac::table
            .filter(ac::workspace_id.eq(ws))
            .filter(cond)
            .select(CollectionRow::as_select())
            .into_boxed();
        b = match sort {
            ArtifactSort::CreatedDesc => b.order((ac::created.desc(), ac::id.desc())),
            ArtifactSort::UpdatedDesc => b.order((ac::updated.desc(), ac::id.desc())),
            ArtifactSort::IdDesc => b.order(ac::id.desc()),
            ArtifactSort::KeyDesc => b.order(ac::key.desc()),
            ArtifactSort::KeyAsc => b.order(ac::key.asc()),
        };
        b.limit(page.limit).offset(page.offset).load(c).await
    })?;
    Ok(rows)
}

pub async fn count_latest(c: &mut Conn, ws: &WorkspaceId, q: &Query) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = cond(&COLLECTIONS, ws, q);
        artifact_collections::table
            .filter(artifact_collections::workspace_id.eq(ws))
            .filter(cond)
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}
