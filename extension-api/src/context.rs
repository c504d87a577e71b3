//! [`ServerContext`]: the initialised services, shared by core routes and extensions.

use crate::auth::SessionService;
use crate::capsules::CapsuleService;
use crate::mail::Mailer;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The configuration values an extension may read (secrets stay inside core).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PublicConfig {
    /// Version reported by `GET /health` (set by the embedding binary through the builder).
    pub version: String,
    /// Public base URL of the dashboard and API, without a trailing slash.
    pub public_url: String,
    /// Domain used for capsule port-proxy hosts (`{port}-{capsule}.{domain}`).
    pub domain: String,
}

impl PublicConfig {
    pub fn new(version: String, public_url: String, domain: String) -> Self {
        Self {
            version,
            public_url,
            domain,
        }
    }
}

/// Everything core hands to [`ServerContext::new`]. Built by core only (it grows with core,
/// so it is not part of the stable surface).
#[doc(hidden)]
pub struct ServerContextParts {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub mailer: Arc<dyn Mailer>,
    pub sessions: Arc<dyn SessionService>,
    pub capsules: Arc<dyn CapsuleService>,
    pub jwt_secret: Arc<[u8]>,
    pub config: PublicConfig,
    pub shutdown: CancellationToken,
}

/// A cheap-to-clone handle (one `Arc`) on the services an extension may use. It is the axum
/// state of extension routes. Every service is a named, typed accessor; new ones are added as
/// new accessors, never by changing existing ones.
#[derive(Clone)]
pub struct ServerContext {
    inner: Arc<ServerContextParts>,
}

impl ServerContext {
    #[doc(hidden)]
    pub fn new(parts: ServerContextParts) -> Self {
        Self {
            inner: Arc::new(parts),
        }
    }

    /// A team's capsules: usage, list, pause, destroy (never core's tables directly).
    pub fn capsules(&self) -> &Arc<dyn CapsuleService> {
        &self.inner.capsules
    }

    /// The PostgreSQL pool.
    pub fn db(&self) -> &PgPool {
        &self.inner.db
    }

    /// A Redis connection (multiplexed and reconnecting; clone per use).
    pub fn redis(&self) -> ConnectionManager {
        self.inner.redis.clone()
    }

    pub fn mailer(&self) -> &Arc<dyn Mailer> {
        &self.inner.mailer
    }

    /// Sessions and API-key resolution.
    pub fn sessions(&self) -> &Arc<dyn SessionService> {
        &self.inner.sessions
    }

    /// The secret for signing JWTs and other server-side MACs.
    pub fn jwt_secret(&self) -> &[u8] {
        &self.inner.jwt_secret
    }

    pub fn config(&self) -> &PublicConfig {
        &self.inner.config
    }

    /// Cancelled when the server shuts down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
