//! Pause and resume of a deployment (a pause deletes its future auto-scheduled runs in the same
//! transaction).

use actix_web::{web, HttpResponse};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::params::PathId;
use crate::extract::Workspace;
use crate::ids::DeploymentId;
use crate::state::AppState;
use crate::storage::deployments::{self as deps};

pub(crate) async fn set_paused(
    state: &AppState,
    ws: &Workspace,
    id: &DeploymentId,
    paused: bool,
) -> ApiResult<HttpResponse> {
    let now = crate::time::now().naive_utc();
    let (ws, id) = (ws.id().clone(), id.clone());
    // The flag and (on a pause) the removal of the future auto-scheduled runs, all or nothing.
    let found = state
        .stores
        .orion
        .transaction(async move |c| {
            if !deps::set_paused(c, &ws, &id, paused, now).await? {
                return Ok(false);
            }
            if paused {
                deps::delete_future_auto_runs(c, &id, now).await?;
            }
            Ok(true)
        })
        .await?;
    if !found {
        // The reference's pause/resume routes say it without the full stop of the other routes.
        return Err(ApiError::not_found("Deployment not found"));
    }
    Ok(HttpResponse::Ok().json(Value::Null))
}

pub(super) async fn pause(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    set_paused(&state, &ws, &id.typed(), true).await
}

pub(super) async fn resume(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
) -> ApiResult<HttpResponse> {
    set_paused(&state, &ws, &id.typed(), false).await
}
