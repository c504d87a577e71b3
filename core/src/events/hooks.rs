//! Extension [`SandboxEventHook`]s fed from the stream: one consumer group per extension
//! (`wrenn-hook-<extension name>`), so each hook sees every event once its own way and one
//! extension's failures never hold up another's.
//!
//! The hook receives capsule `create`/`pause`/`resume`/`destroy` successes; other entries are
//! acked unseen. An error leaves the entry pending: it is claimed again after the idle
//! threshold and handed over with the same `delivery_id` (the stream entry id).

use super::consumer::{BatchHandler, Consumer, ConsumerSettings, Delivery, HandleError};
use super::Outcome;
use crate::app::App;
use std::sync::Arc;
use wrenn_extension_api::{ids, BackgroundWorker, SandboxEvent, SandboxEventHook};

/// The event types a [`SandboxEventHook`] receives.
pub const HOOK_EVENTS: [&str; 4] = [
    "capsule.create",
    "capsule.pause",
    "capsule.resume",
    "capsule.destroy",
];

/// The consumer group of an extension's hook.
pub fn group_name(extension: &str) -> String {
    format!("wrenn-hook-{extension}")
}

/// The hook's view of a delivery, or `None` when the hook does not receive this entry.
pub fn sandbox_event(d: &Delivery) -> Option<SandboxEvent> {
    let e = &d.event;
    if e.outcome != Some(Outcome::Success) || !HOOK_EVENTS.contains(&e.event.as_str()) {
        return None;
    }
    if e.resource.kind != "sandbox" {
        return None;
    }
    let capsule_id = ids::decode(ids::CAPSULE, &e.resource.id)?;
    let team_id = e.team_uuid()?;
    Some(SandboxEvent::new(
        e.event.clone(),
        capsule_id,
        team_id,
        e.timestamp,
        d.id.clone(),
        serde_json::to_value(&e.metadata).unwrap_or_default(),
    ))
}

struct HookHandler {
    extension: String,
    hook: Arc<dyn SandboxEventHook>,
    ctx: App,
}

#[async_trait::async_trait]
impl BatchHandler for HookHandler {
    async fn handle_batch(&self, batch: &[Delivery]) -> Vec<Result<(), HandleError>> {
        // In stream order, one at a time: hooks often keep per-capsule state.
        let mut results = Vec::with_capacity(batch.len());
        for d in batch {
            let Some(event) = sandbox_event(d) else {
                results.push(Ok(()));
                continue;
            };
            let r = self.hook.on_sandbox_event(&self.ctx, &event).await;
            results
                .push(r.map_err(|e| HandleError(format!("extension {:?}: {e}", self.extension))));
        }
        results
    }
}

/// The worker feeding `hook` of `extension`.
pub fn worker(
    ctx: &App,
    redis: redis::Client,
    settings: ConsumerSettings,
    extension: &str,
    hook: Arc<dyn SandboxEventHook>,
) -> BackgroundWorker {
    let handler = Arc::new(HookHandler {
        extension: extension.to_string(),
        hook,
        ctx: ctx.clone(),
    });
    Consumer::new(redis, group_name(extension), settings, handler).worker()
}
