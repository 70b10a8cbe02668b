//! Reading events (API.md §3.5): `POST /events/filter` (a page of at most 50, the total, and a
//! link to the next page), `GET /events/filter/next?page-token=…`, and
//! `POST /events/count-by/{day|time|event|resource}`. The same routes under
//! `/api/accounts/{a}/events/…` read the account's own events: its audit log.
//!
//! A page token carries the query it continues (the filter with its window fixed, the total, the
//! page size and the offset) and the workspace it was made for, signed with the installation's
//! secret: a token can't be altered, nor used on another workspace's URL (403, as Prefect answers
//! a token it can't read).

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::events::counting::{self, Countable, TimeUnit};
use crate::events::filter::EventFilter;
use crate::events::ReceivedEvent;
use crate::extract::json::parse;
use crate::extract::Workspace;
use crate::identity::keys;
use crate::ids::WorkspaceId;
use crate::state::AppState;
use crate::storage::events::query::{self, By, Group};
use crate::storage::events::EventRow;
use crate::storage::filters::events::Scope;
use crate::storage::identities;

/// The most events one page holds (Prefect's `INTERACTIVE_PAGE_SIZE`).
pub const PAGE_SIZE: i64 = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events/filter", web::post().to(filter))
        .route("/events/filter/next", web::get().to(next_page))
        .route("/events/count-by/{countable}", web::post().to(count_by));
}

/// The account-level routes: the account's own events (its audit log).
pub fn configure_account(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/accounts/{account_id}/events/filter",
        web::post().to(account_filter),
    )
    .route(
        "/accounts/{account_id}/events/filter/next",
        web::get().to(account_next_page),
    )
    .route(
        "/accounts/{account_id}/events/count-by/{countable}",
        web::post().to(account_count_by),
    );
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FilterBody {
    filter: Option<EventFilter>,
    limit: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct Token {
    ws: String,
    filter: EventFilter,
    count: i64,
    page_size: i64,
    offset: i64,
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    first_page(&state, ws.id(), &req, &body).await
}

async fn next_page(
    state: web::Data<AppState>,
    ws: Workspace,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    later_page(&state, ws.id(), &req).await
}

async fn count_by(
    state: web::Data<AppState>,
    ws: Workspace,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    counts(&state, ws.id(), &path, &body).await
}

/// The account of the path, as the workspace id its own events are stored under.
async fn account_scope(state: &AppState, req: &HttpRequest) -> ApiResult<WorkspaceId> {
    let id = req
        .match_info()
        .get("account_id")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut c = state.stores.nebula.read().await?;
    let a = identities::account(&mut c, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Account not found"))?;
    Ok(WorkspaceId::new(a.id))
}

async fn account_filter(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let ws = account_scope(&state, &req).await?;
    first_page(&state, &ws, &req, &body).await
}

async fn account_next_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let ws = account_scope(&state, &req).await?;
    later_page(&state, &ws, &req).await
}

async fn account_count_by(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let ws = account_scope(&state, &req).await?;
    let countable = req
        .match_info()
        .get("countable")
        .unwrap_or_default()
        .to_string();
    counts(&state, &ws, &countable, &body).await
}

/// A request's filter, checked.
fn checked(f: Option<EventFilter>) -> ApiResult<EventFilter> {
    let f = f.unwrap_or_default();
    if let Some(msg) = f.problem() {
        return Err(ApiError::invalid(
            vec![
                "body".into(),
                "filter".into(),
                "text".into(),
                "query".into(),
            ],
            msg,
            "string_too_long",
        ));
    }
    Ok(f)
}

/// `limit`: a whole number from 0 to 50 (Prefect's bounds and messages), 50 when absent.
fn page_size(limit: Option<Value>) -> ApiResult<i64> {
    let loc = || vec![Value::from("body"), Value::from("limit")];
    let Some(v) = limit.filter(|v| !v.is_null()) else {
        return Ok(PAGE_SIZE);
    };
    let n = v
        .as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .ok_or_else(|| ApiError::invalid(loc(), "Input should be a valid integer", "int_type"))?;
    if n < 0 {
        return Err(ApiError::invalid(
            loc(),
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        ));
    }
    if n > PAGE_SIZE {
        return Err(ApiError::invalid(
            loc(),
            format!("Input should be less than or equal to {PAGE_SIZE}"),
            "less_than_equal",
        ));
    }
    Ok(n)
}

fn scope_of(ws: &WorkspaceId, f: &EventFilter) -> Scope {
    let (since, until) = f.window(crate::time::now());
    Scope {
        ws: ws.clone(),
        since: since.naive_utc(),
        until: until.naive_utc(),
    }
}

async fn first_page(
    state: &AppState,
    ws: &WorkspaceId,
    req: &HttpRequest,
    body: &[u8],
) -> ApiResult<HttpResponse> {
    let body: FilterBody = if body.iter().all(u8::is_ascii_whitespace) {
        FilterBody::default()
    } else {
        parse(body)?
    };
    let size = page_size(body.limit)?;
    // The window is fixed now, so later pages read the same one.
    let f = checked(body.filter)?.pinned(crate::time::now());
    let scope = scope_of(ws, &f);
    let mut c = state.stores.events.read().await?;
    let total = query::total(&mut c, &scope, &f).await?;
    let rows = query::page(&mut c, &scope, &f, size, 0).await?;
    drop(c);
    let token = Token {
        ws: ws.to_string(),
        filter: f,
        count: total,
        page_size: size,
        offset: size,
    };
    answer(state, req, rows, token).await
}

async fn later_page(
    state: &AppState,
    ws: &WorkspaceId,
    req: &HttpRequest,
) -> ApiResult<HttpResponse> {
    let forbidden = || ApiError::Detail(actix_web::http::StatusCode::FORBIDDEN, "Forbidden".into());
    let text = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "page-token")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| {
            ApiError::invalid(
                vec!["query".into(), "page-token".into()],
                "Field required",
                "missing",
            )
        })?;
    let token = read_token(state, &text).await?.ok_or_else(forbidden)?;
    if token.ws != ws.as_str() {
        return Err(forbidden());
    }
    let scope = scope_of(ws, &token.filter);
    let mut c = state.stores.events.read().await?;
    let rows = query::page(&mut c, &scope, &token.filter, token.page_size, token.offset).await?;
    drop(c);
    let next = Token {
        offset: token.offset + token.page_size,
        ..token
    };
    answer(state, req, rows, next).await
}

/// `{events, total, next_page}`; `next` is the token of the page after this one.
async fn answer(
    state: &AppState,
    req: &HttpRequest,
    rows: Vec<EventRow>,
    next: Token,
) -> ApiResult<HttpResponse> {
    let events: Vec<ReceivedEvent> = rows
        .iter()
        .filter_map(crate::events::stream_out::received_from_row)
        .collect();
    let total = next.count;
    let next_page = if next.offset < next.count && next.page_size > 0 {
        let token = write_token(state, &next).await?;
        Some(next_link(req, &token))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({
        "events": events,
        "total": total,
        "next_page": next_page,
    })))
}

/// The absolute URL of the next page: this route's own prefix (a workspace's or an account's),
/// then `/events/filter/next`.
fn next_link(req: &HttpRequest, token: &str) -> String {
    let info = req.connection_info();
    let path = req.path().trim_end_matches('/');
    let base = path.strip_suffix("/next").unwrap_or(path);
    format!(
        "{}://{}{base}/next?page-token={token}",
        info.scheme(),
        info.host()
    )
}

async fn write_token(state: &AppState, t: &Token) -> ApiResult<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let body = b64.encode(serde_json::to_vec(t).map_err(|e| ApiError::Internal(e.to_string()))?);
    let secret = keys::installation_secret(state).await?;
    Ok(format!("{body}.{}", keys::hash(&secret, &body)))
}

/// The token's content, if it is one this installation signed.
async fn read_token(state: &AppState, text: &str) -> ApiResult<Option<Token>> {
    let Some((body, mac)) = text.split_once('.') else {
        return Ok(None);
    };
    let secret = keys::installation_secret(state).await?;
    if !keys::verify(&secret, body, mac) {
        return Ok(None);
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    Ok(b64
        .decode(body)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

#[derive(Deserialize)]
struct CountBody {
    filter: Option<EventFilter>,
    #[serde(default)]
    time_unit: Option<TimeUnit>,
    #[serde(default)]
    time_interval: Option<f64>,
}

async fn counts(
    state: &AppState,
    ws: &WorkspaceId,
    countable: &str,
    body: &[u8],
) -> ApiResult<HttpResponse> {
    let countable = Countable::parse(countable).ok_or_else(|| {
        ApiError::invalid(
            vec!["path".into(), "countable".into()],
            "Input should be 'day', 'time', 'event' or 'resource'",
            "enum",
        )
    })?;
    let body: CountBody = parse(body)?;
    let Some(filter) = body.filter else {
        return Err(ApiError::invalid(
            vec!["body".into(), "filter".into()],
            "Field required",
            "missing",
        ));
    };
    let interval = body.time_interval.unwrap_or(1.0);
    if interval < 0.01 {
        return Err(ApiError::invalid(
            vec!["body".into(), "time_interval".into()],
            "Input should be greater than or equal to 0.01",
            "greater_than_equal",
        ));
    }
    let (unit, interval) = match countable {
        Countable::Day => (TimeUnit::Day, 1.0),
        _ => (body.time_unit.unwrap_or_default(), interval),
    };
    let now = crate::time::now();
    let f = checked(Some(filter))?.pinned(now);
    let (since, until) = f.window(now);
    let by = match countable {
        Countable::Event => By::Event,
        Countable::Resource => By::Resource,
        Countable::Day | Countable::Time => {
            counting::check(since, until, unit, interval).map_err(ApiError::unprocessable)?;
            By::Time {
                pivot: counting::pivot().naive_utc(),
                step_us: unit.step_us(interval),
            }
        }
    };
    let scope = scope_of(ws, &f);
    let mut c = state.stores.events.read().await?;
    let groups = query::count_by(&mut c, &scope, &f, by).await?;
    drop(c);
    let out = match by {
        By::Time { .. } => time_buckets(groups, since, until, unit, interval, now),
        _ => by_value(groups),
    };
    Ok(HttpResponse::Ok().json(out))
}

fn count_json(value: String, label: String, count: i64, start: String, end: String) -> Value {
    json!({"value": value, "label": label, "count": count, "start_time": start, "end_time": end})
}

/// Counts by name or resource: the largest first, then by label.
fn by_value(mut groups: Vec<Group>) -> Vec<Value> {
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.label.cmp(&b.label)));
    groups
        .into_iter()
        .map(|g| {
            count_json(
                g.value,
                g.label,
                g.count,
                crate::time::format_naive(&g.first),
                crate::time::format_naive(&g.last),
            )
        })
        .collect()
}

/// Every bucket of the window in order, empty ones with a count of 0; a bucket's value is its
/// position, its label its start (Prefect's `process_time_based_counts`).
fn time_buckets(
    groups: Vec<Group>,
    since: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
    unit: TimeUnit,
    interval: f64,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    let (first, spans) = counting::spans(since, until, unit, interval, now);
    let mut counts = vec![0i64; spans.len()];
    for g in groups {
        let Ok(bucket) = g.value.parse::<i64>() else {
            continue;
        };
        if let Some(slot) = usize::try_from(bucket - first)
            .ok()
            .and_then(|i| counts.get_mut(i))
        {
            *slot += g.count;
        }
    }
    spans
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, ((start, end), n))| {
            count_json(
                i.to_string(),
                start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                n,
                crate::time::format(start),
                crate::time::format(end),
            )
        })
        .collect()
}
