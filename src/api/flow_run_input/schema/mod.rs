//! The JSON Schema subset that Prefect's run-input schemas use (pydantic models: `type`,
//! `properties`, `required`, `additionalProperties`, `enum`, `const`, `anyOf`/`oneOf`/`allOf`,
//! `$ref` into the schema, `items`/`prefixItems`, numeric and length bounds). Messages follow
//! Python's `jsonschema` (the most relevant error: the shallowest, first found), wrapped the way
//! Prefect's `schema_tools.validate` does. `format` and `pattern` are not asserted.

mod validator;

use serde_json::{Map, Value};

use validator::{Seg, Validator};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// The instance does not match: Prefect's `ValidationError` text.
    Invalid(String),
    /// The schema refers to itself without end.
    Circular,
}

/// Validates `instance` against `schema` after Prefect's preprocessing.
pub fn validate(instance: &Value, schema: &Value) -> Result<(), SchemaError> {
    let schema = preprocess(schema);
    let mut v = Validator {
        root: &schema,
        failures: Vec::new(),
        circular: false,
    };
    let mut path = Vec::new();
    v.check(instance, &schema, &mut path, 0);
    if v.circular {
        return Err(SchemaError::Circular);
    }
    // jsonschema's `best_match`: the shallowest error, the first of equals.
    let Some(best) = v.failures.iter().min_by_key(|f| f.path.len()) else {
        return Ok(());
    };
    let head = if best.path.is_empty() {
        "Validation failed.".to_string()
    } else {
        let mut p = String::new();
        for (i, s) in best.path.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => p.push_str(k),
                Seg::Key(k) => {
                    p.push('.');
                    p.push_str(k);
                }
                Seg::Index(n) => p.push_str(&format!("[{n}]")),
            }
        }
        format!("Validation failed for field {}.", repr(&Value::String(p)))
    };
    Err(SchemaError::Invalid(format!(
        "{head} Failure reason: {}",
        best.message
    )))
}

/// Prefect's `preprocess_schema`: optional typed properties without a default also accept
/// null, and tuple `items` lists become `prefixItems`.
fn preprocess(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(obj) = schema.as_object_mut() {
        let required = required_of(obj);
        if let Some(Value::Object(props)) = obj.get_mut("properties") {
            process_properties(props, &required);
        }
        if let Some(Value::Object(defs)) = obj.get_mut("definitions") {
            for def in defs.values_mut() {
                if let Some(d) = def.as_object_mut() {
                    let required = required_of(d);
                    if let Some(Value::Object(props)) = d.get_mut("properties") {
                        process_properties(props, &required);
                    }
                }
            }
        }
    }
    schema
}

fn required_of(obj: &Map<String, Value>) -> Vec<String> {
    obj.get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn process_properties(props: &mut Map<String, Value>, required: &[String]) {
    for (key, prop) in props.iter_mut() {
        let Some(p) = prop.as_object_mut() else {
            continue;
        };
        if !required.contains(key)
            && p.get("type").is_some_and(|t| t != "null")
            && !p.contains_key("default")
        {
            if let Some(t) = p.remove("type") {
                p.insert(
                    "anyOf".into(),
                    Value::Array(vec![
                        serde_json::json!({ "type": t }),
                        serde_json::json!({ "type": "null" }),
                    ]),
                );
            }
        }
        if p.get("items").is_some_and(Value::is_array) && !p.contains_key("prefixItems") {
            if let Some(items) = p.remove("items") {
                p.insert("prefixItems".into(), items);
            }
        }
        let nested_required = required_of(p);
        if let Some(Value::Object(nested)) = p.get_mut("properties") {
            process_properties(nested, &nested_required);
        }
    }
}

/// A value as Python's `repr` shows the decoded JSON (`'text'`, `True`, `None`, `[1, 2]`).
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::with_capacity(s.len() + 2);
            out.push(quote);
            for ch in s.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\x{:02x}", c as u32))
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", repr(&Value::String(k.clone())), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn approval() -> Value {
        json!({"additionalProperties": false, "properties": {
            "approved": {"title": "Approved", "type": "boolean"},
            "reason": {"default": "none", "title": "Reason", "type": "string"},
            "level": {"default": "low", "enum": ["low", "high"], "title": "Level", "type": "string"},
            "count": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null, "title": "Count"}},
            "required": ["approved"], "title": "Approval", "type": "object"})
    }

    fn err(instance: Value) -> String {
        match validate(&instance, &approval()) {
            Err(SchemaError::Invalid(m)) => m,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn messages_match_prefect() {
        assert_eq!(
            err(json!({})),
            "Validation failed. Failure reason: 'approved' is a required property"
        );
        assert_eq!(
            err(json!({"approved": "yes"})),
            "Validation failed for field 'approved'. Failure reason: 'yes' is not of type 'boolean'"
        );
        assert_eq!(
            err(json!({"approved": true, "level": "mid"})),
            "Validation failed for field 'level'. Failure reason: 'mid' is not one of ['low', 'high']"
        );
        assert_eq!(
            err(json!({"approved": true, "count": 1.5})),
            "Validation failed for field 'count'. Failure reason: 1.5 is not valid under any of the given schemas"
        );
        assert_eq!(
            err(json!({"approved": true, "extra": 1})),
            "Validation failed. Failure reason: Additional properties are not allowed ('extra' was unexpected)"
        );
        assert_eq!(
            validate(&json!({"approved": false, "count": 3}), &approval()),
            Ok(())
        );
    }

    #[test]
    fn optional_properties_accept_null_and_refs_resolve() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "integer"},
            "p": {"$ref": "#/definitions/P"}},
            "definitions": {"P": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}});
        assert_eq!(validate(&json!({"a": null}), &schema), Ok(()));
        assert_eq!(validate(&json!({"p": {"x": "y"}}), &schema), Ok(()));
        assert!(validate(&json!({"p": {}}), &schema).is_err());
        let circular = json!({"$ref": "#"});
        assert_eq!(validate(&json!(1), &circular), Err(SchemaError::Circular));
    }

    #[test]
    fn python_repr() {
        assert_eq!(
            repr(&json!({"a": [1, true, null, "it's"]})),
            "{'a': [1, True, None, \"it's\"]}"
        );
    }
}
