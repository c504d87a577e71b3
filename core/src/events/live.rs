//! The live feed: one Redis subscription per control-plane process, fanned out in memory to
//! every SSE client. A slow client lags and skips events; it never holds up the others.

use super::{Event, LIVE_CHANNEL};
use crate::app::App;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// In-process fan-out of the live channel. Register one in the `ServerContext`
/// (`insert_service(Arc<LiveEvents>)`) and call [`LiveEvents::run`] as a background task.
#[derive(Debug)]
pub struct LiveEvents {
    client: redis::Client,
    sender: broadcast::Sender<Arc<Event>>,
}

impl LiveEvents {
    pub fn new(client: redis::Client) -> Arc<Self> {
        let (sender, _) = broadcast::channel(1024);
        Arc::new(Self { client, sender })
    }

    /// A receiver of every event published from now on (by any control-plane process).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Subscribes to the Redis channel and forwards until `shutdown`, reconnecting after
    /// errors. `ready` (if any) is notified each time the subscription is established.
    pub async fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
        ready: Option<Arc<tokio::sync::Notify>>,
    ) {
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.forward(ready.as_deref()) => r,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "Live event subscription lost; reconnecting.");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn forward(&self, ready: Option<&tokio::sync::Notify>) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(LIVE_CHANNEL).await?;
        if let Some(ready) = ready {
            ready.notify_one();
        }
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let payload: String = match msg.get_payload() {
                Ok(p) => p,
                Err(_) => continue,
            };
            match serde_json::from_str::<Event>(&payload) {
                // No receivers is fine: nobody is watching right now.
                Ok(event) => {
                    let _ = self.sender.send(Arc::new(event));
                }
                Err(e) => tracing::warn!(error = %e, "Ignoring a malformed live event."),
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::IoError,
            "live event subscription ended",
        )))
    }
}

/// The live feed as a server background worker (needs a [`LiveEvents`] in the context).
pub fn worker(ctx: &App) -> wrenn_extension_api::BackgroundWorker {
    let live = ctx.live.clone();
    wrenn_extension_api::BackgroundWorker::new("live-events", move |token| async move {
        live.run(token, None).await
    })
}
