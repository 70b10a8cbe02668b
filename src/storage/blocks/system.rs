//! The system block types and schemas: the ones Prefect's server registers at start (Webhook,
//! Secret and LocalFileSystem, protected; the client's built-in blocks; the integration
//! collections' blocks). They were captured from a fresh 3.9.1 reference server
//! (`tests/compat/reference/capture_blocks.py`) into `blocks_system.json`, so checksums and
//! fields are exactly what the 3.9.1 client computes and `Secret.save()` finds them.
//!
//! Every workspace gets them: the default workspace when the databases are migrated at start,
//! any workspace (the default one too) on its first blocks request (`ensure`). Registration is
//! idempotent: missing types and schemas are added, system types are brought back to their
//! captured values, nothing else is touched.

use std::collections::HashMap;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::Value;

use super::definitions::declared_refs;
use super::own;
use super::queries::{link_schema, newest_schema, type_by_slug};
use super::schema::{block_schemas, block_types};
use super::{new_id, now, to_text, BlockResult, BlockSchemaRow, BlockTypeRow};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::storage::accounts::DEFAULT_WORKSPACE_ID;
use crate::storage::{Conn, StorageError, StorageResult};

const DATA: &str = include_str!("../blocks_system.json");

/// The Secret schema of the captured data: a workspace that has it has been registered.
pub const MARKER_CHECKSUM: &str =
    "sha256:c078ed9c1e813e224c0b353d7ad4564a11d51d3198d9ac0686478165a1911c78";
pub const MARKER_VERSION: &str = "3.9.1";

#[derive(Debug, Clone, Deserialize)]
pub struct SystemType {
    pub name: String,
    pub slug: String,
    pub logo_url: Option<String>,
    pub documentation_url: Option<String>,
    pub description: Option<String>,
    pub code_example: Option<String>,
    pub is_protected: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SystemSchema {
    pub block_type_slug: String,
    pub checksum: String,
    pub version: String,
    pub capabilities: Vec<String>,
    pub fields: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SystemData {
    pub prefect_version: String,
    pub block_types: Vec<SystemType>,
    /// In the order the reference server created them.
    pub block_schemas: Vec<SystemSchema>,
}

/// The captured data, followed by Orrery's own block types (`own.rs`).
pub fn data() -> Result<SystemData, StorageError> {
    let mut d: SystemData = serde_json::from_str(DATA).map_err(|e| StorageError::Migrate {
        db: "orion",
        reason: format!("embedded system blocks are not valid: {e}"),
    })?;
    d.block_types.extend(own::types());
    d.block_schemas.extend(own::schemas());
    Ok(d)
}

/// At start (after migrations): registers, or refreshes, the system blocks of the default
/// workspace, as Prefect's server does at each start.
pub async fn register_default(c: &mut Conn) -> StorageResult<()> {
    register(c, &WorkspaceId::new(DEFAULT_WORKSPACE_ID), false)
        .await
        .map_err(|e| match e {
            StorageError::Blocks(refused) => StorageError::Migrate {
                db: "orion",
                reason: format!("cannot register the system block types: {refused:?}"),
            },
            other => other,
        })
}

/// Whether `ws` has the system blocks (one query); a read, so that a request can skip
/// [`ensure`] and its write. Orrery's own e-mail schema is registered last, in the same
/// transaction as the others: a workspace registered before it existed (or with only the
/// protected types) is registered again, which only adds what is missing.
pub async fn registered(c: &mut Conn, ws: &WorkspaceId) -> StorageResult<bool> {
    let (checksum, version) = own::marker();
    Ok(newest_schema(c, ws, checksum, Some(version))
        .await?
        .is_some())
}

/// Registers the system blocks in `ws` unless it already has them (one query when it has).
pub async fn ensure(c: &mut Conn, ws: &WorkspaceId) -> BlockResult<()> {
    if registered(c, ws).await? {
        return Ok(());
    }
    register(c, ws, false).await
}

/// Registers (or refreshes) the system blocks of `ws`; with `protected_only`, only Webhook,
/// Secret and LocalFileSystem (`POST /block_types/install_system_block_types`). One transaction.
pub async fn register(c: &mut Conn, ws: &WorkspaceId, protected_only: bool) -> BlockResult<()> {
    let data = data()?;
    let types: Vec<&SystemType> = data
        .block_types
        .iter()
        .filter(|t| t.is_protected || !protected_only)
        .collect();
    let wanted: Vec<String> = types.iter().map(|t| t.slug.clone()).collect();
    let schemas: Vec<(usize, &SystemSchema)> = data
        .block_schemas
        .iter()
        .enumerate()
        .filter(|(_, s)| wanted.contains(&s.block_type_slug))
        .collect();
    c.transaction(async |c| {
        let t0 = now();
        let type_ids = register_types(c, ws, &types, t0).await?;
        register_schemas(c, ws, &data.block_schemas, &schemas, &type_ids, t0).await
    })
    .await
}

/// Adds the missing system types of `ws` and brings the present ones back to their captured
/// values; returns the types' ids by slug.
async fn register_types(
    c: &mut Conn,
    ws: &WorkspaceId,
    types: &[&SystemType],
    t0: NaiveDateTime,
) -> StorageResult<HashMap<String, String>> {
    let wanted: Vec<&str> = types.iter().map(|t| t.slug.as_str()).collect();
    let existing: Vec<BlockTypeRow> = db_run!(c, |c| {
        block_types::table
            .filter(block_types::workspace_id.eq(ws))
            .filter(block_types::slug.eq_any(&wanted))
            .select(BlockTypeRow::as_select())
            .load(c)
            .await
    })?;
    let mut type_ids: HashMap<String, String> = HashMap::new();
    for t in types {
        match existing.iter().find(|e| e.slug == t.slug) {
            None => {
                let row = BlockTypeRow {
                    id: new_id(),
                    workspace_id: ws.clone(),
                    created: t0,
                    updated: t0,
                    name: t.name.clone(),
                    slug: t.slug.clone(),
                    logo_url: t.logo_url.clone(),
                    documentation_url: t.documentation_url.clone(),
                    description: t.description.clone(),
                    code_example: t.code_example.clone(),
                    is_protected: t.is_protected,
                };
                db_run!(c, |c| {
                    diesel::insert_into(block_types::table)
                        .values(&row)
                        .on_conflict_do_nothing()
                        .execute(c)
                        .await
                })?;
                let id = type_by_slug(c, ws, &t.slug)
                    .await?
                    .map(|r| r.id)
                    .unwrap_or(row.id);
                type_ids.insert(t.slug.clone(), id);
            }
            Some(e) => {
                let differs = e.logo_url != t.logo_url
                    || e.documentation_url != t.documentation_url
                    || e.description != t.description
                    || e.code_example != t.code_example
                    || (t.is_protected && (e.name != t.name || !e.is_protected));
                if differs {
                    let name = if t.is_protected { &t.name } else { &e.name };
                    db_run!(c, |c| {
                        diesel::update(block_types::table.filter(block_types::id.eq(&e.id)))
                            .set((
                                block_types::name.eq(name),
                                block_types::logo_url.eq(&t.logo_url),
                                block_types::documentation_url.eq(&t.documentation_url),
                                block_types::description.eq(&t.description),
                                block_types::code_example.eq(&t.code_example),
                                block_types::is_protected.eq(e.is_protected || t.is_protected),
                                block_types::updated.eq(t0),
                            ))
                            .execute(c)
                            .await
                    })?;
                }
                type_ids.insert(t.slug.clone(), e.id.clone());
            }
        }
    }
    Ok(type_ids)
}

/// Adds the missing system schemas `schemas` (indexes into `all`, the captured schemas) of
/// `ws`, and the references of the ones it added.
async fn register_schemas(
    c: &mut Conn,
    ws: &WorkspaceId,
    all: &[SystemSchema],
    schemas: &[(usize, &SystemSchema)],
    type_ids: &HashMap<String, String>,
    t0: NaiveDateTime,
) -> BlockResult<()> {
    let present: Vec<(String, String, String)> = db_run!(c, |c| {
        block_schemas::table
            .filter(block_schemas::workspace_id.eq(ws))
            .select((
                block_schemas::checksum,
                block_schemas::version,
                block_schemas::id,
            ))
            .load(c)
            .await
    })?;
    let present: HashMap<(String, String), String> = present
        .into_iter()
        .map(|(ch, v, id)| ((ch, v), id))
        .collect();
    let mut ids: HashMap<usize, String> = HashMap::new();
    let mut fresh: Vec<usize> = Vec::new();
    for (i, s) in schemas {
        let key = (s.checksum.clone(), s.version.clone());
        if let Some(id) = present.get(&key) {
            ids.insert(*i, id.clone());
            continue;
        }
        let Some(type_id) = type_ids.get(&s.block_type_slug) else {
            continue;
        };
        let created = t0 + Duration::microseconds(*i as i64);
        let row = BlockSchemaRow {
            id: new_id(),
            workspace_id: ws.clone(),
            created,
            updated: created,
            checksum: s.checksum.clone(),
            fields: to_text(&captured_stored_fields(&s.fields)),
            capabilities: to_text(&s.capabilities),
            version: s.version.clone(),
            block_type_id: type_id.clone(),
        };
        // Another replica or request may be registering the same workspace.
        let inserted = db_run!(c, |c| {
            diesel::insert_into(block_schemas::table)
                .values(&row)
                .on_conflict_do_nothing()
                .execute(c)
                .await
        })?;
        if inserted == 1 {
            ids.insert(*i, row.id);
            fresh.push(*i);
        } else if let Some(other) = newest_schema(c, ws, &s.checksum, Some(&s.version)).await? {
            ids.insert(*i, other.id);
        }
    }
    for i in fresh {
        let s = &all[i];
        let Some(parent) = ids.get(&i).cloned() else {
            continue;
        };
        for r in declared_refs(&s.fields)? {
            let child = match child_index(all, i, &r.checksum).and_then(|j| ids.get(&j).cloned()) {
                Some(id) => Some(id),
                None => newest_schema(c, ws, &r.checksum, None).await?.map(|s| s.id),
            };
            if let Some(child) = child {
                link_schema(c, ws, &parent, &child, &r.name).await?;
            }
        }
    }
    Ok(())
}

/// The stored form of captured (rebuilt) fields: without `block_schema_references` and without
/// the block definitions, which the read rebuilds from the references. The non-block
/// definitions are all kept (the reference server kept every one its root schema referenced).
fn captured_stored_fields(fields: &Value) -> Value {
    let mut f = fields.as_object().cloned().unwrap_or_default();
    f.remove("block_schema_references");
    if let Some(Value::Object(defs)) = f.remove("definitions") {
        let kept: serde_json::Map<String, Value> = defs
            .into_iter()
            .filter(|(_, d)| d.get("block_type_slug").is_none_or(Value::is_null))
            .collect();
        if !kept.is_empty() {
            f.insert("definitions".into(), Value::Object(kept));
        }
    }
    Value::Object(f)
}

/// The captured schema a reference of schema `i` points to, as the reference server resolved
/// it when registering: the newest earlier schema with that checksum, else the one it created
/// right after the parent.
fn child_index(all: &[SystemSchema], i: usize, checksum: &str) -> Option<usize> {
    (0..i)
        .rev()
        .find(|j| all[*j].checksum == checksum)
        .or_else(|| (i + 1..all.len()).find(|j| all[*j].checksum == checksum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::blocks::checksum::schema_checksum;

    #[test]
    fn the_embedded_data_parses_and_has_the_marker() {
        let d = data().expect("parses");
        assert_eq!(d.prefect_version, MARKER_VERSION);
        assert!(d.block_schemas.iter().any(|s| s.checksum == MARKER_CHECKSUM
            && s.version == MARKER_VERSION
            && s.block_type_slug == "secret"));
        let protected: Vec<&str> = d
            .block_types
            .iter()
            .filter(|t| t.is_protected)
            .map(|t| t.slug.as_str())
            .collect();
        assert_eq!(protected, vec!["local-file-system", "secret", "webhook"]);
    }

    #[test]
    fn captured_checksums_match_our_computation() {
        // Rebuilt fields hash back to the stored checksum, except for a few collection schemas
        // whose rebuilt definitions differ from what was posted (Prefect's own checksum of
        // these rebuilt fields differs in the same way).
        let rebuilt_differs = [
            "sha256:da1e6386",
            "sha256:1552a2d5",
            "sha256:64175f83",
            "sha256:f55b0f96",
            "sha256:a70fca75",
            "sha256:a8cba7ca",
            "sha256:35bea1e0",
            "sha256:d0c84112",
        ];
        let d = data().expect("parses");
        for s in &d.block_schemas {
            let expected = !rebuilt_differs.iter().any(|p| s.checksum.starts_with(p));
            let matches = schema_checksum(&s.fields) == s.checksum;
            assert_eq!(matches, expected, "{} {}", s.block_type_slug, s.version);
        }
    }
}
