//! The run-deployment action: the deployment's run created through the route's own function
//! (`new_run`), with the action's parameters hydrated as Prefect hydrates them (`__prefect_kind`
//! values and version-1 plain-string templates) and an idempotency key per invocation, so a
//! retried action finds its run instead of making a second.

use serde_json::{json, Value};
use uuid::Uuid;

use super::perform::{failed, target, Acted, Acting, Fail};
use crate::events::automations::firing::TriggeredAction;
use crate::events::automations::model::Action;
use crate::events::automations::templates;
use crate::extract::Workspace;
use crate::ids::{Id, WorkspaceId};
use crate::orchestration::{StateCreate, StateDetails, StateType};
use crate::state::AppState;

/// Runs deployment `id` for the triggered action (its `run-deployment` fields).
pub(super) async fn run_deployment(
    state: &AppState,
    ws: &WorkspaceId,
    ta: &TriggeredAction,
    id: Uuid,
    acted: &mut Acted,
) -> Acting {
    let Action::RunDeployment {
        parameters,
        job_variables,
        schedule_after,
        ..
    } = &ta.action
    else {
        return Ok(());
    };
    let kind = ta.action.kind();
    acted
        .resulting
        .push(target(format!("prefect.deployment.{id}"), None, "target"));
    let wsx = Workspace(ws.clone());
    let d = super::super::deployments::find(state, &wsx, &Id::new(id.to_string()))
        .await
        .map_err(|e| failed(&kind, e, acted))?;
    let context = super::context::template_context(state, ws, ta).await;
    let mut params = Value::Object(parameters.clone().unwrap_or_default());
    hydrate(state, ws, &mut params, &context)
        .await
        .map_err(|e| Fail::Action(format!("Unable to create flow run from deployment: {e}")))?;
    let Value::Object(params) = params else {
        return Err(Fail::Action(
            "Unable to create flow run from deployment: parameters are not an object".into(),
        ));
    };
    let scheduled = crate::events::automations::evaluate::shift(
        crate::time::now(),
        crate::events::automations::evaluate::seconds(*schedule_after),
    );
    let initial = StateCreate {
        state_details: Some(StateDetails {
            scheduled_time: Some(scheduled),
            ..StateDetails::default()
        }),
        ..StateCreate::of(StateType::Scheduled)
    };
    let key = format!(
        "automation {}, action {}, invocation {}",
        ta.automation_id, ta.action_index, ta.id
    );
    let body = super::super::deployments::DeploymentFlowRunCreate::for_automation(
        initial,
        params,
        job_variables.clone(),
        key,
    );
    let creator =
        json!({"id": ta.automation_id, "type": "AUTOMATION", "display_value": ta.automation_name})
            .to_string();
    let (run, _, created) =
        super::super::deployments::new_run(state, &wsx, &d, body, Some(creator))
            .await
            .map_err(|e| failed(&kind, e, acted))?;
    acted
        .details
        .insert("status_code".into(), json!(if created { 201 } else { 200 }));
    acted.resulting.push(target(
        format!("prefect.flow-run.{}", run.id),
        Some(&run.name),
        "flow-run",
    ));
    Ok(())
}

/// Prefect's parameter hydration: `{"__prefect_kind": "jinja" | "json" | "workspace_variable"
/// | "none" | "raw", ...}` values, and plain strings with Jinja markup (version 1 templates).
fn hydrate<'a>(
    state: &'a AppState,
    ws: &'a WorkspaceId,
    v: &'a mut Value,
    ctx: &'a Value,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
    Box::pin(async move {
        match v {
            Value::String(s) if templates::maybe_template(s) => {
                *v = Value::String(templates::render(s, ctx).map_err(|e| e.to_string())?);
            }
            Value::Array(items) => {
                for item in items.iter_mut() {
                    hydrate(state, ws, item, ctx).await?;
                }
            }
            Value::Object(m) if m.contains_key("__prefect_kind") => {
                let kind = m
                    .get("__prefect_kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                *v = match kind.as_str() {
                    "none" => Value::Null,
                    "raw" => m.get("value").cloned().unwrap_or(Value::Null),
                    "json" => {
                        let text = m.get("value").and_then(Value::as_str).unwrap_or("null");
                        serde_json::from_str(text).map_err(|e| format!("Invalid JSON: {e}"))?
                    }
                    "jinja" => {
                        let t = m
                            .get("template")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        Value::String(templates::render(t, ctx).map_err(|e| e.to_string())?)
                    }
                    "workspace_variable" => {
                        let name = m
                            .get("variable_name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        let mut c = state.stores.orion.read().await.map_err(|e| e.to_string())?;
                        let row = crate::storage::variables::find_by_name(&mut c, ws, &name)
                            .await
                            .map_err(|e| e.to_string())?
                            .ok_or_else(|| format!("Variable {name:?} not found"))?;
                        serde_json::from_str(&row.value).unwrap_or(Value::Null)
                    }
                    other => return Err(format!("unknown __prefect_kind {other:?}")),
                };
            }
            Value::Object(m) => {
                for item in m.values_mut() {
                    hydrate(state, ws, item, ctx).await?;
                }
            }
            _ => {}
        }
        Ok(())
    })
}
