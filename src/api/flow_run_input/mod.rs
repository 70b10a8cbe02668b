//! `/flow_runs/{id}/input` (create, filter by key prefix, read as text/plain, delete) and
//! `/flow_runs/{id}/resume`: a PAUSED run is resumed through orchestration (Running, or
//! Scheduled "Resuming" after a rescheduling pause). When the pause waits for input, the
//! `run_input` is hydrated (UI placeholders such as workspace variables) and must match the
//! JSON schema stored under the pause's `run_input_keyset`. It is stored under the keyset's
//! `response` key before the state is proposed (so the waiting flow finds it as soon as it
//! sees Running) and removed again if the proposal is not accepted.

mod hydrate;
mod schema;

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, INTEGRITY_CONFLICT};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{PathId, PathKeyStr};
use crate::extract::Workspace;
use crate::ids::{FlowRunId, WorkspaceId};
use crate::orchestration::{SetStateStatus, State, StateCreate, StateDetails, StateType};
use crate::runs::convert::{flow_state, state_json};
use crate::runs::{self, Request};
use crate::state::AppState;
use crate::storage::flow_run_input::{self, InputRow, Inserted};
use crate::storage::{flow_runs, variables};
use crate::wire::Ts;

pub use schema::{check_schema, error_object, validate, SchemaError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/flow_runs/{id}/input", web::post().to(create))
        .route("/flow_runs/{id}/input/filter", web::post().to(filter))
        .route("/flow_runs/{id}/input/{key}", web::get().to(read))
        .route("/flow_runs/{id}/input/{key}", web::delete().to(delete))
        .route("/flow_runs/{id}/resume", web::post().to(resume));
}

/// `{key, value, sender?}`; unknown top-level keys are ignored (embedded body parameters).
#[derive(Deserialize)]
struct InputCreate {
    key: String,
    value: String,
    #[serde(default)]
    sender: Option<String>,
}

#[derive(Deserialize)]
struct FilterBody {
    prefix: String,
    #[serde(default = "one")]
    limit: i64,
    #[serde(default)]
    exclude_keys: Vec<String>,
}

fn one() -> i64 {
    1
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResumeBody {
    run_input: Option<Map<String, Value>>,
}

/// `FlowRunInput`.
#[derive(Serialize)]
pub struct InputOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    flow_run_id: &'a str,
    key: &'a str,
    value: &'a str,
    sender: Option<&'a str>,
}

impl<'a> From<&'a InputRow> for InputOut<'a> {
    fn from(r: &'a InputRow) -> Self {
        InputOut {
            id: &r.id,
            created: Ts(&r.created),
            updated: Ts(&r.updated),
            flow_run_id: &r.flow_run_id,
            key: &r.key,
            value: &r.value,
            sender: r.sender.as_deref(),
        }
    }
}

/// `FlowRunInput.key`: lowercase letters, digits and dashes.
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
        "Value error, value must only contain lowercase letters, numbers, and dashes.",
        "value_error",
    ))
}

fn input_not_found() -> ApiError {
    ApiError::not_found("Flow run input not found")
}

fn new_input(
    ws: &Workspace,
    run: &str,
    key: String,
    value: String,
    sender: Option<String>,
) -> InputRow {
    let now = crate::time::now().naive_utc();
    InputRow {
        id: Uuid::new_v4().to_string(),
        workspace_id: ws.id().clone(),
        created: now,
        updated: now,
        flow_run_id: run.to_string(),
        key,
        value,
        sender,
    }
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<InputCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    check_key(&b.key)?;
    let row = new_input(&ws, &id, b.key, b.value, b.sender);
    match insert(&state, row).await? {
        Inserted::Yes => Ok(HttpResponse::Created().json(Value::Null)),
        Inserted::Duplicate => Err(ApiError::conflict(
            "A flow run input with this key already exists.",
        )),
        Inserted::NoRun => Err(ApiError::not_found("Flow run not found")),
    }
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<FilterBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if b.limit < 0 {
        return Err(ApiError::invalid(
            vec!["body".into(), "limit".into()],
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        ));
    }
    let mut c = state.stores.orion.read().await?;
    let rows =
        flow_run_input::list(&mut c, ws.id(), &id, &b.prefix, &b.exclude_keys, b.limit).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(InputOut::from).collect::<Vec<_>>()))
}

async fn read(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    key: PathKeyStr,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let row = flow_run_input::find(&mut c, ws.id(), &id, &key)
        .await?
        .ok_or_else(input_not_found)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(row.value))
}

async fn delete(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    key: PathKeyStr,
) -> ApiResult<HttpResponse> {
    if !delete_input(&state, ws.0, id.0, key.0).await? {
        return Err(input_not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn insert(state: &AppState, row: InputRow) -> ApiResult<Inserted> {
    Ok(state
        .stores
        .orion
        .write(async move |c| flow_run_input::insert(c, &row).await)
        .await?)
}

/// Deletes the run's input `key`; false when there is none.
async fn delete_input(
    state: &AppState,
    ws: WorkspaceId,
    run: String,
    key: String,
) -> ApiResult<bool> {
    Ok(state
        .stores
        .orion
        .write(async move |c| flow_run_input::delete(c, &ws, &run, &key).await)
        .await?)
}

/// A resume refused before orchestration: REJECT with the current state and, as Prefect
/// answers, abort-style details.
fn refused(current: &State, reason: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "state": state_json(current),
        "status": SetStateStatus::Reject,
        "details": {"type": "abort_details", "reason": reason},
    }))
}

/// `run_input` with its `__prefect_kind` placeholders replaced (workspace variables read from
/// storage); `Err` holds Prefect's hydration error text.
pub(crate) async fn hydrated(
    state: &AppState,
    ws: &Workspace,
    run_input: Map<String, Value>,
) -> ApiResult<Result<Map<String, Value>, String>> {
    let mut names = Vec::new();
    hydrate::variable_names(&Value::Object(run_input.clone()), &mut names);
    names.sort();
    names.dedup();
    let vars: HashMap<String, Value> =
        variables::find_by_names(&mut state.stores.orion.read().await?, ws.id(), &names)
            .await?
            .into_iter()
            .map(|v| (v.name, super::common::json_col(&v.value, Value::Null)))
            .collect();
    Ok(hydrate::hydrate(run_input, &vars))
}

/// The input a waiting pause asks for, checked against its stored schema. `Ok(None)` when the
/// pause does not wait for input; `Err(response)` when the input is refused.
async fn checked_input(
    state: &AppState,
    ws: &Workspace,
    run: &str,
    current: &State,
    run_input: Option<Map<String, Value>>,
) -> ApiResult<Result<Option<(String, Map<String, Value>)>, HttpResponse>> {
    let keyset = match &current.state_details.run_input_keyset {
        Some(Value::Object(k)) if !k.is_empty() => k,
        _ => return Ok(Ok(None)),
    };
    let run_input = match hydrated(state, ws, run_input.unwrap_or_default()).await? {
        Ok(input) => input,
        Err(e) => {
            return Ok(Err(refused(
                current,
                &format!("Error hydrating run input: {e}"),
            )))
        }
    };
    let key_of = |name: &str| keyset.get(name).and_then(Value::as_str).map(str::to_string);
    let stored = match key_of("schema") {
        Some(k) => {
            let mut c = state.stores.orion.read().await?;
            flow_run_input::find(&mut c, ws.id(), run, &k).await?
        }
        None => None,
    };
    let Some(stored) = stored else {
        return Ok(Err(refused(current, "Run input schema not found.")));
    };
    let Ok(schema) = serde_json::from_str::<Value>(&stored.value) else {
        return Ok(Err(refused(current, "Run input schema is not valid JSON.")));
    };
    match validate(&Value::Object(run_input.clone()), &schema) {
        Ok(()) => {}
        Err(SchemaError::Invalid(msg)) => {
            return Ok(Err(refused(current, &format!("Reason: {msg}"))));
        }
        Err(SchemaError::Circular) => {
            return Ok(Err(refused(
                current,
                "Invalid schema: Unable to validate schema with circular references.",
            )));
        }
    }
    Ok(Ok(key_of("response").map(|k| (k, run_input))))
}

/// The state that resumes a paused run: Scheduled "Resuming" when the pause gave up its
/// infrastructure (a suspension), Running otherwise.
pub(crate) fn resume_proposal(current: &crate::orchestration::State) -> StateCreate {
    if current.state_details.pause_reschedule {
        StateCreate {
            name: Some("Resuming".into()),
            state_details: Some(StateDetails {
                scheduled_time: Some(crate::time::now()),
                ..StateDetails::default()
            }),
            ..StateCreate::of(StateType::Scheduled)
        }
    } else {
        StateCreate::of(StateType::Running)
    }
}

async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: JsonOrDefault<ResumeBody>,
) -> ApiResult<HttpResponse> {
    let run_id: FlowRunId = id.typed();
    let mut c = state.stores.orion.read().await?;
    let (_, current) = flow_runs::find(&mut c, ws.id(), &run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow run not found"))?;
    drop(c);
    let current = current.as_ref().and_then(flow_state);
    let Some(current) = current.filter(|s| s.state_type == StateType::Paused) else {
        return Ok(HttpResponse::Ok().json(json!({
            "state": null,
            "status": SetStateStatus::Abort,
            "details": {"type": "abort_details", "reason": "Cannot resume a flow run that is not paused."},
        })));
    };
    let input = match checked_input(&state, &ws, &id, &current, body.into_inner().run_input).await?
    {
        Ok(input) => input,
        Err(response) => return Ok(response),
    };
    // Stored first, so the paused flow finds it as soon as it sees the run resumed.
    let mut stored_key = None;
    if let Some((key, run_input)) = input.filter(|(_, i)| !i.is_empty()) {
        let value = super::common::to_text(&run_input);
        let row = new_input(&ws, &id, key.clone(), value, None);
        match insert(&state, row).await? {
            Inserted::Yes => stored_key = Some(key),
            Inserted::Duplicate => return Err(ApiError::conflict(INTEGRITY_CONFLICT)),
            Inserted::NoRun => return Err(ApiError::not_found("Flow run not found")),
        }
    }
    let proposed = resume_proposal(&current);
    let request = Request {
        state: proposed,
        force: false,
        client_version: super::flow_runs::client_version(&req),
    };
    let applied = runs::set_flow_run_state(&state, ws.id(), &run_id, request).await;
    let accepted = matches!(&applied, Ok(Some(a)) if a.result.status == SetStateStatus::Accept);
    if let (Some(key), false) = (&stored_key, accepted) {
        delete_input(&state, ws.0.clone(), id.0.clone(), key.clone()).await?;
    }
    super::flow_runs::set_state_answer(applied?, "Flow run not found")
}
