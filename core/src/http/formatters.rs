//! `GET /v1/admin/formatters`: the WebAssembly formatters of `WRENN_FORMATTERS_DIR`, loaded or
//! not (with why), for platform admins.

use crate::app::App;
use crate::formatters::FormatterStatus;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use wrenn_extension_api::{ApiError, RequireAdmin};

use super::views::ErrorEnvelope;

/// The formatter routes' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list), components(schemas(FormatterStatus)))]
pub struct FormattersApi;

pub fn router() -> Router<App> {
    Router::new().route("/v1/admin/formatters", get(list))
}

/// Every formatter directory with its state (a bare array; empty when no directory is set).
#[utoipa::path(get, path = "/v1/admin/formatters", tag = "admin",
    responses((status = 200, body = [FormatterStatus]), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope, description = "not a platform admin")))]
pub async fn list(
    State(ctx): State<App>,
    RequireAdmin(_admin): RequireAdmin,
) -> Result<Json<Vec<FormatterStatus>>, ApiError> {
    Ok(Json(
        ctx.formatters
            .as_ref()
            .map(|w| w.statuses())
            .unwrap_or_default(),
    ))
}
