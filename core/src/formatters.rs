//! Notification formatters loaded at run time as WebAssembly components.
//!
//! # Layout
//!
//! - [`manifest`]: a formatter's directory (`manifest.json` + the component) and its manifest.
//! - [`host`]: the wasmtime host: one [`wasmtime::Engine`] for every formatter, each component
//!   compiled once and pre-instantiated against its world version, a fresh `Store` per call with
//!   a fuel budget, an epoch deadline and a memory cap, no imports at all (no WASI: no files,
//!   network, clock, randomness or environment).
//! - This file: [`WasmFormatters`], the registry: loads `WRENN_FORMATTERS_DIR` at start, polls it
//!   for changes (a new, changed or removed formatter takes effect without a restart; a broken
//!   one is reported and skipped), and serves as a
//!   [`FormatterSource`](crate::channels::format::FormatterSource) for channels whose config names
//!   a `formatter`.
//!
//! World versions live in `extension-api/wit/since_vX.Y.Z/`; a released one is frozen and the
//! host keeps one binding per version ([`host::WORLD_VERSIONS`]).

pub mod host;
pub mod manifest;

use crate::channels::format::{Formatter, FormatterSource};
use host::{Host, Limits, LoadedFormatter};
use manifest::Manifest;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use wrenn_extension_api::BackgroundWorker;

/// What the registry knows of one formatter directory.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FormatterStatus {
    /// The manifest's name (the directory name when the manifest could not be read).
    pub name: String,
    pub version: String,
    /// The WIT world version it was built against.
    pub world: String,
    pub providers: Vec<String>,
    /// `loaded` or `error`.
    pub status: String,
    /// Why it is not loaded (empty when loaded).
    pub error: String,
    /// Its directory.
    pub path: String,
    pub loaded_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A directory's files and their modification times: a change means a reload.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

struct Entry {
    stamp: Stamp,
    status: FormatterStatus,
    loaded: Option<Arc<LoadedFormatter>>,
}

/// The formatters of one directory.
pub struct WasmFormatters {
    dir: PathBuf,
    host: Host,
    /// Keyed by directory path.
    entries: RwLock<BTreeMap<PathBuf, Entry>>,
}

impl WasmFormatters {
    /// A registry over `dir` (loaded by [`Self::reload`]).
    pub fn new(dir: impl Into<PathBuf>, limits: Limits) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            dir: dir.into(),
            host: Host::new(limits)?,
            entries: RwLock::new(BTreeMap::new()),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every formatter directory with its state, sorted by name.
    pub fn statuses(&self) -> Vec<FormatterStatus> {
        let mut all: Vec<FormatterStatus> = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|e| e.status.clone())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
        all
    }

    /// Scans the directory: loads new and changed formatters, forgets removed ones. Compiling
    /// runs on a blocking thread. Returns how many directories changed.
    pub async fn reload(self: &Arc<Self>) -> usize {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.reload_blocking())
            .await
            .unwrap_or(0)
    }

    fn reload_blocking(&self) -> usize {
        let dirs: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e,
                    "The formatters directory cannot be read.");
                Vec::new()
            }
        };
        let mut changed = 0;
        let known: Vec<PathBuf> = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for gone in known.iter().filter(|k| !dirs.contains(k)) {
            self.entries
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(gone);
            tracing::info!(path = %gone.display(), "Formatter removed.");
            changed += 1;
        }
        for dir in dirs {
            let stamp = stamp(&dir);
            let same = self
                .entries
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&dir)
                .is_some_and(|e| e.stamp == stamp);
            if same {
                continue;
            }
            changed += 1;
            let entry = self.load(&dir, stamp);
            self.entries
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(dir, entry);
        }
        changed
    }

    fn load(&self, dir: &Path, stamp: Stamp) -> Entry {
        let fallback_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut status = FormatterStatus {
            name: fallback_name,
            version: String::new(),
            world: String::new(),
            providers: Vec::new(),
            status: "error".into(),
            error: String::new(),
            path: dir.display().to_string(),
            loaded_at: None,
        };
        let manifest = match Manifest::read(dir) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "A formatter is skipped.");
                status.error = e.to_string();
                return Entry {
                    stamp,
                    status,
                    loaded: None,
                };
            }
        };
        status.name = manifest.name.clone();
        status.version = manifest.version.clone();
        status.world = manifest.world.clone();
        status.providers = manifest.providers.clone();
        match self.host.load(dir, manifest) {
            Ok(loaded) => {
                tracing::info!(formatter = %status.name, version = %status.version,
                    world = %status.world, "Formatter loaded.");
                status.status = "loaded".into();
                status.loaded_at = Some(chrono::Utc::now());
                Entry {
                    stamp,
                    status,
                    loaded: Some(Arc::new(loaded)),
                }
            }
            Err(e) => {
                tracing::warn!(formatter = %status.name, version = %status.version,
                    error = %format!("{e:#}"), "A formatter is skipped.");
                status.error = format!("{e:#}");
                Entry {
                    stamp,
                    status,
                    loaded: None,
                }
            }
        }
    }

    /// Polls the directory every `every` until `token` is cancelled.
    pub fn worker(self: &Arc<Self>, every: Duration) -> BackgroundWorker {
        let this = self.clone();
        BackgroundWorker::new(
            "formatters:reload",
            move |token: CancellationToken| async move {
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                    this.reload().await;
                }
            },
        )
    }
}

impl FormatterSource for WasmFormatters {
    fn get(&self, name: &str) -> Option<Arc<dyn Formatter>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|e| e.loaded.clone())
            .find(|l| l.name() == name)
            .map(|l| l as Arc<dyn Formatter>)
    }
}

fn stamp(dir: &Path) -> Stamp {
    let mut files: Stamp = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    meta.is_file()
                        .then(|| (e.path(), meta.modified().ok(), meta.len()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
