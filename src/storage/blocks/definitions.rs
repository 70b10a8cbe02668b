//! Block schema fields: how a schema posted with `block_schema_references` and `definitions` is
//! split for storage (nested block schemas become schemas of their own plus references), and
//! how the full fields are rebuilt on read, as Prefect's server does. Pure functions.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::checksum::truthy;
use super::{json_text, BlockError, BlockSchemaRefRow, BlockSchemaRow, BlockTypeRow};

/// Every `$ref` string anywhere inside `v` (objects and lists), in document order.
pub fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                if !r.is_empty() {
                    out.push(r.clone());
                }
            }
            for value in map.values() {
                collect_refs(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

fn definition_key(reference: &str) -> &str {
    reference
        .strip_prefix("#/definitions/")
        .unwrap_or(reference)
}

/// The definitions that `object` (or what it references, transitively) uses and that are not
/// blocks (no `block_type_slug`).
pub fn non_block_definitions(object: &Value, definitions: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let mut seen = HashSet::new();
    walk_non_block(object, definitions, &mut out, &mut seen);
    out
}

fn walk_non_block(
    object: &Value,
    definitions: &Value,
    out: &mut Map<String, Value>,
    seen: &mut HashSet<String>,
) {
    let mut refs = Vec::new();
    collect_refs(object, &mut refs);
    for r in refs {
        let key = definition_key(&r).to_string();
        let Some(def) = definitions.get(&key) else {
            continue;
        };
        if !truthy(def) || def.get("block_type_slug").is_some_and(|s| !s.is_null()) {
            continue;
        }
        out.insert(key.clone(), def.clone());
        if seen.insert(key) {
            walk_non_block(def, definitions, out, seen);
        }
    }
}

/// One entry of `block_schema_references`: `{block_type_slug, block_schema_checksum}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRef {
    pub name: String,
    pub block_type_slug: String,
    pub checksum: String,
}

/// The references declared in `fields.block_schema_references` (a single entry or a list per
/// name); entries without a slug or checksum are an error, as they are for Prefect.
pub fn declared_refs(fields: &Value) -> Result<Vec<SchemaRef>, BlockError> {
    let mut out = Vec::new();
    let Some(Value::Object(map)) = fields.get("block_schema_references") else {
        return Ok(out);
    };
    for (name, value) in map {
        let entries: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for e in entries {
            let slug = e.get("block_type_slug").and_then(Value::as_str);
            let checksum = e.get("block_schema_checksum").and_then(Value::as_str);
            match (slug, checksum) {
                (Some(s), Some(c)) => out.push(SchemaRef {
                    name: name.clone(),
                    block_type_slug: s.to_string(),
                    checksum: c.to_string(),
                }),
                _ => {
                    return Err(BlockError::Invalid(format!(
                        "Invalid block schema reference in key {name}"
                    )))
                }
            }
        }
    }
    Ok(out)
}

/// The fields to store: the posted fields with `definitions` as given (the root's, or those
/// passed down when registering a nested schema), reduced to non-block definitions, and
/// without `block_schema_references`.
pub fn stored_fields(fields: &Value, definitions: Option<&Value>) -> Value {
    let mut f = match fields {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Some(defs) = definitions.filter(|d| truthy(d)) {
        f.insert("definitions".into(), defs.clone());
        let kept = non_block_definitions(&Value::Object(f.clone()), defs);
        if kept.is_empty() {
            f.remove("definitions");
        } else {
            f.insert("definitions".into(), Value::Object(kept));
        }
    }
    f.remove("block_schema_references");
    Value::Object(f)
}

/// The fields with the root's definitions put in, as Prefect computes the checksum of a
/// nested schema registered from its parent's definitions.
pub fn with_definitions(fields: &Value, definitions: Option<&Value>) -> Value {
    let mut f = fields.clone();
    if let (Value::Object(m), Some(d)) = (&mut f, definitions.filter(|d| truthy(d))) {
        m.insert("definitions".into(), d.clone());
    }
    f
}

/// The definition a nested schema is registered from: the one `base.properties[name]` refers
/// to, or, for a union, the referenced one whose `block_type_slug` is `slug`.
pub fn child_fields(definitions: &Value, base: &Value, name: &str, slug: &str) -> Option<Value> {
    let spec = base.get("properties")?.get(name)?;
    let mut refs = Vec::new();
    collect_refs(spec, &mut refs);
    if refs.len() == 1 {
        return definitions.get(definition_key(&refs[0])).cloned();
    }
    refs.iter()
        .filter_map(|r| definitions.get(definition_key(r)))
        .find(|d| d.get("block_type_slug").and_then(Value::as_str) == Some(slug))
        .cloned()
}

/// Schemas, their block types and the references between them, loaded for rebuilding fields.
#[derive(Default)]
pub struct SchemaGraph {
    pub schemas: HashMap<String, BlockSchemaRow>,
    pub types: HashMap<String, BlockTypeRow>,
    /// References in creation order.
    pub refs: Vec<BlockSchemaRefRow>,
}

/// Nesting deeper than this is not followed (only a corrupted graph could be that deep).
const MAX_DEPTH: usize = 32;

impl SchemaGraph {
    /// The full fields of schema `id`: the stored fields plus `block_schema_references` and
    /// the definitions of nested block schemas.
    pub fn full_fields(&self, id: &str) -> Value {
        self.fields_at(id, 0)
    }

    fn fields_at(&self, id: &str, depth: usize) -> Value {
        let Some(row) = self.schemas.get(id) else {
            return json!({});
        };
        let mut fields = match json_text(&row.fields, json!({})) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut refs_map = Map::new();
        let mut children: Vec<&str> = Vec::new();
        if depth < MAX_DEPTH {
            for r in self.refs.iter().filter(|r| r.parent_block_schema_id == id) {
                let Some(child) = self.schemas.get(&r.reference_block_schema_id) else {
                    continue;
                };
                let slug = self
                    .types
                    .get(&child.block_type_id)
                    .map(|t| t.slug.clone())
                    .unwrap_or_default();
                let entry =
                    json!({"block_schema_checksum": child.checksum, "block_type_slug": slug});
                children.push(&child.id);
                match refs_map.get_mut(&r.name) {
                    None => {
                        refs_map.insert(r.name.clone(), entry);
                    }
                    Some(Value::Array(items)) => {
                        if !items.contains(&entry) {
                            items.push(entry);
                        }
                    }
                    Some(existing) => {
                        if *existing != entry {
                            let first = existing.take();
                            *existing = Value::Array(vec![first, entry]);
                        }
                    }
                }
            }
        }
        fields.insert("block_schema_references".into(), Value::Object(refs_map));
        let mut defs = Map::new();
        let mut done = HashSet::new();
        for child in children {
            if !done.insert(child) {
                continue;
            }
            let Value::Object(mut child_fields) = self.fields_at(child, depth + 1) else {
                continue;
            };
            let Some(Value::String(title)) = child_fields.get("title").cloned() else {
                continue;
            };
            let child_defs = child_fields.remove("definitions");
            defs.insert(title, Value::Object(child_fields));
            if let Some(Value::Object(cd)) = child_defs {
                defs.extend(cd);
            }
        }
        let existing = fields.get("definitions").cloned().unwrap_or(Value::Null);
        if !defs.is_empty() || truthy(&existing) {
            let mut merged = match existing {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            merged.extend(defs);
            fields.insert("definitions".into(), Value::Object(merged));
        }
        Value::Object(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_block_definitions_skip_blocks_and_follow_nested_models() {
        let defs = json!({
            "Creds": {"block_type_slug": "creds", "properties": {"x": {"$ref": "#/definitions/Inner"}}},
            "Inner": {"properties": {"y": {"$ref": "#/definitions/Deep"}}},
            "Deep": {"type": "object"},
            "Unused": {"type": "object"}
        });
        let obj = json!({"properties": {"c": {"$ref": "#/definitions/Creds"}, "i": {"$ref": "#/definitions/Inner"}}});
        let kept = non_block_definitions(&obj, &defs);
        // In the order they are found, as the reference's dict keeps them.
        let keys: Vec<&String> = kept.keys().collect();
        assert_eq!(keys, vec!["Inner", "Deep"]);
    }

    #[test]
    fn stored_fields_drop_references_and_block_definitions() {
        let fields = json!({
            "title": "P",
            "properties": {"c": {"$ref": "#/definitions/C"}},
            "block_schema_references": {"c": {"block_type_slug": "c", "block_schema_checksum": "sha256:1"}},
            "definitions": {"C": {"block_type_slug": "c", "title": "C"}}
        });
        let stored = stored_fields(&fields, fields.get("definitions"));
        assert_eq!(
            stored,
            json!({"title": "P", "properties": {"c": {"$ref": "#/definitions/C"}}})
        );
        let refs = declared_refs(&fields).expect("refs");
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].block_type_slug, "c");
    }

    #[test]
    fn child_fields_pick_the_union_member_of_the_slug() {
        let defs = json!({"A": {"block_type_slug": "a"}, "B": {"block_type_slug": "b"}});
        let base = json!({"properties": {"x": {"anyOf": [{"$ref": "#/definitions/A"}, {"$ref": "#/definitions/B"}]}}});
        assert_eq!(
            child_fields(&defs, &base, "x", "b"),
            Some(json!({"block_type_slug": "b"}))
        );
        assert_eq!(child_fields(&defs, &base, "y", "b"), None);
    }
}
