//! A deployment's schedules: their bodies and checks, read, create, update and delete (each with
//! the removal of the future auto-scheduled runs, in one transaction), and
//! `POST /deployments/{id}/schedule`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::super::common::to_text;
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{PathId, PathScheduleId};
use crate::extract::Workspace;
use crate::scheduling::Schedule;
use crate::state::AppState;
use crate::storage::deployments::{self as deps, ScheduleRow};
use crate::wire::{json_text, JsonText, Ts};

use super::{find_dot, lookup};
use crate::ids::{DeploymentId, WorkspaceId};

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleCreate {
    #[serde(default = "yes")]
    active: bool,
    schedule: Value,
    #[serde(default)]
    max_scheduled_runs: Option<i32>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    slug: Option<String>,
    /// Accepted for compatibility; schedules are replaced wholesale on upsert.
    #[serde(default, rename = "replaces")]
    _replaces: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleUpdate {
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    schedule: Option<Value>,
    #[serde(default)]
    max_scheduled_runs: Option<Option<i32>>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    replaces: Option<String>,
}

pub(super) fn yes() -> bool {
    true
}

/// A bad schedule at index `i` of a list found at `prefix` (`["body", "schedules"]` in a
/// deployment body, `["body"]` when the body is the list).
pub(super) fn invalid_schedule(prefix: &[&str], i: usize, msg: String) -> ApiError {
    let mut loc: Vec<Value> = prefix.iter().map(|p| Value::from(*p)).collect();
    loc.push(i.into());
    loc.push("schedule".into());
    ApiError::invalid(loc, msg, "value_error")
}

/// The time of the `i`-th schedule written by one request: a microsecond apart, as the
/// reference's rows are (it stamps each row as it writes it), so that the newest-updated-first
/// order the schedules are listed in follows the order they were sent in.
fn nth_write(now: chrono::DateTime<chrono::Utc>, i: usize) -> chrono::NaiveDateTime {
    let now = now.naive_utc();
    i64::try_from(i)
        .ok()
        .and_then(|step| now.checked_add_signed(chrono::Duration::microseconds(step)))
        .unwrap_or(now)
}

pub(super) fn schedule_rows(
    ws: &WorkspaceId,
    deployment_id: &DeploymentId,
    list: &[ScheduleCreate],
) -> ApiResult<Vec<ScheduleRow>> {
    schedule_rows_at(ws, deployment_id, list, &["body", "schedules"])
}

pub(super) fn schedule_rows_at(
    ws: &WorkspaceId,
    deployment_id: &DeploymentId,
    list: &[ScheduleCreate],
    loc: &[&str],
) -> ApiResult<Vec<ScheduleRow>> {
    let now = crate::time::now();
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let mut at: Vec<Value> = loc.iter().map(|p| Value::from(*p)).collect();
            at.extend([i.into(), "max_scheduled_runs".into()]);
            super::super::work_pools::positive_at(at, s.max_scheduled_runs)?;
            let parsed =
                Schedule::parse(&s.schedule, now).map_err(|e| invalid_schedule(loc, i, e))?;
            Ok(ScheduleRow {
                id: Uuid::new_v4().to_string(),
                workspace_id: ws.clone(),
                created: nth_write(now, i),
                updated: nth_write(now, i),
                deployment_id: deployment_id.clone(),
                schedule: parsed.to_json().to_string(),
                active: s.active,
                max_scheduled_runs: s.max_scheduled_runs,
                parameters: to_text(&s.parameters.clone().unwrap_or_default()),
                slug: s.slug.clone(),
            })
        })
        .collect()
}

/// A deployment PATCH's schedules, by the reference's rules. When every existing schedule and
/// every given one has a slug, the given ones are targeted updates: a slug (or the slug it
/// `replaces`) that exists is that schedule, changed in place (its id kept; `parameters`
/// become what was sent, `{}` when nothing was); any other is a new schedule; schedules not
/// named are kept. When every existing schedule has a slug and a given one has none, 422.
/// Otherwise the given list replaces the set. `Ok(None)`: the schedules are left as they are.
/// `replaces` is never stored.
pub(super) fn patched_schedules(
    ws: &WorkspaceId,
    deployment_id: &DeploymentId,
    existing: &[ScheduleRow],
    given: Option<&[ScheduleUpdate]>,
) -> ApiResult<Option<Vec<ScheduleRow>>> {
    let Some(given) = given else {
        return Ok(None);
    };
    let all_given_slugged = given.iter().all(|s| s.slug.is_some());
    let all_existing_slugged = !existing.is_empty() && existing.iter().all(|s| s.slug.is_some());
    if !all_existing_slugged {
        let full: Vec<ScheduleCreate> = given
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let schedule = s.schedule.clone().ok_or_else(|| {
                    let loc = ["body", "schedules"].iter().map(|p| Value::from(*p));
                    let mut loc: Vec<Value> = loc.collect();
                    loc.extend([i.into(), "schedule".into()]);
                    ApiError::invalid(loc, "Field required", "missing")
                })?;
                Ok(ScheduleCreate {
                    active: s.active.unwrap_or(true),
                    schedule,
                    max_scheduled_runs: s.max_scheduled_runs.flatten(),
                    parameters: s.parameters.clone(),
                    slug: s.slug.clone(),
                    _replaces: None,
                })
            })
            .collect::<ApiResult<_>>()?;
        return schedule_rows(ws, deployment_id, &full).map(Some);
    }
    if !all_given_slugged {
        return Err(ApiError::unprocessable(
            "Please provide a slug for each schedule in your request to ensure schedules are \
             updated correctly.",
        ));
    }
    let mut replaced = std::collections::HashSet::new();
    for r in given.iter().filter_map(|s| s.replaces.as_deref()) {
        if !replaced.insert(r) {
            return Err(ApiError::unprocessable(format!(
                "Multiple schedules have 'replaces' targeting the same slug: {r}"
            )));
        }
    }
    let position = |slug: &str| {
        existing
            .iter()
            .position(|e| e.slug.as_deref() == Some(slug))
    };
    for s in given {
        if let (Some(slug), Some(from)) = (&s.slug, &s.replaces) {
            if position(slug).is_some() && !replaced.contains(slug.as_str()) {
                return Err(ApiError::unprocessable(format!(
                    "Cannot rename schedule from '{from}' to '{slug}': a schedule with slug \
                     '{slug}' already exists."
                )));
            }
        }
    }
    let now = crate::time::now();
    let mut rows = existing.to_vec();
    let mut created = Vec::new();
    for (i, s) in given.iter().enumerate() {
        let parsed = match &s.schedule {
            Some(v) => Some(
                Schedule::parse(v, now)
                    .map_err(|e| invalid_schedule(&["body", "schedules"], i, e))?
                    .to_json()
                    .to_string(),
            ),
            None => None,
        };
        let parameters = to_text(&s.parameters.clone().unwrap_or_default());
        let target = s.replaces.as_deref().or(s.slug.as_deref()).unwrap_or("");
        match position(target) {
            Some(at) => {
                let row = &mut rows[at];
                if let Some(active) = s.active {
                    row.active = active;
                }
                if let Some(schedule) = parsed {
                    row.schedule = schedule;
                }
                if let Some(Some(n)) = s.max_scheduled_runs {
                    row.max_scheduled_runs = Some(n);
                }
                row.parameters = parameters;
                row.slug = s.slug.clone().or(row.slug.take());
                row.updated = nth_write(now, i);
            }
            None => {
                let Some(schedule) = parsed else {
                    return Err(ApiError::unprocessable(
                        "Unable to create new deployment schedules without a schedule \
                         configuration.",
                    ));
                };
                created.push(ScheduleRow {
                    id: Uuid::new_v4().to_string(),
                    workspace_id: ws.clone(),
                    created: nth_write(now, i),
                    updated: nth_write(now, i),
                    deployment_id: deployment_id.clone(),
                    schedule,
                    active: s.active.unwrap_or(true),
                    max_scheduled_runs: None,
                    parameters,
                    slug: s.slug.clone(),
                });
            }
        }
    }
    rows.extend(created);
    Ok(Some(rows))
}

/// `DeploymentSchedule`.
#[derive(Serialize)]
pub(super) struct ScheduleOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    deployment_id: &'a str,
    schedule: JsonText<'a>,
    active: bool,
    max_scheduled_runs: Option<i32>,
    parameters: JsonText<'a>,
    slug: Option<&'a str>,
}

impl<'a> From<&'a ScheduleRow> for ScheduleOut<'a> {
    fn from(s: &'a ScheduleRow) -> Self {
        ScheduleOut {
            id: &s.id,
            created: Ts(&s.created),
            updated: Ts(&s.updated),
            deployment_id: &s.deployment_id,
            schedule: json_text(&s.schedule, "null"),
            active: s.active,
            max_scheduled_runs: s.max_scheduled_runs,
            parameters: json_text(&s.parameters, "{}"),
            slug: s.slug.as_deref(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ScheduleNowBody {
    #[serde(with = "crate::time::opt")]
    start_time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(with = "crate::time::opt")]
    end_time: Option<chrono::DateTime<chrono::Utc>>,
    min_time: Option<f64>,
    min_runs: Option<usize>,
    max_runs: Option<usize>,
}

/// A `min_time` in seconds as a duration; beyond Python's timedelta range (999,999,999 days)
/// it is pydantic's 422, as the reference answers.
pub(super) fn min_time(seconds: f64) -> ApiResult<chrono::Duration> {
    const LIMIT_SECONDS: f64 = 1_000_000_000.0 * 86_400.0;
    if !seconds.is_finite() || seconds.abs() >= LIMIT_SECONDS {
        return Err(ApiError::invalid(
            vec!["body".into(), "min_time".into()],
            "Input should be a valid timedelta, durations may not exceed 999,999,999 days",
            "time_delta_parsing",
        ));
    }
    Ok(chrono::Duration::milliseconds((seconds * 1000.0) as i64))
}

/// Most runs one `POST /deployments/{id}/schedule` may ask for: the dates, keys and rows of a
/// call are built in memory, so an unbounded count is a way to exhaust the server.
const MAX_RUNS_PER_CALL: usize = 100_000;

pub(super) fn run_count(field: &str, n: Option<usize>, default: usize) -> ApiResult<usize> {
    match n {
        Some(n) if n > MAX_RUNS_PER_CALL => Err(ApiError::invalid(
            vec!["body".into(), field.into()],
            format!("Input should be less than or equal to {MAX_RUNS_PER_CALL}"),
            "less_than_equal",
        )),
        n => Ok(n.unwrap_or(default)),
    }
}

pub(super) async fn schedule_now(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: JsonOrDefault<ScheduleNowBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let now = crate::time::now();
    let start = b.start_time.unwrap_or(now);
    let end = b.end_time.unwrap_or_else(|| {
        start
            .checked_add_signed(chrono::Duration::days(100))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    });
    let window = crate::scheduling::plan::Window {
        start,
        end,
        min_runs: run_count("min_runs", b.min_runs, 3)?,
        max_runs: run_count("max_runs", b.max_runs, 100)?,
        min_time: min_time(b.min_time.unwrap_or(3600.0))?,
    };
    // Like the reference: the body is checked first, and an unknown deployment schedules
    // nothing (200, null) rather than answering 404.
    let Some(d) = lookup(&state, &ws, &id.typed()).await? else {
        return Ok(HttpResponse::Ok().json(Value::Null));
    };
    crate::scheduling::plan::schedule_deployment(&state, &d, &window).await?;
    Ok(HttpResponse::Ok().json(Value::Null))
}

pub(super) async fn read_schedules(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    let d = find_dot(&state, &ws, &id.typed()).await?;
    let mut c = state.stores.orion.read().await?;
    let rows = deps::list_schedules(&mut c, std::slice::from_ref(&d.id)).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(ScheduleOut::from).collect::<Vec<_>>()))
}

pub(super) async fn create_schedules(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<Vec<ScheduleCreate>>,
) -> ApiResult<HttpResponse> {
    // The body is validated before the deployment is looked up, as the reference does.
    let rows = schedule_rows_at(ws.id(), &id.typed(), &body.into_inner(), &["body"])?;
    let d = find_dot(&state, &ws, &id.typed()).await?;
    let now = crate::time::now().naive_utc();
    let written = rows.clone();
    // The schedules and the removal of the runs planned before them: all or nothing.
    let done = state
        .stores
        .orion
        .transaction(async move |c| {
            deps::insert_schedules(c, &written).await?;
            deps::delete_future_auto_runs(c, &d.id, now).await
        })
        .await;
    match done {
        Err(crate::storage::StorageError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "Schedule slugs must be unique within a deployment.",
            ))
        }
        other => other?,
    };
    Ok(HttpResponse::Created().json(rows.iter().map(ScheduleOut::from).collect::<Vec<_>>()))
}

pub(super) async fn update_schedule(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    sid: PathScheduleId,
    body: Json<ScheduleUpdate>,
) -> ApiResult<HttpResponse> {
    // The body is validated before anything is looked up, as the reference does.
    let b = body.into_inner();
    super::super::work_pools::positive_at(
        vec!["body".into(), "max_scheduled_runs".into()],
        b.max_scheduled_runs.flatten(),
    )?;
    let parsed = match &b.schedule {
        Some(v) => Some(Schedule::parse(v, crate::time::now()).map_err(|e| {
            ApiError::invalid(vec!["body".into(), "schedule".into()], e, "value_error")
        })?),
        None => None,
    };
    let d = find_dot(&state, &ws, &id.typed()).await?;
    let mut c = state.stores.orion.read().await?;
    let mut s = deps::list_schedules(&mut c, std::slice::from_ref(&d.id))
        .await?
        .into_iter()
        .find(|s| s.id == sid.0)
        .ok_or_else(|| ApiError::not_found("Schedule not found."))?;
    let _ = b.replaces;
    if let Some(v) = b.active {
        s.active = v;
    }
    if let Some(parsed) = parsed {
        s.schedule = parsed.to_json().to_string();
    }
    if let Some(v) = b.max_scheduled_runs {
        s.max_scheduled_runs = v;
    }
    if let Some(v) = b.parameters {
        s.parameters = to_text(&v);
    }
    if let Some(v) = b.slug {
        s.slug = Some(v);
    }
    drop(c);
    let now = crate::time::now().naive_utc();
    s.updated = now;
    // The schedule and the removal of the runs planned from it before: all or nothing.
    state
        .stores
        .orion
        .transaction(async move |c| {
            deps::update_schedule(c, &s).await?;
            deps::delete_future_auto_runs(c, &d.id, now).await
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn delete_schedule(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    sid: PathScheduleId,
) -> ApiResult<HttpResponse> {
    let d = find_dot(&state, &ws, &id.typed()).await?;
    let now = crate::time::now().naive_utc();
    let sid = sid.0.clone();
    // The schedule and the runs planned from it: all or nothing.
    let found = state
        .stores
        .orion
        .transaction(async move |c| {
            if !deps::delete_schedule(c, &d.id, &sid).await? {
                return Ok(false);
            }
            deps::delete_future_auto_runs(c, &d.id, now).await?;
            Ok(true)
        })
        .await?;
    if !found {
        return Err(ApiError::not_found("Schedule not found."));
    }
    Ok(HttpResponse::NoContent().finish())
}
