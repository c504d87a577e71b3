//! [`ServerContext`]: the initialised services, shared by core routes and extensions.

use crate::auth::SessionService;
use crate::mail::Mailer;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The configuration values an extension may read (secrets stay inside core).
#[derive(Debug, Clone)]
pub struct PublicConfig {
    /// Version reported by `GET /health` (set by the embedding binary through the builder).
    pub version: String,
    /// Public base URL of the dashboard and API, without a trailing slash.
    pub public_url: String,
    /// Domain used for capsule port-proxy hosts (`{port}-{capsule}.{domain}`).
    pub domain: String,
}

/// Everything core hands to [`ServerContext::new`].
pub struct ServerContextParts {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub mailer: Arc<dyn Mailer>,
    pub sessions: Arc<dyn SessionService>,
    pub jwt_secret: Arc<[u8]>,
    pub config: PublicConfig,
    pub shutdown: CancellationToken,
}

/// A cheap-to-clone handle (one `Arc`) on the control plane's services. It is the axum state
/// of every route, core and extension alike.
///
/// Besides the named accessors, core registers its own typed services (`insert_service` before
/// the server starts, [`ServerContext::service`] to read); new services are added that way or as
/// new accessors, never by changing existing ones.
#[derive(Clone)]
pub struct ServerContext {
    inner: Arc<Inner>,
}

struct Inner {
    parts: ServerContextParts,
    services: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl ServerContext {
    pub fn new(parts: ServerContextParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                parts,
                services: HashMap::new(),
            }),
        }
    }

    /// Registers a typed service. Only possible while this is the only handle (start-up).
    ///
    /// # Panics
    /// If the context has already been cloned: services are fixed once the server runs.
    pub fn insert_service<T: Send + Sync + 'static>(&mut self, service: Arc<T>) {
        let inner = Arc::get_mut(&mut self.inner)
            .expect("services are registered before the context is shared");
        inner.services.insert(TypeId::of::<T>(), service);
    }

    /// A typed service registered at start-up, if any.
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.inner
            .services
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|s| s.downcast::<T>().ok())
    }

    /// The PostgreSQL pool.
    pub fn db(&self) -> &PgPool {
        &self.inner.parts.db
    }

    /// A Redis connection (multiplexed and reconnecting; clone per use).
    pub fn redis(&self) -> ConnectionManager {
        self.inner.parts.redis.clone()
    }

    pub fn mailer(&self) -> &Arc<dyn Mailer> {
        &self.inner.parts.mailer
    }

    /// Sessions and API-key resolution.
    pub fn sessions(&self) -> &Arc<dyn SessionService> {
        &self.inner.parts.sessions
    }

    /// The secret for signing JWTs and other server-side MACs.
    pub fn jwt_secret(&self) -> &[u8] {
        &self.inner.parts.jwt_secret
    }

    pub fn config(&self) -> &PublicConfig {
        &self.inner.parts.config
    }

    /// Cancelled when the server shuts down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.parts.shutdown
    }
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext")
            .field("config", &self.inner.parts.config)
            .finish_non_exhaustive()
    }
}
