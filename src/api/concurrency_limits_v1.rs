//! `/concurrency_limits`: v1 tag limits, kept as v2 limits named `tag:<tag>` (as Prefect 3.x
//! does, API.md §7a). Create (201 new / 200 updated), read by id or tag, list, delete, reset a
//! tag's holders, and take or give back a slot for a task run. `active_slots` lists the task
//! runs holding a lease on the limit, so a `@task(tags=[...])` that takes `tag:<tag>` slots
//! through `/v2/concurrency_limits/increment-with-lease` shows up here.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

use super::concurrency_limits_v2::{minimal, MinimalOut};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathId, PathTag};
use crate::extract::Workspace;
use crate::state::AppState;
use crate::storage::concurrency::{
    self, AcquireRequest, Acquired, LeaseRow, LimitChanges, LimitRow,
};
use crate::storage::StorageError;
use crate::wire::Ts;

/// v1 limits are stored as v2 limits with this name prefix.
const PREFIX: &str = "tag:";
/// v1 clients never renew their leases: they last about a hundred years (`V1_LEASE_TTL`).
const V1_LEASE_DAYS: i64 = 100 * 365;
/// `Retry-After` of a full tag limit (`PREFECT_TASK_RUN_TAG_CONCURRENCY_SLOT_WAIT_SECONDS`).
const TAG_SLOT_WAIT_SECONDS: &str = "10.0";
/// Characters a v2 limit name may not contain (Prefect's `Name`).
const BANNED: [char; 5] = ['/', '%', '&', '>', '<'];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/concurrency_limits/", web::post().to(create))
        .route("/concurrency_limits", web::post().to(create))
        .route("/concurrency_limits/filter", web::post().to(filter))
        .route("/concurrency_limits/increment", web::post().to(increment))
        .route("/concurrency_limits/decrement", web::post().to(decrement))
        .route("/concurrency_limits/tag/{tag}", web::get().to(read_by_tag))
        .route(
            "/concurrency_limits/tag/{tag}",
            web::delete().to(delete_by_tag),
        )
        .route("/concurrency_limits/tag/{tag}/reset", web::post().to(reset))
        .route("/concurrency_limits/{id}", web::get().to(read))
        .route("/concurrency_limits/{id}", web::delete().to(delete));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitCreate {
    tag: String,
    concurrency_limit: i32,
}

#[derive(Deserialize)]
struct SlotsBody {
    names: Vec<String>,
    task_run_id: Uuid,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetBody {
    slot_override: Option<Vec<Uuid>>,
}

fn not_found() -> ApiError {
    ApiError::not_found("Concurrency limit not found")
}

fn v2_name(tag: &str) -> String {
    format!("{PREFIX}{tag}")
}

/// The `{"type": "task_run", "id": ...}` holder of a v1 slot, as stored on its lease.
fn task_run_holder(id: &Uuid) -> String {
    json!({"type": "task_run", "id": id.to_string()}).to_string()
}

/// The task-run id of a lease holder, if the holder is a task run.
fn holder_task_run(holder: Option<&str>) -> Option<String> {
    let v: Value = serde_json::from_str(holder?).ok()?;
    (v.get("type")?.as_str()? == "task_run")
        .then(|| v.get("id")?.as_str().map(str::to_string))
        .flatten()
}

/// A limit in the v1 shape, with the task runs holding its slots.
async fn v1_json<'a>(state: &AppState, ws: &Workspace, l: &'a LimitRow) -> ApiResult<V1Out<'a>> {
    let mut c = state.stores.orion.read().await?;
    let leases = concurrency::leases_on_limit(&mut c, ws.id(), &l.id).await?;
    let mut holders = holders_by_limit(&leases);
    Ok(v1_value(l, holders.remove(&l.id).unwrap_or_default()))
}

/// The task runs holding slots, per limit id: each lease's JSON is read once.
fn holders_by_limit(leases: &[LeaseRow]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for lease in leases {
        let Some(task_run) = holder_task_run(lease.holder.as_deref()) else {
            continue;
        };
        let ids = serde_json::from_str::<Vec<String>>(&lease.limit_ids).unwrap_or_default();
        for id in ids {
            out.entry(id).or_default().push(task_run.clone());
        }
    }
    out
}

/// `ConcurrencyLimit` (v1): a limit with the task runs holding its slots.
#[derive(Serialize)]
struct V1Out<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    tag: &'a str,
    concurrency_limit: i32,
    active_slots: Vec<String>,
}

fn v1_value(l: &LimitRow, holders: Vec<String>) -> V1Out<'_> {
    V1Out {
        id: &l.id,
        created: Ts(&l.created),
        updated: Ts(&l.updated),
        tag: l.name.strip_prefix(PREFIX).unwrap_or(&l.name),
        concurrency_limit: l.limit_,
        active_slots: holders,
    }
}

async fn find_tag(state: &AppState, ws: &Workspace, tag: &str) -> ApiResult<Option<LimitRow>> {
    let mut c = state.stores.orion.read().await?;
    Ok(concurrency::find(&mut c, ws.id(), &v2_name(tag)).await?)
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<LimitCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if b.concurrency_limit < 0 {
        return Err(ApiError::invalid(
            vec!["body".into(), "concurrency_limit".into()],
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        ));
    }
    if b.tag.contains(BANNED) {
        return Err(ApiError::invalid(
            vec!["body".into(), "tag".into()],
            "String should match pattern '^[^/%&><]+$'",
            "string_pattern_mismatch",
        ));
    }
    let db = &state.stores.orion;
    let now = crate::time::now().naive_utc();
    if find_tag(&state, &ws, &b.tag).await?.is_none() {
        let row = LimitRow {
            id: Uuid::new_v4().to_string(),
            workspace_id: ws.id().clone(),
            created: now,
            updated: now,
            active: true,
            name: v2_name(&b.tag),
            limit_: b.concurrency_limit,
            active_slots: 0,
            denied_slots: 0,
            slot_decay_per_second: 0.0,
            avg_slot_occupancy_seconds: 2.0,
        };
        let stored = row.clone();
        let inserted = db
            .write(async move |c| concurrency::insert(c, &stored).await)
            .await;
        match inserted {
            Ok(()) => return Ok(HttpResponse::Created().json(v1_json(&state, &ws, &row).await?)),
            // Created concurrently: update it below.
            Err(StorageError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let existing = find_tag(&state, &ws, &b.tag).await?.ok_or_else(not_found)?;
    let changes = LimitChanges {
        updated: Some(now),
        limit_: Some(b.concurrency_limit),
        ..Default::default()
    };
    let (wsid, id) = (ws.id().clone(), existing.id.clone());
    db.write(async move |c| concurrency::update(c, &wsid, &id, &changes).await)
        .await?;
    let row = LimitRow {
        updated: now,
        limit_: b.concurrency_limit,
        ..existing
    };
    Ok(HttpResponse::Ok().json(v1_json(&state, &ws, &row).await?))
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let l = concurrency::find(&mut c, ws.id(), &id)
        .await?
        .filter(|l| l.name.starts_with(PREFIX))
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(v1_json(&state, &ws, &l).await?))
}

async fn read_by_tag(
    state: web::Data<AppState>,
    ws: Workspace,
    tag: PathTag,
) -> ApiResult<HttpResponse> {
    let l = find_tag(&state, &ws, &tag).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(v1_json(&state, &ws, &l).await?))
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<Paging>,
) -> ApiResult<HttpResponse> {
    let page = body.into_inner().page(&state)?;
    let mut c = state.stores.orion.read().await?;
    let rows = concurrency::list_by_prefix(&mut c, ws.id(), PREFIX, page).await?;
    let leases = if rows.is_empty() {
        Vec::new()
    } else {
        concurrency::leases_in_workspace(&mut c, ws.id()).await?
    };
    let mut holders = holders_by_limit(&leases);
    let out: Vec<V1Out> = rows
        .iter()
        .map(|l| v1_value(l, holders.remove(&l.id).unwrap_or_default()))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let l = concurrency::find(&mut c, ws.id(), &id)
        .await?
        .filter(|l| l.name.starts_with(PREFIX))
        .ok_or_else(not_found)?;
    drop(c);
    if !delete_with_leases(&state, &ws, l.id).await? {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(Value::Null))
}

async fn delete_by_tag(
    state: web::Data<AppState>,
    ws: Workspace,
    tag: PathTag,
) -> ApiResult<HttpResponse> {
    let l = find_tag(&state, &ws, &tag).await?.ok_or_else(not_found)?;
    if !delete_with_leases(&state, &ws, l.id).await? {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(Value::Null))
}

fn v1_expiration() -> chrono::NaiveDateTime {
    (crate::time::now() + Duration::days(V1_LEASE_DAYS)).naive_utc()
}

/// Frees every slot of the tag's limit and gives one to each task run of `slot_override`.
async fn reset(
    state: web::Data<AppState>,
    ws: Workspace,
    tag: PathTag,
    body: JsonOrDefault<ResetBody>,
) -> ApiResult<HttpResponse> {
    let l = find_tag(&state, &ws, &tag).await?.ok_or_else(not_found)?;
    let holders: Vec<String> = body
        .into_inner()
        .slot_override
        .unwrap_or_default()
        .iter()
        .map(task_run_holder)
        .collect();
    let now = crate::time::now().naive_utc();
    let (ws, exp) = (ws.id().clone(), v1_expiration());
    let reset = state
        .stores
        .orion
        .write(async move |c| concurrency::reset_holders(c, &ws, &l.id, &holders, exp, now).await)
        .await?;
    if !reset {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(Value::Null))
}

fn locked(detail: String, retry_after: Option<&str>) -> HttpResponse {
    let mut resp = HttpResponse::build(StatusCode::LOCKED);
    if let Some(r) = retry_after {
        resp.insert_header(("Retry-After", r));
    }
    resp.json(json!({ "detail": detail }))
}

/// Takes one slot of every active `tag:<name>` limit for the task run, under one lease.
async fn increment(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<SlotsBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let mut found: Vec<(String, LimitRow)> = Vec::new();
    for tag in &b.names {
        if let Some(l) = find_tag(&state, &ws, tag).await? {
            found.push((tag.clone(), l));
        }
    }
    if let Some((tag, _)) = found.iter().find(|(_, l)| l.limit_ == 0) {
        return Ok(locked(
            format!(
                "The concurrency limit on tag \"{tag}\" is 0 and will deadlock if the task tries to run again."
            ),
            None,
        ));
    }
    let active: Vec<(String, LimitRow)> = found.into_iter().filter(|(_, l)| l.active).collect();
    let Some((first_tag, _)) = active.first() else {
        return Ok(HttpResponse::Ok().json(json!([])));
    };
    let names: Vec<String> = active.iter().map(|(_, l)| l.name.clone()).collect();
    let req = AcquireRequest {
        names,
        slots: 1,
        rate_limit: false,
        lease: Some((v1_expiration(), Some(task_run_holder(&b.task_run_id)))),
        now: crate::time::now().naive_utc(),
    };
    let wsid = ws.id().clone();
    let acquired = state
        .stores
        .orion
        .write(async move |c| concurrency::acquire(c, &wsid, &req).await)
        .await?;
    match acquired {
        Acquired::Granted { limits, .. } => {
            let out: Vec<MinimalOut> = active
                .iter()
                .filter_map(|(tag, l)| {
                    let taken = limits.iter().find(|t| t.id == l.id)?;
                    Some(MinimalOut {
                        id: &taken.id,
                        name: tag,
                        limit: taken.limit_,
                    })
                })
                .collect();
            Ok(HttpResponse::Ok().json(out))
        }
        Acquired::Denied { .. } => Ok(locked(
            format!("Concurrency limit for the {first_tag} tag has been reached"),
            Some(TAG_SLOT_WAIT_SECONDS),
        )),
    }
}

/// Ends the task run's leases on the `tag:<name>` limits, giving their slots back.
async fn decrement(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<SlotsBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let db = &state.stores.orion;
    let run = b.task_run_id.to_string();
    let now = crate::time::now().naive_utc();
    let mut limits = Vec::new();
    let mut released: Vec<String> = Vec::new();
    for tag in &b.names {
        let Some(l) = find_tag(&state, &ws, tag).await? else {
            continue;
        };
        let leases = concurrency::leases_on_limit(&mut db.read().await?, ws.id(), &l.id).await?;
        for lease in leases {
            if holder_task_run(lease.holder.as_deref()).as_deref() == Some(run.as_str())
                && !released.contains(&lease.id)
            {
                let (wsid, id) = (ws.id().clone(), lease.id.clone());
                db.write(async move |c| concurrency::release_lease(c, &wsid, &id, now).await)
                    .await?;
                released.push(lease.id);
            }
        }
        limits.push(l);
    }
    Ok(HttpResponse::Ok().json(limits.iter().map(minimal).collect::<Vec<_>>()))
}

/// Deletes limit `id` with its leases; false when it is gone.
async fn delete_with_leases(state: &AppState, ws: &Workspace, id: String) -> ApiResult<bool> {
    let ws = ws.id().clone();
    Ok(state
        .stores
        .orion
        .write(async move |c| concurrency::delete_with_leases(c, &ws, &id).await)
        .await?)
}
