//! Files inside a running capsule: write (multipart, capped), read, streaming write/read
//! (64 KiB chunks, no cap, never buffering the whole file), list, mkdir, remove.

use crate::app::App;
use crate::capsules::agent::{status_to_api, AgentClient};
use crate::capsules::lifecycle;
use axum::body::{Body, Bytes};
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;
use wrenn_extension_api::{ids, ApiError, ApiJson, ApiPath, RequireSessionOrApiKey};
use wrenn_proto::hostagent::v1 as pb;

/// Size of the chunks sent to the agent.
pub const CHUNK: usize = 64 * 1024;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/capsules/{id}/files/write", post(write))
        .route("/v1/capsules/{id}/files/read", post(read))
        .route("/v1/capsules/{id}/files/stream/write", post(stream_write))
        .route("/v1/capsules/{id}/files/stream/read", post(stream_read))
        .route("/v1/capsules/{id}/files/list", post(list))
        .route("/v1/capsules/{id}/files/mkdir", post(mkdir))
        .route("/v1/capsules/{id}/files/remove", post(remove))
        // Uploads are bounded by the handlers (100 MB for `write`, none for streams).
        .layer(DefaultBodyLimit::disable())
}

/// An entry of a directory listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileEntry {
    pub name: String,
    pub path: String,
    /// `file`, `directory` or `symlink`.
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub mode: u32,
    /// e.g. `-rwxr-xr-x`.
    pub permissions: String,
    pub owner: String,
    pub group: String,
    /// Unix seconds.
    pub modified_at: i64,
    pub symlink_target: String,
}

impl From<pb::FileEntry> for FileEntry {
    fn from(e: pb::FileEntry) -> Self {
        Self {
            name: e.name,
            path: e.path,
            kind: e.r#type,
            size: e.size,
            mode: e.mode,
            permissions: e.permissions,
            owner: e.owner,
            group: e.group,
            modified_at: e.modified_at,
            symlink_target: e.symlink_target,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PathRequest {
    pub path: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ListRequest {
    pub path: String,
    /// How deep to descend (default 1: the directory's own entries).
    #[serde(default)]
    pub depth: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FileList {
    pub entries: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryResponse {
    pub entry: FileEntry,
}

fn bad_multipart(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::invalid(format!("invalid multipart body: {}", e.body_text()))
    }
}

/// A body that is not `multipart/form-data` with a boundary, as the error envelope (axum's
/// own rejection is plain text).
fn not_multipart(e: MultipartRejection) -> ApiError {
    ApiError::invalid(format!("invalid multipart body: {}", e.body_text()))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "the file exceeds the upload limit; use /files/stream/write",
    )
}

fn check_path(path: &str) -> Result<(), ApiError> {
    if path.is_empty() {
        return Err(ApiError::invalid("path is required"));
    }
    Ok(())
}

async fn capsule(
    ctx: &App,
    principal: &wrenn_extension_api::Principal,
    id: &str,
) -> Result<(String, AgentClient), ApiError> {
    let (row, client) = lifecycle::usable(ctx, principal, id, "access files of").await?;
    let ctx2 = ctx.clone();
    let capsule_id = row.id;
    ctx.spawn(async move {
        let _ = crate::db::capsules::touch(ctx2.db(), capsule_id).await;
    });
    Ok((ids::encode(ids::CAPSULE, row.id), client))
}

/// Sends `header` then whatever arrives on the returned sender to WriteFileStream; the
/// returned task resolves to the agent's answer once the sender is dropped.
fn open_write(
    mut client: AgentClient,
    header: pb::WriteFileStreamHeader,
) -> (
    mpsc::Sender<pb::WriteFileStreamRequest>,
    tokio::task::JoinHandle<Result<u64, ApiError>>,
) {
    let (tx, rx) = mpsc::channel::<pb::WriteFileStreamRequest>(8);
    let first = pb::WriteFileStreamRequest {
        part: Some(pb::write_file_stream_request::Part::Header(header)),
    };
    let outbound = futures::stream::once(async move { first }).chain(ReceiverStream::new(rx));
    let task = tokio::spawn(async move {
        client
            .write_file_stream(outbound)
            .await
            .map(|r| r.into_inner().bytes_written)
            .map_err(status_to_api)
    });
    (tx, task)
}

fn chunk(data: Bytes) -> pb::WriteFileStreamRequest {
    pb::WriteFileStreamRequest {
        part: Some(pb::write_file_stream_request::Part::Chunk(data)),
    }
}

/// Forwards a multipart field to `tx` in chunks of at most [`CHUNK`] bytes.
async fn forward_field(
    field: &mut Field<'_>,
    tx: &mpsc::Sender<pb::WriteFileStreamRequest>,
) -> Result<bool, ApiError> {
    while let Some(mut data) = field.chunk().await.map_err(bad_multipart)? {
        while !data.is_empty() {
            let part = data.split_to(data.len().min(CHUNK));
            if tx.send(chunk(part)).await.is_err() {
                return Ok(false); // the agent ended the call; its answer says why
            }
        }
    }
    Ok(true)
}

/// Uploads a file (multipart fields `path` and `file`). Files above the cap (100 MB by
/// default) are refused with 413 `too_large` and nothing is written.
#[utoipa::path(post, path = "/v1/capsules/{id}/files/write", tag = "files",
    params(("id" = String, Path)),
    request_body(content_type = "multipart/form-data", description = "fields `path` and `file`"),
    responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 204), (status = 413, description = "`too_large`")))]
pub async fn write(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<StatusCode, ApiError> {
    let mut multipart = multipart.map_err(not_multipart)?;
    let (sandbox_id, client) = capsule(&ctx, &principal, &id).await?;
    let cap = ctx.capsules.max_upload_bytes;
    let mut path = None;
    let mut content: Option<Vec<Bytes>> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        match field.name() {
            Some("path") => path = Some(field.text().await.map_err(bad_multipart)?),
            Some("file") => {
                let mut parts = Vec::new();
                let mut size: u64 = 0;
                while let Some(data) = field.chunk().await.map_err(bad_multipart)? {
                    size += data.len() as u64;
                    if size > cap {
                        // Read the rest away so the client gets the answer rather than a
                        // reset connection; nothing has been sent to the capsule.
                        drop(parts);
                        while let Ok(Some(_)) = field.chunk().await {}
                        drop(field);
                        while let Ok(Some(mut f)) = multipart.next_field().await {
                            while let Ok(Some(_)) = f.chunk().await {}
                        }
                        return Err(too_large());
                    }
                    parts.push(data);
                }
                content = Some(parts);
            }
            _ => {}
        }
    }
    let path = path.ok_or_else(|| ApiError::invalid("multipart field `path` is required"))?;
    check_path(&path)?;
    let content = content.ok_or_else(|| ApiError::invalid("multipart field `file` is required"))?;
    let (tx, task) = open_write(
        client,
        pb::WriteFileStreamHeader {
            sandbox_id,
            path,
            user: String::new(),
        },
    );
    for mut data in content {
        while !data.is_empty() {
            let part = data.split_to(data.len().min(CHUNK));
            if tx.send(chunk(part)).await.is_err() {
                break;
            }
        }
    }
    drop(tx);
    task.await
        .map_err(|e| ApiError::internal(format!("upload task: {e}")))??;
    Ok(StatusCode::NO_CONTENT)
}

/// Uploads a file of any size, streamed to the capsule in 64 KiB chunks as it arrives
/// (multipart: the `path` field must come before `file`).
#[utoipa::path(post, path = "/v1/capsules/{id}/files/stream/write", tag = "files",
    params(("id" = String, Path)),
    request_body(content_type = "multipart/form-data", description = "fields `path` then `file`"),
    responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 204)))]
pub async fn stream_write(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<StatusCode, ApiError> {
    let mut multipart = multipart.map_err(not_multipart)?;
    let (sandbox_id, client) = capsule(&ctx, &principal, &id).await?;
    let mut path = None;
    let mut written = false;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        match field.name() {
            Some("path") => path = Some(field.text().await.map_err(bad_multipart)?),
            Some("file") => {
                let path = path
                    .clone()
                    .ok_or_else(|| ApiError::invalid("the `path` field must come before `file`"))?;
                check_path(&path)?;
                let (tx, task) = open_write(
                    client.clone(),
                    pb::WriteFileStreamHeader {
                        sandbox_id: sandbox_id.clone(),
                        path,
                        user: String::new(),
                    },
                );
                let forwarded = forward_field(&mut field, &tx).await;
                drop(tx);
                let answer = task
                    .await
                    .map_err(|e| ApiError::internal(format!("upload task: {e}")))?;
                forwarded?;
                answer?;
                written = true;
            }
            _ => {}
        }
    }
    if !written {
        return Err(ApiError::invalid("multipart field `file` is required"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Opens ReadFileStream and waits for its first chunk, so a missing file is a proper 404
/// before any response header is sent.
async fn open_read(
    client: &mut AgentClient,
    sandbox_id: String,
    path: String,
) -> Result<(Option<Bytes>, tonic::Streaming<pb::FileChunk>), ApiError> {
    let mut stream = client
        .read_file_stream(pb::ReadFileRequest {
            sandbox_id,
            path,
            user: String::new(),
        })
        .await
        .map_err(status_to_api)?
        .into_inner();
    let first = stream
        .message()
        .await
        .map_err(status_to_api)?
        .map(|c| c.data);
    Ok((first, stream))
}

fn octet_stream(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

/// Downloads a file.
#[utoipa::path(post, path = "/v1/capsules/{id}/files/read", tag = "files",
    params(("id" = String, Path)), request_body = PathRequest,
    responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404)))]
pub async fn read(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PathRequest>,
) -> Result<Response, ApiError> {
    check_path(&req.path)?;
    let (sandbox_id, mut client) = capsule(&ctx, &principal, &id).await?;
    let (first, mut stream) = open_read(&mut client, sandbox_id, req.path).await?;
    let mut content = Vec::new();
    if let Some(first) = first {
        content.extend_from_slice(&first);
    }
    while let Some(c) = stream.message().await.map_err(status_to_api)? {
        content.extend_from_slice(&c.data);
    }
    Ok(octet_stream(Body::from(content)))
}

/// Downloads a file of any size as a chunked stream.
#[utoipa::path(post, path = "/v1/capsules/{id}/files/stream/read", tag = "files",
    params(("id" = String, Path)), request_body = PathRequest,
    responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404)))]
pub async fn stream_read(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PathRequest>,
) -> Result<Response, ApiError> {
    check_path(&req.path)?;
    let (sandbox_id, mut client) = capsule(&ctx, &principal, &id).await?;
    let (first, stream) = open_read(&mut client, sandbox_id, req.path).await?;
    let rest = stream.map(|r| {
        r.map(|c| c.data)
            .map_err(|s| std::io::Error::other(s.message().to_string()))
    });
    let body = futures::stream::iter(first.map(Ok)).chain(rest);
    Ok(octet_stream(Body::from_stream(body)))
}

/// Lists a directory.
#[utoipa::path(post, path = "/v1/capsules/{id}/files/list", tag = "files",
    params(("id" = String, Path)), request_body = ListRequest,
    responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 200, body = FileList)))]
pub async fn list(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ListRequest>,
) -> Result<Json<FileList>, ApiError> {
    check_path(&req.path)?;
    let (sandbox_id, mut client) = capsule(&ctx, &principal, &id).await?;
    let resp = client
        .list_dir(pb::ListDirRequest {
            sandbox_id,
            path: req.path,
            depth: req.depth.unwrap_or(1),
        })
        .await
        .map_err(status_to_api)?
        .into_inner();
    Ok(Json(FileList {
        entries: resp.entries.into_iter().map(FileEntry::from).collect(),
    }))
}

/// Creates a directory (and its parents).
#[utoipa::path(post, path = "/v1/capsules/{id}/files/mkdir", tag = "files",
    params(("id" = String, Path)), request_body = PathRequest,
    responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 200, body = EntryResponse)))]
pub async fn mkdir(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PathRequest>,
) -> Result<Json<EntryResponse>, ApiError> {
    check_path(&req.path)?;
    let (sandbox_id, mut client) = capsule(&ctx, &principal, &id).await?;
    let resp = client
        .make_dir(pb::MakeDirRequest {
            sandbox_id,
            path: req.path,
        })
        .await
        .map_err(status_to_api)?
        .into_inner();
    let entry = resp
        .entry
        .ok_or_else(|| ApiError::internal("agent returned no entry"))?;
    Ok(Json(EntryResponse {
        entry: entry.into(),
    }))
}

/// Removes a file or directory (recursively).
#[utoipa::path(post, path = "/v1/capsules/{id}/files/remove", tag = "files",
    params(("id" = String, Path)), request_body = PathRequest,
    responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 204), (status = 404)))]
pub async fn remove(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PathRequest>,
) -> Result<StatusCode, ApiError> {
    check_path(&req.path)?;
    let (sandbox_id, mut client) = capsule(&ctx, &principal, &id).await?;
    client
        .remove_path(pb::RemovePathRequest {
            sandbox_id,
            path: req.path,
        })
        .await
        .map_err(status_to_api)?;
    Ok(StatusCode::NO_CONTENT)
}
