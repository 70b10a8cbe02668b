//! Background services: the scheduler, late runs, the foreman (worker health), cancellation
//! cleanup, pause expirations, the lease repossessor, deleted workspaces' rows and the heap
//! trim. Each implements
//! `crate::service::Service`.

pub mod cancellation;
pub mod event_retention;
pub mod foreman;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub mod heap_trim;
pub mod late_runs;
pub mod pause_expirations;
pub mod repossessor;
pub mod scheduler;
pub mod workspace_deletion;
