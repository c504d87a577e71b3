//! `GET /health`.

use crate::app::App;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the database answers, `degraded` otherwise.
    pub status: &'static str,
    pub version: String,
}

pub fn router() -> Router<App> {
    Router::new()
        .route("/metrics", get(crate::metrics::serve))
        .route("/health", get(health))
}

/// Liveness and version.
#[utoipa::path(get, path = "/health", tag = "meta", responses((status = 200, body = Health)))]
pub async fn health(State(ctx): State<App>) -> Json<Health> {
    let db_ok = crate::db::ping(ctx.db()).await.is_ok();
    Json(Health {
        status: if db_ok { "ok" } else { "degraded" },
        version: ctx.config().version.clone(),
    })
}
