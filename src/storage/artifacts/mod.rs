//! Artifacts and artifact collections (the latest artifact of each key). Creating, updating or
//! deleting an artifact keeps its key's collection row current in the same transaction, as
//! Prefect's server does. Filters combine `ArtifactFilter` with flow-run, flow, task-run and
//! deployment sub-filters (as "the artifact's run matches").

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use uuid::Uuid;

mod write;

pub use write::{delete, insert, update};

use super::filters::{backend, combine, lower, Cond, FilterSql, Operator, Page, Related};
use super::schema::{flow_runs, task_runs};
use super::{Conn, StorageResult};
use crate::db_run;

pub(crate) use crate::storage::schema;

use schema::{artifact_collections, artifacts};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = artifacts)]
pub struct ArtifactRow {
    pub id: String,
    pub workspace_id: String,
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
    pub workspace_id: String,
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AnyIdFilter {
    pub any_: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct KeyFilter {
    pub any_: Option<Vec<String>>,
    pub like_: Option<String>,
    pub exists_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TypeFilter {
    pub any_: Option<Vec<String>>,
    pub not_any_: Option<Vec<String>>,
}

/// `ArtifactFilter`, and `ArtifactCollectionFilter` (which adds `latest_id`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ArtifactFilter {
    pub operator: Operator,
    pub id: Option<AnyIdFilter>,
    pub latest_id: Option<AnyIdFilter>,
    pub key: Option<KeyFilter>,
    pub flow_run_id: Option<AnyIdFilter>,
    pub task_run_id: Option<AnyIdFilter>,
    #[serde(rename = "type")]
    pub artifact_type: Option<TypeFilter>,
}

/// `ArtifactSort` and `ArtifactCollectionSort` (default `ID_DESC`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArtifactSort {
    CreatedDesc,
    UpdatedDesc,
    #[default]
    IdDesc,
    KeyDesc,
    KeyAsc,
}

/// A list query: the artifact filter plus the related-object filters.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub artifacts: ArtifactFilter,
    pub related: Related,
}

fn ids(v: &[Uuid]) -> Vec<String> {
    v.iter().map(|u| u.to_string()).collect()
}

/// Condition builders per backend, for both tables (expanded by `impl_artifact_sql!`).
pub trait ArtifactSql: FilterSql {
    fn artifact(ws: &str, q: &Query) -> Cond<artifacts::table, Self>;
    fn collection(ws: &str, q: &Query) -> Cond<artifact_collections::table, Self>;
}

/// The conditions of one table (`$t` is `artifacts` or `artifact_collections`).
macro_rules! artifact_conds {
    ($db:ty, $t:ident, $ws:expr, $q:expr, $latest:expr) => {{
        let f = &$q.artifacts;
        let mut c: Vec<Cond<$t::table, $db>> = Vec::new();
        if let Some(AnyIdFilter { any_: Some(v) }) = &f.id {
            c.push(Box::new($t::id.eq_any(ids(v))));
        }
        if let Some(AnyIdFilter { any_: Some(v) }) = &f.latest_id {
            if let Some(cond) = $latest(v) {
                c.push(cond);
            }
        }
        if let Some(k) = &f.key {
            if let Some(v) = &k.any_ {
                c.push(Box::new($t::key.eq_any(v.clone()).assume_not_null()));
            }
            if let Some(like) = k.like_.as_deref().filter(|l| !l.is_empty()) {
                c.push(Box::new(
                    lower($t::key.assume_not_null())
                        .like(format!("%{}%", like.to_lowercase()))
                        .and($t::key.is_not_null()),
                ));
            }
            match k.exists_ {
                Some(true) => c.push(Box::new($t::key.is_not_null())),
                Some(false) => c.push(Box::new($t::key.is_null())),
                None => {}
            }
        }
        if let Some(AnyIdFilter { any_: Some(v) }) = &f.flow_run_id {
            c.push(Box::new($t::flow_run_id.eq_any(ids(v)).assume_not_null()));
        }
        if let Some(AnyIdFilter { any_: Some(v) }) = &f.task_run_id {
            c.push(Box::new($t::task_run_id.eq_any(ids(v)).assume_not_null()));
        }
        if let Some(t) = &f.artifact_type {
            if let Some(v) = &t.any_ {
                c.push(Box::new(
                    $t::artifact_type.eq_any(v.clone()).assume_not_null(),
                ));
            }
            if let Some(v) = t.not_any_.as_ref().filter(|v| !v.is_empty()) {
                c.push(Box::new(
                    $t::artifact_type.ne_all(v.clone()).assume_not_null(),
                ));
            }
        }
        let mut all: Vec<Cond<$t::table, $db>> = vec![combine!($db, $t::table, f.operator, c)];
        let r = &$q.related;
        if r.flow_runs.is_some() || r.flows.is_some() || r.deployments.is_some() {
            let runs = Related {
                flow_runs: r.flow_runs.clone(),
                flows: r.flows.clone(),
                deployments: r.deployments.clone(),
                ..Default::default()
            };
            let sub = flow_runs::table
                .filter(flow_runs::workspace_id.eq($ws.to_string()))
                .filter(<$db as FilterSql>::flow_runs_related(&runs))
                .select(flow_runs::id.nullable())
                .into_boxed::<$db>();
            all.push(Box::new($t::flow_run_id.eq_any(sub).assume_not_null()));
        }
        if let Some(tf) = &r.task_runs {
            let sub = task_runs::table
                .filter(task_runs::workspace_id.eq($ws.to_string()))
                .filter(<$db as FilterSql>::task_run(tf))
                .select(task_runs::id.nullable())
                .into_boxed::<$db>();
            all.push(Box::new($t::task_run_id.eq_any(sub).assume_not_null()));
        }
        combine!($db, $t::table, Operator::And, all)
    }};
}

macro_rules! impl_artifact_sql {
    ($db:ty) => {
        impl ArtifactSql for $db {
            fn artifact(ws: &str, q: &Query) -> Cond<artifacts::table, Self> {
                // Artifacts have no latest_id (Prefect's ArtifactFilter has no such key).
                let latest = |_: &Vec<Uuid>| -> Option<Cond<artifacts::table, $db>> { None };
                artifact_conds!($db, artifacts, ws, q, latest)
            }

            fn collection(ws: &str, q: &Query) -> Cond<artifact_collections::table, Self> {
                let latest = |v: &Vec<Uuid>| -> Option<Cond<artifact_collections::table, $db>> {
                    Some(Box::new(artifact_collections::latest_id.eq_any(ids(v))))
                };
                artifact_conds!($db, artifact_collections, ws, q, latest)
            }
        }
    };
}

impl_artifact_sql!(diesel::pg::Pg);
impl_artifact_sql!(diesel::sqlite::Sqlite);

fn artifact_cond<C>(c: &C, ws: &str, q: &Query) -> Cond<artifacts::table, C::Backend>
where
    C: diesel_async::AsyncConnection,
    C::Backend: ArtifactSql,
{
    let _ = backend(c);
    <C::Backend as ArtifactSql>::artifact(ws, q)
}

fn collection_cond<C>(c: &C, ws: &str, q: &Query) -> Cond<artifact_collections::table, C::Backend>
where
    C: diesel_async::AsyncConnection,
    C::Backend: ArtifactSql,
{
    let _ = backend(c);
    <C::Backend as ArtifactSql>::collection(ws, q)
}

pub async fn find(c: &mut Conn, ws: &str, id: &str) -> StorageResult<Option<ArtifactRow>> {
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
    ws: &str,
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

pub async fn list(
    c: &mut Conn,
    ws: &str,
    q: &Query,
    sort: ArtifactSort,
    page: Page,
) -> StorageResult<Vec<ArtifactRow>> {
    let rows = db_run!(c, |c| {
        let cond = artifact_cond(c, ws, q);
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

pub async fn count(c: &mut Conn, ws: &str, q: &Query) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = artifact_cond(c, ws, q);
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
    ws: &str,
    q: &Query,
    sort: ArtifactSort,
    page: Page,
) -> StorageResult<Vec<CollectionRow>> {
    use artifact_collections as ac;
    let rows = db_run!(c, |c| {
        let cond = collection_cond(c, ws, q);
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

pub async fn count_latest(c: &mut Conn, ws: &str, q: &Query) -> StorageResult<i64> {
    let n = db_run!(c, |c| {
        let cond = collection_cond(c, ws, q);
        artifact_collections::table
            .filter(artifact_collections::workspace_id.eq(ws))
            .filter(cond)
            .count()
            .get_result::<i64>(c)
            .await
    })?;
    Ok(n)
}
