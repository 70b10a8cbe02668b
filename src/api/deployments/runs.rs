//! Runs of a deployment: `create_flow_run` (idempotency keys, parameter schema enforcement,
//! queue resolution), its bulk form, the work queue check, and the runner poll
//! `get_scheduled_flow_runs`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::super::common::to_text;
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{limit, PathId};
use crate::extract::Workspace;
use crate::ids::{FlowRunId, TaskRunId};
use crate::orchestration::{FlowRunPolicy, StateCreate, StateDetails, StateType};
use crate::runs::answers::FlowRunOut;
use crate::runs::convert::{flow_state, flow_states_by_id};
use crate::state::AppState;
use crate::storage::deployments::{self as deps, DeploymentRow};
use crate::storage::rows::FlowRunRow;
use crate::storage::transitions::Created;
use crate::storage::{flow_runs, work_pools as wp};

use super::find;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DeploymentFlowRunCreate {
    state: Option<StateCreate>,
    name: Option<String>,
    parameters: Option<Map<String, Value>>,
    enforce_parameter_schema: Option<bool>,
    context: Option<Map<String, Value>>,
    infrastructure_document_id: Option<Uuid>,
    empirical_policy: Option<FlowRunPolicy>,
    tags: Option<Vec<String>>,
    idempotency_key: Option<String>,
    labels: Option<BTreeMap<String, Value>>,
    parent_task_run_id: Option<Uuid>,
    work_queue_name: Option<String>,
    job_variables: Option<Map<String, Value>>,
}

impl DeploymentFlowRunCreate {
    /// What a run-deployment action asks for (Prefect's `RunDeployment.command`).
    pub(crate) fn for_automation(
        state: StateCreate,
        parameters: Map<String, Value>,
        job_variables: Option<Map<String, Value>>,
        idempotency_key: String,
    ) -> Self {
        DeploymentFlowRunCreate {
            state: Some(state),
            parameters: Some(parameters),
            job_variables,
            idempotency_key: Some(idempotency_key),
            ..Default::default()
        }
    }
}

/// `created_by` from the automation headers (API.md §1.3), if present.
pub(super) fn created_by(req: &HttpRequest) -> Option<String> {
    let id = req.headers().get("prefect-automation-id")?.to_str().ok()?;
    let name = req
        .headers()
        .get("prefect-automation-name")
        .and_then(|v| v.to_str().ok())
        .map(|b64| decode_b64(b64).unwrap_or_default());
    Some(json!({"id": id, "type": "AUTOMATION", "display_value": name}).to_string())
}

pub(super) fn decode_b64(s: &str) -> Option<String> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.trim_end_matches('=').bytes() {
        let v = T.iter().position(|&x| x == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Builds and creates one run of deployment `d`; `Ok(Err(existing))` on an idempotency hit.
pub(crate) async fn new_run(
    state: &AppState,
    ws: &Workspace,
    d: &DeploymentRow,
    b: DeploymentFlowRunCreate,
    creator: Option<String>,
) -> ApiResult<(FlowRunRow, Option<crate::orchestration::State>, bool)> {
    let db = &state.stores.orion;
    let mut params: Map<String, Value> = serde_json::from_str(&d.parameters).unwrap_or_default();
    params.extend(b.parameters.unwrap_or_default());
    if b.enforce_parameter_schema
        .unwrap_or(d.enforce_parameter_schema)
    {
        if let Some(schema) = d
            .parameter_openapi_schema
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            crate::runs::params::validate(&schema, &params)
                .map_err(|e| ApiError::conflict(format!("Error creating flow run: {e}")))?;
        }
    }
    let mut tags: Vec<String> = serde_json::from_str(&d.tags).unwrap_or_default();
    for t in b.tags.unwrap_or_default() {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    // The deployment's queue and pool; a run naming a queue goes to that queue of the
    // deployment's pool (created when missing), which needs the deployment to have a pool.
    let dep_pool = {
        let mut c = db.read().await?;
        let dep_queue = match &d.work_queue_id {
            Some(q) => wp::find_queue_by_id(&mut c, ws.id(), q).await?,
            None => None,
        };
        let dep_pool = match &dep_queue {
            Some(q) => wp::find_pool_by_id(&mut c, ws.id(), &q.work_pool_id).await?,
            None => None,
        };
        dep_pool
    };
    let (queue_name, queue_id, pool) = match b.work_queue_name.filter(|n| !n.is_empty()) {
        Some(name) => {
            let Some(p) = dep_pool else {
                return Err(ApiError::bad_request(format!(
                    "Cannot create flow run in work queue {name} because deployment {} is not associated with a work pool. Please remove work_pool_name and try again.",
                    d.id
                )));
            };
            let body = super::super::work_pools::QueueCreate::named(name);
            let q = super::super::work_pools::find_or_create_queue(state, ws, &p, body).await?;
            (Some(q.name), Some(q.id), Some(p))
        }
        None => (d.work_queue_name.clone(), d.work_queue_id.clone(), dep_pool),
    };
    let mut labels: BTreeMap<String, Value> = serde_json::from_str(&d.labels).unwrap_or_default();
    labels.extend(b.labels.unwrap_or_default());
    labels.insert(
        "prefect.flow.id".into(),
        Value::String(d.flow_id.to_string()),
    );
    labels.insert(
        "prefect.deployment.id".into(),
        Value::String(d.id.to_string()),
    );
    let now = crate::time::now();
    let row = FlowRunRow {
        id: FlowRunId::random(),
        workspace_id: ws.id().clone(),
        created: now.naive_utc(),
        updated: now.naive_utc(),
        name: b
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(crate::runs::names::generate),
        flow_id: d.flow_id.clone(),
        state_id: None,
        state_type: None,
        state_name: None,
        state_timestamp: None,
        deployment_id: Some(d.id.clone()),
        deployment_version: d.version.clone(),
        work_queue_id: queue_id,
        work_queue_name: queue_name,
        work_pool_id: pool.as_ref().map(|p| p.id.clone()),
        work_pool_name: pool.as_ref().map(|p| p.name.clone()),
        flow_version: None,
        parameters: to_text(&params),
        idempotency_key: b.idempotency_key,
        context: to_text(&b.context.unwrap_or_default()),
        empirical_policy: to_text(&b.empirical_policy.unwrap_or_default()),
        tags: to_text(&tags),
        labels: to_text(&labels),
        parent_task_run_id: b.parent_task_run_id.map(TaskRunId::from),
        run_count: 0,
        expected_start_time: None,
        next_scheduled_start_time: None,
        start_time: None,
        end_time: None,
        total_run_time: 0.0,
        auto_scheduled: false,
        infrastructure_document_id: b
            .infrastructure_document_id
            .map(|u| u.to_string())
            .or_else(|| d.infrastructure_document_id.clone()),
        infrastructure_pid: None,
        created_by: creator,
        job_variables: to_text(&b.job_variables.unwrap_or_default()),
    };
    let initial = b.state.unwrap_or_else(|| StateCreate {
        state_details: Some(StateDetails::default()),
        ..StateCreate::of(StateType::Scheduled)
    });
    match crate::runs::create_flow_run(state, row, None, initial).await? {
        Created::New(a) => Ok((a.run, a.state, true)),
        Created::Existing(existing) => {
            let (run, s) = flow_runs::find(&mut db.read().await?, ws.id(), &existing)
                .await?
                .ok_or_else(|| ApiError::not_found("Flow run not found"))?;
            Ok((run, s.as_ref().and_then(flow_state), false))
        }
    }
}

pub(super) async fn create_flow_run(
    req: HttpRequest,
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: JsonOrDefault<DeploymentFlowRunCreate>,
) -> ApiResult<HttpResponse> {
    let d = find(&state, &ws, &id.typed()).await?;
    let (run, s, created) = new_run(&state, &ws, &d, body.into_inner(), created_by(&req)).await?;
    let body = FlowRunOut::new(&run, s.as_ref(), crate::time::now());
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

pub(super) async fn create_flow_runs_bulk(
    req: HttpRequest,
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<Vec<DeploymentFlowRunCreate>>,
) -> ApiResult<HttpResponse> {
    let d = find(&state, &ws, &id.typed()).await?;
    let mut results = Vec::new();
    for b in body.into_inner() {
        match new_run(&state, &ws, &d, b, created_by(&req)).await {
            Ok((run, _, _)) => {
                results.push(json!({"flow_run_id": run.id, "status": "CREATED", "error": null}))
            }
            Err(ApiError::Detail(_, msg)) => {
                let reason = msg
                    .strip_prefix("Error creating flow run: ")
                    .unwrap_or(&msg)
                    .to_string();
                results.push(json!({"flow_run_id": null, "status": "FAILED", "error": format!("Parameter validation failed: {reason}")}))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

pub(super) async fn work_queue_check(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let d = find(&state, &ws, &id.typed()).await?;
    let queue = match &d.work_queue_id {
        Some(q) => {
            let mut c = state.stores.orion.read().await?;
            wp::find_queue_by_id(&mut c, ws.id(), q).await?
        }
        None => None,
    };
    let out: Vec<_> = queue
        .iter()
        .map(|q| super::super::work_pools::QueueOut::new(q, None, None))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
pub(super) struct ScheduledRunsBody {
    deployment_ids: Vec<Uuid>,
    #[serde(default, with = "crate::time::opt")]
    scheduled_before: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    limit: Option<i64>,
}

pub(super) async fn scheduled_runs(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<ScheduledRunsBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = limit(&state, b.limit)?;
    let now = crate::time::now();
    let ids: Vec<String> = b.deployment_ids.iter().map(|u| u.to_string()).collect();
    let before = b.scheduled_before.unwrap_or(now).naive_utc();
    let (wsid, polled) = (ws.id().clone(), now.naive_utc());
    let runs = state
        .stores
        .orion
        .write(async move |c| deps::scheduled_runs(c, &wsid, &ids, before, lim, polled).await)
        .await?;
    let states = flow_runs::find_states_of(&mut state.stores.orion.read().await?, &runs).await?;
    let run_states = flow_states_by_id(runs.iter(), &states);
    let out: Vec<FlowRunOut> = runs
        .iter()
        .zip(&run_states)
        .map(|(r, s)| FlowRunOut::new(r, s.as_ref(), now))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}
