//! Flow-run state changes (`/flow_runs/{id}/set_state`, `/flow_runs/bulk_set_state`) and the
//! `/flow_run_states` reads.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::json::Json;
use crate::extract::params::{limit, PathId};
use crate::extract::Workspace;
use crate::orchestration::StateCreate;
use crate::query::{FlowRunFilter, Related};
use crate::runs::convert::{flow_state, state_json};
use crate::runs::{self, Request};
use crate::state::AppState;
use crate::storage::flow_runs;

/// `{"state": StateCreate, "force": bool}`; unknown top-level keys are ignored, as Prefect does.
#[derive(Deserialize)]
pub struct SetStateBody {
    pub state: StateCreate,
    #[serde(default)]
    pub force: bool,
}

impl SetStateBody {
    /// The orchestration request, with the client's version from its `User-Agent`.
    pub fn into_request(self, req: &HttpRequest) -> Request {
        Request {
            state: self.state,
            force: self.force,
            client_version: client_version(req),
        }
    }
}

/// The client version from `User-Agent: prefect/3.9.1 (API 0.8.4)`.
pub fn client_version(req: &HttpRequest) -> Option<String> {
    let ua = req.headers().get("user-agent")?.to_str().ok()?;
    let rest = ua.strip_prefix("prefect/")?;
    let (version, api) = rest.split_once(' ')?;
    (api.starts_with("(API ") && !version.is_empty()).then(|| version.to_string())
}

pub fn result_json(a: &runs::Applied<impl Sized>) -> Value {
    json!({
        "state": a.result.state.as_ref().map(state_json),
        "status": a.result.status,
        "details": a.result.details,
    })
}

/// The answer to a `set_state`: 201 with the result when a state was written, 200 when not
/// (rejected, waiting, aborted), 404 `not_found` when there is no such run.
pub fn set_state_answer<R>(
    applied: Option<runs::Applied<R>>,
    not_found: &str,
) -> ApiResult<HttpResponse> {
    let applied = applied.ok_or_else(|| ApiError::not_found(not_found))?;
    let mut resp = if applied.written {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(resp.json(result_json(&applied)))
}

pub(super) async fn set_state(
    req: HttpRequest,
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<SetStateBody>,
) -> ApiResult<HttpResponse> {
    let request = body.into_inner().into_request(&req);
    let applied = runs::set_flow_run_state(&state, ws.id(), &id.typed(), request).await?;
    set_state_answer(applied, "Flow run not found")
}

#[derive(Deserialize)]
pub(super) struct BulkSetStateBody {
    #[serde(default)]
    flow_runs: Option<FlowRunFilter>,
    state: StateCreate,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    limit: Option<i64>,
}

pub(super) async fn bulk_set_state(
    req: HttpRequest,
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<BulkSetStateBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = limit(&state, b.limit)?;
    let related = Related {
        flow_runs: b.flow_runs,
        ..Default::default()
    };
    let mut c = state.stores.orion.read().await?;
    let ids = flow_runs::list_ids(&mut c, ws.id(), &related, lim).await?;
    drop(c);
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let request = Request {
            state: b.state.clone(),
            force: b.force,
            client_version: client_version(&req),
        };
        if let Some(a) = runs::set_flow_run_state(&state, ws.id(), &id, request).await? {
            results.push(json!({"flow_run_id": id, "status": a.result.status, "reason": a.result.details.reason()}));
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

#[derive(Deserialize)]
pub(super) struct StatesQuery {
    flow_run_id: Option<String>,
}

pub(super) async fn read_states(
    state: web::Data<AppState>,
    ws: Workspace,
    q: web::Query<StatesQuery>,
) -> ApiResult<HttpResponse> {
    let Some(run_id) = q.into_inner().flow_run_id else {
        return Err(ApiError::invalid(
            vec!["query".into(), "flow_run_id".into()],
            "Field required",
            "missing",
        ));
    };
    let run_id = Uuid::parse_str(&run_id).map_err(|_| {
        ApiError::invalid(
            vec!["query".into(), "flow_run_id".into()],
            "Input should be a valid UUID",
            "uuid_parsing",
        )
    })?;
    let mut c = state.stores.orion.read().await?;
    let rows = flow_runs::list_states(&mut c, ws.id(), &run_id.into()).await?;
    let states: Vec<Value> = rows
        .iter()
        .filter_map(flow_state)
        .map(|s| state_json(&s))
        .collect();
    Ok(HttpResponse::Ok().json(states))
}

pub(super) async fn read_state(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let id = id.0;
    let mut c = state.stores.orion.read().await?;
    let row = flow_runs::find_state(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow run state not found"))?;
    let s = flow_state(&row).ok_or_else(|| ApiError::not_found("Flow run state not found"))?;
    Ok(HttpResponse::Ok().json(state_json(&s)))
}
