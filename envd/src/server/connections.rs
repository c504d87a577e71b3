//! Book-keeping of live host-backed connections, so prepare can close them all.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct Connections {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, CancellationToken>>,
    changed: watch::Sender<()>,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            next_id: AtomicU64::new(1),
            live: Mutex::default(),
            changed: watch::Sender::new(()),
        }
    }
}

/// One live connection (and whatever was upgraded from it, such as a tunnel). Removed from
/// the registry when the last clone is dropped; its token is cancelled to close it.
#[derive(Debug)]
pub struct ConnectionHandle {
    pub id: u64,
    pub token: CancellationToken,
    registry: Arc<Connections>,
}

impl Drop for ConnectionHandle {
    fn drop(&mut self) {
        self.registry.live().remove(&self.id);
        self.registry.changed.send_replace(());
    }
}

impl Connections {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, CancellationToken>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(self: &Arc<Self>) -> Arc<ConnectionHandle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        self.live().insert(id, token.clone());
        Arc::new(ConnectionHandle {
            id,
            token,
            registry: self.clone(),
        })
    }

    pub fn count(&self) -> usize {
        self.live().len()
    }

    pub fn cancel(&self, id: u64) {
        if let Some(t) = self.live().get(&id) {
            t.cancel();
        }
    }

    /// Cancels every connection but `keep`; returns how many were cancelled.
    pub fn cancel_all_except(&self, keep: Option<u64>) -> usize {
        let live = self.live();
        let mut n = 0;
        for (id, token) in live.iter() {
            if Some(*id) != keep {
                token.cancel();
                n += 1;
            }
        }
        n
    }

    /// Waits (at most `deadline`) until no connection other than `keep` is left.
    pub async fn wait_until_only(&self, keep: Option<u64>, deadline: Duration) {
        let mut changed = self.changed.subscribe();
        let _ = tokio::time::timeout(deadline, async {
            loop {
                changed.borrow_and_update();
                if self.live().keys().all(|id| Some(*id) == keep) {
                    return;
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}
