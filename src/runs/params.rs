//! Parameter checks for deployments with `enforce_parameter_schema`: the subset of JSON Schema
//! that flow parameter schemas use (required properties, property types, enums, nested objects
//! and arrays, anyOf/allOf, `$ref` to `definitions`/`$defs`). Unknown keywords are ignored.

use serde_json::{Map, Value};

/// Checks `params` against `schema`; the error names the field and the reason.
pub fn validate(schema: &Value, params: &Map<String, Value>) -> Result<(), String> {
    check(schema, schema, &Value::Object(params.clone()), "")
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let path = r.trim_start_matches("#/");
            let mut cur = root;
            for part in path.split('/') {
                cur = match cur.get(part) {
                    Some(v) => v,
                    None => return node,
                };
            }
            cur
        }
        None => node,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// A value as Python's `repr` shows it (strings in single quotes), as jsonschema's messages do.
fn py(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

fn check(root: &Value, node: &Value, v: &Value, at: &str) -> Result<(), String> {
    let node = resolve(root, node);
    let field = if at.is_empty() {
        "parameters".to_string()
    } else {
        at.to_string()
    };
    if let Some(t) = node.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)),
            _ => true,
        };
        if !ok {
            let t = match t {
                Value::String(t) => format!("'{t}'"),
                other => other.to_string(),
            };
            return Err(format!(
                "Validation failed for field '{field}'. Failure reason: {} is not of type {t}",
                py(v)
            ));
        }
    }
    if let Some(options) = node.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            return Err(format!(
                "Validation failed for field '{field}'. Failure reason: {} is not one of {}",
                py(v),
                Value::Array(options.clone())
            ));
        }
    }
    if let Some(any) = node.get("anyOf").and_then(Value::as_array) {
        if !any.iter().any(|s| check(root, s, v, at).is_ok()) {
            return Err(format!("Validation failed for field '{field}'. Failure reason: {} is not valid under any of the given schemas", py(v)));
        }
    }
    for s in node
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check(root, s, v, at)?;
    }
    if let Value::Object(obj) = v {
        for req in node
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(req) {
                return Err(format!("Validation failed for field '{field}'. Failure reason: '{req}' is a required property"));
            }
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                if let Some(val) = obj.get(k) {
                    let path = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    check(root, sub, val, &path)?;
                }
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (v, node.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(root, item_schema, item, &format!("{field}.{i}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;
    use serde_json::json;

    #[test]
    fn required_types_and_enums() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}, "mode": {"enum": ["a", "b"]}}, "required": ["n"]});
        let ok = json!({"n": 3, "mode": "a"});
        assert!(validate(&schema, ok.as_object().expect("obj")).is_ok());
        let missing = json!({});
        assert!(validate(&schema, missing.as_object().expect("obj"))
            .expect_err("missing")
            .contains("'n' is a required property"));
        let wrong = json!({"n": "three"});
        assert!(validate(&schema, wrong.as_object().expect("obj"))
            .expect_err("type")
            .contains("field 'n'"));
        let bad_enum = json!({"n": 1, "mode": "c"});
        assert!(validate(&schema, bad_enum.as_object().expect("obj")).is_err());
    }
}
