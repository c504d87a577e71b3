//! envd's plain HTTP API: one router per resource, merged here.
pub mod files;
pub mod system;
pub mod tunnel;

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::StatusCode;

use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .merge(system::router())
        .merge(files::router())
        .merge(tunnel::router())
}

/// `{"error":{"code","message"}}` with a status.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

/// An HTTP handler failure.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let (status, code) = match e.kind() {
            NotFound => (StatusCode::NOT_FOUND, "not_found"),
            PermissionDenied => (StatusCode::FORBIDDEN, "forbidden"),
            InvalidInput | IsADirectory | NotADirectory => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            AlreadyExists => (StatusCode::CONFLICT, "conflict"),
            StorageFull => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl From<crate::users::UserError> for HttpError {
    fn from(e: crate::users::UserError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, message = %self.message, "Request failed.");
        }
        error_response(self.status, self.code, &self.message)
    }
}
