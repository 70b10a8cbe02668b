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

/// The API's URL as a page on this request's host reaches it: the API host when there is one
/// (on this listener's port when the name has none), else this host's `/api`.
pub fn api_url(req: &actix_web::HttpRequest, state: &crate::state::AppState) -> String {
    let conn = req.connection_info();
    match state.settings.api_host() {
        Some(host) if host.contains(':') => format!("{}://{host}/api", conn.scheme()),
        Some(host) => {
            let here = conn.host();
            let port = here
                .strip_prefix(crate::settings::host_name(here))
                .unwrap_or("");
            format!("{}://{host}{port}/api", conn.scheme())
        }
        None => format!("{}://{}/api", conn.scheme(), conn.host()),
    }
}
