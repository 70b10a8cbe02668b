//! The writes of artifacts: each keeps its key's collection row (the latest artifact of the key)
//! current in the same transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::schema::{artifact_collections, artifacts};
use super::{ArtifactChanges, ArtifactRow, CollectionRow};
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::storage::{Conn, StorageResult};

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = artifact_collections)]
struct CollectionChanges {
    updated: Option<NaiveDateTime>,
    data: Option<Option<String>>,
    description: Option<Option<String>>,
    metadata_: Option<Option<String>>,
}

/// Inserts an artifact and, when it has a key, makes it its key's latest (in one transaction).
pub async fn insert(c: &mut Conn, row: &ArtifactRow) -> StorageResult<()> {
    c.transaction(async |c| {
        db_run!(c, |c| {
            diesel::insert_into(artifacts::table)
                .values(row)
                .execute(c)
                .await
        })?;
        if let Some(key) = &row.key {
            upsert_collection(c, row, key).await?;
        }
        Ok(())
    })
    .await
}

/// Makes `row` the latest artifact of `key`.
async fn upsert_collection(c: &mut Conn, row: &ArtifactRow, key: &str) -> StorageResult<()> {
    let collection = CollectionRow {
        id: Uuid::new_v4().to_string(),
        workspace_id: row.workspace_id.clone(),
        created: row.created,
        updated: row.updated,
        key: key.to_string(),
        latest_id: row.id.clone(),
        artifact_type: row.artifact_type.clone(),
        description: row.description.clone(),
        data: row.data.clone(),
        metadata_: row.metadata_.clone(),
        flow_run_id: row.flow_run_id.clone(),
        task_run_id: row.task_run_id.clone(),
    };
    db_run!(c, |c| {
        diesel::insert_into(artifact_collections::table)
            .values(&collection)
            .on_conflict((
                artifact_collections::workspace_id,
                artifact_collections::key,
            ))
            .do_update()
            .set((
                artifact_collections::updated.eq(row.updated),
                artifact_collections::latest_id.eq(&row.id),
                artifact_collections::artifact_type.eq(&row.artifact_type),
                artifact_collections::description.eq(&row.description),
                artifact_collections::data.eq(&row.data),
                artifact_collections::metadata_.eq(&row.metadata_),
                artifact_collections::flow_run_id.eq(&row.flow_run_id),
                artifact_collections::task_run_id.eq(&row.task_run_id),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Updates an artifact and, when it is its key's latest, the collection (in one transaction);
/// false when no such artifact.
pub async fn update(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
    changes: &ArtifactChanges,
) -> StorageResult<bool> {
    let collection_changes = CollectionChanges {
        updated: changes.updated,
        data: changes.data.clone(),
        description: changes.description.clone(),
        metadata_: changes.metadata_.clone(),
    };
    let n = c
        .transaction(async |c| {
            let n = db_run!(c, |c| {
                let a = diesel::update(
                    artifacts::table
                        .filter(artifacts::workspace_id.eq(ws))
                        .filter(artifacts::id.eq(id)),
                )
                .set(changes)
                .execute(c)
                .await?;
                let b = diesel::update(
                    artifact_collections::table
                        .filter(artifact_collections::workspace_id.eq(ws))
                        .filter(artifact_collections::latest_id.eq(id)),
                )
                .set(&collection_changes)
                .execute(c)
                .await?;
                Ok::<_, diesel::result::Error>(a + b)
            })?;
            Ok(n)
        })
        .await?;
    Ok(n > 0)
}

/// Deletes an artifact (in one transaction); when it was its key's latest, the next most recent
/// artifact of the key becomes the latest (or the collection goes). False when no such artifact.
pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<bool> {
    c.transaction(async |c| {
        let found: Option<ArtifactRow> = db_run!(c, |c| {
            artifacts::table
                .filter(artifacts::workspace_id.eq(ws))
                .filter(artifacts::id.eq(id))
                .select(ArtifactRow::as_select())
                .first(c)
                .await
                .optional()
        })?;
        let Some(artifact) = found else {
            return Ok(false);
        };
        if let Some(key) = &artifact.key {
            promote_next(c, ws, key, id).await?;
        }
        db_run!(c, |c| {
            diesel::delete(artifacts::table.filter(artifacts::id.eq(id)))
                .execute(c)
                .await
        })?;
        Ok(true)
    })
    .await
}

/// When artifact `id` is the latest of `key`, makes the next most recent artifact of the key the
/// latest, or deletes the collection when there is none.
async fn promote_next(c: &mut Conn, ws: &WorkspaceId, key: &str, id: &str) -> StorageResult<()> {
    use artifact_collections as ac;
    let next: Option<ArtifactRow> = db_run!(c, |c| {
        artifacts::table
            .filter(artifacts::workspace_id.eq(ws))
            .filter(artifacts::key.eq(key))
            .filter(artifacts::id.ne(id))
            .order((artifacts::created.desc(), artifacts::id.desc()))
            .select(ArtifactRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    db_run!(c, |c| {
        let latest = ac::table
            .filter(ac::workspace_id.eq(ws))
            .filter(ac::key.eq(key))
            .filter(ac::latest_id.eq(id));
        match &next {
            Some(n) => {
                diesel::update(latest)
                    .set((
                        ac::latest_id.eq(&n.id),
                        ac::artifact_type.eq(&n.artifact_type),
                        ac::description.eq(&n.description),
                        ac::data.eq(&n.data),
                        ac::metadata_.eq(&n.metadata_),
                        ac::flow_run_id.eq(&n.flow_run_id),
                        ac::task_run_id.eq(&n.task_run_id),
                        ac::created.eq(n.created),
                        ac::updated.eq(n.updated),
                    ))
                    .execute(c)
                    .await
            }
            None => diesel::delete(latest).execute(c).await,
        }
    })?;
    Ok(())
}
