//! The HTTP layer: one router per resource, merged here; server-wide layers in [`finish`].
//!
//! Each `http/<resource>.rs` exposes `router() -> Router<App>` (state attached once,
//! by the server). Adding a resource is one `.merge(...)` line in [`api_router`].

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod builds;
pub mod capsules;
pub mod channels;
pub mod dashboard;
pub mod docs;
pub mod events;
pub mod exec;
pub mod files;
pub mod formatters;
pub mod health;
pub mod hosts;
pub mod me;
pub mod oauth;
pub mod paging;
pub mod proxy;
pub mod snapshots;
pub mod teams;
pub mod users;
pub mod views;

use crate::app::App;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::trace::TraceLayer;
use wrenn_extension_api::error::ErrorCause;
use wrenn_extension_api::ApiError;

/// Every core route.
pub fn api_router() -> Router<App> {
    Router::new()
        .merge(health::router())
        .merge(docs::router())
        .merge(auth::router())
        .merge(oauth::router())
        .merge(me::router())
        .merge(teams::router())
        .merge(api_keys::router())
        .merge(users::router())
        .merge(capsules::router())
        .merge(channels::router())
        .merge(formatters::router())
        .merge(exec::router())
        .merge(files::router())
        .merge(snapshots::router())
        .merge(builds::router())
        .merge(hosts::router())
        .merge(audit::router())
        .merge(events::router())
        .merge(admin::router())
}

/// Fallbacks (the dashboard for non-API paths, else the error envelope), 5xx logging and
/// request spans.
pub fn finish<S>(router: Router<S>, web_dir: Option<&std::path::Path>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .fallback_service(dashboard::Dashboard::find(web_dir))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(log_server_errors))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), route = %route)
        }))
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed for this endpoint",
    )
}

/// Logs 5xx responses with their internal cause (which never reaches the client).
async fn log_server_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    if response.status().is_server_error() {
        let cause = response
            .extensions()
            .get::<ErrorCause>()
            .map(|c| c.0.as_str())
            .unwrap_or("-");
        tracing::error!(%method, %path, status = response.status().as_u16(), cause, "Request failed.");
    }
    response.into_response()
}
