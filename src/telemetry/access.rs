//! The access log: one line per request — method, path (with the workspace prefix, and the query
//! with credentials redacted), status, duration, response bytes, client address and request id
//! (the client's `X-Request-Id`, else a new one; returned in the response's `X-Request-Id`).
//! INFO under the target `orrery::access`; the health and readiness probes at DEBUG so they do
//! not flood it; `log.access = false` turns it off. Never a body or an `Authorization` header.

use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Query parameters whose values are never logged.
const SECRET_PARAMS: [&str; 6] = [
    "api_key",
    "apikey",
    "token",
    "access_token",
    "key",
    "password",
];

/// `query` with the values of [`SECRET_PARAMS`] replaced by `***`.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s)) => {
                format!("{k}=***")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A request id from the client when it is a sane token (printable, at most 200 bytes).
fn client_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
}

pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(client_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let method = req.method().clone();
    let path = match req.query_string() {
        "" => req.path().to_string(),
        q => format!("{}?{}", req.path(), redact_query(q)),
    };
    let probe = matches!(req.path(), "/api/health" | "/api/ready");
    let client = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "-".to_string());
    let mut res = next.call(req).await?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let status = res.status().as_u16();
    let bytes = match res.response().body().size() {
        BodySize::Sized(n) => n.to_string(),
        BodySize::None => "0".to_string(),
        BodySize::Stream => "-".to_string(),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let ms = (ms * 100.0).round() / 100.0;
    if probe {
        tracing::debug!(target: "orrery::access", %method, path, status, ms, bytes, client, request_id = id, "request");
    } else {
        tracing::info!(target: "orrery::access", %method, path, status, ms, bytes, client, request_id = id, "request");
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::redact_query;

    #[test]
    fn credentials_in_query_strings_are_redacted() {
        assert_eq!(redact_query("api_key=s&x=1"), "api_key=***&x=1");
        assert_eq!(redact_query("a=1&TOKEN=t&b"), "a=1&TOKEN=***&b");
        assert_eq!(redact_query("limit=5"), "limit=5");
    }
}
