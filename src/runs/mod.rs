//! Runs: applies orchestration to stored flow and task runs. Each transition reads the run in
//! a transaction (storage), asks the pure rules (orchestration) what to do, and writes the
//! state, the run's columns, the subflow parent's mirrored state and the state-change event
//! (to the outbox) together. Used by the API handlers and by background services.

pub mod answers;
pub mod convert;
pub mod events;
pub mod names;
pub mod params;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ids::{FlowRunId, TaskRunId, WorkspaceId};
use crate::orchestration::{
    orchestrate, subflow_parent_task_state, OrchestrationConfig, OrchestrationResult, Outcome,
    Proposal, RunKind, State, StateCreate, StateType,
};
use crate::state::AppState;
use crate::storage::rows::{FlowRow, FlowRunRow, TaskRunRow};
use crate::storage::transitions::{
    self, CacheRow, Created, FlowRunContext, FlowRunWrite, TaskRunContext, TaskRunWrite,
};
use crate::storage::StorageResult;
use convert::{
    apply_flow_update, apply_task_update, flow_snapshot, flow_state, flow_state_row, task_snapshot,
    task_state, task_state_row,
};

/// How a proposal is to be applied.
#[derive(Debug, Clone)]
pub struct Request {
    pub state: StateCreate,
    pub force: bool,
    pub client_version: Option<String>,
}

/// A transition's answer: the orchestration result and whether a new state was written (201).
#[derive(Debug, Clone)]
pub struct Applied<R> {
    pub result: OrchestrationResult,
    pub written: bool,
    pub run: R,
    pub state: Option<State>,
}

fn new_state_id() -> Uuid {
    Uuid::now_v7()
}

/// The flow-run decision: orchestrate, then describe every write.
fn decide_flow(
    ctx: FlowRunContext,
    req: &Request,
    now: DateTime<Utc>,
) -> (FlowRunWrite, Applied<FlowRunRow>) {
    decide_flow_with(ctx, req, now, orchestrate)
}

fn decide_flow_with(
    ctx: FlowRunContext,
    req: &Request,
    now: DateTime<Utc>,
    engine: impl Fn(Proposal) -> Outcome,
) -> (FlowRunWrite, Applied<FlowRunRow>) {
    let ws = ctx.run.workspace_id.clone();
    let naive_now = now.naive_utc();
    let current = ctx.current.as_ref().and_then(flow_state);
    let proposed = State::from_create(req.state.clone(), new_state_id(), now);
    let outcome = engine(Proposal {
        kind: RunKind::Flow,
        run: flow_snapshot(
            &ctx.run,
            &ctx.taken_timestamps,
            ctx.deployment_concurrency.as_ref(),
        ),
        current: current.clone(),
        proposed,
        force: req.force,
        now,
        client_version: req.client_version.clone(),
        cached_state: None,
        config: OrchestrationConfig::default(),
    });
    let mut write = FlowRunWrite::default();
    let mut run = ctx.run.clone();
    if let Some(s) = &outcome.state_to_write {
        apply_flow_update(&mut run, &outcome.run_update, naive_now);
        write.state = Some(flow_state_row(&ws, &run.id, s, naive_now));
        let parent = ctx.parent_task.as_ref().map(|(t, _)| t);
        let event =
            events::flow_run_state_event(&run, ctx.flow.as_ref(), parent, current.as_ref(), s);
        write.outbox.push(events::outbox_row(&ws, event, now));
        if outcome.effects.update_subflow_parent_task.is_some() {
            if let Some((task, task_current)) = &ctx.parent_task {
                write.parent_task = mirror_on_parent_task(
                    task,
                    task_current.as_ref().and_then(task_state),
                    s,
                    &run,
                    now,
                );
            }
        }
        write.run = Some(run.clone());
    } else if outcome.run_update.empirical_policy.is_some() {
        apply_flow_update(&mut run, &outcome.run_update, naive_now);
        write.run = Some(run.clone());
    }
    let state = outcome.state_to_write.clone().or(current.clone());
    let applied = Applied {
        result: outcome.response(current.as_ref()),
        written: outcome.state_to_write.is_some(),
        run,
        state,
    };
    (write, applied)
}

/// `UpdateSubflowParentTask`: the parent task run takes a copy of the subflow's state, through
/// the minimal task policy (force) so its run count and times follow.
fn mirror_on_parent_task(
    task: &TaskRunRow,
    current: Option<State>,
    written: &State,
    subflow: &FlowRunRow,
    now: DateTime<Utc>,
) -> Option<(TaskRunRow, crate::storage::rows::TaskRunStateRow)> {
    let subflow_id = Uuid::parse_str(&subflow.id).ok()?;
    let proposed = subflow_parent_task_state(written, subflow_id, new_state_id(), now);
    let outcome = orchestrate(Proposal {
        kind: RunKind::Task,
        run: task_snapshot(task, None),
        current,
        proposed,
        force: true,
        now,
        client_version: None,
        cached_state: None,
        config: OrchestrationConfig::default(),
    });
    let s = outcome.state_to_write.as_ref()?;
    let mut t = task.clone();
    apply_task_update(&mut t, &outcome.run_update, now.naive_utc());
    let row = task_state_row(&t.workspace_id, &t.id, s, now.naive_utc());
    Some((t, row))
}

/// Proposes a state for flow run `run_id`. `None` when there is no such run.
pub async fn set_flow_run_state(
    state: &AppState,
    ws: &WorkspaceId,
    run_id: &FlowRunId,
    req: Request,
) -> StorageResult<Option<Applied<FlowRunRow>>> {
    transition_flow(state, ws, run_id, req, orchestrate).await
}

/// A background service's proposal for flow run `run_id`, applied only while the run's state
/// satisfies `from` ([`crate::orchestration::orchestrate_from`]): services on several replicas
/// that read the same run move it once.
pub async fn service_flow_run_state(
    state: &AppState,
    ws: &WorkspaceId,
    run_id: &FlowRunId,
    req: Request,
    from: fn(StateType) -> bool,
) -> StorageResult<Option<Applied<FlowRunRow>>> {
    let engine = move |p| crate::orchestration::orchestrate_from(p, from);
    transition_flow(state, ws, run_id, req, engine).await
}

/// The task-run twin of [`service_flow_run_state`].
pub async fn service_task_run_state(
    state: &AppState,
    ws: &WorkspaceId,
    run_id: &TaskRunId,
    req: Request,
    from: fn(StateType) -> bool,
) -> StorageResult<Option<Applied<TaskRunRow>>> {
    let now = crate::time::now();
    let engine = move |p| crate::orchestration::orchestrate_from(p, from);
    let out = transitions::transition_task_run(
        &state.stores.orion,
        ws,
        run_id,
        None,
        now.naive_utc(),
        move |ctx| decide_task_with(ctx, &req, now, engine),
    )
    .await?;
    if out.as_ref().is_some_and(|a| a.written) {
        state.outbox_wake.notify_one();
    }
    Ok(out)
}

/// Proposes `Scheduled "Late"` through the late-runs policy (the late-runs service).
pub async fn mark_flow_run_late(
    state: &AppState,
    ws: &WorkspaceId,
    run_id: &FlowRunId,
) -> StorageResult<Option<Applied<FlowRunRow>>> {
    let req = Request {
        state: StateCreate {
            name: Some("Late".into()),
            ..StateCreate::of(StateType::Scheduled)
        },
        force: false,
        client_version: None,
    };
    transition_flow(state, ws, run_id, req, crate::orchestration::mark_late).await
}

/// Decides `req` on flow run `run_id` with `engine` and writes the result; wakes the relay when
/// a state (and its event) was written.
async fn transition_flow(
    state: &AppState,
    ws: &WorkspaceId,
    run_id: &FlowRunId,
    req: Request,
    engine: impl Fn(Proposal) -> Outcome + Copy + Send + Sync + 'static,
) -> StorageResult<Option<Applied<FlowRunRow>>> {
    let now = crate::time::now();
    let out = transitions::transition_flow_run(
        &state.stores.orion,
        ws,
        run_id,
        now.naive_utc(),
        move |ctx| decide_flow_with(ctx, &req, now, engine),
    )
    .await?;
    if out.as_ref().is_some_and(|a| a.written) {
        state.outbox_wake.notify_one();
    }
    Ok(out)
}

/// Creates a flow run with its first state (applied with force, as Prefect does), or answers
/// the id of the existing run with the same idempotency key.
/// `flow` is the run's flow when the caller has already read it.
pub async fn create_flow_run(
    state: &AppState,
    row: FlowRunRow,
    flow: Option<&FlowRow>,
    initial: StateCreate,
) -> StorageResult<Created<Applied<FlowRunRow>, FlowRunId>> {
    let now = row.created.and_utc();
    let req = Request {
        state: initial,
        force: true,
        client_version: None,
    };
    let out = transitions::create_flow_run(&state.stores.orion, row, flow.cloned(), move |ctx| {
        decide_flow(ctx, &req, now)
    })
    .await?;
    if matches!(out, Created::New(_)) {
        state.outbox_wake.notify_one();
    }
    Ok(out)
}

fn decide_task(
    ctx: TaskRunContext,
    req: &Request,
    now: DateTime<Utc>,
) -> (TaskRunWrite, Applied<TaskRunRow>) {
    decide_task_with(ctx, req, now, orchestrate)
}

fn decide_task_with(
    ctx: TaskRunContext,
    req: &Request,
    now: DateTime<Utc>,
    engine: impl Fn(Proposal) -> Outcome,
) -> (TaskRunWrite, Applied<TaskRunRow>) {
    let naive_now = now.naive_utc();
    let current = ctx.current.as_ref().and_then(task_state);
    let flow_run = ctx
        .flow_run
        .as_ref()
        .map(|(fr, s)| (fr, s.as_ref().and_then(flow_state)));
    let proposed = State::from_create(req.state.clone(), new_state_id(), now);
    let outcome: Outcome = engine(Proposal {
        kind: RunKind::Task,
        run: task_snapshot(&ctx.run, flow_run),
        current: current.clone(),
        proposed,
        force: req.force,
        now,
        client_version: req.client_version.clone(),
        cached_state: ctx.cached.as_ref().and_then(task_state),
        config: OrchestrationConfig::default(),
    });
    let mut write = TaskRunWrite::default();
    let mut run = ctx.run.clone();
    if let Some(s) = &outcome.state_to_write {
        apply_task_update(&mut run, &outcome.run_update, naive_now);
        write.state = Some(task_state_row(&run.workspace_id, &run.id, s, naive_now));
        if let Some(c) = &outcome.effects.cache_insert {
            write.cache = Some(CacheRow {
                id: Uuid::new_v4().to_string(),
                workspace_id: run.workspace_id.clone(),
                created: naive_now,
                cache_key: c.cache_key.clone(),
                cache_expiration: c.cache_expiration.map(|t| t.naive_utc()),
                task_run_state_id: c.task_run_state_id.to_string(),
            });
        }
        write.run = Some(run.clone());
    }
    let state = outcome.state_to_write.clone().or(current.clone());
    let applied = Applied {
        result: outcome.response(current.as_ref()),
        written: outcome.state_to_write.is_some(),
        run,
        state,
    };
    (write, applied)
}

/// Proposes a state for task run `run_id` (REST). `None` when there is no such run.
pub async fn set_task_run_state(
    state: &AppState,
    ws: &WorkspaceId,
    run_id: &TaskRunId,
    req: Request,
) -> StorageResult<Option<Applied<TaskRunRow>>> {
    let now = crate::time::now();
    let cache_key = req
        .state
        .state_details
        .as_ref()
        .and_then(|d| d.cache_key.clone());
    transitions::transition_task_run(
        &state.stores.orion,
        ws,
        run_id,
        cache_key.as_deref(),
        now.naive_utc(),
        move |ctx| decide_task(ctx, &req, now),
    )
    .await
}

/// Creates a task run (REST) with its first state, or answers the id of the existing run with
/// the same (flow_run_id, task_key, dynamic_key).
pub async fn create_task_run(
    state: &AppState,
    row: TaskRunRow,
    initial: StateCreate,
) -> StorageResult<Created<Applied<TaskRunRow>, TaskRunId>> {
    let now = row.created.and_utc();
    let cache_key = initial
        .state_details
        .as_ref()
        .and_then(|d| d.cache_key.clone());
    let req = Request {
        state: initial,
        force: true,
        client_version: None,
    };
    transitions::create_task_run(&state.stores.orion, row, cache_key, move |ctx| {
        decide_task(ctx, &req, now)
    })
    .await
}
