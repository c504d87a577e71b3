//! E2B compatibility, as a first-party extension built on `wrenn-extension-api` alone: the
//! official `e2b` SDKs (Python and JavaScript) drive Wrenn capsules with only their
//! environment variables changed.
//!
//! # Layout
//!
//! - this file: [`E2b`] (the [`Extension`]), its configuration ([`E2bConfig`], from
//!   `WRENN_E2B_*`), the table `ext_e2b.sandboxes` it ships as a migration, and the listener;
//! - [`api`]: E2B's control-plane REST surface (`/sandboxes`, `/v2/sandboxes`, ...), its error
//!   body `{"code":<int>,"message"}` and `X-API-KEY` authentication;
//! - [`proxy`]: the data plane: requests for `{port}-{sandboxID}.{domain}`, or routed by the
//!   `E2b-Sandbox-Id`/`E2b-Sandbox-Port` headers, reach that port inside the capsule through
//!   the capsule facade's tunnel; port 49983 is envd's E2B protocol (served by Wrenn's envd);
//! - [`sandboxes`]: the sandbox records (template, metadata, `endAt`), ids and tokens, and
//!   the worker that ends sandboxes at `endAt` (killed, or paused when `autoPause`).
//!
//! One listener serves both planes: a request with a sandbox Host or the `E2b-Sandbox-Id`
//! header goes to the data plane, everything else to the REST surface. With a certificate
//! configured it speaks TLS (ALPN `h2` and `http/1.1`), as the SDKs require in domain mode.

pub mod api;
pub mod proxy;
pub mod sandboxes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio_rustls::TlsAcceptor;
use wrenn_extension_api::axum::body::Body;
use wrenn_extension_api::axum::Router;
use wrenn_extension_api::tokio_util::sync::CancellationToken;
use wrenn_extension_api::tokio_util::task::TaskTracker;
use wrenn_extension_api::{tracing, BackgroundWorker, Extension, Migration, ServerContext};

/// The extension's name (and so its schema, `ext_e2b`).
pub const NAME: &str = "e2b";

/// The port of envd's E2B protocol inside every capsule.
pub const ENVD_PORT: u16 = 49983;

/// The envd version reported to the SDKs: the features up to it are implemented (CloseStdin,
/// octet-stream and gzip uploads, the default user); later ones (file metadata, watch entry
/// info gates) are not advertised.
pub const ENVD_VERSION: &str = "0.5.7";

const MIGRATIONS: &[Migration] = &[Migration::new(
    20261203000000,
    "e2b sandboxes",
    "CREATE TABLE sandboxes (
        capsule_id     UUID PRIMARY KEY,
        team_id        UUID NOT NULL,
        template_id    TEXT NOT NULL,
        alias          TEXT,
        metadata       JSONB NOT NULL DEFAULT '{}',
        started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
        end_at         TIMESTAMPTZ NOT NULL,
        auto_pause     BOOLEAN NOT NULL DEFAULT false,
        public_traffic BOOLEAN NOT NULL DEFAULT true
    );
    CREATE INDEX sandboxes_team ON sandboxes (team_id, started_at DESC);
    CREATE INDEX sandboxes_end ON sandboxes (end_at);",
)];

/// What the extension serves, from `WRENN_E2B_*`.
#[derive(Debug, Clone)]
pub struct E2bConfig {
    /// `WRENN_E2B_LISTEN`: the address of the E2B listener (both planes), e.g. `0.0.0.0:3000`.
    pub listen: SocketAddr,
    /// `WRENN_E2B_DOMAIN`: the sandbox domain (`{port}-{sandboxID}.{domain}`), reported to the
    /// SDKs as each sandbox's `domain`; default the control plane's `WRENN_DOMAIN`.
    pub domain: Option<String>,
    /// `WRENN_E2B_TLS_CERT` / `WRENN_E2B_TLS_KEY`: PEM files of a certificate for `*.{domain}`
    /// (and the API's name); both set → the listener speaks TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `WRENN_E2B_BASE_TEMPLATE`: the Wrenn template E2B's `base` names (default
    /// `minimal-debian`: bash, python3 as `python`, sudo, curl and the user `user`).
    pub base_template: String,
    /// `WRENN_E2B_DEFAULT_TIMEOUT`: seconds a sandbox lives when the create names no timeout
    /// (E2B's default, 300).
    pub default_timeout_sec: u32,
    /// How often expired sandboxes are looked for.
    pub sweep_every: Duration,
}

/// Longest `timeout` a create or `set_timeout` may ask for (24 hours, E2B's largest).
pub const MAX_TIMEOUT_SEC: u32 = 24 * 3600;

impl E2bConfig {
    /// The configuration with defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            domain: None,
            tls: None,
            base_template: "minimal-debian".into(),
            default_timeout_sec: 300,
            sweep_every: Duration::from_secs(1),
        }
    }

    /// Reads `WRENN_E2B_*`; `Ok(None)` when `WRENN_E2B_LISTEN` is unset (the extension is off).
    pub fn from_env() -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(listen) = var("WRENN_E2B_LISTEN") else {
            return Ok(None);
        };
        let listen = listen
            .parse()
            .map_err(|e| format!("WRENN_E2B_LISTEN={listen}: {e}"))?;
        let mut config = Self::new(listen);
        config.domain = var("WRENN_E2B_DOMAIN");
        config.tls = match (var("WRENN_E2B_TLS_CERT"), var("WRENN_E2B_TLS_KEY")) {
            (Some(c), Some(k)) => Some((c.into(), k.into())),
            (None, None) => None,
            _ => {
                return Err("set both WRENN_E2B_TLS_CERT and WRENN_E2B_TLS_KEY, or neither".into())
            }
        };
        if let Some(t) = var("WRENN_E2B_BASE_TEMPLATE") {
            config.base_template = t;
        }
        if let Some(t) = var("WRENN_E2B_DEFAULT_TIMEOUT") {
            config.default_timeout_sec = t
                .parse()
                .ok()
                .filter(|t| (1..=MAX_TIMEOUT_SEC).contains(t))
                .ok_or_else(|| {
                    format!("WRENN_E2B_DEFAULT_TIMEOUT={t}: expected 1 to {MAX_TIMEOUT_SEC}")
                })?;
        }
        Ok(Some(config))
    }
}

/// The state of both planes.
pub struct E2bState {
    pub ctx: ServerContext,
    pub config: E2bConfig,
    /// The sandbox domain in use (configured, else the control plane's).
    pub domain: String,
}

/// The extension. Without a configuration it registers nothing but its migration.
pub struct E2b {
    config: Option<E2bConfig>,
    /// A configuration that could not be read (logged once the server starts).
    config_error: Option<String>,
    /// A listener bound before start-up (tests bind port 0); else `config.listen` is bound.
    listener: Mutex<Option<std::net::TcpListener>>,
}

impl E2b {
    pub fn new(config: E2bConfig) -> Self {
        Self {
            config: Some(config),
            config_error: None,
            listener: Mutex::new(None),
        }
    }

    /// From `WRENN_E2B_*` (off when `WRENN_E2B_LISTEN` is unset). A bad value leaves the
    /// extension off and is logged at start-up.
    pub fn from_env() -> Self {
        let (config, config_error) = match E2bConfig::from_env() {
            Ok(c) => (c, None),
            Err(e) => (None, Some(e)),
        };
        Self {
            config,
            config_error,
            listener: Mutex::new(None),
        }
    }

    /// Serves on an already bound listener instead of binding `config.listen`.
    pub fn with_listener(self, listener: std::net::TcpListener) -> Self {
        *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(listener);
        self
    }
}

impl Extension for E2b {
    fn name(&self) -> &str {
        NAME
    }

    fn migrations(&self) -> Vec<Migration> {
        MIGRATIONS.to_vec()
    }

    fn background_workers(&self, ctx: &ServerContext) -> Vec<BackgroundWorker> {
        if let Some(e) = &self.config_error {
            tracing::error!(error = %e, "E2B compatibility is off: bad configuration.");
        }
        let Some(config) = self.config.clone() else {
            return Vec::new();
        };
        let domain = config
            .domain
            .clone()
            .unwrap_or_else(|| ctx.config().domain.clone());
        let state = Arc::new(E2bState {
            ctx: ctx.clone(),
            config,
            domain,
        });
        let bound = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let serving = state.clone();
        vec![
            BackgroundWorker::new("e2b-listener", move |token| async move {
                if let Err(e) = serve(serving, bound, token).await {
                    tracing::error!(error = %e, "The E2B listener stopped.");
                }
            }),
            sandboxes::expiry_worker(state),
        ]
    }
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<TlsAcceptor, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate: {e}"))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// How long open connections may finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

async fn serve(
    state: Arc<E2bState>,
    bound: Option<std::net::TcpListener>,
    token: CancellationToken,
) -> Result<(), String> {
    let listener = match bound {
        Some(l) => {
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?
        }
        None => tokio::net::TcpListener::bind(state.config.listen)
            .await
            .map_err(|e| format!("binding {}: {e}", state.config.listen))?,
    };
    let tls = match &state.config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, tls = tls.is_some(), domain = %state.domain, "E2B listener ready.");
    let api = api::router(state.clone());
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "E2B listener accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (state, api, tls, token) = (state.clone(), api.clone(), tls.clone(), token.clone());
        connections.spawn(async move {
            match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => connection(state, api, s, token).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed."),
                },
                None => connection(state, api, stream, token).await,
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(DRAIN, connections.wait()).await;
    Ok(())
}

async fn connection<S>(state: Arc<E2bState>, api: Router, stream: S, token: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let (state, api) = (state.clone(), api.clone());
        async move { Ok::<_, Infallible>(route(state, api, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "E2B connection ended with an error.");
            }
        }
        _ = token.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Sends a request to the data plane or the REST surface.
async fn route(
    state: Arc<E2bState>,
    api: Router,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Body> {
    use tower::ServiceExt;
    match proxy::target(&req, &state.domain) {
        Some(target) => proxy::forward(&state, req.map(Body::new), target).await,
        None => match api.oneshot(req.map(Body::new)).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
    }
}
