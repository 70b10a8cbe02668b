//! Scheduling: deployment schedules (`schedule`: parsing, validation, next dates; pure) and the
//! planning of scheduled runs (`plan`), shared by the scheduler service and the API.

pub mod plan;
mod recurrence;
pub mod schedule;

pub use schedule::Schedule;
