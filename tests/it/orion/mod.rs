//! The orion core routes against a real server: flows, flow runs, set_state, states, task runs,
//! logs, events and the task-run recorder, concurrency leases — status codes and bodies,
//! including bad input. Nothing answers 500.

mod event_queries;
mod events;
mod flow_runs;
mod flows;
mod leases;
mod transitions;
