//! Actions: every type the open-source server has, with Prefect's defaults, and the rules the
//! types can't say (a selected target needs its id, templates must parse).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{float, problem, seconds, Problem};
use crate::orchestration::StateType;
/// Where an action's deployment, work pool, work queue or automation comes from.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Selected,
    Inferred,
}

fn notification_subject() -> String {
    "Prefect automated notification".into()
}

/// An action, every type the open-source server has.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Action {
    DoNothing {},
    RunDeployment {
        #[serde(default)]
        source: Source,
        #[serde(default)]
        deployment_id: Option<Uuid>,
        #[serde(default)]
        parameters: Option<Map<String, Value>>,
        #[serde(default)]
        job_variables: Option<Map<String, Value>>,
        #[serde(default, deserialize_with = "seconds", serialize_with = "float")]
        schedule_after: f64,
    },
    PauseDeployment {
        #[serde(default)]
        source: Source,
        #[serde(default)]
        deployment_id: Option<Uuid>,
    },
    ResumeDeployment {
        #[serde(default)]
        source: Source,
        #[serde(default)]
        deployment_id: Option<Uuid>,
    },
    ChangeFlowRunState {
        #[serde(default)]
        name: Option<String>,
        state: StateType,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        force: bool,
    },
    CancelFlowRun {},
    DeleteFlowRun {},
    SuspendFlowRun {},
    ResumeFlowRun {},
    CallWebhook {
        block_document_id: Uuid,
        #[serde(default, deserialize_with = "payload_text")]
        payload: String,
    },
    SendNotification {
        block_document_id: Uuid,
        #[serde(default = "notification_subject")]
        subject: String,
        body: String,
    },
    PauseWorkPool {
        #[serde(default)]
        source: Source,
        #[serde(default)]
        work_pool_id: Option<Uuid>,
    },
    ResumeWorkPool {
        #[serde(default)]
        source: Source,
        #[serde(default)]
        work_pool_id: Option<Uuid>,
    },
    PauseWorkQueue {
        #[serde(default)]
        source: Source,
        #[serde(default)]
        work_queue_id: Option<Uuid>,
    },
    ResumeWorkQueue {
        #[serde(default)]
        source: Source,
        #[serde(default)]
        work_queue_id: Option<Uuid>,
    },
    PauseAutomation {
        #[serde(default)]
        source: Source,
        #[serde(default)]
        automation_id: Option<Uuid>,
    },
    ResumeAutomation {
        #[serde(default)]
        source: Source,
        #[serde(default)]
        automation_id: Option<Uuid>,
    },
}

/// A webhook's payload: text, or (as Prefect accepts) a JSON object written as text.
fn payload_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    })
}

impl Action {
    /// The action's `type` (`run-deployment`, `pause-work-pool`...).
    pub fn kind(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("type")?.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The `deployment_id` of a run-deployment action for a selected deployment.
    pub fn selected_deployment(&self) -> Option<Uuid> {
        match self {
            Action::RunDeployment {
                source: Source::Selected,
                deployment_id,
                ..
            } => *deployment_id,
            _ => None,
        }
    }

    /// Checks the rules the types can't say: a selected target needs its id, an inferred one
    /// must not have one; templates must parse.
    pub fn check(&self, loc: Vec<Value>) -> Result<(), Problem> {
        let (source, id, what) = match self {
            Action::RunDeployment {
                source,
                deployment_id,
                ..
            }
            | Action::PauseDeployment {
                source,
                deployment_id,
            }
            | Action::ResumeDeployment {
                source,
                deployment_id,
            } => (*source, deployment_id.is_some(), "deployment_id"),
            Action::PauseWorkPool {
                source,
                work_pool_id,
            }
            | Action::ResumeWorkPool {
                source,
                work_pool_id,
            } => (*source, work_pool_id.is_some(), "work_pool_id"),
            Action::PauseWorkQueue {
                source,
                work_queue_id,
            }
            | Action::ResumeWorkQueue {
                source,
                work_queue_id,
            } => (*source, work_queue_id.is_some(), "work_queue_id"),
            Action::PauseAutomation {
                source,
                automation_id,
            }
            | Action::ResumeAutomation {
                source,
                automation_id,
            } => (*source, automation_id.is_some(), "automation_id"),
            _ => (Source::Inferred, false, ""),
        };
        if !what.is_empty() && (source == Source::Selected) != id {
            let verdict = if id { "not allowed" } else { "required" };
            return Err(problem(loc, format!("{what} is {verdict}")));
        }
        let templates: Vec<(&str, &str)> = match self {
            Action::SendNotification { subject, body, .. } => {
                vec![("subject", subject.as_str()), ("body", body.as_str())]
            }
            Action::CallWebhook { payload, .. } => vec![("payload", payload.as_str())],
            _ => Vec::new(),
        };
        for (field, text) in templates {
            if let Err(e) = crate::events::automations::templates::validate(text) {
                let mut at = loc.clone();
                at.push(field.into());
                return Err(problem(
                    at,
                    format!("{field:?} is not a valid template: {e}"),
                ));
            }
        }
        if let Action::RunDeployment {
            parameters: Some(p),
            ..
        } = self
        {
            for text in string_leaves(&Value::Object(p.clone())) {
                if let Err(e) = crate::events::automations::templates::validate(&text) {
                    let mut at = loc.clone();
                    at.push("parameters".into());
                    return Err(problem(
                        at,
                        format!("'parameters' is not a valid template: {e}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn string_leaves(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(string_leaves).collect(),
        Value::Object(o) => o.values().flat_map(string_leaves).collect(),
        _ => Vec::new(),
    }
}
