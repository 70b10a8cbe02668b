//! `/logs`: `POST /logs/` takes a bare JSON array of logs (201, body null); `POST /logs/filter`
//! reads them back.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::Paging;
use crate::extract::Workspace;
use crate::query::{LogFilter, LogSort};
use crate::state::AppState;
use crate::storage::logs;
use crate::storage::rows::LogRow;
use crate::wire::Ts;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/logs/", web::post().to(create))
        .route("/logs", web::post().to(create))
        .route("/logs/filter", web::post().to(filter));
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct LogCreate {
    name: String,
    level: i32,
    message: String,
    #[serde(with = "crate::time::req")]
    timestamp: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    flow_run_id: Option<Uuid>,
    #[serde(default)]
    task_run_id: Option<Uuid>,
    #[serde(default)]
    worker_id: Option<Uuid>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogListBody {
    logs: Option<LogFilter>,
    sort: Option<LogSort>,
    #[serde(flatten)]
    paging: Paging,
}

/// `Log`.
#[derive(Serialize)]
pub struct LogOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    level: i32,
    message: &'a str,
    timestamp: Ts<'a>,
    flow_run_id: Option<&'a str>,
    task_run_id: Option<&'a str>,
    worker_id: Option<&'a str>,
}

impl<'a> From<&'a LogRow> for LogOut<'a> {
    fn from(l: &'a LogRow) -> Self {
        LogOut {
            id: &l.id,
            created: Ts(&l.created),
            updated: Ts(&l.updated),
            name: &l.name,
            level: l.level,
            message: &l.message,
            timestamp: Ts(&l.timestamp),
            flow_run_id: l.flow_run_id.as_deref(),
            task_run_id: l.task_run_id.as_deref(),
            worker_id: l.worker_id.as_deref(),
        }
    }
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<Vec<LogCreate>>,
) -> ApiResult<HttpResponse> {
    let now = crate::time::now().naive_utc();
    let rows: Vec<LogRow> = body
        .into_inner()
        .into_iter()
        .map(|l| LogRow {
            id: Uuid::new_v4().to_string(),
            workspace_id: ws.id().clone(),
            created: now,
            updated: now,
            name: l.name,
            level: l.level,
            message: l.message,
            timestamp: l.timestamp.naive_utc(),
            flow_run_id: l.flow_run_id.map(|u| u.to_string()),
            task_run_id: l.task_run_id.map(|u| u.to_string()),
            worker_id: l.worker_id.map(|u| u.to_string()),
        })
        .collect();
    if !rows.is_empty() {
        state
            .stores
            .orion
            .transaction(async move |c| logs::insert(c, &rows).await)
            .await?;
    }
    Ok(HttpResponse::Created().json(Value::Null))
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<LogListBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let page = body.paging.page(&state)?;
    let mut c = state.stores.orion.read().await?;
    let rows = logs::list(
        &mut c,
        ws.id(),
        &body.logs.unwrap_or_default(),
        body.sort.unwrap_or_default(),
        page,
    )
    .await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(LogOut::from).collect::<Vec<_>>()))
}
