//! Blocks against a real server: system block types and schemas, block types, schemas
//! (checksums, nested schemas), documents (secrets, references, updates, anonymous documents)
//! and capabilities — status codes and bodies, including bad input. Nothing answers 500.

use serde_json::Value;

mod documents;
mod schemas;
mod types;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}
