//! Secret fields of block documents, by the schema's `secret_fields` (dotted paths, `*` for
//! "everything below"): masked as `"********"` on the way out unless secrets are asked for, and
//! an update that posts the mask back keeps the stored secret. Same flattening rules as Prefect
//! (`dict_to_flatdict`: non-empty objects are entered, everything else is a leaf). Pure.

use serde_json::{Map, Value};

/// What every secret value reads as.
pub const MASK: &str = "********";

type Flat = Vec<(Vec<String>, Value)>;

fn flatten(v: &Map<String, Value>, prefix: &[String], out: &mut Flat) {
    for (k, v) in v {
        let mut path = prefix.to_vec();
        path.push(k.clone());
        match v {
            Value::Object(m) if !m.is_empty() => flatten(m, &path, out),
            other => out.push((path, other.clone())),
        }
    }
}

fn flat(v: &Map<String, Value>) -> Flat {
    let mut out = Vec::new();
    flatten(v, &[], &mut out);
    out
}

fn unflatten(flat: Flat) -> Map<String, Value> {
    let mut root = Map::new();
    for (path, value) in flat {
        let Some((last, prefix)) = path.split_last() else {
            continue;
        };
        insert_path(&mut root, prefix, last, value);
    }
    root
}

fn insert_path(map: &mut Map<String, Value>, prefix: &[String], last: &str, value: Value) {
    match prefix.split_first() {
        None => {
            map.insert(last.to_string(), value);
        }
        Some((key, rest)) => {
            let entry = map
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(next) = entry {
                insert_path(next, rest, last, value);
            }
        }
    }
}

/// The secret paths of a schema's fields (`secret_fields`), split on dots.
pub fn secret_paths(schema_fields: &Value) -> Vec<Vec<String>> {
    schema_fields
        .get("secret_fields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| s.split('.').map(str::to_string).collect())
                .collect()
        })
        .unwrap_or_default()
}

fn get<'a>(flat: &'a Flat, path: &[String]) -> Option<&'a Value> {
    flat.iter().find(|(p, _)| p == path).map(|(_, v)| v)
}

/// `data` with every secret value replaced by the mask.
pub fn mask(data: &Map<String, Value>, secrets: &[Vec<String>]) -> Map<String, Value> {
    if secrets.is_empty() {
        return data.clone();
    }
    let mut f = flat(data);
    for secret in secrets {
        if get(&f, secret).is_some_and(|v| !v.is_null()) {
            for (p, v) in f.iter_mut() {
                if p == secret {
                    *v = Value::String(MASK.into());
                }
            }
        } else if let Some(star) = secret.iter().position(|s| s == "*") {
            let head = &secret[..star];
            for (p, v) in f.iter_mut() {
                if p.len() >= star && &p[..star] == head {
                    *v = Value::String(MASK.into());
                }
            }
        }
    }
    unflatten(f)
}

/// `update` with every posted-back mask of a secret replaced by the stored value, so that
/// saving a document read without secrets does not overwrite them.
pub fn restore_masked(
    update: &Map<String, Value>,
    current: &Map<String, Value>,
    secrets: &[Vec<String>],
) -> Map<String, Value> {
    if secrets.is_empty() {
        return update.clone();
    }
    let mut upd = flat(update);
    let cur = flat(current);
    let is_mask = |v: &Value| v.as_str() == Some(MASK);
    for secret in secrets {
        if let Some(current_secret) = get(&cur, secret).filter(|v| !v.is_null()) {
            for (p, v) in upd.iter_mut() {
                if p == secret && is_mask(v) {
                    *v = current_secret.clone();
                }
            }
        } else if let Some(star) = secret.iter().position(|s| s == "*") {
            let head = &secret[..star];
            for (p, v) in upd.iter_mut() {
                if p.len() >= star && &p[..star] == head && is_mask(v) {
                    if let Some(old) = get(&cur, p) {
                        *v = old.clone();
                    }
                }
            }
        }
    }
    unflatten(upd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn masks_top_level_nested_and_wildcard_secrets() {
        let data = obj(
            json!({"a": 1, "pw": "x", "n": {"k": "s", "o": 2}, "w": {"x": 1, "y": {"z": 2}}, "nul": null}),
        );
        let secrets =
            secret_paths(&json!({"secret_fields": ["pw", "n.k", "w.*", "nul", "missing"]}));
        let masked = mask(&data, &secrets);
        assert_eq!(
            Value::Object(masked),
            json!({"a": 1, "pw": MASK, "n": {"k": MASK, "o": 2}, "w": {"x": MASK, "y": {"z": MASK}}, "nul": null})
        );
    }

    #[test]
    fn a_secret_holding_a_non_empty_object_is_not_a_leaf() {
        // Prefect flattens first, so `value` itself is not a key when it holds an object.
        let data = obj(json!({"value": {"user": "u"}}));
        let masked = mask(&data, &[vec!["value".to_string()]]);
        assert_eq!(Value::Object(masked), json!({"value": {"user": "u"}}));
    }

    #[test]
    fn posting_the_mask_back_keeps_the_secret() {
        let current = obj(json!({"pw": "hunter2", "w": {"x": "old"}}));
        let update = obj(json!({"pw": MASK, "w": {"x": MASK, "y": MASK}, "a": 2}));
        let secrets = secret_paths(&json!({"secret_fields": ["pw", "w.*"]}));
        let restored = restore_masked(&update, &current, &secrets);
        assert_eq!(
            Value::Object(restored),
            json!({"pw": "hunter2", "w": {"x": "old", "y": MASK}, "a": 2})
        );
    }
}
