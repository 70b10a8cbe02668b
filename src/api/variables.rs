//! `/variables`: create, read by id or name, filter, count, update and delete by id or name.
//! Values are any JSON; names and value sizes are checked as Prefect's `VariableCreate` /
//! `VariableUpdate` do (422 with its messages), and a taken name answers 409.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::common::{present, to_text};
use crate::error::{ApiError, ApiResult, INTEGRITY_CONFLICT};
use crate::extract::json::{Json, JsonOrDefault};
use crate::extract::params::{Paging, PathId, PathName};
use crate::extract::Workspace;
use crate::query::variables::{VariableFilter, VariableSort};
use crate::state::AppState;
use crate::storage::variables::{self, Key, VariableChanges, VariableRow};
use crate::storage::StorageError;
use crate::wire::{json_text, JsonText, Ts};

/// Longest variable name (`MAX_VARIABLE_NAME_LENGTH`).
const MAX_NAME_LENGTH: usize = 255;
/// Longest variable value as compact JSON (`MAX_VARIABLE_VALUE_LENGTH`).
const MAX_VALUE_LENGTH: usize = 5000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/variables/", web::post().to(create))
        .route("/variables", web::post().to(create))
        .route("/variables/filter", web::post().to(filter))
        .route("/variables/count", web::post().to(count))
        .route("/variables/name/{name}", web::get().to(read_by_name))
        .route("/variables/name/{name}", web::patch().to(update_by_name))
        .route("/variables/name/{name}", web::delete().to(delete_by_name))
        .route("/variables/{id}", web::get().to(read))
        .route("/variables/{id}", web::patch().to(update))
        .route("/variables/{id}", web::delete().to(delete));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableCreate {
    name: String,
    value: Value,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableUpdate {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    tags: Option<Option<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListBody {
    variables: Option<VariableFilter>,
    sort: Option<VariableSort>,
    #[serde(flatten)]
    paging: Paging,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CountBody {
    variables: Option<VariableFilter>,
}

fn invalid(field: &str, msg: impl Into<String>, kind: &'static str) -> ApiError {
    ApiError::invalid(vec!["body".into(), field.into()], msg, kind)
}

/// `VariableName`: at most 255 characters of lowercase letters, digits, dashes and underscores
/// (Python's `re.match("^[a-z0-9-_]*$")`, which also lets one trailing newline through).
pub fn check_name(name: &str) -> ApiResult<()> {
    let len = name.chars().count();
    if len > MAX_NAME_LENGTH {
        return Err(invalid(
            "name",
            format!(
                "Value should have at most {MAX_NAME_LENGTH} items after validation, not {len}"
            ),
            "too_long",
        ));
    }
    let body = name.strip_suffix('\n').unwrap_or(name);
    let ok = body
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_');
    if !ok {
        return Err(invalid(
            "name",
            "Value error, Variable name must only contain lowercase letters, numbers, and dashes or underscores.",
            "value_error",
        ));
    }
    Ok(())
}

/// `StrictVariableValue`: non-null values serialise to at most 5000 characters of JSON.
fn check_value(value: &Value) -> ApiResult<String> {
    let text = to_text(value);
    if !value.is_null() && text.len() > MAX_VALUE_LENGTH {
        return Err(invalid(
            "value",
            format!("Value error, Variable value must be less than {MAX_VALUE_LENGTH} characters"),
            "value_error",
        ));
    }
    Ok(text)
}

/// `Variable`.
#[derive(Serialize)]
pub struct VariableOut<'a> {
    id: &'a str,
    created: Ts<'a>,
    updated: Ts<'a>,
    name: &'a str,
    value: JsonText<'a>,
    tags: JsonText<'a>,
}

impl<'a> From<&'a VariableRow> for VariableOut<'a> {
    fn from(r: &'a VariableRow) -> Self {
        VariableOut {
            id: &r.id,
            created: Ts(&r.created),
            updated: Ts(&r.updated),
            name: &r.name,
            value: json_text(&r.value, "null"),
            tags: json_text(&r.tags, "[]"),
        }
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Variable not found.")
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<VariableCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    check_name(&b.name)?;
    let value = check_value(&b.value)?;
    let now = crate::time::now().naive_utc();
    let row = VariableRow {
        id: Uuid::new_v4().to_string(),
        workspace_id: ws.id().clone(),
        created: now,
        updated: now,
        name: b.name,
        value,
        tags: to_text(&b.tags),
    };
    let stored = row.clone();
    let inserted = state
        .stores
        .orion
        .write(async move |c| variables::insert(c, &stored).await)
        .await;
    match inserted {
        Ok(()) => Ok(HttpResponse::Created().json(VariableOut::from(&row))),
        Err(StorageError::Conflict(_)) => Err(ApiError::conflict(format!(
            "A variable with the name '{}' already exists.",
            row.name
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn read(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let row = variables::find(&mut c, ws.id(), &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(VariableOut::from(&row)))
}

async fn read_by_name(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let mut c = state.stores.orion.read().await?;
    let row = variables::find_by_name(&mut c, ws.id(), &name)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(VariableOut::from(&row)))
}

async fn filter(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<ListBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let page = b.paging.page(&state)?;
    let mut c = state.stores.orion.read().await?;
    let rows = variables::list(
        &mut c,
        ws.id(),
        &b.variables.unwrap_or_default(),
        b.sort.unwrap_or_default(),
        page,
    )
    .await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(VariableOut::from).collect::<Vec<_>>()))
}

async fn count(
    state: web::Data<AppState>,
    ws: Workspace,
    body: JsonOrDefault<CountBody>,
) -> ApiResult<HttpResponse> {
    let f = body.into_inner().variables.unwrap_or_default();
    let mut c = state.stores.orion.read().await?;
    let n = variables::count(&mut c, ws.id(), &f).await?;
    Ok(HttpResponse::Ok().json(n))
}

async fn apply_update(
    state: &AppState,
    ws: &Workspace,
    key: Key,
    b: VariableUpdate,
) -> ApiResult<HttpResponse> {
    // An explicit `null` name or tags would null a NOT NULL column: Prefect answers 409.
    if matches!(b.name, Some(None)) || matches!(b.tags, Some(None)) {
        return Err(ApiError::conflict(INTEGRITY_CONFLICT));
    }
    if let Some(Some(name)) = &b.name {
        check_name(name)?;
    }
    let value = b.value.as_ref().map(check_value).transpose()?;
    let changes = VariableChanges {
        updated: Some(crate::time::now().naive_utc()),
        name: b.name.flatten(),
        value,
        tags: b.tags.flatten().map(|t| to_text(&t)),
    };
    let ws = ws.id().clone();
    let updated = state
        .stores
        .orion
        .write(async move |c| variables::update(c, &ws, &key, &changes).await)
        .await;
    match updated {
        Ok(true) => Ok(HttpResponse::NoContent().finish()),
        Ok(false) => Err(not_found()),
        Err(StorageError::Conflict(_)) => Err(ApiError::conflict(INTEGRITY_CONFLICT)),
        Err(e) => Err(e.into()),
    }
}

async fn update(
    state: web::Data<AppState>,
    ws: Workspace,
    id: PathId,
    body: Json<VariableUpdate>,
) -> ApiResult<HttpResponse> {
    apply_update(&state, &ws, Key::Id(id.to_string()), body.into_inner()).await
}

async fn update_by_name(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
    body: Json<VariableUpdate>,
) -> ApiResult<HttpResponse> {
    apply_update(&state, &ws, Key::Name(name.to_string()), body.into_inner()).await
}

async fn delete(state: web::Data<AppState>, ws: Workspace, id: PathId) -> ApiResult<HttpResponse> {
    if !delete_key(&state, &ws, Key::Id(id.to_string())).await? {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_by_name(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathName,
) -> ApiResult<HttpResponse> {
    if !delete_key(&state, &ws, Key::Name(name.to_string())).await? {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes the variable `key` addresses; false when there is none.
async fn delete_key(state: &AppState, ws: &Workspace, key: Key) -> ApiResult<bool> {
    let ws = ws.id().clone();
    Ok(state
        .stores
        .orion
        .write(async move |c| variables::delete(c, &ws, &key).await)
        .await?)
}
