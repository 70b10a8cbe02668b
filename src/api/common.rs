//! Helpers shared by the resource handlers: paging answers, JSON columns read back as values,
//! and the "present or absent" reading of update bodies (answers are built in `crate::wire`).

use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// A JSON text column as a value (`default` when the text is not JSON, which never happens for
/// rows Orrery wrote).
pub fn json_col(text: &str, default: Value) -> Value {
    serde_json::from_str(text).unwrap_or(default)
}

/// Compact JSON text of a value, for JSON columns.
pub fn to_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// `deserialize_with` for update bodies that tell "absent" from "null": a present key is
/// `Some(value)` (so `null` becomes `Some(None)` for an `Option<Option<T>>` field); with
/// `#[serde(default)]` an absent key stays `None`.
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Pagination response fields: pages = ceil(count / limit), 0 when limit is 0.
pub fn pages(count: i64, limit: i64) -> i64 {
    if limit <= 0 {
        0
    } else {
        (count + limit - 1) / limit
    }
}

/// The `page` of a `/paginate` body (from 1, default 1) and the rows it covers.
pub fn page_of(page: Option<i64>, limit: i64) -> Result<(i64, crate::query::Page), ApiError> {
    let number = page.unwrap_or(1);
    if number < 1 {
        return Err(ApiError::invalid(
            vec!["body".into(), "page".into()],
            "Input should be greater than or equal to 1",
            "greater_than_equal",
        ));
    }
    Ok((number, crate::query::Page::numbered(number, limit)))
}

/// The `/paginate` answer.
#[derive(serde::Serialize)]
pub struct Paginated<T> {
    results: Vec<T>,
    count: i64,
    limit: i64,
    pages: i64,
    page: i64,
}

/// The `/paginate` answer of `results`, page `page` of `count` rows at `limit` per page.
pub fn paginated<T: serde::Serialize>(
    results: Vec<T>,
    count: i64,
    limit: i64,
    page: i64,
) -> Paginated<T> {
    Paginated {
        results,
        count,
        limit,
        pages: pages(count, limit),
        page,
    }
}
