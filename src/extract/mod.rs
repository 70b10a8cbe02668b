//! Request extractors shared by every HTTP handler (the API and the event websockets): the
//! workspace a request is scoped to, JSON bodies with Prefect's validation errors, paging and
//! typed path segments. Below `api`, `events` and `ui`; above storage only for `Page`.

pub mod json;
pub mod params;
pub mod strict;
pub mod workspace;

pub use json::{Json, JsonOrDefault};
pub use params::Paging;
pub use workspace::Workspace;
