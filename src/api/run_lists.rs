//! `/flow_runs/filter|count|paginate` and `/task_runs/filter|count|paginate`: one set of
//! handlers for both kinds of run, told apart by their sort type ([`Listed`]).

use actix_web::{web, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::common::{page_of, paginated};
use crate::error::ApiResult;
use crate::extract::json::JsonOrDefault;
use crate::extract::params::{limit, Paging};
use crate::extract::Workspace;
use crate::ids::WorkspaceId;
use crate::query::{FlowRunSort, Page, Related, TaskRunSort};
use crate::runs::answers::{answers, current_states, RunRow};
use crate::state::AppState;
use crate::storage::rows::{FlowRunRow, TaskRunRow};
use crate::storage::{flow_runs, task_runs, Conn, StorageResult};

/// The body of a run list request: the related-object filters, the sort, and the paging.
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct RunListBody<S> {
    #[serde(flatten)]
    pub related: Related,
    pub sort: Option<S>,
    #[serde(flatten)]
    pub paging: Paging,
    pub page: Option<i64>,
}

/// The rows of a run list (each with its current state row).
type Rows<S> = Vec<(
    <S as Listed>::Row,
    Option<<<S as Listed>::Row as RunRow>::StateRow>,
)>;

/// A run kind's sort, and the storage functions that list and count its runs.
pub(super) trait Listed: Copy + Default + DeserializeOwned + 'static {
    type Row: RunRow;

    async fn list(
        c: &mut Conn,
        ws: &WorkspaceId,
        related: &Related,
        sort: Self,
        page: Page,
    ) -> StorageResult<Rows<Self>>;

    async fn count(c: &mut Conn, ws: &WorkspaceId, related: &Related) -> StorageResult<i64>;
}

impl Listed for FlowRunSort {
    type Row = FlowRunRow;

    async fn list(
        c: &mut Conn,
        ws: &WorkspaceId,
        related: &Related,
        sort: Self,
        page: Page,
    ) -> StorageResult<Rows<Self>> {
        flow_runs::list(c, ws, related, sort, page).await
    }

    async fn count(c: &mut Conn, ws: &WorkspaceId, related: &Related) -> StorageResult<i64> {
        flow_runs::count(c, ws, related).await
    }
}

impl Listed for TaskRunSort {
    type Row = TaskRunRow;

    async fn list(
        c: &mut Conn,
        ws: &WorkspaceId,
        related: &Related,
        sort: Self,
        page: Page,
    ) -> StorageResult<Rows<Self>> {
        task_runs::list(c, ws, related, sort, page).await
    }

    async fn count(c: &mut Conn, ws: &WorkspaceId, related: &Related) -> StorageResult<i64> {
        task_runs::count(c, ws, related).await
    }
}

pub(super) async fn filter<S: Listed>(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<RunListBody<S>>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let page = b.paging.page(&state)?;
    let mut c = state.stores.orion.read().await?;
    let sort = b.sort.unwrap_or_default();
    let rows = S::list(&mut c, ws.id(), &b.related, sort, page).await?;
    let states = current_states(&rows);
    Ok(HttpResponse::Ok().json(answers(&rows, &states)))
}

pub(super) async fn count<S: Listed>(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<RunListBody<S>>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let mut c = state.stores.orion.read().await?;
    Ok(HttpResponse::Ok().json(S::count(&mut c, ws.id(), &b.related).await?))
}

pub(super) async fn paginate<S: Listed>(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<RunListBody<S>>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let lim = limit(&state, b.paging.limit)?;
    let (page_no, page) = page_of(b.page, lim)?;
    let mut c = state.stores.orion.read().await?;
    let sort = b.sort.unwrap_or_default();
    let rows = S::list(&mut c, ws.id(), &b.related, sort, page).await?;
    let n = S::count(&mut c, ws.id(), &b.related).await?;
    let states = current_states(&rows);
    let results = answers(&rows, &states);
    Ok(HttpResponse::Ok().json(paginated(results, n, lim, page_no)))
}
