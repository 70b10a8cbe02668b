//! `/v2/concurrency_limits`: global limits (create, read by id or name, update, delete,
//! filter) and their slots — taken with or without a lease, given back, and renewed. A full
//! limit answers 423 with `Retry-After`; no matching limit grants an empty lease (API.md §7a).

use actix_web::{web, HttpResponse};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::Paging;
use crate::extract::params::{PathKey, PathLeaseId};
use crate::extract::Workspace;
use crate::state::AppState;
use crate::storage::concurrency::{self, AcquireRequest, Acquired, LimitChanges, LimitRow};
use crate::wire::Ts;

/// The longest `Retry-After` a full limit answers with (Prefect's maximum slot wait).
const MAX_WAIT_SECONDS: f64 = 30.0;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2/concurrency_limits/", web::post().to(create))
        .route("/v2/concurrency_limits", web::post().to(create))
        .route("/v2/concurrency_limits/filter", web::post().to(filter))
        .route(
            "/v2/concurrency_limits/increment",
            web::post().to(increment),
        )
        .route(
            "/v2/concurrency_limits/increment-with-lease",
            web::post().to(increment_with_lease),
        )
        .route(
            "/v2/concurrency_limits/decrement",
            web::post().to(decrement),
        )
        .route(
            "/v2/concurrency_limits/decrement-with-lease",
            web::post().to(decrement_with_lease),
        )
        .route(
            "/v2/concurrency_limits/leases/{lease_id}/renew",
            web::post().to(renew),
        )
        .route("/v2/concurrency_limits/{id_or_name}", web::get().to(read))
        .route(
            "/v2/concurrency_limits/{id_or_name}",
            web::patch().to(update),
        )
        .route(
            "/v2/concurrency_limits/{id_or_name}",
            web::delete().to(delete),
        );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitCreate {
    #[serde(default = "yes")]
    active: bool,
    name: String,
    limit: i32,
    #[serde(default)]
    active_slots: i32,
    #[serde(default)]
    denied_slots: i32,
    #[serde(default)]
    slot_decay_per_second: f64,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitUpdate {
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    limit: Option<i32>,
    #[serde(default)]
    active_slots: Option<i32>,
    #[serde(default)]
    denied_slots: Option<i32>,
    #[serde(default)]
    slot_decay_per_second: Option<f64>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Concurrency,
    RateLimit,
}

#[derive(Deserialize)]
struct IncrementBody {
    slots: i32,
    names: Vec<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    lease_duration: Option<f64>,
    #[serde(default)]
    holder: Option<Value>,
    #[serde(default)]
    create_if_missing: Option<bool>,
}

#[derive(Deserialize)]
struct DecrementBody {
    slots: i32,
    names: Vec<String>,
    #[serde(default)]
    occupancy_seconds: Option<f64>,
    #[serde(default)]
    create_if_missing: Option<bool>,
}

#[derive(Deserialize)]
struct LeaseBody {
    lease_id: Uuid,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RenewBody {
    lease_duration: Option<f64>,
}

/// `GlobalConcurrencyLimitResponse`.
#[derive(Serialize)]
pub struct LimitOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    active: bool,
    name: &'a str,
    limit: i32,
    active_slots: i32,
    denied_slots: i32,
    slot_decay_per_second: f64,
    avg_slot_occupancy_seconds: f64,
}

impl<'a> From<&'a LimitRow> for LimitOut<'a> {
    fn from(l: &'a LimitRow) -> Self {
        LimitOut {
            id: &l.id,
            created: Ts(&l.created),
            updated: Ts(&l.updated),
            active: l.active,
            name: &l.name,
            limit: l.limit_,
            active_slots: l.active_slots,
            denied_slots: l.denied_slots,
            slot_decay_per_second: l.slot_decay_per_second,
            avg_slot_occupancy_seconds: l.avg_slot_occupancy_seconds,
        }
    }
}

/// `MinimalConcurrencyLimitResponse` (the answers of the slot routes).
#[derive(Serialize)]
pub(super) struct MinimalOut<'a> {
    pub(super) id: &'a str,
    pub(super) name: &'a str,
    pub(super) limit: i32,
}

pub(super) fn minimal(l: &LimitRow) -> MinimalOut<'_> {
    MinimalOut {
        id: &l.id,
        name: &l.name,
        limit: l.limit_,
    }
}

fn invalid(field: &str, msg: &str) -> ApiError {
    ApiError::invalid(vec!["body".into(), field.into()], msg, "value_error")
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<LimitCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if b.name.trim().is_empty() {
        return Err(invalid("name", "String should have at least 1 character"));
    }
    if b.limit < 0 || b.active_slots < 0 || b.denied_slots < 0 || b.slot_decay_per_second < 0.0 {
        return Err(invalid(
            "limit",
            "Input should be greater than or equal to 0",
        ));
    }
    let now = crate::time::now().naive_utc();
    let row = LimitRow {
        id: Uuid::new_v4().to_string(),
        workspace_id: ws.id().clone(),
        created: now,
        updated: now,
        active: b.active,
        name: b.name,
        limit_: b.limit,
        active_slots: b.active_slots,
        denied_slots: b.denied_slots,
        slot_decay_per_second: b.slot_decay_per_second,
        avg_slot_occupancy_seconds: 2.0,
    };
    let stored = row.clone();
    let inserted = state
        .stores
        .orion
        .write(async move |c| concurrency::insert(c, &stored).await)
        .await;
    match inserted {
        Ok(()) => Ok(HttpResponse::Created().json(LimitOut::from(&row))),
        Err(crate::storage::StorageError::Conflict(_)) => Err(ApiError::conflict(format!(
            "Concurrency limit with name {:?} already exists.",
            row.name
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn find(state: &AppState, ws: &Workspace, key: &str) -> ApiResult<LimitRow> {
    let mut c = state.stores.orion.read().await?;
    concurrency::find(&mut c, ws.id(), key)
        .await?
        .ok_or_else(|| ApiError::not_found("Concurrency Limit not found"))
}

async fn read(state: web::Data<AppState>, ws: Workspace, key: PathKey) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(LimitOut::from(&find(&state, &ws, &key).await?)))
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<Paging>,
) -> ApiResult<HttpResponse> {
    let page = body.into_inner().page(&state)?;
    let mut c = state.stores.orion.read().await?;
    let rows = concurrency::list(&mut c, ws.id(), page).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(LimitOut::from).collect::<Vec<_>>()))
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    key: PathKey,
    body: Json<LimitUpdate>,
) -> ApiResult<HttpResponse> {
    let l = find(&state, &ws, &key).await?;
    let b = body.into_inner();
    if b.limit.is_some_and(|v| v < 0)
        || b.active_slots.is_some_and(|v| v < 0)
        || b.slot_decay_per_second.is_some_and(|v| v < 0.0)
    {
        return Err(invalid(
            "limit",
            "Input should be greater than or equal to 0",
        ));
    }
    let changes = LimitChanges {
        updated: Some(crate::time::now().naive_utc()),
        active: b.active,
        name: b.name,
        limit_: b.limit,
        active_slots: b.active_slots,
        denied_slots: b.denied_slots,
        slot_decay_per_second: b.slot_decay_per_second,
    };
    let ws = ws.id().clone();
    let updated = state
        .stores
        .orion
        .write(async move |c| concurrency::update(c, &ws, &l.id, &changes).await)
        .await?;
    if !updated {
        return Err(ApiError::not_found("Concurrency Limit not found"));
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(
    state: web::Data<AppState>,
    ws: Workspace,
    key: PathKey,
) -> ApiResult<HttpResponse> {
    let l = find(&state, &ws, &key).await?;
    let ws = ws.id().clone();
    state
        .stores
        .orion
        .write(async move |c| concurrency::delete(c, &ws, &l.id).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// 423 with the seconds to wait before asking again.
fn locked(retry_after: f64) -> HttpResponse {
    let wait = retry_after.clamp(0.0, MAX_WAIT_SECONDS);
    HttpResponse::build(actix_web::http::StatusCode::LOCKED)
        .insert_header(("Retry-After", format!("{wait:.2}")))
        .json(json!({"detail": "Concurrency limit is full. Try again later."}))
}

async fn take(
    state: &AppState,
    ws: &Workspace,
    b: &IncrementBody,
    lease: Option<(chrono::NaiveDateTime, Option<String>)>,
) -> ApiResult<Result<(Vec<LimitRow>, Option<String>), HttpResponse>> {
    if b.slots < 1 {
        return Err(invalid("slots", "Input should be greater than 0"));
    }
    if b.create_if_missing == Some(true) {
        let now = crate::time::now().naive_utc();
        let (ws, names) = (ws.id().clone(), b.names.clone());
        state
            .stores
            .orion
            .write(async move |c| {
                for name in &names {
                    if concurrency::find(c, &ws, name).await?.is_none() {
                        let row = LimitRow {
                            id: Uuid::new_v4().to_string(),
                            workspace_id: ws.clone(),
                            created: now,
                            updated: now,
                            active: false,
                            name: name.clone(),
                            limit_: 1,
                            active_slots: 0,
                            denied_slots: 0,
                            slot_decay_per_second: 0.0,
                            avg_slot_occupancy_seconds: 2.0,
                        };
                        let _ = concurrency::insert(c, &row).await;
                    }
                }
                Ok(())
            })
            .await?;
    }
    let req = AcquireRequest {
        names: b.names.clone(),
        slots: b.slots,
        rate_limit: b.mode == Mode::RateLimit,
        lease,
        now: crate::time::now().naive_utc(),
    };
    let ws = ws.id().clone();
    let acquired = state
        .stores
        .orion
        .write(async move |c| concurrency::acquire(c, &ws, &req).await)
        .await?;
    match acquired {
        Acquired::Granted { limits, lease_id } => Ok(Ok((limits, lease_id))),
        Acquired::Denied {
            retry_after,
            zero_limit: true,
        } => {
            let _ = retry_after;
            Ok(Err(locked(MAX_WAIT_SECONDS)))
        }
        Acquired::Denied { retry_after, .. } => Ok(Err(locked(retry_after))),
    }
}

async fn increment(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<IncrementBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    Ok(match take(&state, &ws, &b, None).await? {
        Ok((limits, _)) => HttpResponse::Ok().json(limits.iter().map(minimal).collect::<Vec<_>>()),
        Err(resp) => resp,
    })
}

fn expiration(duration: Option<f64>, default: f64) -> ApiResult<chrono::NaiveDateTime> {
    let secs = duration.unwrap_or(default);
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0 * 30.0) {
        return Err(invalid(
            "lease_duration",
            "Input should be between 0 and 30 days",
        ));
    }
    Ok((crate::time::now() + Duration::milliseconds((secs * 1000.0) as i64)).naive_utc())
}

async fn increment_with_lease(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<IncrementBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let exp = expiration(b.lease_duration, 300.0)?;
    let holder = b.holder.as_ref().map(|h| h.to_string());
    Ok(match take(&state, &ws, &b, Some((exp, holder))).await? {
        Ok((limits, lease_id)) => HttpResponse::Ok().json(json!({
            "lease_id": lease_id,
            "limits": limits.iter().map(minimal).collect::<Vec<_>>(),
        })),
        Err(resp) => resp,
    })
}

async fn decrement(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<DecrementBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let _ = b.create_if_missing;
    if b.slots < 1 {
        return Err(invalid("slots", "Input should be greater than 0"));
    }
    let ws = ws.id().clone();
    let rows = state
        .stores
        .orion
        .write(async move |c| {
            concurrency::release(c, &ws, &b.names, b.slots, b.occupancy_seconds).await
        })
        .await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(minimal).collect::<Vec<_>>()))
}

async fn decrement_with_lease(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<LeaseBody>,
) -> ApiResult<HttpResponse> {
    let lease = body.into_inner().lease_id.to_string();
    let ws = ws.id().clone();
    let now = crate::time::now().naive_utc();
    state
        .stores
        .orion
        .write(async move |c| concurrency::release_lease(c, &ws, &lease, now).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn renew(
    state: web::Data<AppState>,
    ws: Workspace,
    lease_id: PathLeaseId,
    body: JsonOrDefault<RenewBody>,
) -> ApiResult<HttpResponse> {
    let exp = expiration(body.into_inner().lease_duration, 300.0)?;
    let id = Uuid::parse_str(&lease_id)
        .map_err(|_| ApiError::not_found("Not Found"))?
        .to_string();
    let ws = ws.id().clone();
    let renewed = state
        .stores
        .orion
        .write(async move |c| concurrency::renew_lease(c, &ws, &id, exp).await)
        .await?;
    if !renewed {
        return Err(ApiError::Detail(
            actix_web::http::StatusCode::GONE,
            "Lease not found.".into(),
        ));
    }
    Ok(HttpResponse::NoContent().finish())
}
