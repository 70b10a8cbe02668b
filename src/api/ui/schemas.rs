//! `POST /ui/schemas/validate`: values (with the UI's placeholders hydrated, workspace
//! variables read) checked against a JSON schema, every failure reported under its path.

use actix_web::{web, HttpResponse};
use serde_json::{Map, Value};

use crate::api::flow_run_input::{check_schema, error_object, hydrated, SchemaError};
use crate::error::{ApiError, ApiResult};
use crate::extract::json::Json;
use crate::extract::Workspace;
use crate::state::AppState;

pub async fn validate(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    let mut body = body.0;
    let field = |body: &mut Map<String, Value>, name: &str| match body.remove(name) {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(ApiError::invalid(
            vec!["body".into(), name.into()],
            "Input should be a valid dictionary",
            "dict_type",
        )),
        None => Err(ApiError::invalid(
            vec!["body".into(), name.into()],
            "Field required",
            "missing",
        )),
    };
    let schema = Value::Object(field(&mut body, "schema")?);
    let values = field(&mut body, "values")?;
    check_schema(&schema).map_err(ApiError::unprocessable)?;
    let values = match hydrated(&state, &ws, values).await? {
        Ok(v) => Value::Object(v),
        Err(e) => {
            return Ok(HttpResponse::Ok().json(serde_json::json!({"errors": [e], "valid": false})))
        }
    };
    match error_object(&values, &schema) {
        Ok(obj) => Ok(HttpResponse::Ok().json(obj)),
        Err(SchemaError::Circular) => Err(ApiError::unprocessable(
            "Invalid schema: Unable to validate schema with circular references.",
        )),
        Err(SchemaError::Invalid(e)) => {
            Err(ApiError::unprocessable(format!("Invalid schema: {e}")))
        }
    }
}
