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
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let inner = err.inner();
            let kind = if inner.is_syntax() || inner.is_eof() {
                "json_invalid"
            } else {
                "value_error"
            };
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
            let body = serde_json::from_slice::<Value>(bytes).ok();
            Err(ApiError::Validation {
                loc,
                msg: inner.to_string(),
                kind,
                body,
            })
        }
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = fut.await.map_err(|e| {
                ApiError::bad_request(format!("Could not read the request body: {e}"))
            })?;
            Ok(Json(parse::<T>(&bytes)?))
        })
    }
}
