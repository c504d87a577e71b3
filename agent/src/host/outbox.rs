//! Changes the agent made to capsules on its own (idle auto-pause, auto-destroy, a pause
//! while the control plane was away), queued until the control plane has them.
//!
//! The heartbeat loop delivers them with `POST /v1/hosts/sandbox-events` as soon as one is
//! queued (and retries on every heartbeat while the control plane is unreachable); a 200
//! answer acknowledges every event it carried. The queue is bounded: past [`CAPACITY`] the
//! oldest change is dropped with a warning, and the control plane's reconciler (which lists
//! the host's capsules when it returns) repairs what it missed.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use tracing::warn;
use wrenn_proto::host_http::{SandboxEvent, SandboxEventKind};

/// Most changes kept while the control plane is unreachable.
pub const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct Outbox {
    queue: Mutex<(u64, VecDeque<(u64, SandboxEvent)>)>,
    queued: Notify,
}

impl Outbox {
    /// Queues a change and wakes the delivery loop.
    pub fn push(
        &self,
        sandbox_id: &str,
        event: SandboxEventKind,
        reason: &str,
        error: Option<String>,
    ) {
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.0 += 1;
            let seq = q.0;
            if q.1.len() >= CAPACITY {
                if let Some((_, lost)) = q.1.pop_front() {
                    warn!(capsule_id = %lost.sandbox_id, "capsule change outbox full; dropped the oldest change");
                }
            }
            q.1.push_back((
                seq,
                SandboxEvent {
                    sandbox_id: sandbox_id.to_owned(),
                    event,
                    reason: Some(reason.to_owned()),
                    error,
                },
            ));
        }
        self.queued.notify_one();
    }

    /// The oldest `max` changes and the sequence number of the last one (for [`Outbox::ack`]).
    pub fn peek(&self, max: usize) -> (Vec<SandboxEvent>, u64) {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let batch: Vec<_> = q.1.iter().take(max).collect();
        let last = batch.last().map(|(s, _)| *s).unwrap_or(0);
        (batch.into_iter().map(|(_, e)| e.clone()).collect(), last)
    }

    /// Forgets every change up to sequence number `through` (delivered).
    pub fn ack(&self, through: u64) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        while q.1.front().is_some_and(|(s, _)| *s <= through) {
            q.1.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once a change was queued since the last wake-up.
    pub async fn queued(&self) {
        self.queued.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_changes_go_and_later_ones_stay() {
        let o = Outbox::default();
        o.push("sb_a", SandboxEventKind::AutoPaused, "ttl_expired", None);
        o.push(
            "sb_b",
            SandboxEventKind::AutoDestroyed,
            "ttl_expired",
            Some("x".into()),
        );
        let (batch, through) = o.peek(10);
        assert_eq!(batch.len(), 2);
        // A change queued while the batch is in flight is not acknowledged with it.
        o.push(
            "sb_c",
            SandboxEventKind::Paused,
            "control_plane_unreachable",
            None,
        );
        o.ack(through);
        let (rest, _) = o.peek(10);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].sandbox_id, "sb_c");
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_change() {
        let o = Outbox::default();
        for i in 0..CAPACITY + 3 {
            o.push(
                &format!("sb_{i}"),
                SandboxEventKind::AutoPaused,
                "ttl_expired",
                None,
            );
        }
        assert_eq!(o.len(), CAPACITY);
        assert_eq!(o.peek(1).0[0].sandbox_id, "sb_3");
    }
}
