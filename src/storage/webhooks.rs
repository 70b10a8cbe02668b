//! Incoming webhooks (Prefect Cloud's): a name, a Jinja template that turns a request into an
//! event, and the random slug of its public URL, unique across every workspace.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::webhooks;
use super::{Conn, StorageResult};
use crate::db_run;
use crate::ids::WorkspaceId;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhooks, treat_none_as_null = true)]
pub struct WebhookRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub template: String,
    pub slug: String,
    pub service_account_id: Option<String>,
}

pub async fn insert(c: &mut Conn, row: &WebhookRow) -> StorageResult<()> {
    db_run!(c, |c| diesel::insert_into(webhooks::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

pub async fn find(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<Option<WebhookRow>> {
    Ok(db_run!(c, |c| webhooks::table
        .filter(webhooks::workspace_id.eq(ws))
        .filter(webhooks::id.eq(id))
        .select(WebhookRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The webhook of a public URL, in whichever workspace it is.
pub async fn by_slug(c: &mut Conn, slug: &str) -> StorageResult<Option<WebhookRow>> {
    Ok(db_run!(c, |c| webhooks::table
        .filter(webhooks::slug.eq(slug))
        .select(WebhookRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// A workspace's webhooks by name.
pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    limit: i64,
    offset: i64,
) -> StorageResult<Vec<WebhookRow>> {
    Ok(db_run!(c, |c| webhooks::table
        .filter(webhooks::workspace_id.eq(ws))
        .order((webhooks::name.asc(), webhooks::id.asc()))
        .limit(limit)
        .offset(offset)
        .select(WebhookRow::as_select())
        .load(c)
        .await)?)
}

/// Writes a changed webhook; false when there is none.
pub async fn update(c: &mut Conn, row: &WebhookRow) -> StorageResult<bool> {
    let n = db_run!(c, |c| diesel::update(
        webhooks::table
            .filter(webhooks::workspace_id.eq(&row.workspace_id))
            .filter(webhooks::id.eq(&row.id))
    )
    .set(row)
    .execute(c)
    .await)?;
    Ok(n > 0)
}

pub async fn delete(c: &mut Conn, ws: &WorkspaceId, id: &str) -> StorageResult<bool> {
    let n = db_run!(c, |c| diesel::delete(
        webhooks::table
            .filter(webhooks::workspace_id.eq(ws))
            .filter(webhooks::id.eq(id))
    )
    .execute(c)
    .await)?;
    Ok(n > 0)
}
