//! Server-sent events: `GET /v1/events/stream` (the caller's team, session or API key) and
//! `GET /v1/admin/events/stream` (platform admins, every team). Each SSE message is named
//! after the event type and carries the API.md payload as `data`. Lifecycle events and the
//! transient `capsule.state.changed` both flow here; the stream ends on server shutdown.

use crate::app::App;
use crate::events::live::LiveEvents;
use crate::events::Event;
use axum::extract::State;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;
use wrenn_extension_api::{ids, ApiError, RequireAdmin, RequireSessionOrApiKey};

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/events/stream", get(team_stream))
        .route("/v1/admin/events/stream", get(admin_stream))
}

#[utoipa::path(get, path = "/v1/events/stream", tag = "events",
    description = "Server-sent events of the caller's team: lifecycle events and `capsule.state.changed`; each message is named after the event and carries the API payload.",
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, description = "text/event-stream")))]
pub(crate) async fn team_stream(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    stream(&ctx, Some(principal.team_id()))
}

#[utoipa::path(get, path = "/v1/admin/events/stream", tag = "events", description = "Every team's events (platform admins).",
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, description = "text/event-stream")))]
pub(crate) async fn admin_stream(
    State(ctx): State<App>,
    RequireAdmin(_admin): RequireAdmin,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    stream(&ctx, None)
}

fn stream(
    ctx: &App,
    team: Option<Uuid>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let live: Arc<LiveEvents> = ctx.live.clone();
    let receiver = live.subscribe();
    let shutdown = ctx.shutdown_token().clone();
    let team_wire = team.map(|t| ids::encode(ids::TEAM, t));
    let events = futures::stream::unfold(
        (receiver, shutdown, team_wire),
        |(mut receiver, shutdown, team_wire)| async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    r = receiver.recv() => r,
                };
                match next {
                    Ok(event) => {
                        if team_wire.as_ref().is_some_and(|t| *t != event.team_id) {
                            continue;
                        }
                        let message = to_sse(&event);
                        return Some((Ok(message), (receiver, shutdown, team_wire)));
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(skipped = n, "SSE client lagged; events skipped.");
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn to_sse(event: &Event) -> sse::Event {
    sse::Event::default()
        .event(&event.event)
        .data(event.to_json())
}
