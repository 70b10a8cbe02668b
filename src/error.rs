//! The one API error type: every handler returns `Result<_, ApiError>`, and this module turns it
//! into Prefect's response shapes (`{"detail": ...}` for HTTP errors, the FastAPI-style 422 body
//! with field paths for validation errors). Nothing here panics.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::storage::StorageError;

#[derive(Debug)]
pub enum ApiError {
    /// An HTTP error with Prefect's `{"detail": ...}` body.
    Detail(StatusCode, String),
    /// A validation error: 422 with FastAPI's `exception_detail` list (loc, msg, type).
    Validation {
        loc: Vec<Value>,
        msg: String,
        kind: &'static str,
        /// Boxed: a `Value` is large, and every `ApiResult` carries this variant's size.
        body: Option<Box<Value>>,
    },
    /// Prefect's `ObjectNotFoundError` shape: 404 `{"exception_message": ...}`.
    ObjectNotFound(String),
    /// The database or broker is unavailable: 503, which the client retries.
    Unavailable(String),
    /// Anything unexpected: 500 without internals in the body (logged instead).
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::Detail(StatusCode::NOT_FOUND, what.into())
    }
    pub fn conflict(what: impl Into<String>) -> Self {
        ApiError::Detail(StatusCode::CONFLICT, what.into())
    }
    pub fn bad_request(what: impl Into<String>) -> Self {
        ApiError::Detail(StatusCode::BAD_REQUEST, what.into())
    }
    pub fn unprocessable(what: impl Into<String>) -> Self {
        ApiError::Detail(StatusCode::UNPROCESSABLE_ENTITY, what.into())
    }
    /// A validation error at `loc` (e.g. `["body", "state", "type"]`).
    pub fn invalid(loc: Vec<Value>, msg: impl Into<String>, kind: &'static str) -> Self {
        ApiError::Validation {
            loc,
            msg: msg.into(),
            kind,
            body: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Detail(s, d) => write!(f, "{s}: {d}"),
            ApiError::Validation { loc, msg, .. } => write!(f, "invalid request at {loc:?}: {msg}"),
            ApiError::ObjectNotFound(m) => write!(f, "not found: {m}"),
            ApiError::Unavailable(m) => write!(f, "service unavailable: {m}"),
            ApiError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Detail(s, _) => *s,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ObjectNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let body = match self {
            ApiError::Detail(_, d) => json!({ "detail": d }),
            ApiError::Validation {
                loc,
                msg,
                kind,
                body,
            } => json!({
                "exception_message": "Invalid request received.",
                "exception_detail": [{ "loc": loc, "msg": msg, "type": kind }],
                "request_body": body,
            }),
            ApiError::ObjectNotFound(m) => json!({ "exception_message": m }),
            ApiError::Unavailable(m) => {
                tracing::warn!(reason = %m, "answering 503");
                return HttpResponse::ServiceUnavailable()
                    .insert_header(("Retry-After", "1"))
                    .json(json!({ "exception_message": "Service Unavailable" }));
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                json!({ "exception_message": "Internal Server Error" })
            }
        };
        HttpResponse::build(status).json(body)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ApiError::not_found("Not found"),
            StorageError::Conflict(m) => {
                tracing::info!(reason = %m, "integrity conflict");
                ApiError::conflict(INTEGRITY_CONFLICT)
            }
            StorageError::Rejected(m) => ApiError::unprocessable(m),
            StorageError::Blocks(e) => e.into(),
            StorageError::Pool(m)
            | StorageError::ConnectionLost(m)
            | StorageError::Connect { reason: m, .. } => ApiError::Unavailable(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Prefect's body for a unique or foreign-key violation.
pub const INTEGRITY_CONFLICT: &str =
    "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.";
