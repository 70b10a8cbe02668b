//! The JSON Schema subset that Prefect's run-input schemas use (pydantic models: `type`,
//! `properties`, `required`, `additionalProperties`, `enum`, `const`, `anyOf`/`oneOf`/`allOf`,
//! `$ref` into the schema, `items`/`prefixItems`, numeric and length bounds). Messages follow
//! Python's `jsonschema` (the most relevant error: the shallowest, first found), wrapped the way
//! Prefect's `schema_tools.validate` does. `format` and `pattern` are not asserted.

use serde_json::{Map, Value};

/// Deepest `$ref` nesting followed before the schema counts as circular.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// The instance does not match: Prefect's `ValidationError` text.
    Invalid(String),
    /// The schema refers to itself without end.
    Circular,
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

struct Failure {
    path: Vec<Seg>,
    message: String,
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

struct Validator<'a> {
    root: &'a Value,
    failures: Vec<Failure>,
    circular: bool,
}

impl<'a> Validator<'a> {
    fn fail(&mut self, path: &[Seg], message: String) {
        self.failures.push(Failure {
            path: path.to_vec(),
            message,
        });
    }

    /// Whether `instance` matches `schema` (errors are not kept).
    fn matches(&mut self, instance: &Value, schema: &'a Value, depth: usize) -> bool {
        let mut probe = Validator {
            root: self.root,
            failures: Vec::new(),
            circular: false,
        };
        probe.check(instance, schema, &mut Vec::new(), depth);
        self.circular |= probe.circular;
        probe.failures.is_empty()
    }

    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }

    fn check(&mut self, instance: &Value, schema: &'a Value, path: &mut Vec<Seg>, depth: usize) {
        if depth > MAX_DEPTH {
            self.circular = true;
            return;
        }
        let s = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                let msg = format!("False schema does not allow {}", repr(instance));
                return self.fail(path, msg);
            }
            Value::Object(s) => s,
            _ => return,
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match self.resolve(r) {
                Some(target) => self.check(instance, target, path, depth + 1),
                None => {
                    let msg = format!("Unresolvable: {r}");
                    self.fail(path, msg);
                }
            }
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !types.is_empty() && !types.iter().any(|t| is_type(instance, t)) {
                let names: Vec<String> = types.iter().map(|t| format!("'{t}'")).collect();
                let msg = format!("{} is not of type {}", repr(instance), names.join(", "));
                self.fail(path, msg);
            }
        }
        if let Some(Value::Array(options)) = s.get("enum") {
            if !options.iter().any(|o| json_eq(o, instance)) {
                let msg = format!(
                    "{} is not one of {}",
                    repr(instance),
                    repr(&Value::Array(options.clone()))
                );
                self.fail(path, msg);
            }
        }
        if let Some(c) = s.get("const") {
            if !json_eq(c, instance) {
                let msg = format!("{} was expected", repr(c));
                self.fail(path, msg);
            }
        }
        self.check_numbers(instance, s, path);
        self.check_lengths(instance, s, path);
        if let Value::Object(obj) = instance {
            self.check_object(obj, s, path, depth);
        }
        if let Value::Array(items) = instance {
            self.check_array(items, s, path, depth);
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for sub in all {
                self.check(instance, sub, path, depth + 1);
            }
        }
        if let Some(Value::Array(any)) = s.get("anyOf") {
            if !any.iter().any(|sub| self.matches(instance, sub, depth + 1)) {
                let msg = format!(
                    "{} is not valid under any of the given schemas",
                    repr(instance)
                );
                self.fail(path, msg);
            }
        }
        if let Some(Value::Array(one)) = s.get("oneOf") {
            let n = one
                .iter()
                .filter(|sub| self.matches(instance, sub, depth + 1))
                .count();
            if n == 0 {
                let msg = format!(
                    "{} is not valid under any of the given schemas",
                    repr(instance)
                );
                self.fail(path, msg);
            } else if n > 1 {
                let msg = format!(
                    "{} is valid under more than one of the given schemas",
                    repr(instance)
                );
                self.fail(path, msg);
            }
        }
        if let Some(not) = s.get("not") {
            if self.matches(instance, not, depth + 1) {
                let msg = format!("{} should not be valid under {}", repr(instance), repr(not));
                self.fail(path, msg);
            }
        }
    }

    fn check_object(
        &mut self,
        obj: &Map<String, Value>,
        s: &'a Map<String, Value>,
        path: &mut Vec<Seg>,
        depth: usize,
    ) {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(props) = props {
            for (key, sub) in props {
                if let Some(v) = obj.get(key) {
                    path.push(Seg::Key(key.clone()));
                    self.check(v, sub, path, depth + 1);
                    path.pop();
                }
            }
        }
        if let Some(Value::Array(required)) = s.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(key) {
                    let msg = format!(
                        "{} is a required property",
                        repr(&Value::String(key.into()))
                    );
                    self.fail(path, msg);
                }
            }
        }
        let extra: Vec<&String> = obj
            .keys()
            .filter(|k| !props.is_some_and(|p| p.contains_key(*k)))
            .collect();
        match s.get("additionalProperties") {
            Some(Value::Bool(false)) if !extra.is_empty() => {
                let names: Vec<String> = extra
                    .iter()
                    .map(|k| repr(&Value::String((*k).clone())))
                    .collect();
                let verb = if names.len() == 1 { "was" } else { "were" };
                let msg = format!(
                    "Additional properties are not allowed ({} {verb} unexpected)",
                    names.join(", ")
                );
                self.fail(path, msg);
            }
            Some(sub @ Value::Object(_)) => {
                for key in extra {
                    if let Some(v) = obj.get(key) {
                        path.push(Seg::Key(key.clone()));
                        self.check(v, sub, path, depth + 1);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
        let count = obj.len() as u64;
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
            if count < min {
                let msg = format!(
                    "{} does not have enough properties",
                    repr(&Value::Object(obj.clone()))
                );
                self.fail(path, msg);
            }
        }
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64) {
            if count > max {
                let msg = format!(
                    "{} has too many properties",
                    repr(&Value::Object(obj.clone()))
                );
                self.fail(path, msg);
            }
        }
    }

    fn check_array(
        &mut self,
        items: &[Value],
        s: &'a Map<String, Value>,
        path: &mut Vec<Seg>,
        depth: usize,
    ) {
        let mut skip = 0;
        if let Some(Value::Array(prefix)) = s.get("prefixItems") {
            for (i, (v, sub)) in items.iter().zip(prefix).enumerate() {
                path.push(Seg::Index(i));
                self.check(v, sub, path, depth + 1);
                path.pop();
            }
            skip = prefix.len();
        }
        if let Some(sub) = s.get("items").filter(|i| !i.is_array()) {
            for (i, v) in items.iter().enumerate().skip(skip) {
                path.push(Seg::Index(i));
                self.check(v, sub, path, depth + 1);
                path.pop();
            }
        }
        let n = items.len() as u64;
        let whole = || repr(&Value::Array(items.to_vec()));
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            let msg = format!("{} is too short", whole());
            self.fail(path, msg);
        }
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            let msg = format!("{} is too long", whole());
            self.fail(path, msg);
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            let dup = items
                .iter()
                .enumerate()
                .any(|(i, a)| items[i + 1..].iter().any(|b| json_eq(a, b)));
            if dup {
                let msg = format!("{} has non-unique elements", whole());
                self.fail(path, msg);
            }
        }
    }

    fn check_numbers(&mut self, instance: &Value, s: &Map<String, Value>, path: &[Seg]) {
        let Some(x) = instance.as_f64().filter(|_| instance.is_number()) else {
            return;
        };
        let shown = repr(instance);
        let bound = |k: &str| s.get(k).and_then(Value::as_f64).map(|b| (b, repr(&s[k])));
        if let Some((m, ms)) = bound("minimum") {
            if x < m {
                self.fail(path, format!("{shown} is less than the minimum of {ms}"));
            }
        }
        if let Some((m, ms)) = bound("maximum") {
            if x > m {
                self.fail(path, format!("{shown} is greater than the maximum of {ms}"));
            }
        }
        if let Some((m, ms)) = bound("exclusiveMinimum") {
            if x <= m {
                self.fail(
                    path,
                    format!("{shown} is less than or equal to the minimum of {ms}"),
                );
            }
        }
        if let Some((m, ms)) = bound("exclusiveMaximum") {
            if x >= m {
                self.fail(
                    path,
                    format!("{shown} is greater than or equal to the maximum of {ms}"),
                );
            }
        }
    }

    fn check_lengths(&mut self, instance: &Value, s: &Map<String, Value>, path: &[Seg]) {
        let Value::String(text) = instance else {
            return;
        };
        let n = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            self.fail(path, format!("{} is too short", repr(instance)));
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            self.fail(path, format!("{} is too long", repr(instance)));
        }
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => {
            v.is_i64()
                || v.is_u64()
                || v.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => true,
    }
}

/// JSON equality where 1 and 1.0 are equal (as in Python) but true is not 1.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
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
