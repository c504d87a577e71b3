//! The [`Extension`] trait, background workers, middleware and `inventory` registration.

use crate::context::ServerContext;
use crate::hooks::{AuthHook, LimitsProvider, SandboxEventHook, UsageProvider};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use futures::future::BoxFuture;
use std::sync::Arc;
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

    /// Adds routes after the core ones. Default: returns `router` unchanged.
    fn register_routes(
        &self,
        router: Router<ServerContext>,
        _ctx: &ServerContext,
    ) -> Router<ServerContext> {
        router
    }

    /// Tasks started once the server listens and cancelled on shutdown. Default: none.
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
