//! The capsules this host owns: state, activity and the record that survives restarts.
//!
//! Each capsule's record is `$WRENN_DIR/sandboxes/<id>/capsule.json`; recovery reads it
//! back at start-up. Lifecycle operations on one capsule are serialised by its `op` lock;
//! the quick fields sit behind a std mutex that is never held across an await.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::envd::{Envd, InitParams};
use crate::metrics::Rings;
use crate::runtime::CapsuleSpec;

/// Lifecycle state as the agent tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    Paused,
}

/// What is persisted per capsule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The runtime's id of the capsule's sandbox is `spec.id`; the capsule's own id (the
    /// control plane's) is this, empty when the two are the same (a capsule booted for its
    /// create rather than taken from the warm pool, or a record from before pools).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capsule_id: String,
    pub spec: CapsuleSpec,
    pub team_id: String,
    pub template_id: String,
    pub timeout_sec: u32,
    pub created_at_unix: i64,
    pub state: State,
    pub auto_paused: bool,
    pub init: InitParams,
    pub envd_version: String,
}

impl Record {
    /// The capsule's own id.
    pub fn id(&self) -> &str {
        if self.capsule_id.is_empty() {
            &self.spec.id
        } else {
            &self.capsule_id
        }
    }
}

/// Mutable fields of a live capsule.
pub struct Live {
    pub record: Record,
    pub last_active: Instant,
    pub last_active_unix: i64,
    pub envd: Envd,
    /// Since when a paused capsule has been frozen in place (memory resident); None when it
    /// runs or its pause is a checkpoint on disk.
    pub frozen_since: Option<Instant>,
}

/// One capsule.
pub struct Capsule {
    /// The control plane's id of the capsule.
    pub id: String,
    /// The runtime's id of its sandbox (`spec.id`): the capsule id, or the id of the warm
    /// pool entry the capsule was handed. Every runtime call takes this one.
    pub rid: String,
    /// Held for the duration of create/pause/resume/snapshot/destroy.
    pub op: tokio::sync::Mutex<()>,
    pub live: Mutex<Live>,
    pub rings: Mutex<Rings>,
    /// Previous CPU sample (ns, when) for the percentage.
    pub cpu_prev: Mutex<Option<(u64, Instant)>>,
}

impl Capsule {
    pub fn new(record: Record, envd: Envd) -> Arc<Self> {
        Arc::new(Capsule {
            id: record.id().to_owned(),
            rid: record.spec.id.clone(),
            op: tokio::sync::Mutex::new(()),
            live: Mutex::new(Live {
                record,
                last_active: Instant::now(),
                last_active_unix: chrono::Utc::now().timestamp(),
                envd,
                frozen_since: None,
            }),
            rings: Mutex::new(Rings::new()),
            cpu_prev: Mutex::new(None),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> State {
        self.lock().record.state
    }

    pub fn envd(&self) -> Envd {
        self.lock().envd.clone()
    }

    pub fn record(&self) -> Record {
        self.lock().record.clone()
    }

    /// Marks activity (resets the idle timer).
    pub fn touch(&self) {
        let mut live = self.lock();
        live.last_active = Instant::now();
        live.last_active_unix = chrono::Utc::now().timestamp();
    }
}

/// All capsules of this host.
#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Arc<Capsule>>>,
}

impl Registry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Capsule>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Capsule>> {
        self.map().get(id).cloned()
    }

    /// Inserts unless the id is taken; returns false when it is.
    pub fn insert(&self, capsule: Arc<Capsule>) -> bool {
        let mut map = self.map();
        if map.contains_key(&capsule.id) {
            return false;
        }
        map.insert(capsule.id.clone(), capsule);
        true
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Capsule>> {
        self.map().remove(id)
    }

    pub fn all(&self) -> Vec<Arc<Capsule>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn ids(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }
}

pub fn record_path(wrenn_dir: &Path, id: &str) -> PathBuf {
    wrenn_dir.join("sandboxes").join(id).join("capsule.json")
}

/// Writes the record atomically (temp file + rename).
pub fn save(wrenn_dir: &Path, record: &Record) -> std::io::Result<()> {
    let path = record_path(wrenn_dir, &record.spec.id);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(tmp, path)
}

/// Every record under `$WRENN_DIR/sandboxes/`.
pub fn load_all(wrenn_dir: &Path) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(wrenn_dir.join("sandboxes")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("capsule.json")).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect()
}
