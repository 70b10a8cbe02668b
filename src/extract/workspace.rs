//! Workspace resolution: `/api/accounts/{a}/workspaces/{w}/...` resolves to that workspace (404
//! when unknown), plain `/api/...` to the default workspace. Handlers take [`Workspace`].

use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};

use crate::error::ApiError;
use crate::ids::WorkspaceId;
use crate::state::AppState;
use crate::storage::accounts::DEFAULT_WORKSPACE_ID;

/// The workspace a request is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace(pub WorkspaceId);

impl Workspace {
    pub fn id(&self) -> &WorkspaceId {
        &self.0
    }
}

/// Middleware of the workspace-prefixed scope: looks the pair up (through the state's cache) and
/// stores the workspace in the request's extensions, or answers 404.
pub async fn resolve(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let account = req
        .match_info()
        .get("account_id")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let workspace = req
        .match_info()
        .get("workspace_id")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state else {
        return Err(ApiError::Internal("application state missing".into()).into());
    };
    if uuid::Uuid::parse_str(&account).is_err() || uuid::Uuid::parse_str(&workspace).is_err() {
        return Err(ApiError::not_found("Workspace not found").into());
    }
    if !state.is_migrated() {
        return Err(ApiError::Unavailable("migrations are not finished".into()).into());
    }
    if !state
        .workspace_exists(&account, &workspace)
        .await
        .map_err(ApiError::from)?
    {
        return Err(ApiError::not_found("Workspace not found").into());
    }
    req.extensions_mut()
        .insert(Workspace(WorkspaceId::new(workspace)));
    next.call(req).await
}

impl FromRequest for Workspace {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ws = req.extensions().get::<Workspace>().cloned();
        ready(Ok(ws.unwrap_or_else(|| {
            Workspace(WorkspaceId::new(DEFAULT_WORKSPACE_ID))
        })))
    }
}
