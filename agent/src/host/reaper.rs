//! TTL reaper: pauses capsules idle longer than their `timeout_sec`; and the hibernator,
//! which writes capsules frozen in place longer than the host's `hibernate_after` to disk.
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

/// Writes every capsule frozen in place for longer than `host.hibernate_after` to disk,
/// one at a time (a checkpoint is heavy on a small host); while the host is short of memory
/// ([`short_of_memory`]), also the longest-frozen one each round. A failed one stays frozen
/// and is tried again next round.
pub async fn hibernate(host: Arc<Host>, every: Duration) {
    if host.hibernate_after.is_zero() {
        return;
    }
    let mut tick = super::ticks(every);
    while super::next_round(&host, &mut tick).await {
        let mut frozen: Vec<_> = host
            .capsules
            .all()
            .into_iter()
            .filter_map(|c| {
                let live = c.lock();
                let since = live
                    .frozen_since
                    .filter(|_| live.record.state == State::Paused)?;
                drop(live);
                Some((since, c))
            })
            .collect();
        frozen.sort_by_key(|(since, _)| *since);
        let pressed = !frozen.is_empty()
            && short_of_memory(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
        for (i, (since, capsule)) in frozen.into_iter().enumerate() {
            let due = since.elapsed() >= host.hibernate_after || (pressed && i == 0);
            if !due {
                continue;
            }
            if let Err(e) = host.hibernate(&capsule.id).await {
                warn!(capsule_id = %capsule.id, error = %e, "hibernating a paused capsule failed");
            }
        }
    }
}

/// Whether a `/proc/meminfo` text shows the host short of memory: less than a tenth of it
/// available. Frozen capsules keep their memory resident; this is when they must give it up.
pub(crate) fn short_of_memory(meminfo: &str) -> bool {
    let kib = |name: &str| super::load::meminfo_kib(meminfo, name);
    match (kib("MemTotal:"), kib("MemAvailable:")) {
        (Some(total), Some(available)) => available < total / 10,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::short_of_memory;

    #[test]
    fn memory_is_short_below_a_tenth_available() {
        let info = |avail: u64| {
            format!("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   {avail} kB\n")
        };
        assert!(!short_of_memory(&info(12_000_000)));
        assert!(!short_of_memory(&info(2_400_000)));
        assert!(short_of_memory(&info(2_399_999)));
        assert!(
            !short_of_memory("MemTotal: 100 kB\n"),
            "no MemAvailable: no judgement"
        );
        assert!(!short_of_memory(""));
    }
}
