//! `/artifacts`: create, read, filter, count, update and delete artifacts, and the latest
//! artifact per key (`/artifacts/{key}/latest`, `/artifacts/latest/filter`,
//! `/artifacts/latest/count`). Markdown, table, link, progress and image artifacts are the same
//! record with a different `type`; `metadata_` keeps its trailing underscore on the wire.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::common::{present, to_text};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathId, PathKeyStr};
use crate::extract::Workspace;
use crate::query::artifacts::{ArtifactFilter, ArtifactSort, Query};
use crate::query::{FlowFilter, FlowRunFilter, Related, TaskRunFilter};
use crate::state::AppState;
use crate::storage::artifacts::{self, ArtifactChanges, ArtifactRow, CollectionRow};
use crate::wire::{opt_json_text, JsonText, Ts};

/// Longest metadata value kept whole (`validate_max_metadata_length`); longer ones are cut
/// and end in "...".
const MAX_METADATA_LENGTH: usize = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/artifacts/", web::post().to(create))
        .route("/artifacts", web::post().to(create))
        .route("/artifacts/filter", web::post().to(filter))
        .route("/artifacts/count", web::post().to(count))
        .route("/artifacts/latest/filter", web::post().to(filter_latest))
        .route("/artifacts/latest/count", web::post().to(count_latest))
        .route("/artifacts/{key}/latest", web::get().to(read_latest))
        .route("/artifacts/{id}", web::get().to(read))
        .route("/artifacts/{id}", web::patch().to(update))
        .route("/artifacts/{id}", web::delete().to(delete));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactCreate {
    #[serde(default)]
    key: Option<String>,
    #[serde(default, rename = "type")]
    artifact_type: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    metadata_: Option<BTreeMap<String, String>>,
    #[serde(default)]
    flow_run_id: Option<Uuid>,
    #[serde(default)]
    task_run_id: Option<Uuid>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactUpdate {
    #[serde(default, deserialize_with = "present")]
    data: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    metadata_: Option<Option<BTreeMap<String, String>>>,
}

/// The body of every list and count route: the artifact filter and the related filters.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ListBody {
    artifacts: Option<ArtifactFilter>,
    flow_runs: Option<FlowRunFilter>,
    task_runs: Option<TaskRunFilter>,
    flows: Option<FlowFilter>,
    deployments: Option<crate::query::DeploymentFilter>,
    sort: Option<ArtifactSort>,
    #[serde(flatten)]
    paging: Paging,
}

impl ListBody {
    fn query(&mut self) -> Query {
        Query {
            artifacts: self.artifacts.take().unwrap_or_default(),
            related: Related {
                flow_runs: self.flow_runs.take(),
                task_runs: self.task_runs.take(),
                flows: self.flows.take(),
                deployments: self.deployments.take(),
                ..Default::default()
            },
        }
    }
}

/// `ArtifactKey`: lowercase letters, digits and dashes (Python's `re.match("^[a-z0-9-]*$")`).
fn check_key(key: &str) -> ApiResult<()> {
    let body = key.strip_suffix('\n').unwrap_or(key);
    if body
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    {
        return Ok(());
    }
    Err(ApiError::invalid(
        vec!["body".into(), "key".into()],
        "Value error, Artifact key must only contain lowercase letters, numbers, and dashes.",
        "value_error",
    ))
}

/// Metadata values longer than 500 characters are cut to 500 and end in "...".
fn metadata_text(m: BTreeMap<String, String>) -> String {
    let cut: BTreeMap<String, String> = m
        .into_iter()
        .map(|(k, v)| {
            if v.chars().count() > MAX_METADATA_LENGTH {
                let mut s: String = v.chars().take(MAX_METADATA_LENGTH).collect();
                s.push_str("...");
                (k, s)
            } else {
                (k, v)
            }
        })
        .collect();
    to_text(&cut)
}

/// JSON `null` is stored as SQL NULL.
fn data_text(v: Option<Value>) -> Option<String> {
    v.filter(|v| !v.is_null()).map(|v| to_text(&v))
}

/// `Artifact`.
#[derive(Serialize)]
pub struct ArtifactOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    key: Option<&'a str>,
    #[serde(rename = "type")]
    artifact_type: Option<&'a str>,
    description: Option<&'a str>,
    data: JsonText<'a>,
    metadata_: JsonText<'a>,
    flow_run_id: Option<&'a str>,
    task_run_id: Option<&'a str>,
}

impl<'a> From<&'a ArtifactRow> for ArtifactOut<'a> {
    fn from(r: &'a ArtifactRow) -> Self {
        ArtifactOut {
            id: &r.id,
            created: Ts(&r.created),
            updated: Ts(&r.updated),
            key: r.key.as_deref(),
            artifact_type: r.artifact_type.as_deref(),
            description: r.description.as_deref(),
            data: opt_json_text(&r.data),
            metadata_: opt_json_text(&r.metadata_),
            flow_run_id: r.flow_run_id.as_deref(),
            task_run_id: r.task_run_id.as_deref(),
        }
    }
}

/// `ArtifactCollection`: the latest artifact of a key; `GET /artifacts/{key}/latest` answers
/// it without `latest_id`.
#[derive(Serialize)]
pub struct CollectionOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_id: Option<&'a str>,
    #[serde(rename = "type")]
    artifact_type: Option<&'a str>,
    description: Option<&'a str>,
    data: JsonText<'a>,
    metadata_: JsonText<'a>,
    flow_run_id: Option<&'a str>,
    task_run_id: Option<&'a str>,
}

impl<'a> From<&'a CollectionRow> for CollectionOut<'a> {
    fn from(r: &'a CollectionRow) -> Self {
        CollectionOut {
            id: &r.id,
            created: Ts(&r.created),
            updated: Ts(&r.updated),
            key: &r.key,
            latest_id: Some(&r.latest_id),
            artifact_type: r.artifact_type.as_deref(),
            description: r.description.as_deref(),
            data: opt_json_text(&r.data),
            metadata_: opt_json_text(&r.metadata_),
            flow_run_id: r.flow_run_id.as_deref(),
            task_run_id: r.task_run_id.as_deref(),
        }
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Artifact not found.")
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<ArtifactCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if let Some(k) = &b.key {
        check_key(k)?;
    }
    let now = crate::time::now().naive_utc();
    let row = ArtifactRow {
        id: Uuid::new_v4().to_string(),
        workspace_id: ws.id().clone(),
        created: now,
        updated: now,
        key: b.key,
        artifact_type: b.artifact_type,
        description: b.description,
        data: data_text(b.data),
        metadata_: b.metadata_.map(metadata_text),
        flow_run_id: b.flow_run_id.map(|u| u.to_string()),
        task_run_id: b.task_run_id.map(|u| u.to_string()),
    };
    let stored = row.clone();
    state
        .stores
        .orion
        .write(async move |c| artifacts::insert(c, &stored).await)
        .await?;
    Ok(HttpResponse::Created().json(ArtifactOut::from(&row)))
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let row = artifacts::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(ArtifactOut::from(&row)))
}

/// The latest artifact of a key, in the shape of an artifact (the collection's id, no
/// `latest_id`), as Prefect answers.
async fn read_latest(
    state: web::Data<AppState>,
    ws: Workspace,
    key: PathKeyStr,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let latest = artifacts::find_latest(&mut c, ws.id(), &key)
        .await?
        .ok_or_else(not_found)?;
    let body = CollectionOut {
        latest_id: None,
        ..CollectionOut::from(&latest)
    };
    Ok(HttpResponse::Ok().json(body))
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<ListBody>,
) -> ApiResult<HttpResponse> {
    let mut b = body.into_inner();
    let page = b.paging.page(&state)?;
    let q = b.query();
    let mut c = state.stores.orion.read().await?;
    let rows = artifacts::list(&mut c, ws.id(), &q, b.sort.unwrap_or_default(), page).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(ArtifactOut::from).collect::<Vec<_>>()))
}

async fn count(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<ListBody>,
) -> ApiResult<HttpResponse> {
    let q = body.into_inner().query();
    let mut c = state.stores.orion.read().await?;
    Ok(HttpResponse::Ok().json(artifacts::count(&mut c, ws.id(), &q).await?))
}

async fn filter_latest(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<ListBody>,
) -> ApiResult<HttpResponse> {
    let mut b = body.into_inner();
    let page = b.paging.page(&state)?;
    let q = b.query();
    let mut c = state.stores.orion.read().await?;
    let rows =
        artifacts::list_latest(&mut c, ws.id(), &q, b.sort.unwrap_or_default(), page).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(CollectionOut::from).collect::<Vec<_>>()))
}

async fn count_latest(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<ListBody>,
) -> ApiResult<HttpResponse> {
    let q = body.into_inner().query();
    let mut c = state.stores.orion.read().await?;
    let n = artifacts::count_latest(&mut c, ws.id(), &q).await?;
    Ok(HttpResponse::Ok().json(n))
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<ArtifactUpdate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let changes = ArtifactChanges {
        updated: Some(crate::time::now().naive_utc()),
        data: b.data.map(|v| data_text(Some(v))),
        description: b.description,
        metadata_: b.metadata_.map(|m| m.map(metadata_text)),
    };
    let (ws, id) = (ws.id().clone(), id.to_string());
    let updated = state
        .stores
        .orion
        .write(async move |c| artifacts::update(c, &ws, &id, &changes).await)
        .await?;
    if !updated {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.id().clone(), id.to_string());
    let deleted = state
        .stores
        .orion
        .write(async move |c| artifacts::delete(c, &ws, &id).await)
        .await?;
    if !deleted {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}
