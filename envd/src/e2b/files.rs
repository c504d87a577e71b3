//! E2B's plain HTTP API: `/health`, `/envs` and `/files`, on envd's own file transfer
//! ([`crate::http::files`]). Errors answer `{"code": <HTTP status>, "message"}`, as E2B's envd.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;

use super::{Caller, E2b};
use crate::http::files::{receive_files, send_file, UploadedEntry};
use crate::http::HttpError;
use crate::users::User;

pub fn router() -> Router<Arc<E2b>> {
    Router::new()
        .route("/health", get(health))
        .route("/envs", get(envs))
        .route("/files", get(download).post(upload))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestDecompressionLayer::new().gzip(true))
        .layer(CompressionLayer::new().gzip(true))
}

/// `signature` and `signature_expiration` are accepted and not checked: the tunnel that
/// carries the request is authenticated already.
#[derive(Debug, Deserialize)]
struct FileQuery {
    path: Option<String>,
    username: Option<String>,
}

/// An HTTP failure in E2B's shape.
struct FileError(HttpError);

impl From<HttpError> for FileError {
    fn from(e: HttpError) -> Self {
        Self(e)
    }
}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for FileError {
    fn into_response(self) -> Response {
        let HttpError {
            status, message, ..
        } = self.0;
        if status.is_server_error() {
            tracing::warn!(%status, %message, "E2B file transfer failed.");
        }
        let body = serde_json::json!({ "code": status.as_u16(), "message": message });
        (status, Json(body)).into_response()
    }
}

async fn health() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn envs(State(e2b): State<Arc<E2b>>) -> Json<BTreeMap<String, String>> {
    Json(e2b.capsule.defaults().env_vars)
}

fn user(q: &FileQuery, caller: Caller) -> Result<User, FileError> {
    let name = q
        .username
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or(caller.0);
    Ok(crate::users::lookup(&name).map_err(HttpError::from)?)
}

async fn download(
    Query(q): Query<FileQuery>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response<Body>, FileError> {
    let user = user(&q, caller)?;
    let path = q
        .path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| HttpError::bad_request("the path query parameter is required"))?;
    Ok(send_file(&path, &user, &headers)?)
}

async fn upload(
    Query(q): Query<FileQuery>,
    caller: Caller,
    request: Request,
) -> Result<Json<Vec<UploadedEntry>>, FileError> {
    let user = user(&q, caller)?;
    Ok(Json(receive_files(&user, q.path, request).await?))
}
