//! What each action type does (Prefect's `prefect/server/events/actions.py`): the target it
//! acts on (selected, or inferred from the triggering event and labels), the route function it
//! calls, and the reason it reports when it can't (Prefect's wording).

use std::collections::BTreeMap;

use actix_web::ResponseError;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::events::automations::firing::TriggeredAction;
use crate::events::automations::model::{Action, Source};
use crate::extract::Workspace;
use crate::ids::{FlowRunId, Id, WorkspaceId};
use crate::orchestration::{SetStateStatus, StateCreate, StateDetails, StateType};
use crate::runs::Request;
use crate::state::AppState;
use crate::storage::{flow_runs, work_pools as wp};

/// What an action touched and reported, however it ended.
#[derive(Default)]
pub struct Acted {
    pub resulting: Vec<BTreeMap<String, String>>,
    pub details: Map<String, Value>,
}

pub enum Outcome {
    Done(Acted),
    /// The action can't be done (Prefect's `ActionFailed`): reported, not retried.
    Failed(String, Acted),
    /// The target was unavailable (the database; a service answering 5xx or not at all):
    /// tried again later, reported as failed after the last try.
    Retry(String, Acted),
}

pub(super) enum Fail {
    Action(String),
    Retry(String),
}

pub(super) type Acting = Result<(), Fail>;

pub async fn perform(state: &AppState, ws: &WorkspaceId, ta: &TriggeredAction) -> Outcome {
    let mut acted = Acted::default();
    match act(state, ws, ta, &mut acted).await {
        Ok(()) => Outcome::Done(acted),
        Err(Fail::Action(reason)) => Outcome::Failed(reason, acted),
        Err(Fail::Retry(reason)) => Outcome::Retry(reason, acted),
    }
}

pub(super) fn target(id: String, name: Option<&str>, role: &str) -> BTreeMap<String, String> {
    let mut r = BTreeMap::from([
        ("prefect.resource.id".to_string(), id),
        ("prefect.resource.role".to_string(), role.to_string()),
    ]);
    if let Some(n) = name {
        r.insert("prefect.resource.name".into(), n.to_string());
    }
    r
}

/// Prefect's `reason_from_response` for an error answer of the route the action called.
pub(super) fn failed(kind: &str, e: ApiError, acted: &mut Acted) -> Fail {
    let detail = match &e {
        ApiError::Unavailable(m) | ApiError::Internal(m) => return Fail::Retry(m.clone()),
        ApiError::Detail(_, m) | ApiError::ObjectNotFound(m) => Some(m.clone()),
        ApiError::Validation { msg, .. } => Some(msg.clone()),
    };
    let status = e.status_code().as_u16();
    acted.details.insert("status_code".into(), json!(status));
    if status == 409 {
        acted
            .details
            .insert("validation_error".into(), json!(detail));
    }
    Fail::Action(match (status, detail) {
        (409 | 422, Some(d)) => format!("Validation error occurred for {kind:?} - {d}"),
        (422, None) => format!("Validation error occurred for {kind:?}"),
        _ => format!("Unexpected status from {kind:?} action: {status}"),
    })
}

pub(super) fn storage(e: crate::storage::StorageError) -> Fail {
    Fail::Retry(e.to_string())
}

/// The id of the first resource of `kind` the triggering event involves.
fn inferred(ta: &TriggeredAction, kind: &str) -> Option<Uuid> {
    let e = &ta.triggering_event.as_ref()?.event;
    std::iter::once(&e.resource)
        .chain(e.related.iter())
        .filter_map(|r| r.get("prefect.resource.id"))
        .find_map(|id| id_of(id, kind))
}

fn id_of(resource_id: &str, kind: &str) -> Option<Uuid> {
    let (k, id) = resource_id.rsplit_once('.')?;
    (k == kind).then(|| Uuid::parse_str(id).ok()).flatten()
}

/// A selected id, or one inferred from the event (`what` names it in the failure).
fn pick(
    ta: &TriggeredAction,
    source: Source,
    selected: Option<Uuid>,
    kind: &str,
    what: &str,
) -> Result<Uuid, Fail> {
    match source {
        Source::Selected => selected.ok_or_else(|| Fail::Action(format!("No {what} selected"))),
        Source::Inferred => {
            if ta.triggering_event.is_none() {
                return Err(Fail::Action(format!("No event to infer the {what}")));
            }
            inferred(ta, kind).ok_or_else(|| Fail::Action(format!("No {what} could be inferred")))
        }
    }
}

/// The flow run an action acts on: the bucket's resource, or the event's first flow run.
fn flow_run(ta: &TriggeredAction) -> Result<Uuid, Fail> {
    ta.triggering_labels
        .get("prefect.resource.id")
        .and_then(|id| id_of(id, "prefect.flow-run"))
        .or_else(|| inferred(ta, "prefect.flow-run"))
        .ok_or_else(|| Fail::Action("No flow run could be inferred".into()))
}

async fn act(
    state: &AppState,
    ws: &WorkspaceId,
    ta: &TriggeredAction,
    acted: &mut Acted,
) -> Acting {
    let kind = ta.action.kind();
    let automation = ta.automation_id;
    match &ta.action {
        Action::DoNothing {} => Ok(()),
        Action::RunDeployment {
            source,
            deployment_id,
            ..
        } => {
            let id = pick(
                ta,
                *source,
                *deployment_id,
                "prefect.deployment",
                "deployment",
            )?;
            super::deployment::run_deployment(state, ws, ta, id, acted).await
        }
        Action::PauseDeployment {
            source,
            deployment_id,
        }
        | Action::ResumeDeployment {
            source,
            deployment_id,
        } => {
            let id = pick(
                ta,
                *source,
                *deployment_id,
                "prefect.deployment",
                "deployment",
            )?;
            acted
                .resulting
                .push(target(format!("prefect.deployment.{id}"), None, "target"));
            let pause = matches!(ta.action, Action::PauseDeployment { .. });
            let wsx = Workspace(ws.clone());
            super::super::deployments::set_paused(state, &wsx, &Id::new(id.to_string()), pause)
                .await
                .map_err(|e| failed(&kind, e, acted))?;
            acted.details.insert("status_code".into(), json!(200));
            Ok(())
        }
        Action::ChangeFlowRunState {
            name,
            state: to,
            message,
            force,
        } => {
            let message = message
                .clone()
                .unwrap_or_else(|| format!("State changed by Automation {automation}"));
            let proposed = StateCreate {
                name: name.clone(),
                message: Some(message),
                ..StateCreate::of(*to)
            };
            set_state(state, ws, ta, proposed, *force, acted).await
        }
        Action::CancelFlowRun {} => {
            let proposed = StateCreate {
                message: Some(format!("Cancelled by Automation {automation}")),
                ..StateCreate::of(StateType::Cancelling)
            };
            set_state(state, ws, ta, proposed, false, acted).await
        }
        Action::SuspendFlowRun {} => {
            let proposed = StateCreate {
                name: Some("Suspended".into()),
                message: Some(format!("Suspended by Automation {automation}")),
                state_details: Some(StateDetails {
                    pause_timeout: Some(crate::time::now() + chrono::Duration::seconds(3600)),
                    pause_reschedule: true,
                    ..StateDetails::default()
                }),
                ..StateCreate::of(StateType::Paused)
            };
            set_state(state, ws, ta, proposed, false, acted).await
        }
        Action::ResumeFlowRun {} => {
            let id = flow_run(ta)?;
            acted
                .resulting
                .push(target(format!("prefect.flow-run.{id}"), None, "target"));
            let run_id = FlowRunId::new(id.to_string());
            let mut c = state.stores.orion.read().await.map_err(storage)?;
            let found = flow_runs::find(&mut c, ws, &run_id)
                .await
                .map_err(storage)?;
            drop(c);
            let current = found
                .and_then(|(_, s)| s)
                .as_ref()
                .and_then(crate::runs::convert::flow_state);
            let Some(current) = current.filter(|s| s.state_type == StateType::Paused) else {
                return Err(Fail::Action(
                    "Failed to resume flow run: Cannot resume a flow run that is not paused."
                        .into(),
                ));
            };
            let proposed = super::super::flow_run_input::resume_proposal(&current);
            set_state(state, ws, ta, proposed, false, acted).await
        }
        Action::DeleteFlowRun {} => {
            let id = flow_run(ta)?;
            acted
                .resulting
                .push(target(format!("prefect.flow-run.{id}"), None, "target"));
            let (w, run_id) = (ws.clone(), FlowRunId::new(id.to_string()));
            let deleted = state
                .stores
                .orion
                .write(async move |c| flow_runs::delete(c, &w, &run_id).await)
                .await
                .map_err(storage)?;
            if !deleted {
                return Err(failed(
                    &kind,
                    ApiError::not_found("Flow run not found"),
                    acted,
                ));
            }
            acted.details.insert("status_code".into(), json!(204));
            Ok(())
        }
        Action::PauseWorkPool {
            source,
            work_pool_id,
        }
        | Action::ResumeWorkPool {
            source,
            work_pool_id,
        } => {
            let id = pick(ta, *source, *work_pool_id, "prefect.work-pool", "work pool")?;
            let mut c = state.stores.orion.read().await.map_err(storage)?;
            let pool = wp::find_pool_by_id(&mut c, ws, &id.to_string())
                .await
                .map_err(storage)?;
            drop(c);
            let Some(mut pool) = pool else {
                return Err(Fail::Action(format!("Work pool {id} not found")));
            };
            acted.resulting.push(target(
                format!("prefect.work-pool.{id}"),
                Some(&pool.name),
                "target",
            ));
            let was = pool.is_paused;
            pool.is_paused = matches!(ta.action, Action::PauseWorkPool { .. });
            super::super::work_pools::save_pool(state, ws, pool, was)
                .await
                .map_err(|e| failed(&kind, e, acted))?;
            acted.details.insert("status_code".into(), json!(204));
            Ok(())
        }
        Action::PauseWorkQueue {
            source,
            work_queue_id,
        }
        | Action::ResumeWorkQueue {
            source,
            work_queue_id,
        } => {
            let id = pick(
                ta,
                *source,
                *work_queue_id,
                "prefect.work-queue",
                "work queue",
            )?;
            let mut c = state.stores.orion.read().await.map_err(storage)?;
            let queue = wp::find_queue_by_id(&mut c, ws, &id.to_string())
                .await
                .map_err(storage)?;
            drop(c);
            let Some(queue) = queue else {
                return Err(Fail::Action(format!("Work queue {id} not found")));
            };
            acted.resulting.push(target(
                format!("prefect.work-queue.{id}"),
                Some(&queue.name),
                "target",
            ));
            let update = super::super::work_pools::QueueUpdate {
                is_paused: Some(matches!(ta.action, Action::PauseWorkQueue { .. })),
                ..Default::default()
            };
            super::super::work_pools::apply_queue_update(state, queue, update)
                .await
                .map_err(|e| failed(&kind, e, acted))?;
            acted.details.insert("status_code".into(), json!(204));
            Ok(())
        }
        Action::PauseAutomation {
            source,
            automation_id,
        }
        | Action::ResumeAutomation {
            source,
            automation_id,
        } => {
            let id = pick(
                ta,
                *source,
                *automation_id,
                "prefect.automation",
                "automation",
            )?;
            acted
                .resulting
                .push(target(format!("prefect.automation.{id}"), None, "target"));
            let enable = matches!(ta.action, Action::ResumeAutomation { .. });
            super::super::automations::set_enabled(state, ws, &id.to_string(), enable)
                .await
                .map_err(|e| failed(&kind, e, acted))?;
            acted.details.insert("status_code".into(), json!(204));
            Ok(())
        }
        Action::CallWebhook {
            block_document_id,
            payload,
        } => {
            let ctx = super::context::template_context(state, ws, ta).await;
            super::notify::call_webhook(state, ws, *block_document_id, payload, &ctx, acted).await
        }
        Action::SendNotification {
            block_document_id,
            subject,
            body,
        } => {
            let ctx = super::context::template_context(state, ws, ta).await;
            super::notify::send_notification(
                state,
                ws,
                *block_document_id,
                subject,
                body,
                &ctx,
                acted,
            )
            .await
        }
    }
}

/// Proposes a state for the action's flow run (`force` as the action says).
async fn set_state(
    state: &AppState,
    ws: &WorkspaceId,
    ta: &TriggeredAction,
    proposed: StateCreate,
    force: bool,
    acted: &mut Acted,
) -> Acting {
    let id = flow_run(ta)?;
    acted
        .resulting
        .push(target(format!("prefect.flow-run.{id}"), None, "target"));
    let req = Request {
        state: proposed,
        force,
        client_version: None,
    };
    let applied = crate::runs::set_flow_run_state(state, ws, &FlowRunId::new(id.to_string()), req)
        .await
        .map_err(storage)?;
    let Some(applied) = applied else {
        return Err(failed(
            &ta.action.kind(),
            ApiError::not_found("Flow run not found"),
            acted,
        ));
    };
    acted.details.insert(
        "status_code".into(),
        json!(if applied.written { 201 } else { 200 }),
    );
    if applied.result.status != SetStateStatus::Accept {
        let reason = applied
            .result
            .details
            .reason()
            .unwrap_or_default()
            .to_string();
        return Err(Fail::Action(format!("Failed to set state: {reason}")));
    }
    Ok(())
}
