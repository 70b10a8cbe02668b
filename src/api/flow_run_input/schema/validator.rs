//! The validator proper: walks an instance and its (preprocessed) schema, keeping every
//! failure with its path, for [`validate`](super::validate) to pick the most relevant one.

use serde_json::{Map, Value};

use super::repr;

/// Deepest `$ref` nesting followed before the schema counts as circular.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) struct Failure {
    pub(super) path: Vec<Seg>,
    pub(super) message: String,
    /// The missing property of a `required` failure (its path is the object's).
    pub(super) required: Option<String>,
}

pub(super) struct Validator<'a> {
    pub(super) root: &'a Value,
    pub(super) failures: Vec<Failure>,
    pub(super) circular: bool,
}

impl<'a> Validator<'a> {
    fn fail(&mut self, path: &[Seg], message: String) {
        self.failures.push(Failure {
            path: path.to_vec(),
            message,
            required: None,
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

    pub(super) fn check(
        &mut self,
        instance: &Value,
        schema: &'a Value,
        path: &mut Vec<Seg>,
        depth: usize,
    ) {
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
                    self.failures.push(Failure {
                        path: path.to_vec(),
                        message: msg,
                        required: Some(key.to_string()),
                    });
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
