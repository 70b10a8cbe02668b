//! `/collections/views/{view}`: the views of Prefect's collection registry, which the client and
//! the UIs read for worker types (`prefect work-pool create -t TYPE`, the "new work pool" page).
//! Orrery never fetches the registry: a view comes from `collections.dir` when that directory
//! has it, else from what is compiled in — the worker metadata the `prefect` wheel ships
//! (config/collections/README.md), and the block metadata built from the same block catalogue
//! `/block_types` answers with, so the two never disagree.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::params::PathView;
use crate::state::AppState;
use crate::storage::blocks::system::{self, SystemData};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/collections/views/{view}", web::get().to(collection_view))
        .route(
            "/collections/work_pool_types",
            web::get().to(work_pool_types),
        );
}

/// The views of Prefect's collection registry (the reference's `KNOWN_VIEWS`).
const KNOWN_VIEWS: [&str; 4] = [
    "aggregate-block-metadata",
    "aggregate-flow-metadata",
    "aggregate-worker-metadata",
    "demo-flows",
];

/// The worker types and their default base job templates, as the `prefect` 3.9.1 wheel ships
/// them for a server that cannot reach the registry (config/collections/README.md).
const WORKER_METADATA: &str =
    include_str!("../../config/collections/aggregate-worker-metadata.json");

/// `GET /collections/work_pool_types`: what the client in Prefect Cloud mode reads worker types
/// from (the worker metadata view).
async fn work_pool_types(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    collection_view(state, PathView("aggregate-worker-metadata".into())).await
}

/// `GET /collections/views/{view}`.
async fn collection_view(state: web::Data<AppState>, view: PathView) -> ApiResult<HttpResponse> {
    let view = view.0.as_str();
    if !KNOWN_VIEWS.contains(&view) {
        return Err(ApiError::not_found(format!(
            "View {view} not found in registry"
        )));
    }
    let dir = state.settings.collections.dir.trim();
    if !dir.is_empty() {
        let file = std::path::Path::new(dir).join(format!("{view}.json"));
        match std::fs::read_to_string(&file) {
            Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() => {
                return Ok(json_text(text));
            }
            Ok(_) => tracing::warn!(file = %file.display(), "not JSON; using the compiled copy"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %file.display(), error = %e, "cannot read the view"),
        }
    }
    match view {
        "aggregate-worker-metadata" => Ok(json_text(WORKER_METADATA.to_string())),
        "aggregate-block-metadata" => Ok(HttpResponse::Ok().json(block_metadata(&system::data()?))),
        _ => Err(ApiError::not_found(format!(
            "Requested content missing for view {view}"
        ))),
    }
}

/// The registry's block view of the system catalogue: `{collection: {"block_types": {slug:
/// {name, slug, logo_url, documentation_url, description, code_example, block_schema: {checksum,
/// fields, capabilities, version}}}}}`, each type with its newest schema. A type belongs to the
/// integration its description names ("... part of the prefect-aws collection"), else to
/// `prefect`.
fn block_metadata(data: &SystemData) -> Value {
    let mut newest = BTreeMap::new();
    for s in &data.block_schemas {
        newest.insert(s.block_type_slug.as_str(), s);
    }
    let mut collections: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for t in &data.block_types {
        let Some(schema) = newest.get(t.slug.as_str()) else {
            continue;
        };
        let entry = json!({
            "name": t.name,
            "slug": t.slug,
            "logo_url": t.logo_url,
            "documentation_url": t.documentation_url,
            "description": t.description,
            "code_example": t.code_example,
            "block_schema": {
                "checksum": schema.checksum,
                "fields": schema.fields,
                "capabilities": schema.capabilities,
                "version": schema.version,
            },
        });
        collections
            .entry(collection_of(t.description.as_deref().unwrap_or("")))
            .or_default()
            .insert(t.slug.clone(), entry);
    }
    Value::Object(
        collections
            .into_iter()
            .map(|(name, types)| (name, json!({ "block_types": types })))
            .collect(),
    )
}

/// `prefect-aws` for "... This block is part of the prefect-aws collection. ...", else `prefect`.
fn collection_of(description: &str) -> String {
    const MARK: &str = "part of the ";
    description
        .match_indices(MARK)
        .filter_map(|(i, _)| {
            let mut words = description[i + MARK.len()..].split_whitespace();
            let name = words.next()?;
            words.next()?.starts_with("collection").then_some(name)
        })
        .find(|name| {
            name.starts_with("prefect-")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .unwrap_or("prefect")
        .to_string()
}

/// A 200 answer of JSON text.
fn json_text(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_types_group_by_the_collection_their_description_names() {
        assert_eq!(
            collection_of("Manages a secret. This block is part of the prefect-aws\ncollection."),
            "prefect-aws"
        );
        assert_eq!(
            collection_of("Part of the S3 API. This block is part of the prefect-aws collection."),
            "prefect-aws"
        );
        assert_eq!(collection_of("Store data as a file."), "prefect");
        assert_eq!(collection_of("part of the odd name collection"), "prefect");
    }

    #[test]
    fn every_system_block_type_is_in_the_block_view_with_its_newest_schema() {
        let data = system::data().expect("embedded data");
        let view = block_metadata(&data);
        let listed: usize = view
            .as_object()
            .expect("object")
            .values()
            .map(|c| c["block_types"].as_object().expect("types").len())
            .sum();
        assert_eq!(listed, data.block_types.len());
        let newest = data
            .block_schemas
            .iter()
            .rev()
            .find(|s| s.block_type_slug == "aws-credentials")
            .expect("aws-credentials schema");
        let entry = &view["prefect-aws"]["block_types"]["aws-credentials"];
        assert_eq!(entry["block_schema"]["checksum"], json!(newest.checksum));
        assert_eq!(
            view["prefect"]["block_types"]["secret"]["slug"],
            json!("secret")
        );
    }
}
