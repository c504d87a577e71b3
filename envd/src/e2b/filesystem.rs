//! `filesystem.Filesystem`: E2B's filesystem RPCs over [`FilesystemRpc`], plus the polled
//! watchers (CreateWatcher / GetWatcherEvents / RemoveWatcher) the sync SDK uses instead of
//! the WatchDir stream.
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use wrenn_proto::envd::v1 as wrenn;
use wrenn_proto::envd::v1::filesystem_service_server::FilesystemService;
use wrenn_proto::envd::v1::{watch_dir_response, EventType, FileType};

use super::connect::{self, json as pjson, ConnectError, Unary};
use super::{keepalive_interval, Caller, E2b};
use crate::users::Names;

/// A watcher nobody polled for this long is dropped with its inotify watch.
const WATCHER_IDLE: Duration = Duration::from_secs(10 * 60);
/// Events a watcher keeps between polls; older ones are dropped first.
const WATCHER_BACKLOG: usize = 10_000;

pub fn router() -> Router<Arc<E2b>> {
    Router::new()
        .route("/filesystem.Filesystem/Stat", post(stat))
        .route("/filesystem.Filesystem/ListDir", post(list_dir))
        .route("/filesystem.Filesystem/MakeDir", post(make_dir))
        .route("/filesystem.Filesystem/Move", post(move_entry))
        .route("/filesystem.Filesystem/Remove", post(remove))
        .route("/filesystem.Filesystem/WatchDir", post(watch_dir))
        .route("/filesystem.Filesystem/CreateWatcher", post(create_watcher))
        .route(
            "/filesystem.Filesystem/GetWatcherEvents",
            post(get_watcher_events),
        )
        .route("/filesystem.Filesystem/RemoveWatcher", post(remove_watcher))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PathRequest {
    path: String,
    #[serde(deserialize_with = "pjson::u32")]
    depth: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MoveRequest {
    source: String,
    destination: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WatchRequest {
    path: String,
    recursive: bool,
    #[serde(alias = "include_entry")]
    include_entry: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WatcherRequest {
    #[serde(alias = "watcher_id")]
    watcher_id: String,
}

fn file_type_name(t: FileType) -> &'static str {
    match t {
        FileType::File => "FILE_TYPE_FILE",
        FileType::Directory => "FILE_TYPE_DIRECTORY",
        FileType::Symlink => "FILE_TYPE_SYMLINK",
        FileType::Unspecified => "FILE_TYPE_UNSPECIFIED",
    }
}

fn event_type_name(t: EventType) -> &'static str {
    match t {
        EventType::Create => "EVENT_TYPE_CREATE",
        EventType::Write => "EVENT_TYPE_WRITE",
        EventType::Remove => "EVENT_TYPE_REMOVE",
        EventType::Rename => "EVENT_TYPE_RENAME",
        EventType::Chmod => "EVENT_TYPE_CHMOD",
        EventType::Unspecified => "EVENT_TYPE_UNSPECIFIED",
    }
}

/// E2B's `EntryInfo`. For a symlink, `type` is that of its target (and `isSymlink` is set),
/// as E2B reports it; a dangling link stays FILE_TYPE_SYMLINK. Stats the target, so call it
/// off the async threads.
fn entry_json(e: wrenn::EntryInfo) -> Value {
    let kind = FileType::try_from(e.r#type).unwrap_or(FileType::Unspecified);
    let is_symlink = kind == FileType::Symlink;
    let kind = if is_symlink {
        match std::fs::metadata(&e.path) {
            Ok(m) if m.is_dir() => FileType::Directory,
            Ok(_) => FileType::File,
            Err(_) => FileType::Symlink,
        }
    } else {
        kind
    };
    let modified = chrono::DateTime::from_timestamp(e.modified_at, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut out = json!({
        "name": e.name,
        "type": file_type_name(kind),
        "path": e.path,
        "size": e.size.to_string(),
        "mode": e.mode,
        "permissions": e.permissions,
        "owner": e.owner,
        "group": e.group,
        "modifiedTime": modified,
        "isSymlink": is_symlink,
    });
    if let Some(target) = e.symlink_target {
        out["symlinkTarget"] = json!(target);
    }
    out
}

async fn entry_reply(entry: Option<wrenn::EntryInfo>) -> Result<Unary<Value>, ConnectError> {
    let entry = entry.ok_or_else(|| ConnectError::new(Code::Internal, "no entry"))?;
    let entry = blocking(move || entry_json(entry)).await?;
    Ok(Unary(json!({ "entry": entry })))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ConnectError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConnectError::new(Code::Internal, e.to_string()))
}

async fn stat(
    State(e2b): State<Arc<E2b>>,
    Caller(user): Caller,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: PathRequest = connect::message(request).await?;
    let reply = e2b
        .filesystem
        .stat(tonic::Request::new(wrenn::StatRequest {
            path: req.path,
            user: Some(user),
        }))
        .await?;
    entry_reply(reply.into_inner().entry).await
}

async fn list_dir(
    State(e2b): State<Arc<E2b>>,
    Caller(user): Caller,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: PathRequest = connect::message(request).await?;
    let entries = e2b
        .filesystem
        .list_dir(tonic::Request::new(wrenn::ListDirRequest {
            path: req.path,
            depth: req.depth.max(1),
            user: Some(user),
        }))
        .await?
        .into_inner()
        .entries;
    let entries: Vec<Value> =
        blocking(move || entries.into_iter().map(entry_json).collect()).await?;
    Ok(Unary(json!({ "entries": entries })))
}

async fn make_dir(
    State(e2b): State<Arc<E2b>>,
    Caller(user): Caller,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: PathRequest = connect::message(request).await?;
    let reply = e2b
        .filesystem
        .make_dir(tonic::Request::new(wrenn::MakeDirRequest {
            path: req.path,
            user: Some(user),
        }))
        .await?;
    entry_reply(reply.into_inner().entry).await
}

async fn move_entry(
    State(e2b): State<Arc<E2b>>,
    Caller(user): Caller,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: MoveRequest = connect::message(request).await?;
    let reply = e2b
        .filesystem
        .r#move(tonic::Request::new(wrenn::MoveRequest {
            source: req.source,
            destination: req.destination,
            user: Some(user),
        }))
        .await?;
    entry_reply(reply.into_inner().entry).await
}

async fn remove(
    State(e2b): State<Arc<E2b>>,
    Caller(user): Caller,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: PathRequest = connect::message(request).await?;
    e2b.filesystem
        .remove(tonic::Request::new(wrenn::RemoveRequest {
            path: req.path,
            user: Some(user),
        }))
        .await?;
    Ok(Unary(json!({})))
}

/// The watch events of `path` as E2B messages: `{"start":{}}` first, then
/// `{"filesystem":{name,type,entry?}}`; envd's own keepalives are left out.
async fn watch(
    e2b: &E2b,
    user: String,
    req: WatchRequest,
) -> Result<futures::stream::BoxStream<'static, Result<Value, ConnectError>>, ConnectError> {
    let stream = e2b
        .filesystem
        .watch_dir(tonic::Request::new(wrenn::WatchDirRequest {
            path: req.path,
            recursive: req.recursive,
            user: Some(user),
        }))
        .await?
        .into_inner();
    let include_entry = req.include_entry;
    Ok(stream
        .filter_map(move |item| async move {
            let event = match item {
                Ok(m) => m.event?,
                Err(status) => return Some(Err(ConnectError::from(status))),
            };
            let message = match event {
                watch_dir_response::Event::Start(_) => json!({ "start": {} }),
                watch_dir_response::Event::Filesystem(e) => {
                    json!({ "filesystem": event_json(e, include_entry).await })
                }
                watch_dir_response::Event::Keepalive(_) => return None,
            };
            Some(Ok(message))
        })
        .boxed())
}

async fn event_json(e: wrenn::FilesystemEvent, include_entry: bool) -> Value {
    let kind = EventType::try_from(e.r#type).unwrap_or(EventType::Unspecified);
    let mut out = json!({ "name": e.name, "type": event_type_name(kind) });
    if include_entry {
        let entry = blocking(move || {
            crate::filesystem::entry(Path::new(&e.path), &Names::load())
                .ok()
                .map(entry_json)
        })
        .await;
        if let Ok(Some(entry)) = entry {
            out["entry"] = entry;
        }
    }
    out
}

async fn watch_dir(
    State(e2b): State<Arc<E2b>>,
    Caller(user): Caller,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let opened = async {
        let req: WatchRequest = connect::message(request).await?;
        watch(&e2b, user, req).await
    }
    .await;
    let keepalive = keepalive_interval(&headers).map(|every| (every, json!({ "keepalive": {} })));
    connect::server_stream(opened, keepalive)
}

/// The polled watchers, by id.
#[derive(Default)]
pub struct Watchers {
    live: Arc<Mutex<HashMap<String, Arc<Watcher>>>>,
    next_id: AtomicU64,
}

struct Watcher {
    events: Mutex<Vec<Value>>,
    polled: Mutex<Instant>,
    stop: CancellationToken,
}

impl Watcher {
    fn push(&self, message: Value) {
        let Some(event) = message.get("filesystem") else {
            return;
        };
        let mut queue = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= WATCHER_BACKLOG {
            queue.remove(0);
        }
        queue.push(event.clone());
    }
}

impl Watchers {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Watcher>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("w{n}-{nanos:08x}")
    }

    /// Collects `events` (after their start message) until removed or left unpolled.
    fn add(
        &self,
        events: futures::stream::BoxStream<'static, Result<Value, ConnectError>>,
    ) -> String {
        let id = self.new_id();
        let watcher = Arc::new(Watcher {
            events: Mutex::new(Vec::new()),
            polled: Mutex::new(Instant::now()),
            stop: CancellationToken::new(),
        });
        self.live().insert(id.clone(), watcher.clone());
        let (live, key) = (self.live.clone(), id.clone());
        tokio::spawn(async move {
            let mut events = Some(events);
            let mut check = tokio::time::interval(WATCHER_IDLE / 10);
            loop {
                tokio::select! {
                    next = async { events.as_mut()?.next().await }, if events.is_some() => match next {
                        Some(Ok(message)) => watcher.push(message),
                        // The directory is gone or the watch failed: pending events stay
                        // readable until the watcher is removed or expires.
                        Some(Err(_)) | None => events = None,
                    },
                    _ = check.tick() => {
                        if watcher.polled.lock().unwrap_or_else(|e| e.into_inner()).elapsed() > WATCHER_IDLE {
                            live.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                            return;
                        }
                    }
                    _ = watcher.stop.cancelled() => return,
                }
            }
        });
        id
    }

    fn take(&self, id: &str) -> Option<Vec<Value>> {
        let watcher = self.live().get(id).cloned()?;
        *watcher.polled.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let events = std::mem::take(&mut *watcher.events.lock().unwrap_or_else(|e| e.into_inner()));
        Some(events)
    }

    fn remove(&self, id: &str) -> bool {
        match self.live().remove(id) {
            Some(w) => {
                w.stop.cancel();
                true
            }
            None => false,
        }
    }
}

async fn create_watcher(
    State(e2b): State<Arc<E2b>>,
    Caller(user): Caller,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: WatchRequest = connect::message(request).await?;
    let mut events = watch(&e2b, user, req).await?;
    // The first message says the watch is in place.
    match events.next().await {
        Some(Ok(_start)) => {}
        Some(Err(e)) => return Err(e),
        None => return Err(ConnectError::new(Code::Internal, "the watch ended at once")),
    }
    let id = e2b.watchers.add(events);
    Ok(Unary(json!({ "watcherId": id })))
}

fn unknown_watcher(id: &str) -> ConnectError {
    ConnectError::new(Code::NotFound, format!("watcher `{id}` not found"))
}

async fn get_watcher_events(
    State(e2b): State<Arc<E2b>>,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: WatcherRequest = connect::message(request).await?;
    let events = e2b
        .watchers
        .take(&req.watcher_id)
        .ok_or_else(|| unknown_watcher(&req.watcher_id))?;
    Ok(Unary(json!({ "events": events })))
}

async fn remove_watcher(
    State(e2b): State<Arc<E2b>>,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: WatcherRequest = connect::message(request).await?;
    if !e2b.watchers.remove(&req.watcher_id) {
        return Err(unknown_watcher(&req.watcher_id));
    }
    Ok(Unary(json!({})))
}
