//! The Prefect 3 event model (`id, occurred, event, resource, related, payload, follows`, and
//! `received` once accepted). Resource labels are strings; related resources carry a role.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A resource: string labels with at least `prefect.resource.id`.
pub type Resource = BTreeMap<String, String>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    #[serde(with = "crate::time::req")]
    pub occurred: DateTime<Utc>,
    pub event: String,
    pub resource: Resource,
    #[serde(default)]
    pub related: Vec<Resource>,
    #[serde(default)]
    pub payload: Map<String, Value>,
    pub id: Uuid,
    #[serde(default)]
    pub follows: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReceivedEvent {
    #[serde(flatten)]
    pub event: Event,
    #[serde(with = "crate::time::req")]
    pub received: DateTime<Utc>,
}

/// Longest event name Prefect accepts.
const MAX_EVENT_NAME: usize = 1024;

/// The largest event accepted, serialised as JSON (Prefect's `server.events.maximum_size_bytes`).
pub const MAX_EVENT_BYTES: usize = 1_500_000;

impl Event {
    /// Checks what serde cannot: required labels and sizes. The message names the problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.event.is_empty() || self.event.len() > MAX_EVENT_NAME {
            return Err(format!(
                "event name must be 1 to {MAX_EVENT_NAME} characters"
            ));
        }
        if self
            .resource
            .get("prefect.resource.id")
            .is_none_or(|v| v.is_empty())
        {
            return Err("resource must have a non-empty prefect.resource.id".into());
        }
        for (i, r) in self.related.iter().enumerate() {
            if r.get("prefect.resource.id").is_none_or(|v| v.is_empty()) {
                return Err(format!(
                    "related[{i}] must have a non-empty prefect.resource.id"
                ));
            }
            if r.get("prefect.resource.role").is_none_or(|v| v.is_empty()) {
                return Err(format!(
                    "related[{i}] must have a non-empty prefect.resource.role"
                ));
            }
        }
        // Names and labels are stored as text, which cannot hold NUL on PostgreSQL.
        let labels = std::iter::once(&self.resource).chain(&self.related);
        if self.event.contains('\0')
            || labels
                .flat_map(|r| r.iter())
                .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err("event names and resource labels must not contain NUL characters".into());
        }
        Ok(())
    }

    pub fn resource_id(&self) -> &str {
        self.resource
            .get("prefect.resource.id")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The id of the first related resource with `role`.
    pub fn related_id(&self, role: &str) -> Option<&str> {
        self.related
            .iter()
            .find(|r| r.get("prefect.resource.role").map(String::as_str) == Some(role))
            .and_then(|r| r.get("prefect.resource.id"))
            .map(String::as_str)
    }

    pub fn receive(self, now: DateTime<Utc>) -> ReceivedEvent {
        ReceivedEvent {
            event: self,
            received: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_client_event_and_checks_roles() {
        let e: Event = serde_json::from_value(serde_json::json!({
            "occurred": "2026-11-26T03:11:17.387395Z",
            "event": "prefect.task-run.Completed",
            "resource": {"prefect.resource.id": "prefect.task-run.1", "prefect.state-name": "Completed"},
            "related": [{"prefect.resource.id": "prefect.flow-run.2", "prefect.resource.role": "flow-run"}],
            "payload": {"intended": {"from": "RUNNING", "to": "COMPLETED"}},
            "id": "0195d8a0-0000-7000-8000-000000000001",
            "follows": null
        }))
        .expect("valid event");
        assert!(e.validate().is_ok());
        assert_eq!(e.related_id("flow-run"), Some("prefect.flow-run.2"));
        let mut bad = e.clone();
        bad.related[0].remove("prefect.resource.role");
        assert!(bad.validate().is_err());
    }
}

/// What travels on the stream: the event and the workspace it belongs to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Envelope {
    pub workspace_id: crate::ids::WorkspaceId,
    pub event: ReceivedEvent,
    /// The event's outbox row, which each consumer settles once it has done its work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}
