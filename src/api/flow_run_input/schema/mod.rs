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

/// Every failure of `instance` against `schema` (after Prefect's preprocessing), in the shape of
/// Prefect's `build_error_obj` (`/ui/schemas/validate`): `{"errors": [...], "valid": bool}`,
/// each error under the properties and indexes of its path, a `required` failure under the
/// missing property.
pub fn error_object(instance: &Value, schema: &Value) -> Result<Value, SchemaError> {
    let schema = preprocess(schema);
    let mut v = Validator {
        root: &schema,
        failures: Vec::new(),
        circular: false,
    };
    v.check(instance, &schema, &mut Vec::new(), 0);
    if v.circular {
        return Err(SchemaError::Circular);
    }
    let mut errors: Vec<Value> = Vec::new();
    for f in v.failures {
        let mut path = f.path;
        if let Some(key) = f.required {
            path.push(Seg::Key(key));
        }
        place(&mut errors, &path, f.message);
    }
    let valid = errors.is_empty();
    Ok(serde_json::json!({ "errors": errors, "valid": valid }))
}

/// Puts `message` into `errors` at `path`: through the entries already there for the path's
/// leading parts (added when missing), and as a new entry for its last part.
fn place(errors: &mut Vec<Value>, path: &[Seg], message: String) {
    let Some((last, leading)) = path.split_last() else {
        errors.push(Value::String(message));
        return;
    };
    let entry = |seg: &Seg, errors: Vec<Value>| -> Value {
        match seg {
            Seg::Key(k) => serde_json::json!({ "property": k, "errors": errors }),
            Seg::Index(i) => serde_json::json!({ "index": i, "errors": errors }),
        }
    };
    let same = |e: &Value, seg: &Seg| match seg {
        Seg::Key(k) => e.get("property").and_then(Value::as_str) == Some(k.as_str()),
        Seg::Index(i) => e.get("index").and_then(Value::as_u64) == Some(*i as u64),
    };
    let mut current = errors;
    for seg in leading {
        let at = match current.iter().position(|e| same(e, seg)) {
            Some(at) => at,
            None => {
                current.push(entry(seg, Vec::new()));
                current.len() - 1
            }
        };
        match current[at].get_mut("errors").and_then(Value::as_array_mut) {
            Some(next) => current = next,
            None => return,
        }
    }
    current.push(entry(last, vec![Value::String(message)]));
}

/// JSON Schema's simple types.
const TYPES: [&str; 7] = [
    "array", "boolean", "integer", "null", "number", "object", "string",
];

/// The structural checks of the metaschema that a hand-written or generated schema can get
/// wrong (`type` a known type or a list of them; `properties`, `definitions` and `$defs` objects
/// of schemas; `required` and `enum` lists; `items`, `anyOf`, `allOf`, `oneOf` schemas), with the
/// metaschema's message: `Invalid schema: ...`.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    let bad = |v: &Value, why: &str| Err(format!("Invalid schema: {} {why}", repr(v)));
    let s = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(s) => s,
        other => return bad(other, "is not of type 'object', 'boolean'"),
    };
    match s.get("type") {
        None => {}
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {}
        Some(Value::Array(ts))
            if ts
                .iter()
                .all(|t| t.as_str().is_some_and(|t| TYPES.contains(&t))) => {}
        Some(t) => return bad(t, "is not valid under any of the given schemas"),
    }
    for key in ["properties", "definitions", "$defs", "patternProperties"] {
        match s.get(key) {
            None => {}
            Some(Value::Object(m)) => m.values().try_for_each(check_schema)?,
            Some(other) => return bad(other, "is not of type 'object'"),
        }
    }
    for key in ["required", "enum"] {
        match s.get(key) {
            None | Some(Value::Array(_)) => {}
            Some(other) => return bad(other, "is not of type 'array'"),
        }
    }
    if let Some(Value::Array(required)) = s.get("required") {
        if let Some(r) = required.iter().find(|r| !r.is_string()) {
            return bad(r, "is not of type 'string'");
        }
    }
    for key in ["anyOf", "allOf", "oneOf", "prefixItems"] {
        match s.get(key) {
            None => {}
            Some(Value::Array(subs)) if !subs.is_empty() => {
                subs.iter().try_for_each(check_schema)?
            }
            Some(other @ Value::Array(_)) => return bad(other, "should be non-empty"),
            Some(other) => return bad(other, "is not of type 'array'"),
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = s.get(key) {
            check_schema(sub)?;
        }
    }
    Ok(())
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
