//! Automations: a trigger and actions stored as the JSON the API validated, and the resources
//! each is related to (`automation_related_resources`: the deployments its actions run, and
//! the resource that owns it, e.g. the deployment whose `triggers:` made it).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::filters::build::combine;
use super::filters::sql::{CmpOp, Where};
use super::filters::tag_pattern;
use super::schema::{automation_related_resources as related, automations};
use super::{Conn, StorageResult};
use crate::col;
use crate::db_run;
use crate::ids::WorkspaceId;
use crate::query::automations::{AutomationFilter, AutomationSort};
use crate::query::Page;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = automations)]
pub struct AutomationRow {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    /// Compact JSON array text.
    pub tags: String,
    /// JSON text of the trigger.
    pub trigger: String,
    /// JSON arrays of actions.
    pub actions: String,
    pub actions_on_trigger: String,
    pub actions_on_resolve: String,
}

fn cond(f: &AutomationFilter) -> Where {
    let mut c = Vec::new();
    if let Some(ids) = f.id.as_ref().and_then(|i| i.any_.as_ref()) {
        c.push(Where::is_in(
            col!(automations::id),
            ids.iter().map(|u| u.to_string()).collect(),
        ));
    }
    if let Some(names) = f.name.as_ref().and_then(|n| n.any_.as_ref()) {
        c.push(Where::is_in(col!(automations::name), names.clone()));
    }
    if let Some(before) = f.created.as_ref().and_then(|c| c.before_) {
        c.push(Where::cmp(
            col!(automations::created),
            CmpOp::Le,
            before.naive_utc(),
        ));
    }
    if let Some(t) = &f.tags {
        let tags = col!(automations::tags);
        let mut inner = Vec::new();
        for tag in t.all_.iter().flatten() {
            inner.push(Where::like(tags, tag_pattern(tag)));
        }
        if let Some(any) = &t.any_ {
            inner.push(Where::any(
                any.iter()
                    .map(|x| Where::like(tags, tag_pattern(x)))
                    .collect(),
            ));
            if any.is_empty() {
                inner.push(Where::False);
            }
        }
        match t.is_null_ {
            Some(true) => inner.push(Where::eq(tags, "[]")),
            Some(false) => inner.push(Where::ne(tags, "[]")),
            None => {}
        }
        if !inner.is_empty() {
            c.push(combine(t.operator, inner));
        }
    }
    combine(f.operator, c)
}

/// Stores a new automation and its related resources.
pub async fn insert(
    c: &mut Conn,
    row: &AutomationRow,
    related_ids: &[(String, bool)],
) -> StorageResult<()> {
    db_run!(c, |c| diesel::insert_into(automations::table)
        .values(row)
        .execute(c)
        .await)?;
    relate(c, &row.workspace_id, &row.id, related_ids).await
}

async fn relate(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
    resources: &[(String, bool)],
) -> StorageResult<()> {
    for (resource_id, owned) in resources {
        let values = (
            related::workspace_id.eq(ws),
            related::automation_id.eq(id),
            related::resource_id.eq(resource_id),
            related::owned_by_resource.eq(owned),
        );
        db_run!(c, |c| diesel::insert_into(related::table)
            .values(values)
            .on_conflict((related::automation_id, related::resource_id))
            .do_nothing()
            .execute(c)
            .await)?;
    }
    Ok(())
}

pub async fn find(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<AutomationRow>> {
    let row = db_run!(c, |c| automations::table
        .filter(automations::workspace_id.eq(ws))
        .filter(automations::id.eq(id))
        .select(AutomationRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

pub async fn list(
    c: &mut Conn,
    ws: &WorkspaceId,
    filter: &AutomationFilter,
    sort: AutomationSort,
    page: Page,
) -> StorageResult<Vec<AutomationRow>> {
    let rows = db_run!(c, |c| {
        let mut q = automations::table
            .filter(automations::workspace_id.eq(ws))
            .filter(cond(filter))
            .select(AutomationRow::as_select())
            .into_boxed();
        q = match sort {
            AutomationSort::CreatedDesc => {
                q.order((automations::created.desc(), automations::id.desc()))
            }
            AutomationSort::UpdatedDesc => {
                q.order((automations::updated.desc(), automations::id.desc()))
            }
            AutomationSort::NameDesc => q.order((automations::name.desc(), automations::id.desc())),
            AutomationSort::NameAsc => q.order((automations::name.asc(), automations::id.asc())),
        };
        q.limit(page.limit).offset(page.offset).load(c).await
    })?;
    Ok(rows)
}

pub async fn count(
    c: &mut Conn,
    ws: &WorkspaceId,
    filter: &AutomationFilter,
) -> StorageResult<i64> {
    let n = db_run!(c, |c| automations::table
        .filter(automations::workspace_id.eq(ws))
        .filter(cond(filter))
        .count()
        .get_result::<i64>(c)
        .await)?;
    Ok(n)
}

/// Every enabled automation of every workspace (what trigger evaluation loads).
pub async fn list_enabled(c: &mut Conn) -> StorageResult<Vec<AutomationRow>> {
    let rows = db_run!(c, |c| automations::table
        .filter(automations::enabled.eq(true))
        .select(AutomationRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// Replaces an automation (keeping its id and creation time) and the related resources its
/// actions name, keeping the owner; false when there is none.
pub async fn replace(
    c: &mut Conn,
    row: &AutomationRow,
    action_resources: &[String],
) -> StorageResult<bool> {
    let n = db_run!(c, |c| diesel::update(
        automations::table
            .filter(automations::workspace_id.eq(&row.workspace_id))
            .filter(automations::id.eq(&row.id)),
    )
    .set((
        automations::updated.eq(row.updated),
        automations::name.eq(&row.name),
        automations::description.eq(&row.description),
        automations::enabled.eq(row.enabled),
        automations::tags.eq(&row.tags),
        automations::trigger.eq(&row.trigger),
        automations::actions.eq(&row.actions),
        automations::actions_on_trigger.eq(&row.actions_on_trigger),
        automations::actions_on_resolve.eq(&row.actions_on_resolve),
    ))
    .execute(c)
    .await)?;
    if n == 0 {
        return Ok(false);
    }
    db_run!(c, |c| diesel::delete(
        related::table
            .filter(related::automation_id.eq(&row.id))
            .filter(related::owned_by_resource.eq(false)),
    )
    .execute(c)
    .await)?;
    let resources: Vec<(String, bool)> = action_resources
        .iter()
        .map(|r| (r.clone(), false))
        .collect();
    relate(c, &row.workspace_id, &row.id, &resources).await?;
    Ok(true)
}

/// Turns an automation on or off; false when there is none.
pub async fn set_enabled(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
    enabled: bool,
    now: NaiveDateTime,
) -> StorageResult<bool> {
    let n = db_run!(c, |c| diesel::update(
        automations::table
            .filter(automations::workspace_id.eq(ws))
            .filter(automations::id.eq(id)),
    )
    .set((
        automations::enabled.eq(enabled),
        automations::updated.eq(now)
    ))
    .execute(c)
    .await)?;
    Ok(n > 0)
}

/// Deletes an automation and its related resources; the deleted row, if there was one.
pub async fn delete(
    c: &mut Conn,
    ws: &WorkspaceId,
    id: &str,
) -> StorageResult<Option<AutomationRow>> {
    let Some(row) = find(c, ws, id).await? else {
        return Ok(None);
    };
    db_run!(c, |c| diesel::delete(
        related::table.filter(related::automation_id.eq(id))
    )
    .execute(c)
    .await)?;
    db_run!(c, |c| diesel::delete(
        automations::table
            .filter(automations::workspace_id.eq(ws))
            .filter(automations::id.eq(id)),
    )
    .execute(c)
    .await)?;
    Ok(Some(row))
}

/// The automations related to `resource_id` (owned by it only, when `owned_only`), by name.
pub async fn related_to(
    c: &mut Conn,
    ws: &WorkspaceId,
    resource_id: &str,
    owned_only: bool,
) -> StorageResult<Vec<AutomationRow>> {
    let rows = db_run!(c, |c| {
        let mut ids = related::table
            .filter(related::workspace_id.eq(ws))
            .filter(related::resource_id.eq(resource_id))
            .select(related::automation_id)
            .into_boxed();
        if owned_only {
            ids = ids.filter(related::owned_by_resource.eq(true));
        }
        automations::table
            .filter(automations::workspace_id.eq(ws))
            .filter(automations::id.eq_any(ids))
            .order((automations::name.asc(), automations::id.asc()))
            .select(AutomationRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}
