//! File transfer: `GET /files` streams a file out (gzip on request, byte ranges), `POST
//! /files` streams one in (multipart or raw body) through a temporary file renamed into
//! place, so an upload that fails half-way leaves nothing behind.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::{header, HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::CompressionLayer;
use wrenn_proto::envd::v1::{EntryInfo, FileType};

use super::HttpError;
use crate::state::AppState;
use crate::users::{Names, User};

/// Download chunk size; one blocking read per chunk.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the client.
const READ_AHEAD: usize = 4;
/// Upload write size; one blocking write per buffer.
const WRITE_BUF: usize = 1 << 20;
/// Upload buffers queued to the writer.
const WRITE_AHEAD: usize = 2;

pub fn router() -> Router<Arc<AppState>> {
    // Ranges are never compressed: a gzip stream of part of a file is not what was asked.
    let not_partial =
        |status: StatusCode, _: http::Version, _: &HeaderMap, _: &http::Extensions| {
            status != StatusCode::PARTIAL_CONTENT
        };
    let compression = CompressionLayer::new()
        .gzip(true)
        .compress_when(DefaultPredicate::new().and(not_partial));
    Router::new()
        .route("/files", get(download).post(upload))
        .layer(DefaultBodyLimit::disable())
        .layer(compression)
}

#[derive(Debug, Deserialize)]
pub struct FileQuery {
    pub path: Option<String>,
    pub user: Option<String>,
}

fn user(state: &AppState, q: &FileQuery) -> Result<User, HttpError> {
    Ok(crate::users::lookup(
        &state.capsule.user_or_default(q.user.as_deref()),
    )?)
}

/// Parses a single `bytes=` range against a file of `len` bytes: `Ok(None)` for no usable
/// range header, `Err(())` for an unsatisfiable one.
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // Several ranges: serve the whole file, as RFC 9110 allows.
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (s, "") => (s.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (s, e) => {
            let s: u64 = s.parse().map_err(|_| ())?;
            let e: u64 = e.parse().map_err(|_| ())?;
            (s, e.min(len.saturating_sub(1)))
        }
    };
    if start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn download(
    State(state): State<Arc<AppState>>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> Result<Response<Body>, HttpError> {
    let user = user(&state, &q)?;
    send_file(q.path.as_deref().unwrap_or(""), &user, &headers)
}

/// The response for a download of `path` (resolved for `user`), honouring `Range`.
pub fn send_file(
    path: &str,
    user: &User,
    headers: &HeaderMap,
) -> Result<Response<Body>, HttpError> {
    let path = crate::filesystem::resolve(path, user)?;
    let file = std::fs::File::open(&path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(HttpError::bad_request(format!(
            "{} is a directory",
            path.display()
        )));
    }
    let len = meta.len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().replace('"', ""))
        .unwrap_or_default();
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        );
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len));
    let response = match range {
        Some(Err(())) => builder
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .body(Body::empty()),
        Some(Ok(Some((start, end)))) => {
            let body = file_body(file, start, end - start + 1);
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .header(header::CONTENT_LENGTH, end - start + 1)
                .body(body)
        }
        Some(Ok(None)) | None => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, len)
            .body(file_body(file, 0, len)),
    };
    response.map_err(|e| HttpError::from(std::io::Error::other(e)))
}

/// Streams `len` bytes of `file` from `start`, read by one blocking task a few chunks ahead
/// (cheaper than a thread-pool hop per read, as `tokio::fs` would do).
fn file_body(mut file: std::fs::File, start: u64, len: u64) -> Body {
    use std::io::{Read, Seek};
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(std::io::SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let mut buf = vec![0u8; CHUNK.min(left as usize)];
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return; // The client went away.
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// An uploaded file, as stored.
#[derive(Debug, Serialize)]
pub struct UploadedEntry {
    pub name: String,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
}

impl From<EntryInfo> for UploadedEntry {
    fn from(e: EntryInfo) -> Self {
        let kind = match FileType::try_from(e.r#type) {
            Ok(FileType::Directory) => "directory",
            Ok(FileType::Symlink) => "symlink",
            _ => "file",
        };
        Self {
            name: e.name,
            path: e.path,
            kind,
            size: e.size,
        }
    }
}

async fn upload(
    State(state): State<Arc<AppState>>,
    Query(q): Query<FileQuery>,
    request: Request,
) -> Result<Json<Vec<UploadedEntry>>, HttpError> {
    let user = user(&state, &q)?;
    Ok(Json(receive_files(&user, q.path, request).await?))
}

/// Stores an upload for `user`: a raw body goes to `path`; in a multipart body the first file
/// part goes to `path` (or a `path` field) and, without one, each part to its file name.
pub async fn receive_files(
    user: &User,
    path: Option<String>,
    request: Request,
) -> Result<Vec<UploadedEntry>, HttpError> {
    let q = FileQuery { path, user: None };
    let target = |given: Option<&str>| -> Result<PathBuf, HttpError> {
        match given.filter(|p| !p.is_empty()) {
            Some(p) => Ok(crate::filesystem::resolve(p, user)?),
            None => Err(HttpError::bad_request(
                "a destination path is required (?path= or a file name)",
            )),
        }
    };
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let mut written = Vec::new();
    if !is_multipart {
        let path = target(q.path.as_deref())?;
        let body = request.into_body().into_data_stream();
        written.push(write_atomically(&path, user, body).await?);
    } else {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| HttpError::bad_request(e.body_text()))?;
        let mut path_field: Option<String> = None;
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    return Err(HttpError::bad_request(format!(
                        "malformed multipart body: {}",
                        e.body_text()
                    )))
                }
            };
            if field.file_name().is_none() && field.name() == Some("path") {
                path_field = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| HttpError::bad_request(e.body_text()))?,
                );
                continue;
            }
            if field.file_name().is_none() && field.name() != Some("file") {
                continue;
            }
            // One destination names one file; without it each part is stored under its own name.
            let destination = match (&q.path, &path_field) {
                (Some(p), _) | (None, Some(p)) if written.is_empty() => target(Some(p))?,
                (Some(_), _) | (None, Some(_)) => {
                    return Err(HttpError::bad_request(
                        "one destination path but several files",
                    ))
                }
                (None, None) => target(field.file_name())?,
            };
            let body = field.map(|chunk| chunk.map_err(|e| e.body_text()));
            written.push(write_atomically(&destination, user, body).await?);
        }
        if written.is_empty() {
            return Err(HttpError::bad_request("no file part in the multipart body"));
        }
    }
    Ok(written)
}

static UPLOADS: AtomicU64 = AtomicU64::new(0);

/// Streams `body` into a temporary file beside `path`, then renames it into place. Missing
/// parent directories are created and, like the file, owned by `user`.
async fn write_atomically<S, E>(
    path: &Path,
    user: &User,
    body: S,
) -> Result<UploadedEntry, HttpError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let parent = path
        .parent()
        .ok_or_else(|| HttpError::bad_request("cannot write to /"))?
        .to_path_buf();
    {
        let (parent, user) = (parent.clone(), user.clone());
        tokio::task::spawn_blocking(move || crate::filesystem::create_parents(&parent, &user))
            .await
            .map_err(|e| HttpError::from(std::io::Error::other(e)))??;
    }
    if tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir()) {
        return Err(HttpError::bad_request(format!(
            "{} is a directory",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!(
        ".{name}.envd-upload-{}-{}",
        std::process::id(),
        UPLOADS.fetch_add(1, Ordering::Relaxed)
    ));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&temp)
        .await?
        .into_std()
        .await;
    let copied = copy_body(body, file).await;
    let finished = match copied {
        Ok(()) => finish(&temp, path, user).await,
        Err(e) => Err(e),
    };
    if let Err(e) = finished {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e);
    }
    let path = path.to_path_buf();
    let entry =
        tokio::task::spawn_blocking(move || crate::filesystem::entry(&path, &Names::load()))
            .await
            .map_err(|e| HttpError::from(std::io::Error::other(e)))??;
    Ok(entry.into())
}

/// Writes `body` to `file` and syncs it. The body's chunks are gathered into buffers of
/// [`WRITE_BUF`] bytes, each written by one call of a blocking writer task that works while
/// the next buffer fills (a thread hand-off per small chunk costs more than the copy).
async fn copy_body<S, E>(mut body: S, file: std::fs::File) -> Result<(), HttpError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use std::io::Write;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_AHEAD);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let mut file = file;
        while let Some(buf) = rx.blocking_recv() {
            file.write_all(&buf)?;
        }
        Ok(file)
    });
    let fed: Result<(), HttpError> = async {
        let mut pending = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| HttpError::bad_request(format!("upload interrupted: {e}")))?;
            let full = if pending.is_empty() && chunk.len() >= WRITE_BUF {
                chunk
            } else {
                if pending.is_empty() {
                    pending.reserve(WRITE_BUF.max(chunk.len()));
                }
                pending.extend_from_slice(&chunk);
                if pending.len() < WRITE_BUF {
                    continue;
                }
                pending.split().freeze()
            };
            if tx.send(full).await.is_err() {
                return Ok(()); // The writer failed; its error is the answer.
            }
        }
        if !pending.is_empty() {
            let _ = tx.send(pending.freeze()).await;
        }
        Ok(())
    }
    .await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| HttpError::from(std::io::Error::other(e)))?;
    fed?;
    let file = written?;
    tokio::task::spawn_blocking(move || file.sync_data())
        .await
        .map_err(|e| HttpError::from(std::io::Error::other(e)))??;
    Ok(())
}

async fn finish(temp: &Path, path: &Path, user: &User) -> Result<(), HttpError> {
    // An overwritten file keeps its permissions.
    if let Ok(meta) = tokio::fs::metadata(path).await {
        tokio::fs::set_permissions(temp, meta.permissions()).await?;
    }
    crate::filesystem::chown(temp, user)?;
    tokio::fs::rename(temp, path).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Ok(Some((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }
}
