//! Deployment CRUD: create (upsert by flow + name) with its schedules, read by id and by name,
//! filter, count, paginate, update, delete and bulk delete.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::super::common::{page_of, paginated, to_text};
use crate::error::{ApiError, ApiResult, INTEGRITY_CONFLICT};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{limit, Paging, PathDeploymentName, PathFlowName, PathId};
use crate::extract::Workspace;
use crate::ids::kind::Deployment;
use crate::ids::{DeploymentId, FlowId};
use crate::query::{DeploymentFilter, DeploymentSort};
use crate::query::{Page, Related};
use crate::state::AppState;
use crate::storage::deployments::{self as deps, DeploymentRow};
use crate::storage::flows;

use super::schedules::{patched_schedules, schedule_rows, ScheduleCreate, ScheduleUpdate};
use super::{concurrency_limit_positive, find, find_dot, not_found, resolve_queue, Loaded};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeploymentCreate {
    name: String,
    flow_id: Uuid,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    schedules: Vec<ScheduleCreate>,
    #[serde(default)]
    concurrency_limit: Option<i32>,
    #[serde(default)]
    concurrency_options: Option<Value>,
    #[serde(default)]
    global_concurrency_limit_id: Option<Uuid>,
    #[serde(default)]
    enforce_parameter_schema: Option<bool>,
    #[serde(default)]
    parameter_openapi_schema: Option<Value>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pull_steps: Option<Value>,
    #[serde(default)]
    work_queue_name: Option<String>,
    #[serde(default)]
    work_pool_name: Option<String>,
    #[serde(default)]
    storage_document_id: Option<Uuid>,
    #[serde(default)]
    infrastructure_document_id: Option<Uuid>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    entrypoint: Option<String>,
    #[serde(default)]
    job_variables: Option<Map<String, Value>>,
    #[serde(default)]
    version_info: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeploymentUpdate {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    paused: Option<bool>,
    #[serde(default)]
    schedules: Option<Vec<ScheduleUpdate>>,
    #[serde(default)]
    concurrency_limit: Option<Option<i32>>,
    #[serde(default)]
    concurrency_options: Option<Value>,
    #[serde(default)]
    global_concurrency_limit_id: Option<Uuid>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    parameter_openapi_schema: Option<Value>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    work_queue_name: Option<String>,
    #[serde(default)]
    work_pool_name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    job_variables: Option<Map<String, Value>>,
    #[serde(default)]
    pull_steps: Option<Value>,
    #[serde(default)]
    entrypoint: Option<String>,
    #[serde(default)]
    storage_document_id: Option<Uuid>,
    #[serde(default)]
    infrastructure_document_id: Option<Uuid>,
    #[serde(default)]
    enforce_parameter_schema: Option<bool>,
    #[serde(default)]
    version_info: Option<Value>,
}

pub(super) async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<DeploymentCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let db = &state.stores.orion;
    concurrency_limit_positive(b.concurrency_limit)?;
    if b.name.trim().is_empty() || b.name.contains('/') || b.name.contains('%') {
        return Err(ApiError::invalid(
            vec!["body".into(), "name".into()],
            "Deployment names must not be empty or contain '/' or '%'.",
            "value_error",
        ));
    }
    let flow_id = FlowId::from(b.flow_id);
    let flow = flows::find(&mut db.read().await?, ws.id(), &flow_id)
        .await?
        .ok_or_else(|| ApiError::conflict(INTEGRITY_CONFLICT))?;
    // Schedules are checked before the queue is resolved: resolving may create the pool and
    // queue, which a rejected request must not leave behind.
    let id = DeploymentId::random();
    let schedules = schedule_rows(ws.id(), &id, &b.schedules)?;
    let (queue_name, queue_id) = resolve_queue(
        &state,
        &ws,
        b.work_pool_name.as_deref(),
        b.work_queue_name.as_deref(),
    )
    .await?;
    let now = crate::time::now().naive_utc();
    let mut labels = b.labels.unwrap_or_default();
    labels.insert("prefect.flow.id".into(), Value::String(flow.id.to_string()));
    let row = DeploymentRow {
        id,
        workspace_id: ws.id().clone(),
        created: now,
        updated: now,
        name: b.name,
        version: b.version,
        description: b.description,
        flow_id,
        paused: b.paused,
        concurrency_limit: b.concurrency_limit,
        concurrency_options: b
            .concurrency_options
            .filter(|v| !v.is_null())
            .map(|v| v.to_string()),
        global_concurrency_limit_id: b.global_concurrency_limit_id.map(|u| u.to_string()),
        job_variables: to_text(&b.job_variables.unwrap_or_default()),
        parameters: to_text(&b.parameters.unwrap_or_default()),
        tags: to_text(&b.tags.unwrap_or_default()),
        labels: to_text(&labels),
        work_queue_name: queue_name,
        work_queue_id: queue_id,
        last_polled: None,
        parameter_openapi_schema: Some(
            b.parameter_openapi_schema
                .filter(|v| !v.is_null())
                .unwrap_or_else(|| json!({}))
                .to_string(),
        ),
        path: b.path,
        pull_steps: Some(
            b.pull_steps
                .filter(|v| !v.is_null())
                .unwrap_or_else(|| json!([]))
                .to_string(),
        ),
        entrypoint: b.entrypoint,
        storage_document_id: b.storage_document_id.map(|u| u.to_string()),
        infrastructure_document_id: b.infrastructure_document_id.map(|u| u.to_string()),
        created_by: None,
        updated_by: None,
        status: "NOT_READY".into(),
        enforce_parameter_schema: b.enforce_parameter_schema.unwrap_or(true),
        version_info: b
            .version_info
            .filter(|v| !v.is_null())
            .map(|v| v.to_string()),
    };
    // The row, its schedules and the removal of the runs planned from the old ones: all or
    // nothing.
    let (saved, created) = db
        .transaction(async move |c| deps::upsert(c, &row, &schedules, now).await)
        .await?;
    let event = if created {
        "prefect.deployment.created"
    } else {
        "prefect.deployment.updated"
    };
    crate::runs::events::emit(
        &state,
        ws.id(),
        vec![crate::runs::events::deployment_event(
            &saved,
            &flow,
            event,
            crate::time::now(),
        )],
    )
    .await;
    let loaded = Loaded::load(&state, vec![saved]).await?;
    let body = loaded.first();
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

pub(super) async fn read(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let d = find(&state, &ws, &id.typed()).await?;
    let loaded = Loaded::load(&state, vec![d]).await?;
    Ok(HttpResponse::Ok().json(loaded.first()))
}

pub(super) async fn read_by_name(
    state: web::Data<AppState>,
    ws: Workspace,
    flow: PathFlowName,
    name: PathDeploymentName,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let d = deps::find_by_name(&mut c, ws.id(), &flow, &name)
        .await?
        .ok_or_else(not_found)?;
    let loaded = Loaded::load(&state, vec![d]).await?;
    Ok(HttpResponse::Ok().json(loaded.first()))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DeploymentListBody {
    #[serde(flatten)]
    related: Related,
    sort: Option<String>,
    #[serde(flatten)]
    paging: Paging,
    page: Option<i64>,
}

const SORTS: [&str; 4] = ["CREATED_DESC", "UPDATED_DESC", "NAME_ASC", "NAME_DESC"];

/// The body's sort (NAME_ASC by default); anything else is Prefect's enum error.
pub(super) fn sort_of(b: &DeploymentListBody) -> ApiResult<DeploymentSort> {
    match b.sort.as_deref() {
        None => Ok(DeploymentSort::NameAsc),
        Some("CREATED_DESC") => Ok(DeploymentSort::CreatedDesc),
        Some("UPDATED_DESC") => Ok(DeploymentSort::UpdatedDesc),
        Some("NAME_ASC") => Ok(DeploymentSort::NameAsc),
        Some("NAME_DESC") => Ok(DeploymentSort::NameDesc),
        Some(_) => Err(ApiError::invalid(
            vec!["body".into(), "sort".into()],
            format!("Input should be {}", SORTS.join(", ")),
            "enum",
        )),
    }
}

pub(super) async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<DeploymentListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let page = b.paging.page(&state)?;
    let sort = sort_of(&b)?;
    let mut c = state.stores.orion.read().await?;
    let rows = deps::list(&mut c, ws.id(), &b.related, sort, page).await?;
    drop(c);
    let loaded = Loaded::load(&state, rows).await?;
    Ok(HttpResponse::Ok().json(loaded.bodies()))
}

pub(super) async fn count(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<DeploymentListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let mut c = state.stores.orion.read().await?;
    let n = deps::count(&mut c, ws.id(), &b.related).await?;
    Ok(HttpResponse::Ok().json(n))
}

pub(super) async fn paginate(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<DeploymentListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = limit(&state, b.paging.limit)?;
    let sort = sort_of(&b)?;
    let (page_no, page) = page_of(b.page, lim)?;
    let mut c = state.stores.orion.read().await?;
    let n = deps::count(&mut c, ws.id(), &b.related).await?;
    let rows = deps::list(&mut c, ws.id(), &b.related, sort, page).await?;
    drop(c);
    let loaded = Loaded::load(&state, rows).await?;
    Ok(HttpResponse::Ok().json(paginated(loaded.bodies(), n, lim, page_no)))
}

pub(super) async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<DeploymentUpdate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    concurrency_limit_positive(b.concurrency_limit.flatten())?;
    let mut d = find_dot(&state, &ws, &id.typed()).await?;
    let db = &state.stores.orion;
    let now = crate::time::now().naive_utc();
    // Checked before the queue is resolved (which may create a pool and queue).
    let existing = {
        let mut c = state.stores.orion.read().await?;
        deps::list_schedules(&mut c, std::slice::from_ref(&d.id)).await?
    };
    let schedules = patched_schedules(ws.id(), &d.id, &existing, b.schedules.as_deref())?;
    if b.work_pool_name.is_some() || b.work_queue_name.is_some() {
        let (qn, qid) = resolve_queue(
            &state,
            &ws,
            b.work_pool_name.as_deref(),
            b.work_queue_name.as_deref(),
        )
        .await?;
        d.work_queue_name = qn;
        if qid.is_some() {
            d.work_queue_id = qid;
        }
    }
    macro_rules! set {
        ($field:ident, $v:expr) => {
            if let Some(v) = $v {
                d.$field = v;
            }
        };
    }
    set!(version, b.version.map(Some));
    set!(description, b.description.map(Some));
    set!(paused, b.paused);
    set!(concurrency_limit, b.concurrency_limit);
    set!(
        concurrency_options,
        b.concurrency_options
            .map(|v| (!v.is_null()).then(|| v.to_string()))
    );
    set!(
        global_concurrency_limit_id,
        b.global_concurrency_limit_id.map(|u| Some(u.to_string()))
    );
    set!(parameters, b.parameters.map(|v| to_text(&v)));
    set!(
        parameter_openapi_schema,
        b.parameter_openapi_schema
            .map(|v| (!v.is_null()).then(|| v.to_string()))
    );
    set!(tags, b.tags.map(|v| to_text(&v)));
    set!(path, b.path.map(Some));
    set!(job_variables, b.job_variables.map(|v| to_text(&v)));
    set!(
        pull_steps,
        b.pull_steps.map(|v| (!v.is_null()).then(|| v.to_string()))
    );
    set!(entrypoint, b.entrypoint.map(Some));
    set!(
        storage_document_id,
        b.storage_document_id.map(|u| Some(u.to_string()))
    );
    set!(
        infrastructure_document_id,
        b.infrastructure_document_id.map(|u| Some(u.to_string()))
    );
    set!(enforce_parameter_schema, b.enforce_parameter_schema);
    set!(
        version_info,
        b.version_info
            .map(|v| (!v.is_null()).then(|| v.to_string()))
    );
    d.updated = now;
    // The schedules (when given), the row and the removal of the future auto-scheduled runs,
    // for the scheduler to plan again from what is now stored: all or nothing.
    db.transaction(async move |c| {
        if let Some(rows) = &schedules {
            deps::replace_schedules(c, &d.id, rows).await?;
        }
        deps::update(c, &d).await?;
        deps::delete_future_auto_runs(c, &d.id, now).await?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn delete(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let (ws, id) = (ws.id().clone(), id.typed::<Deployment>());
    let deleted = state
        .stores
        .orion
        .write(async move |c| deps::delete(c, &ws, &id).await)
        .await?;
    if !deleted {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct BulkDeleteBody {
    deployments: Option<DeploymentFilter>,
    limit: Option<i64>,
}

pub(super) async fn bulk_delete(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<BulkDeleteBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = limit(&state, b.limit)?;
    let related = Related {
        deployments: b.deployments,
        ..Default::default()
    };
    let rows = deps::list(
        &mut state.stores.orion.read().await?,
        ws.id(),
        &related,
        DeploymentSort::NameAsc,
        Page {
            limit: lim,
            offset: 0,
        },
    )
    .await?;
    let mut deleted = Vec::new();
    for d in rows {
        let (wsid, id) = (ws.id().clone(), d.id.clone());
        let gone = state
            .stores
            .orion
            .write(async move |c| deps::delete(c, &wsid, &id).await)
            .await?;
        if gone {
            deleted.push(d.id);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "deleted": deleted })))
}
