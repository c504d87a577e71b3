//! TTL reaper: pauses capsules idle longer than their `timeout_sec`.
//!
//! Activity is any RPC that touches the capsule ([`crate::capsules::Capsule::touch`]).
//! A failed auto-pause destroys the capsule, as API.md requires. Both outcomes go to the
//! control plane through the [`super::outbox`].

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::Host;
use wrenn_proto::host_http::SandboxEventKind;

/// The reason both outcomes carry (API.md `metadata.reason`).
pub const TTL_EXPIRED: &str = "ttl_expired";
use crate::capsules::State;

pub async fn run(host: Arc<Host>, every: Duration) {
    let mut tick = super::ticks(every);
    while super::next_round(&host, &mut tick).await {
        for capsule in host.capsules.all() {
            let expired = {
                let live = capsule.lock();
                let timeout = live.record.timeout_sec;
                live.record.state == State::Running
                    && timeout > 0
                    && live.last_active.elapsed() >= Duration::from_secs(u64::from(timeout))
            };
            if !expired {
                continue;
            }
            let host = host.clone();
            tokio::spawn(async move {
                info!(capsule_id = %capsule.id, "idle timeout reached; pausing");
                match host.pause(&capsule.id, true).await {
                    Ok(_) => host.outbox.push(
                        &capsule.id,
                        SandboxEventKind::AutoPaused,
                        TTL_EXPIRED,
                        None,
                    ),
                    // Someone else changed the state meanwhile (a pause, a destroy).
                    Err(super::HostError::FailedPrecondition(_))
                    | Err(super::HostError::NotFound(_)) => {}
                    Err(e) => {
                        warn!(capsule_id = %capsule.id, error = %e, "auto-pause failed; destroying");
                        let _ = host.destroy(&capsule.id).await;
                        host.outbox.push(
                            &capsule.id,
                            SandboxEventKind::AutoDestroyed,
                            TTL_EXPIRED,
                            Some(e.to_string()),
                        );
                    }
                }
            });
        }
    }
}
