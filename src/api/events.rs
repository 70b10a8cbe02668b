//! `/events`: the `/events/in` websocket and `POST /events` (a bare array of events, 204).

use actix_web::{web, HttpResponse};

use crate::error::{ApiError, ApiResult};
use crate::event_model::MAX_EVENT_BYTES;
use crate::events::{self, Event};
use crate::extract::json::Json;
use crate::extract::Workspace;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events/in", web::get().to(events::websocket::events_in))
        .route("/events/out", web::get().to(events::stream_out::events_out))
        .route("/events", web::post().to(create))
        .route("/events/", web::post().to(create));
}

async fn create(
    state: web::Data<AppState>,
    ws: Workspace,
    body: Json<Vec<Event>>,
) -> ApiResult<HttpResponse> {
    let events = body.into_inner();
    for (i, e) in events.iter().enumerate() {
        e.validate()
            .map_err(|msg| ApiError::invalid(vec!["body".into(), i.into()], msg, "value_error"))?;
        let size = serde_json::to_vec(e).map_or(0, |v| v.len());
        if size > MAX_EVENT_BYTES {
            return Err(ApiError::invalid(
                vec!["body".into(), i.into()],
                format!("Event is too large ({size} > {MAX_EVENT_BYTES} bytes)"),
                "value_error",
            ));
        }
    }
    events::ingest(&state, ws.id(), events).await?;
    Ok(HttpResponse::NoContent().finish())
}
