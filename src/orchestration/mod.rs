//! Orchestration (orion): Prefect's state-transition rules as a pure engine.
//!
//! `orchestrate(Proposal) -> Outcome` decides a `set_state` call the way Prefect 3.9's
//! server does (`prefect/server/orchestration/{core_policy,global_policy,rules}.py`): which
//! policy applies, every rule's ACCEPT / REJECT / WAIT / ABORT with Prefect's reasons, the
//! state to write, the run's new column values and the writes the caller must make
//! (cache rows, queue pushes, concurrency releases, subflow parent task updates).
//!
//! Owns: the state model types, run retry policies, the rules and the global transforms.
//! Must not touch: the database, HTTP, async, clocks or randomness — the caller reads what the
//! rules need in the same transaction (`RunSnapshot`, `Proposal::cached_state`), passes `now`
//! and a fresh state id, and performs the writes listed in `Outcome`.

mod common_rules;
mod engine;
mod flow_rules;
mod global;
mod policy;
mod proposal;
mod results;
mod run_policy;
mod states;
mod task_rules;

#[cfg(test)]
mod tests;

pub use engine::{mark_late, orchestrate, orchestrate_from, orchestrate_with};
pub use policy::rule_names;
pub use proposal::{
    CacheInsert, DeploymentConcurrency, EnclosingFlowRun, OrchestrationConfig, Outcome, PolicyKind,
    Proposal, RunKind, RunSnapshot, RunUpdate, SideEffects, TaskQueueAction,
};
pub use results::{OrchestrationDetails, OrchestrationResult, SetStateStatus};
pub use run_policy::{FlowRunPolicy, TaskRetryDelay, TaskRunPolicy};
pub use states::{
    subflow_parent_task_state, State, StateCreate, StateDetails, StateType, UnknownStateType,
};
