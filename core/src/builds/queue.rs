//! The build queue: build ids in the Redis list `wrenn:builds:queue` (pushed on the left,
//! taken from the right), PostgreSQL the truth behind them. A worker claims a build with a
//! guarded update, so an id taken twice (a re-queue, two control planes) runs once.

use crate::app::App;
use crate::db::builds as db;
use redis::AsyncCommands;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wrenn_extension_api::{BackgroundWorker, HookError};

pub const QUEUE: &str = "wrenn:builds:queue";

/// Wakes this process's idle workers when it queues a build (others poll every second).
fn wake() -> &'static Notify {
    static WAKE: OnceLock<Notify> = OnceLock::new();
    WAKE.get_or_init(Notify::new)
}

/// Queues a build. A failure to reach Redis is logged: the sweep re-queues the build.
pub async fn enqueue(ctx: &App, id: Uuid) {
    let mut redis = ctx.redis();
    if let Err(e) = redis.lpush::<_, _, ()>(QUEUE, id.to_string()).await {
        tracing::warn!(build_id = %id, error = %e, "Queueing a build failed; the sweep will retry.");
    }
    wake().notify_waiters();
}

/// The next queued id, if any.
async fn take(ctx: &App) -> redis::RedisResult<Option<Uuid>> {
    let mut redis = ctx.redis();
    let id: Option<String> = redis.rpop(QUEUE, None).await?;
    Ok(id.and_then(|s| Uuid::try_parse(&s).ok()))
}

/// `WRENN_BUILD_WORKERS` workers running builds, and the sweep.
pub fn workers(ctx: &App) -> Vec<BackgroundWorker> {
    let mut out = Vec::new();
    for n in 0..ctx.config.builds.workers {
        let app = ctx.clone();
        out.push(BackgroundWorker::new(
            format!("build-worker-{n}"),
            move |token| async move { work(app, token).await },
        ));
    }
    let app = ctx.clone();
    out.push(BackgroundWorker::every(
        "build-sweep",
        Duration::from_secs(10),
        move || {
            let app = app.clone();
            async move { sweep(&app).await }
        },
    ));
    out
}

async fn work(ctx: App, shutdown: CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let next = match take(&ctx).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "Reading the build queue failed.");
                None
            }
        };
        let Some(id) = next else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake().notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        match db::claim(ctx.db(), id).await {
            Ok(Some(row)) => super::runner::run(&ctx, row, &shutdown).await,
            Ok(None) => {} // taken by another worker, cancelled, or unknown
            Err(e) => {
                tracing::warn!(build_id = %id, error = %e, "Claiming a build failed; re-queued.");
                enqueue(&ctx, id).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Re-queues builds whose entry is not in the queue (lost with a Redis restart), and fails
/// running builds whose worker stopped heartbeating, cleaning up after them.
async fn sweep(ctx: &App) -> Result<(), HookError> {
    let mut redis = ctx.redis();
    for id in db::queued_since(ctx.db(), 10).await? {
        let at: Option<i64> = redis::cmd("LPOS")
            .arg(QUEUE)
            .arg(id.to_string())
            .query_async(&mut redis)
            .await?;
        if at.is_none() {
            tracing::info!(build_id = %id, "Re-queueing a build missing from the queue.");
            enqueue(ctx, id).await;
        }
    }
    let stale_after = ctx.config.builds.stale_after_secs as i64;
    for row in db::stale(ctx.db(), stale_after).await? {
        tracing::warn!(build_id = %row.id, "A build's worker stopped; failing the build.");
        super::runner::abandon(ctx, row).await;
    }
    Ok(())
}
