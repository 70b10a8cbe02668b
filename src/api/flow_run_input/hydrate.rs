//! Hydration of run input sent by the UI, as Prefect's `schema_tools.hydrate` does before
//! validating it: objects with a `__prefect_kind` are replaced by their value — `none` (the
//! inner value), `json` (parsed JSON text), `workspace_variable` (the variable's value) and
//! `jinja` (the template text; Orrery does not render templates). Keys whose placeholder has
//! no value are dropped. The first problem found is an error with Prefect's message.

use std::collections::HashMap;

use serde_json::{Map, Value};

const KIND: &str = "__prefect_kind";

/// What a placeholder turned into.
enum Hydrated {
    Value(Value),
    /// Drop the key (or list element) holding the placeholder.
    Remove,
}

/// Names of the workspace variables `v` refers to (to be loaded before [`hydrate`]).
pub fn variable_names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if m.get(KIND).and_then(Value::as_str) == Some("workspace_variable") {
                if let Some(Value::String(name)) = m.get("variable_name") {
                    out.push(name.clone());
                }
            }
            m.values().for_each(|x| variable_names(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| variable_names(x, out)),
        _ => {}
    }
}

/// Hydrates `input` with the given workspace variables (name → value).
pub fn hydrate(
    input: Map<String, Value>,
    variables: &HashMap<String, Value>,
) -> Result<Map<String, Value>, String> {
    match walk(Value::Object(input), variables)? {
        Hydrated::Value(Value::Object(m)) => Ok(m),
        Hydrated::Value(_) | Hydrated::Remove => Ok(Map::new()),
    }
}

fn walk(v: Value, vars: &HashMap<String, Value>) -> Result<Hydrated, String> {
    match v {
        Value::Object(m) if m.contains_key(KIND) => placeholder(m, vars),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                if let Hydrated::Value(h) = walk(x, vars)? {
                    out.insert(k, h);
                }
            }
            Ok(Hydrated::Value(Value::Object(out)))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for x in items {
                if let Hydrated::Value(h) = walk(x, vars)? {
                    out.push(h);
                }
            }
            Ok(Hydrated::Value(Value::Array(out)))
        }
        other => Ok(Hydrated::Value(other)),
    }
}

/// The value of a key that may itself be a placeholder object.
fn inner(v: Value, vars: &HashMap<String, Value>) -> Result<Hydrated, String> {
    if v.is_object() {
        walk(v, vars)
    } else {
        Ok(Hydrated::Value(v))
    }
}

fn missing(key: &str) -> String {
    format!("Missing '{key}' key in __prefect object")
}

fn placeholder(
    mut m: Map<String, Value>,
    vars: &HashMap<String, Value>,
) -> Result<Hydrated, String> {
    let kind = m.get(KIND).and_then(Value::as_str).map(str::to_string);
    match kind.as_deref() {
        Some("none") => match m.remove("value") {
            Some(v) => walk(v, vars),
            None => Err(missing("value")),
        },
        Some("json") => match m.remove("value") {
            None => Ok(Hydrated::Remove),
            Some(v) => match inner(v, vars)? {
                Hydrated::Value(Value::String(text)) => serde_json::from_str(&text)
                    .map(Hydrated::Value)
                    .map_err(|e| format!("Invalid JSON: {e}")),
                other => Ok(other),
            },
        },
        Some("workspace_variable") => match m.remove("variable_name") {
            None => Ok(Hydrated::Remove),
            Some(v) => match inner(v, vars)? {
                Hydrated::Value(Value::String(name)) => vars
                    .get(&name)
                    .cloned()
                    .map(Hydrated::Value)
                    .ok_or_else(|| format!("Variable '{name}' not found in workspace.")),
                Hydrated::Value(other) => Err(format!(
                    "Variable '{}' not found in workspace.",
                    super::schema::repr(&other)
                )),
                Hydrated::Remove => Ok(Hydrated::Remove),
            },
        },
        Some("jinja") => match m.remove("template") {
            Some(v) => inner(v, vars),
            None => Err(missing("template")),
        },
        _ => Ok(Hydrated::Value(m.remove("value").unwrap_or(Value::Null))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: Value) -> Result<Value, String> {
        let vars = HashMap::from([("threshold".to_string(), json!(7))]);
        let Value::Object(m) = v else {
            panic!("object")
        };
        hydrate(m, &vars).map(Value::Object)
    }

    #[test]
    fn placeholders_are_replaced() {
        assert_eq!(
            run(json!({"a": 1, "b": [1, "x"]})),
            Ok(json!({"a": 1, "b": [1, "x"]}))
        );
        assert_eq!(
            run(json!({"a": {"__prefect_kind": "json", "value": "{\"x\": [1]}"}})),
            Ok(json!({"a": {"x": [1]}}))
        );
        assert_eq!(
            run(
                json!({"a": {"__prefect_kind": "none", "value": {"__prefect_kind": "workspace_variable", "variable_name": "threshold"}}})
            ),
            Ok(json!({"a": 7}))
        );
        assert_eq!(
            run(
                json!({"a": {"__prefect_kind": "json"}, "b": [{"__prefect_kind": "workspace_variable"}]})
            ),
            Ok(json!({"b": []}))
        );
        assert_eq!(
            run(json!({"a": {"__prefect_kind": "other", "value": 3}})),
            Ok(json!({"a": 3}))
        );
        assert_eq!(run(json!({"__prefect_kind": "json"})), Ok(json!({})));
    }

    #[test]
    fn problems_are_reported() {
        assert_eq!(
            run(json!({"a": {"__prefect_kind": "none"}})),
            Err("Missing 'value' key in __prefect object".into())
        );
        assert_eq!(
            run(json!({"a": {"__prefect_kind": "workspace_variable", "variable_name": "nope"}})),
            Err("Variable 'nope' not found in workspace.".into())
        );
        assert!(run(json!({"a": {"__prefect_kind": "json", "value": "{"}}))
            .is_err_and(|e| e.starts_with("Invalid JSON")));
        let mut names = Vec::new();
        variable_names(
            &json!({"x": [{"__prefect_kind": "workspace_variable", "variable_name": "v"}]}),
            &mut names,
        );
        assert_eq!(names, ["v"]);
    }
}
