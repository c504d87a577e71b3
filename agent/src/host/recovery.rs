//! Start-up recovery: adopt the capsules that survived an agent restart, clean the rest.
//!
//! runsc sandboxes run in their own session, so they outlive the agent. Each saved record
//! is checked against the runtime: a running capsule whose envd answers is adopted as
//! running; a capsule with paused state is adopted as paused; anything else is removed,
//! and runtime leftovers that belong to no record are swept.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::Host;
use crate::capsules::{self, Capsule, State};
use crate::envd::Envd;
use crate::runtime::LiveState;

/// Returns the ids adopted.
pub async fn recover(host: &Arc<Host>) -> Vec<String> {
    host.runtime.settle().await;
    let mut adopted = Vec::new();
    for mut record in capsules::load_all(&host.wrenn_dir) {
        // The sandbox's runtime id; the capsule's own id may differ (a warm pool entry).
        let id = record.spec.id.clone();
        let live = host.runtime.state(&id).await;
        let state = match live {
            LiveState::Running => {
                let envd = Envd::new(
                    host.runtime.envd_address(&id),
                    record.init.access_token.clone(),
                );
                match envd.wait_healthy(Duration::from_secs(3)).await {
                    Ok(_) => Some(State::Running),
                    Err(e) => {
                        warn!(capsule_id = %id, error = %e, "running capsule's envd does not answer; removing it");
                        None
                    }
                }
            }
            LiveState::Paused => Some(State::Paused),
            LiveState::Gone => None,
        };
        match state {
            Some(state) => {
                record.state = state;
                if state == State::Running {
                    record.auto_paused = false;
                }
                let envd = Envd::new(
                    host.runtime.envd_address(&id),
                    record.init.access_token.clone(),
                );
                let capsule = Capsule::new(record, envd);
                if state == State::Paused && host.runtime.is_frozen(&id).await {
                    // Frozen before the restart: its time to hibernate starts again.
                    capsule.lock().frozen_since = Some(std::time::Instant::now());
                }
                host.capsules.insert(capsule);
                adopted.push(id);
            }
            None => {
                let _ = host.runtime.destroy(&id).await;
            }
        }
    }
    match host.runtime.sweep(&adopted).await {
        Ok(removed) if !removed.is_empty() => info!(?removed, "stale runtime state removed"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "sweeping runtime leftovers failed"),
    }
    info!(count = adopted.len(), "capsules adopted");
    adopted
}
