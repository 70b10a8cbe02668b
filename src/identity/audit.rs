//! The audit log: every change to accounts, workspaces, memberships, roles, teams, users,
//! service accounts and keys, every login, logout and failed login, and denied requests, as
//! events named `orrery.audit.{resource}.{action}`. The resource is what changed
//! (`orrery.{kind}.{id}`); related resources with the roles `actor`, `account` and `workspace`
//! say who did it and where. They are written to the event outbox like every other event, so
//! Redis being down loses none. The audit log is the account's, as in Prefect Cloud: its events
//! are stored in the events database under the account's id (where a workspace's events are
//! stored under the workspace's), so deleting a workspace keeps the record of it.
//!
//! Denied requests are many when someone guesses keys, so they are counted in memory per
//! (where, who, status, route) and written as one event per group every few seconds, with the
//! count; at most [`MAX_DENIED_GROUPS`] groups wait, and denials beyond that are counted in one
//! overflow group.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::event_model::{Event, Resource};
use crate::ids::WorkspaceId;
use crate::state::AppState;
use crate::storage::outbox::{self, NewOutboxRow};
use crate::storage::{StorageResult, Stores};

use super::Principal;

/// How long denials are counted before they are written.
const DENIED_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);
/// The most denial groups kept between writes.
pub const MAX_DENIED_GROUPS: usize = 1_000;

/// Who did something: a principal, the command line, or (in `auth.mode = "open"`) anyone.
#[derive(Debug, Clone)]
pub enum By<'a> {
    Principal(&'a Principal),
    CommandLine,
    Anonymous,
}

impl By<'_> {
    pub fn of(principal: Option<&Principal>) -> By<'_> {
        match principal {
            Some(p) => By::Principal(p),
            None => By::Anonymous,
        }
    }

    fn resource(&self) -> Resource {
        let mut r = Resource::new();
        let (id, name) = match self {
            By::Principal(p) => {
                let kind = if p.kind == "user" {
                    "user"
                } else {
                    "service-account"
                };
                (format!("orrery.{kind}.{}", p.id), p.name.clone())
            }
            By::CommandLine => ("orrery.command-line".to_string(), "command line".into()),
            By::Anonymous => ("orrery.anonymous".to_string(), "anonymous".into()),
        };
        r.insert("prefect.resource.id".into(), id);
        r.insert("prefect.resource.name".into(), name);
        r.insert("prefect.resource.role".into(), "actor".into());
        r
    }
}

/// One audited change: `orrery.audit.{kind}.{action}` about `orrery.{kind}.{id}`.
pub struct Change<'a> {
    pub kind: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub action: &'a str,
    pub account_id: &'a str,
    /// The workspace it concerns, if any (a related resource).
    pub workspace_id: Option<&'a str>,
    pub payload: Value,
}

fn related(role: &str, id: String) -> Resource {
    let mut r = Resource::new();
    r.insert("prefect.resource.id".into(), id);
    r.insert("prefect.resource.role".into(), role.into());
    r
}

/// The event of `change` done by `by` at `now`, and where it is stored.
pub fn event(by: &By<'_>, change: &Change<'_>, now: DateTime<Utc>) -> (WorkspaceId, Event) {
    let mut resource = Resource::new();
    resource.insert(
        "prefect.resource.id".into(),
        format!("orrery.{}.{}", change.kind, change.id),
    );
    resource.insert("prefect.resource.name".into(), change.name.to_string());
    let mut rel = vec![
        by.resource(),
        related("account", format!("orrery.account.{}", change.account_id)),
    ];
    if let Some(ws) = change.workspace_id {
        rel.push(related("workspace", format!("orrery.workspace.{ws}")));
    }
    let payload = match &change.payload {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => Map::from_iter([("value".to_string(), other.clone())]),
    };
    (
        WorkspaceId::new(change.account_id),
        Event {
            occurred: now,
            event: format!("orrery.audit.{}.{}", change.kind, change.action),
            resource,
            related: rel,
            payload,
            id: uuid::Uuid::new_v4(),
            follows: None,
        },
    )
}

fn rows(events: Vec<(WorkspaceId, Event)>, now: DateTime<Utc>) -> Vec<NewOutboxRow> {
    events
        .into_iter()
        .map(|(ws, e)| {
            let received = e.receive(now);
            NewOutboxRow {
                workspace_id: ws,
                created: now.naive_utc(),
                event_id: received.event.id.to_string(),
                event: serde_json::to_string(&received).unwrap_or_default(),
                pending: outbox::TO_PERSISTER,
            }
        })
        .collect()
}

/// Writes the events of `changes` to the outbox (the relay of a running server publishes
/// them; the command line's wait for the next server).
pub async fn write(stores: &Stores, by: &By<'_>, changes: &[Change<'_>]) -> StorageResult<()> {
    let now = crate::time::now();
    let events = changes.iter().map(|c| event(by, c, now)).collect();
    let rows = rows(events, now);
    stores
        .orion
        .write(async move |c| outbox::insert(c, &rows).await)
        .await
}

/// [`write`] from a request: a failure is logged, not the request's (the change is made), and
/// the relay is woken.
pub async fn record(state: &AppState, principal: Option<&Principal>, changes: &[Change<'_>]) {
    match write(&state.stores, &By::of(principal), changes).await {
        Ok(()) => state.outbox_wake.notify_one(),
        Err(e) => tracing::warn!(error = %e, "could not write an audit event"),
    }
}

pub use crate::state::{Denial, DeniedLog};

/// Counts a denied request; the first of a quiet period schedules the write.
pub fn denied(state: &Arc<AppState>, denial: Denial) {
    let first = {
        let mut log = state.denied.lock().unwrap_or_else(|p| p.into_inner());
        let first = log.groups.is_empty() && log.overflow == 0;
        if log.groups.len() >= MAX_DENIED_GROUPS && !log.groups.contains_key(&denial) {
            log.overflow += 1;
        } else {
            *log.groups.entry(denial).or_default() += 1;
        }
        first
    };
    if first {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DENIED_FLUSH).await;
            flush_denied(&state).await;
        });
    }
}

/// Writes the denials counted so far, one event per group.
pub async fn flush_denied(state: &AppState) {
    let (groups, overflow) = {
        let mut log = state.denied.lock().unwrap_or_else(|p| p.into_inner());
        (
            std::mem::take(&mut log.groups),
            std::mem::take(&mut log.overflow),
        )
    };
    let now = crate::time::now();
    let mut events: Vec<(WorkspaceId, Event)> = Vec::new();
    for (d, count) in groups {
        let mut resource = Resource::new();
        resource.insert("prefect.resource.id".into(), d.who.clone());
        let mut actor = related("actor", d.who.clone());
        actor.insert("orrery.client".into(), d.client.clone());
        let mut rel = vec![
            actor,
            related("account", format!("orrery.account.{}", d.scope)),
        ];
        if let Some(ws) = &d.workspace {
            rel.push(related("workspace", format!("orrery.workspace.{ws}")));
        }
        events.push((
            WorkspaceId::new(&d.scope),
            Event {
                occurred: now,
                event: "orrery.audit.request.denied".into(),
                resource,
                related: rel,
                payload: json!({
                    "status": d.status,
                    "method": d.method,
                    "route": d.route,
                    "client": d.client,
                    "count": count,
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
                id: uuid::Uuid::new_v4(),
                follows: None,
            },
        ));
    }
    if overflow > 0 {
        let mut resource = Resource::new();
        resource.insert("prefect.resource.id".into(), "orrery.anonymous".into());
        events.push((
            WorkspaceId::new(crate::storage::accounts::DEFAULT_ACCOUNT_ID),
            Event {
                occurred: now,
                event: "orrery.audit.request.denied".into(),
                resource,
                related: Vec::new(),
                payload: json!({ "overflow": true, "count": overflow })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                id: uuid::Uuid::new_v4(),
                follows: None,
            },
        ));
    }
    if events.is_empty() {
        return;
    }
    let rows = rows(events, now);
    let written = state
        .stores
        .orion
        .write(async move |c| outbox::insert(c, &rows).await)
        .await;
    match written {
        Ok(()) => state.outbox_wake.notify_one(),
        Err(e) => tracing::warn!(error = %e, "could not write denied-request audit events"),
    }
}
