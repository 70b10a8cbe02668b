//! `Json<T>`: the request-body extractor. Malformed JSON and values of the wrong type become a
//! 422 naming the field path (`["body", "state", "type"]`), as Prefect's server answers.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Largest accepted request body (Prefect's events may be 1.5 MB; log batches up to 4 MB).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Parses `bytes` as `T`, reporting the failing field's path.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            vec!["body".into()],
            "Field required",
            "missing",
        ));
    }
    // Checked whole: serde_json checks the strings it decodes, not the ones it skips.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(ApiError::bad_request("There was an error parsing the body"));
    };
    reject_nul(bytes)?;
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(super::strict::Strict::new(&mut de)) {
        // Only whitespace may follow the value: `{"name": "x"} garbage` is a decode error, as
        // it is for Prefect, not a flow named x.
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(e) => Err(ApiError::Validation {
                loc: vec![
                    "body".into(),
                    char_offset(bytes, e.line(), e.column()).into(),
                ],
                msg: "JSON decode error".into(),
                kind: "json_invalid",
                body: Some(Box::new(Value::String(
                    String::from_utf8_lossy(bytes).to_string(),
                ))),
            }),
        },
        Err(err) => {
            let inner = err.inner();
            if inner.is_syntax() || inner.is_eof() {
                let offset = char_offset(bytes, inner.line(), inner.column());
                let raw = String::from_utf8_lossy(bytes).to_string();
                return Err(ApiError::Validation {
                    loc: vec!["body".into(), offset.into()],
                    msg: "JSON decode error".into(),
                    kind: "json_invalid",
                    body: Some(Box::new(Value::String(raw))),
                });
            }
            let mut loc: Vec<Value> = vec!["body".into()];
            for seg in err.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => loc.push((*index).into()),
                    serde_path_to_error::Segment::Map { key } => loc.push(key.clone().into()),
                    serde_path_to_error::Segment::Enum { variant } => {
                        loc.push(variant.clone().into())
                    }
                    serde_path_to_error::Segment::Unknown => {}
                }
            }
            let msg = inner.to_string();
            if msg.starts_with(super::strict::TOO_LONG) {
                let max = super::strict::MAX_NAME_CHARS;
                return Err(ApiError::Validation {
                    loc,
                    msg: format!("{} {max} characters", super::strict::TOO_LONG),
                    kind: "string_too_long",
                    body: serde_json::from_slice::<Value>(bytes).ok().map(Box::new),
                });
            }
            if msg.starts_with("invalid type: sequence, expected struct") {
                return Err(ApiError::Validation {
                    loc,
                    msg: "Input should be a valid dictionary or object to extract fields from"
                        .into(),
                    kind: "model_attributes_type",
                    body: serde_json::from_slice::<Value>(bytes).ok().map(Box::new),
                });
            }
            let kind = if msg.starts_with("unknown field") {
                "extra_forbidden"
            } else if msg.starts_with("missing field") {
                "missing"
            } else {
                "value_error"
            };
            let body = serde_json::from_slice::<Value>(bytes).ok().map(Box::new);
            Err(ApiError::Validation {
                loc,
                msg,
                kind,
                body,
            })
        }
    }
}

/// NUL characters cannot be stored in PostgreSQL text, and no Prefect field needs them: a
/// string (or key) holding one is a 422 naming where it is, on every backend alike. Bodies
/// without the `\u0000` escape (all ordinary ones) are not looked at twice.
fn reject_nul(bytes: &[u8]) -> Result<(), ApiError> {
    const ESCAPE: &[u8] = b"\\u0000";
    if memchr::memmem::find(bytes, ESCAPE).is_none() {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(()); // malformed: the parse that follows reports it
    };
    let mut loc = vec![Value::from("body")];
    if nul_path(&value, &mut loc) {
        return Err(ApiError::Validation {
            loc,
            msg: "String should not contain NUL (\\u0000) characters".into(),
            kind: "string_type",
            body: Some(Box::new(value)),
        });
    }
    Ok(())
}

/// Extends `loc` to the first string or key holding a NUL; false when there is none.
fn nul_path(v: &Value, loc: &mut Vec<Value>) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
            loc.push(i.into());
            nul_path(item, loc) || {
                loc.pop();
                false
            }
        }),
        Value::Object(map) => map.iter().any(|(k, item)| {
            loc.push(k.clone().into());
            k.contains('\0') || nul_path(item, loc) || {
                loc.pop();
                false
            }
        }),
        _ => false,
    }
}

/// The character offset of a 1-based line and column, as Python's JSON errors report it.
fn char_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let mut offset = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1).min(l.chars().count());
        }
        offset += l.chars().count() + 1;
    }
    offset
}

/// How long a request body may take to arrive once its headers have (`server.
/// body_timeout_seconds`): a client that announces a body and stops sending gets 408 instead of
/// holding its connection (and a worker's buffer) open forever.
fn body_timeout(req: &HttpRequest) -> std::time::Duration {
    let secs = req
        .app_data::<web::Data<crate::state::AppState>>()
        .map_or(30, |s| s.settings.server.body_timeout_seconds);
    std::time::Duration::from_secs(secs.max(1))
}

/// Reads the whole body: 413 over [`MAX_BODY`], 408 when it stops arriving, 400 otherwise.
async fn read_body(
    fut: impl Future<Output = Result<web::Bytes, actix_web::Error>>,
    timeout: std::time::Duration,
) -> Result<web::Bytes, ApiError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(match e.as_error::<actix_web::error::PayloadError>() {
            Some(actix_web::error::PayloadError::Overflow) => ApiError::Detail(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than the limit of {MAX_BODY} bytes."),
            ),
            _ => ApiError::bad_request(format!("Could not read the request body: {e}")),
        }),
        Err(_) => Err(ApiError::Detail(
            actix_web::http::StatusCode::REQUEST_TIMEOUT,
            "The request body did not arrive in time.".into(),
        )),
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = web::Bytes::from_request(req, payload);
        let timeout = body_timeout(req);
        Box::pin(async move {
            let bytes = read_body(fut, timeout).await?;
            Ok(Json(parse::<T>(&bytes)?))
        })
    }
}

/// The raw body, read under the same size limit and timeout as [`Json`], for handlers that
/// parse it themselves (with [`parse`]) and keep it to echo in their errors.
pub struct RawBody(pub web::Bytes);

impl FromRequest for RawBody {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = web::Bytes::from_request(req, payload);
        let timeout = body_timeout(req);
        Box::pin(async move { Ok(RawBody(read_body(fut, timeout).await?)) })
    }
}

/// Like [`Json`], but an empty body means `T::default()` (list endpoints accept no body).
pub struct JsonOrDefault<T>(pub T);

impl<T> JsonOrDefault<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for JsonOrDefault<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = web::Bytes::from_request(req, payload);
        let timeout = body_timeout(req);
        Box::pin(async move {
            let bytes = read_body(fut, timeout).await?;
            if bytes.iter().all(u8::is_ascii_whitespace) || bytes.as_ref() == b"null" {
                return Ok(JsonOrDefault(T::default()));
            }
            Ok(JsonOrDefault(parse::<T>(&bytes)?))
        })
    }
}
