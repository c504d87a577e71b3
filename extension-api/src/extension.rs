//! The [`Extension`] trait, background workers, middleware and `inventory` registration.

use crate::context::ServerContext;
use crate::hooks::HookError;
use crate::hooks::{AdmissionHook, AuthHook, LimitsProvider, SandboxEventHook, UsageProvider};
use crate::migrations::Migration;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A long-running task started once the server is up. The future receives a token that is
/// cancelled on shutdown and must return promptly after it fires.
pub struct BackgroundWorker {
    pub name: String,
    pub run: Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>,
}

impl BackgroundWorker {
    pub fn new<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        Self {
            name: name.into(),
            run: Box::new(move |token| Box::pin(f(token))),
        }
    }
}

impl BackgroundWorker {
    /// A worker that runs `pass` every `period` (the first run right away) until shutdown.
    /// A pass that fails is logged with the worker's name and retried at the next tick; a
    /// pass in flight when shutdown comes is allowed to finish.
    pub fn every<F, Fut>(name: impl Into<String>, period: Duration, mut pass: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), HookError>> + Send + 'static,
    {
        let name = name.into();
        let label = name.clone();
        Self::new(name, move |token| async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = interval.tick() => {
                        if let Err(e) = pass().await {
                            tracing::warn!(worker = %label, error = %e, "Worker pass failed.");
                        }
                    }
                }
            }
        })
    }
}

impl std::fmt::Debug for BackgroundWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundWorker")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Wraps every core route (applied before the core routes are registered, so extension routes
/// are not wrapped). Middleware of several extensions nest in registration order: the first
/// extension's middleware is the outermost.
#[async_trait::async_trait]
pub trait Middleware: Send + Sync + 'static {
    async fn handle(&self, ctx: &ServerContext, request: Request, next: Next) -> Response;
}

/// An extension of the control plane. Only [`Extension::name`] is required; everything else
/// has a documented no-op default.
pub trait Extension: Send + Sync + 'static {
    /// Unique name; two extensions with the same name stop the server at start-up.
    fn name(&self) -> &str;

    /// The extension's routes. `router` is empty: core attaches the [`ServerContext`] state
    /// to what this returns and merges it beside the core routes (a path that collides with
    /// a core route stops the server at start-up). Extension routes are not wrapped by
    /// [`Extension::middleware`]; they get the server-wide layers (request spans, 5xx
    /// logging). Guard them with the extractors of [`crate::auth`]. Default: no routes.
    fn register_routes(
        &self,
        router: Router<ServerContext>,
        _ctx: &ServerContext,
    ) -> Router<ServerContext> {
        router
    }

    /// Tasks started once the server listens and cancelled on shutdown: the token fires,
    /// and the server waits for the task up to its drain deadline before exiting. Default:
    /// none.
    fn background_workers(&self, _ctx: &ServerContext) -> Vec<BackgroundWorker> {
        Vec::new()
    }

    /// Middleware wrapping every core route. Default: none.
    fn middleware(&self) -> Option<Arc<dyn Middleware>> {
        None
    }

    /// Account lifecycle hooks. Default: none.
    fn auth_hook(&self) -> Option<Arc<dyn AuthHook>> {
        None
    }

    /// Capsule lifecycle events. Default: none.
    fn sandbox_event_hook(&self) -> Option<Arc<dyn SandboxEventHook>> {
        None
    }

    /// Per-team limits. Default: none (unlimited unless another extension supplies limits).
    fn limits_provider(&self) -> Option<Arc<dyn LimitsProvider>> {
        None
    }

    /// Per-team usage. Default: none (core counts capsules in the database).
    fn usage_provider(&self) -> Option<Arc<dyn UsageProvider>> {
        None
    }

    /// Decides capsule creates inside the insert transaction (see [`AdmissionHook`]).
    /// Default: none.
    fn admission_hook(&self) -> Option<Arc<dyn AdmissionHook>> {
        None
    }

    /// Schema changes applied at start-up before the extension's routes and workers run
    /// (see [`crate::migrations`]). Default: none.
    fn migrations(&self) -> Vec<Migration> {
        Vec::new()
    }
}

/// An `inventory` entry: a named factory. Register with [`register_extension!`]; the binary
/// must link the crate that registers it.
pub struct ExtensionFactory {
    pub name: &'static str,
    pub create: fn() -> Box<dyn Extension>,
}

inventory::collect!(ExtensionFactory);

/// Registers an extension factory with `inventory`:
/// `wrenn_extension_api::register_extension!("billing", || Box::new(Billing::default()));`
#[macro_export]
macro_rules! register_extension {
    ($name:expr, $create:expr) => {
        $crate::inventory::submit! {
            $crate::ExtensionFactory { name: $name, create: $create }
        }
    };
}

/// Every extension registered through `inventory`, instantiated and sorted by name.
pub fn collect_registered() -> Vec<Box<dyn Extension>> {
    let mut factories: Vec<&ExtensionFactory> = inventory::iter::<ExtensionFactory>().collect();
    factories.sort_by_key(|f| f.name);
    factories.into_iter().map(|f| (f.create)()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_periodic_worker_runs_each_period_survives_failures_and_stops_on_shutdown() {
        let passes = Arc::new(AtomicU32::new(0));
        let counted = passes.clone();
        let worker = BackgroundWorker::every("tick", Duration::from_secs(10), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 1 {
                    Err(HookError::new("second pass fails"))
                } else {
                    Ok(())
                }
            }
        });
        let token = CancellationToken::new();
        let task = tokio::spawn((worker.run)(token.clone()));
        // The first pass runs at once, then one per period (time is paused: no real waiting).
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            3,
            "a failed pass does not stop the worker"
        );
        token.cancel();
        task.await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 3, "no pass after shutdown");
    }
}
