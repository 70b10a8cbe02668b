//! The writes of block documents: creation and update (with the references the data holds)
//! and deletion, each in one transaction.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Map, Value};

use super::{load_views, DocView, DocumentUpdate, NewDocument};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::storage::blocks::queries::{
    delete_doc_ref, doc_by_id, doc_refs, insert_doc_ref, schema_by_id, type_by_id,
};
use crate::storage::blocks::schema::block_documents;
use crate::storage::blocks::secrets::{restore_masked, secret_paths};
use crate::storage::blocks::{
    json_text, new_id, now, to_text, BlockDocumentRow, BlockError, BlockResult,
};
use crate::storage::{Conn, StorageError, StorageResult};

fn cycle(parent: &str, child: &str) -> BlockError {
    BlockError::Invalid(format!(
        "Cannot create block document reference: it would introduce a cycle into the block_document_reference graph (parent={parent}, reference={child})."
    ))
}

/// The plain fields of a document's data and its `(field, referenced document id)` pairs.
type SplitData = (Map<String, Value>, Vec<(String, String)>);

/// Splits the data into the plain fields and the `(field, referenced document id)` pairs.
fn separate_refs(data: Map<String, Value>) -> Result<SplitData, BlockError> {
    let mut own = Map::new();
    let mut refs = Vec::new();
    for (key, value) in data {
        match value.as_object().and_then(|o| o.get("$ref")) {
            Some(r) => match r.get("block_document_id") {
                None | Some(Value::Null) => {
                    return Err(BlockError::Invalid(format!(
                        "Received block reference without a block_document_id in key {key}"
                    )))
                }
                Some(id) => {
                    let id = id
                        .as_str()
                        .and_then(|s| uuid::Uuid::parse_str(s).ok())
                        .ok_or(BlockError::Integrity)?;
                    refs.push((key, id.to_string()));
                }
            },
            None => {
                own.insert(key, value);
            }
        }
    }
    Ok((own, refs))
}

/// Whether `parent` → `child` would close a cycle of references.
async fn would_cycle(
    c: &mut Conn,
    ws: &WorkspaceId,
    parent: &str,
    child: &str,
) -> BlockResult<bool> {
    if parent == child {
        return Ok(true);
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut frontier = vec![child.to_string()];
    while !frontier.is_empty() {
        if frontier.iter().any(|id| id == parent) {
            return Ok(true);
        }
        frontier.retain(|id| seen.insert(id.clone()));
        let refs = doc_refs(c, ws, &frontier).await?;
        frontier = refs
            .into_iter()
            .map(|r| r.reference_block_document_id)
            .filter(|id| !seen.contains(id))
            .collect();
    }
    Ok(false)
}

/// Adds the reference `parent.name` → `child` after checking it.
async fn add_ref(
    c: &mut Conn,
    ws: &WorkspaceId,
    parent: &str,
    name: &str,
    child: &str,
) -> BlockResult<()> {
    if would_cycle(c, ws, parent, child).await? {
        return Err(cycle(parent, child).into());
    }
    if doc_by_id(c, ws, child).await?.is_none() {
        return Err(BlockError::Integrity.into());
    }
    insert_doc_ref(c, ws, parent, child, name).await?;
    Ok(())
}

/// Creates a document (with its references) in one transaction and returns it as read without
/// secrets.
pub async fn create(c: &mut Conn, ws: &WorkspaceId, new: &NewDocument) -> BlockResult<DocView> {
    let name = match &new.name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => format!("anonymous-{}", uuid::Uuid::new_v4()),
    };
    let (own, refs) = separate_refs(new.data.clone())?;
    c.transaction(async |c| {
        let exists = db_run!(c, |c| {
            block_documents::table
                .filter(block_documents::workspace_id.eq(ws))
                .filter(block_documents::block_type_id.eq(&new.block_type_id))
                .filter(block_documents::name.eq(&name))
                .select(block_documents::id)
                .first::<String>(c)
                .await
                .optional()
        })?;
        if exists.is_some() {
            return Err(BlockError::Conflict("Block already exists".into()).into());
        }
        let Some(block_type) = type_by_id(c, ws, &new.block_type_id).await? else {
            return Err(BlockError::Integrity.into());
        };
        if schema_by_id(c, ws, &new.block_schema_id).await?.is_none() {
            return Err(BlockError::Integrity.into());
        }
        let t = now();
        let row = BlockDocumentRow {
            id: new_id(),
            workspace_id: ws.clone(),
            created: t,
            updated: t,
            name: name.clone(),
            data: to_text(&own),
            is_anonymous: new.is_anonymous,
            block_type_name: Some(block_type.name),
            block_type_id: new.block_type_id.clone(),
            block_schema_id: new.block_schema_id.clone(),
        };
        db_run!(c, |c| {
            diesel::insert_into(block_documents::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => BlockError::Conflict("Block already exists".into()).into(),
            other => StorageError::from(other),
        })?;
        for (key, child) in &refs {
            add_ref(c, ws, &row.id, key, child).await?;
        }
        let views = load_views(c, ws, vec![row], false).await?;
        views.into_iter().next().ok_or(StorageError::NotFound)
    })
    .await
}

/// Updates a document's data (merging into the stored data unless told not to), its schema
/// and its references, in one transaction. Posted-back masks of secrets keep the stored secrets.
pub async fn update(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
    upd: &DocumentUpdate,
) -> BlockResult<()> {
    c.transaction(async |c| {
        let Some(current) = doc_by_id(c, ws, id).await? else {
            return Err(BlockError::NotFound("Block document not found".into()).into());
        };
        let Some(data) = upd.data.clone() else {
            return Ok(());
        };
        let mut stored = match json_text(&current.data, Value::Object(Map::new())) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let schema_fields = schema_by_id(c, ws, &current.block_schema_id)
            .await?
            .map(|s| json_text(&s.fields, Value::Null))
            .unwrap_or(Value::Null);
        let data = restore_masked(&data, &stored, &secret_paths(&schema_fields));
        let merged = if upd.merge_existing_data {
            stored.extend(data);
            stored
        } else {
            data
        };
        let (own, new_refs) = separate_refs(merged)?;
        db_run!(c, |c| {
            diesel::update(
                block_documents::table
                    .filter(block_documents::workspace_id.eq(ws))
                    .filter(block_documents::id.eq(id)),
            )
            .set((
                block_documents::data.eq(to_text(&own)),
                block_documents::updated.eq(now()),
            ))
            .execute(c)
            .await
        })?;
        if let Some(schema_id) = upd
            .block_schema_id
            .as_deref()
            .filter(|s| *s != current.block_schema_id)
        {
            let Some(proposed) = schema_by_id(c, ws, schema_id).await? else {
                return Err(BlockError::Integrity.into());
            };
            if proposed.block_type_id != current.block_type_id {
                return Err(BlockError::Invalid(
                    "Must migrate block document to a block schema of the same block type.".into(),
                )
                .into());
            }
            db_run!(c, |c| {
                diesel::update(
                    block_documents::table
                        .filter(block_documents::workspace_id.eq(ws))
                        .filter(block_documents::id.eq(id)),
                )
                .set(block_documents::block_schema_id.eq(schema_id))
                .execute(c)
                .await
            })?;
        }
        let existing = doc_refs(c, ws, &[id.to_string()]).await?;
        let mut kept: HashSet<String> = HashSet::new();
        for (name, child) in &new_refs {
            let same = existing.iter().find(|r| {
                &r.name == name && &r.reference_block_document_id == child && !kept.contains(&r.id)
            });
            match same {
                Some(r) => {
                    kept.insert(r.id.clone());
                }
                None => add_ref(c, ws, id, name, child).await?,
            }
        }
        for r in existing.iter().filter(|r| !kept.contains(&r.id)) {
            delete_doc_ref(c, &r.id).await?;
        }
        Ok(())
    })
    .await
}

/// Deletes a document (references to it go with it); false when no such document.
pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<bool> {
    let n = db_run!(c, |c| {
        diesel::delete(
            block_documents::table
                .filter(block_documents::workspace_id.eq(ws))
                .filter(block_documents::id.eq(id)),
        )
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_split_from_the_data() {
        let data = json!({"a": 1, "child": {"$ref": {"block_document_id": "6d1f6a1e-64a6-4d4f-9d0c-3f3d0c7a9b10"}}});
        let (own, refs) =
            separate_refs(data.as_object().cloned().unwrap_or_default()).expect("splits");
        assert_eq!(Value::Object(own), json!({"a": 1}));
        assert_eq!(
            refs,
            vec![(
                "child".to_string(),
                "6d1f6a1e-64a6-4d4f-9d0c-3f3d0c7a9b10".to_string()
            )]
        );
        let bad = json!({"x": {"$ref": {}}});
        assert!(matches!(
            separate_refs(bad.as_object().cloned().unwrap_or_default()),
            Err(BlockError::Invalid(m)) if m == "Received block reference without a block_document_id in key x"
        ));
    }
}
