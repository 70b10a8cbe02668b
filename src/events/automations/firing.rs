//! What an automation's firing starts (Prefect's `act`): the `prefect.automation.triggered`
//! event and one triggered action per action, written in the evaluating transaction so a
//! firing is recorded, and its actions started, exactly once; and the events an action's run
//! reports (`prefect.automation.action.triggered|executed|failed`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::evaluate::Firing;
use super::model::{Action, Posture, Trigger};
use crate::event_model::{Event, ReceivedEvent};
use crate::ids::WorkspaceId;
use crate::storage::automation_state::{ActionRow, PENDING};
use crate::storage::automations::AutomationRow;

/// An enabled automation, parsed.
#[derive(Debug, Clone)]
pub struct Automation {
    pub id: Uuid,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub trigger: Trigger,
    pub actions: Vec<Action>,
    pub actions_on_trigger: Vec<Action>,
}

impl Automation {
    /// `None` for a row that no longer parses (written by another version): it can't fire.
    pub fn from_row(r: &AutomationRow) -> Option<Automation> {
        Some(Automation {
            id: Uuid::parse_str(&r.id).ok()?,
            workspace_id: r.workspace_id.clone(),
            name: r.name.clone(),
            trigger: serde_json::from_str(&r.trigger).ok()?,
            actions: serde_json::from_str(&r.actions).ok()?,
            actions_on_trigger: serde_json::from_str(&r.actions_on_trigger).ok()?,
        })
    }

    /// The automation's resource in the events about it.
    fn resource(&self) -> BTreeMap<String, String> {
        let mut r = BTreeMap::from([
            (
                "prefect.resource.id".to_string(),
                format!("prefect.automation.{}", self.id),
            ),
            ("prefect.resource.name".to_string(), self.name.clone()),
        ]);
        if let Trigger::Event(t) = &self.trigger {
            r.insert("prefect.posture".into(), posture(t.posture).into());
        }
        r
    }
}

fn posture(p: Posture) -> &'static str {
    match p {
        Posture::Reactive => "Reactive",
        Posture::Proactive => "Proactive",
    }
}

/// One action of one firing, as the executor runs it: everything it needs, copied at firing
/// time (a later edit of the automation does not change an action already started).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggeredAction {
    /// The invocation: the action row's id.
    pub id: Uuid,
    pub automation_id: Uuid,
    pub automation_name: String,
    pub trigger_type: String,
    #[serde(default)]
    pub posture: Option<Posture>,
    pub firing_id: Uuid,
    pub triggered: DateTime<Utc>,
    #[serde(default)]
    pub triggering_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub triggering_event: Option<ReceivedEvent>,
    pub action: Action,
    pub action_index: usize,
    #[serde(default)]
    pub automation_triggered_event_id: Option<Uuid>,
}

fn related_event(id: Uuid, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "prefect.resource.id".to_string(),
            format!("prefect.event.{id}"),
        ),
        ("prefect.resource.role".to_string(), role.to_string()),
    ])
}

fn event_json(e: &ReceivedEvent) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// The `prefect.automation.triggered` event and the actions of a firing of `a`'s trigger.
pub fn act(a: &Automation, f: &Firing, now: DateTime<Utc>) -> (Event, Vec<ActionRow>) {
    let triggered = Event {
        occurred: f.triggered,
        event: "prefect.automation.triggered".into(),
        resource: a.resource(),
        related: f
            .triggering_event
            .iter()
            .map(|e| related_event(e.event.id, "triggering-event"))
            .collect(),
        payload: Map::from_iter([
            ("triggering_labels".to_string(), json!(f.triggering_labels)),
            (
                "triggering_event".to_string(),
                f.triggering_event.as_ref().map_or(Value::Null, event_json),
            ),
        ]),
        id: Uuid::now_v7(),
        follows: None,
    };
    let triggered_received = triggered.clone().receive(now);
    // The automation's actions see the firing's event; its actions-on-trigger see the
    // automation.triggered event itself.
    let sources = a
        .actions
        .iter()
        .map(|x| (f.triggering_event.clone(), x))
        .chain(
            a.actions_on_trigger
                .iter()
                .map(|x| (Some(triggered_received.clone()), x)),
        );
    let rows = sources
        .enumerate()
        .map(|(index, (event, action))| {
            let ta = TriggeredAction {
                id: Uuid::now_v7(),
                automation_id: a.id,
                automation_name: a.name.clone(),
                trigger_type: a.trigger.kind().into(),
                posture: match &a.trigger {
                    Trigger::Event(t) => Some(t.posture),
                    _ => None,
                },
                firing_id: f.id,
                triggered: f.triggered,
                triggering_labels: f.triggering_labels.clone(),
                triggering_event: event,
                action: action.clone(),
                action_index: index,
                automation_triggered_event_id: Some(triggered.id),
            };
            ActionRow {
                id: ta.id.to_string(),
                workspace_id: a.workspace_id.clone(),
                automation_id: a.id.to_string(),
                created: now.naive_utc(),
                action_index: i32::try_from(index).unwrap_or(i32::MAX),
                triggered_action: serde_json::to_string(&ta).unwrap_or_default(),
                state: PENDING.into(),
                attempts: 0,
                not_before: now.naive_utc(),
                finished: None,
                reason: None,
            }
        })
        .collect();
    (triggered, rows)
}

impl TriggeredAction {
    fn resource(&self) -> BTreeMap<String, String> {
        let mut r = BTreeMap::from([
            (
                "prefect.resource.id".to_string(),
                format!("prefect.automation.{}", self.automation_id),
            ),
            (
                "prefect.resource.name".to_string(),
                self.automation_name.clone(),
            ),
            (
                "prefect.trigger-type".to_string(),
                self.trigger_type.clone(),
            ),
        ]);
        if let Some(p) = self.posture {
            r.insert("prefect.posture".into(), posture(p).into());
        }
        r
    }

    /// `prefect.automation.action.triggered` and then `.executed` (no `reason`) or `.failed`,
    /// with the resources the action touched (`resulting`) and its result details.
    pub fn outcome_events(
        &self,
        resulting: Vec<BTreeMap<String, String>>,
        details: Map<String, Value>,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> [Event; 2] {
        let mut related = resulting;
        if let Some(id) = self.automation_triggered_event_id {
            related.push(related_event(id, "automation-triggered-event"));
        }
        if let Some(e) = &self.triggering_event {
            related.push(related_event(e.event.id, "triggering-event"));
        }
        let mut payload = Map::from_iter([
            ("action_index".to_string(), json!(self.action_index)),
            ("action_type".to_string(), json!(self.action.kind())),
            ("invocation".to_string(), json!(self.id.to_string())),
        ]);
        // Linked to the triggering event when close to it in time, as Prefect does.
        let follows = self
            .triggering_event
            .as_ref()
            .filter(|e| (self.triggered - e.event.occurred).num_seconds().abs() < 300)
            .map(|e| e.event.id);
        let first = Event {
            occurred: self.triggered,
            event: "prefect.automation.action.triggered".into(),
            resource: self.resource(),
            related: related.clone(),
            payload: payload.clone(),
            id: Uuid::now_v7(),
            follows,
        };
        let name = match reason {
            None => "prefect.automation.action.executed",
            Some(r) => {
                payload.insert("reason".into(), json!(r));
                "prefect.automation.action.failed"
            }
        };
        payload.extend(details);
        let second = Event {
            occurred: now,
            event: name.into(),
            resource: self.resource(),
            related,
            payload,
            id: Uuid::now_v7(),
            follows: Some(first.id),
        };
        [first, second]
    }
}
