//! Request parameters shared by every handler: list paging with Prefect's limits (`Paging`,
//! `limit`) and typed path segments (`PathId` must be a UUID, `PathName` any name without NUL).

use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::ids::Id;
use crate::query::Page;
use crate::state::AppState;

/// `limit` / `offset` of a list body; nulls mean the defaults.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Paging {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

fn bound_error(field: &str, msg: String, kind: &'static str) -> ApiError {
    ApiError::invalid(vec!["body".into(), field.into()], msg, kind)
}

/// Checks a body `limit` against 0..=default_limit and returns it; outside that range Prefect
/// answers 422 with a plain `detail`.
pub fn limit(state: &AppState, limit: Option<i64>) -> Result<i64, ApiError> {
    let max = state.settings.server.default_limit;
    match limit {
        None => Ok(max),
        Some(l) if l < 0 => Err(ApiError::unprocessable(
            "Invalid limit: must be greater than or equal to 0.",
        )),
        Some(l) if l > max => Err(ApiError::unprocessable(format!(
            "Invalid limit: must be less than or equal to {max}."
        ))),
        Some(l) => Ok(l),
    }
}

impl Paging {
    pub fn page(&self, state: &AppState) -> Result<Page, ApiError> {
        let limit = limit(state, self.limit)?;
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(bound_error(
                "offset",
                "Input should be greater than or equal to 0".into(),
                "greater_than_equal",
            ));
        }
        Ok(Page { limit, offset })
    }
}

/// A path id that must be a UUID; anything else matches no route (404 "Not Found"), as the
/// reference server's `{id:uuid}` routes answer.
pub fn path_id(raw: &str) -> Result<String, ApiError> {
    Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::not_found("Not Found"))
}

/// Declares an extractor for one named path segment. Needed because the workspace prefix adds
/// `account_id` and `workspace_id` segments, so positional `web::Path<String>` would read the
/// wrong one.
macro_rules! path_param {
    ($name:ident, $segment:literal, $uuid:expr) => {
        pub struct $name(pub String);

        impl actix_web::FromRequest for $name {
            type Error = actix_web::Error;
            type Future = std::future::Ready<Result<Self, Self::Error>>;

            fn from_request(
                req: &actix_web::HttpRequest,
                _: &mut actix_web::dev::Payload,
            ) -> Self::Future {
                let raw = req
                    .match_info()
                    .get($segment)
                    .unwrap_or_default()
                    .to_string();
                // No name holds a NUL (PostgreSQL text cannot), so nothing is found by one.
                let value = if $uuid {
                    path_id(&raw).map_err(actix_web::Error::from)
                } else if raw.contains('\0') {
                    Err(crate::error::ApiError::not_found("Not Found").into())
                } else {
                    Ok(raw)
                };
                std::future::ready(value.map($name))
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

path_param!(PathId, "id", true);

impl PathId {
    /// The id as the typed id of the entity the route names (the handler's call says which).
    pub fn typed<K>(&self) -> Id<K> {
        Id::new(self.0.clone())
    }
}
path_param!(PathName, "name", false);
path_param!(PathKey, "id_or_name", false);
path_param!(PathLeaseId, "lease_id", true);
path_param!(PathView, "view", false);
path_param!(PathSlug, "slug", false);
path_param!(PathChecksum, "checksum", false);
path_param!(PathBlockDocumentName, "block_document_name", false);
path_param!(PathPool, "work_pool_name", false);
path_param!(PathResourceId, "resource_id", false);
path_param!(PathScheduleId, "schedule_id", true);
path_param!(PathFlowName, "flow_name", false);
path_param!(PathDeploymentName, "deployment_name", false);
path_param!(PathKeyStr, "key", false);
path_param!(PathTag, "tag", false);
