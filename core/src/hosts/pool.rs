//! [`HostPool`]: gRPC clients for the agents, one cached channel per host.
//!
//! Transport per host row:
//! - `mtls` (the default): TLS 1.3 only, the control plane presents its client certificate
//!   (issued by the internal CA, renewed after two thirds of its life, picked up by every new
//!   connection), and the agent's certificate must chain to the CA and name the advertised
//!   address (IP SAN or DNS name).
//! - `insecure-dev`: plaintext HTTP/2, only for agents that registered so explicitly with a
//!   loopback address (development). A non-loopback address with this transport is refused
//!   here too, so a tampered row cannot downgrade a remote host.
//!
//! Channels connect lazily and reconnect by themselves; a host whose address or transport
//! changed gets a new channel, and [`HostPool::evict`] drops one (host deleted).

use super::ca::{address_host, CaError, InternalCa};
use super::HostsConfig;
use crate::db::hosts as db;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};
use uuid::Uuid;
use wrenn_extension_api::ApiError;
use wrenn_proto::hostagent::v1::host_agent_service_client::HostAgentServiceClient;

/// The gRPC client type the pool hands out.
pub type AgentClient = HostAgentServiceClient<Traced>;

/// A host's channel whose every call runs in an `agent_rpc` span (`host_id`, `rpc`), so agent
/// calls show up, with their host, inside the lifecycle span that made them.
#[derive(Debug, Clone)]
pub struct Traced {
    inner: Channel,
    host_id: Uuid,
}

impl tower::Service<axum::http::Request<tonic::body::Body>> for Traced {
    type Response = <Channel as tower::Service<axum::http::Request<tonic::body::Body>>>::Response;
    type Error = <Channel as tower::Service<axum::http::Request<tonic::body::Body>>>::Error;
    type Future = tracing::instrument::Instrumented<
        <Channel as tower::Service<axum::http::Request<tonic::body::Body>>>::Future,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: axum::http::Request<tonic::body::Body>) -> Self::Future {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "agent_rpc",
            host_id = %self.host_id,
            rpc = %request.uri().path()
        );
        tower::Service::call(&mut self.inner, request).instrument(span)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("host not found")]
    NotFound,
    #[error("host is {0}")]
    Unavailable(String),
    #[error("host has no usable address: {0}")]
    BadAddress(String),
    #[error("insecure-dev transport refused for non-loopback address {0}")]
    InsecureRefused(String),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("certificate: {0}")]
    Ca(#[from] CaError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::NotFound | PoolError::Unavailable(_) => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "no_hosts_available",
                "the capsule's host is not reachable",
            ),
            other => ApiError::internal(other),
        }
    }
}

/// The control plane's current client identity.
struct Identity {
    config: Arc<rustls::ClientConfig>,
    renew_after: DateTime<Utc>,
}

/// Shared between the pool and every connector, so renewals reach new connections.
struct Tls {
    ca: Arc<InternalCa>,
    roots: Arc<rustls::RootCertStore>,
    client_cert_ttl: ChronoDuration,
    identity: RwLock<Identity>,
}

impl Tls {
    fn new(ca: Arc<InternalCa>, client_cert_ttl: ChronoDuration) -> Result<Self, PoolError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in parse_certs(ca.cert_pem())? {
            roots.add(cert).map_err(|e| PoolError::Tls(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let identity = build_identity(&ca, &roots, client_cert_ttl)?;
        Ok(Self {
            ca,
            roots,
            client_cert_ttl,
            identity: RwLock::new(identity),
        })
    }

    /// The client config, renewing the certificate first when it is due.
    fn config(&self) -> Result<Arc<rustls::ClientConfig>, PoolError> {
        {
            let id = self.identity.read().expect("identity lock");
            if Utc::now() < id.renew_after {
                return Ok(id.config.clone());
            }
        }
        let fresh = build_identity(&self.ca, &self.roots, self.client_cert_ttl)?;
        let config = fresh.config.clone();
        *self.identity.write().expect("identity lock") = fresh;
        tracing::info!("Control-plane client certificate renewed.");
        Ok(config)
    }
}

fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PoolError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PoolError::Tls(e.to_string()))
}

fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, PoolError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| PoolError::Tls(e.to_string()))?
        .ok_or_else(|| PoolError::Tls("no private key in PEM".into()))
}

/// A rustls provider restricted to TLS 1.3 (ring).
pub fn tls13_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_identity(
    ca: &InternalCa,
    roots: &Arc<rustls::RootCertStore>,
    ttl: ChronoDuration,
) -> Result<Identity, PoolError> {
    let issued = ca.issue_client_cert(ttl)?;
    let config = rustls::ClientConfig::builder_with_provider(tls13_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| PoolError::Tls(e.to_string()))?
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(parse_certs(&issued.cert_pem)?, parse_key(&issued.key_pem)?)
        .map_err(|e| PoolError::Tls(e.to_string()))?;
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let renew_after = Utc::now() + ttl * 2 / 3;
    Ok(Identity {
        config: Arc::new(config),
        renew_after,
    })
}

/// The name the agent's certificate must carry for `address`.
pub fn server_name(address: &str) -> Result<ServerName<'static>, PoolError> {
    let host = address_host(address).ok_or_else(|| PoolError::BadAddress(address.into()))?;
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_string())
            .map_err(|_| PoolError::BadAddress(address.into())),
    }
}

/// Whether `address` is a loopback `ip:port` (`localhost` counts).
pub fn is_loopback(address: &str) -> bool {
    match address_host(address) {
        Some("localhost") => true,
        Some(h) => h
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false),
        None => false,
    }
}

#[derive(Clone)]
struct Cached {
    address: String,
    transport: String,
    channel: Channel,
}

/// Cached gRPC channels to agents. Cheap to share (`Arc`); registered in the
/// `ServerContext` as part of [`super::Hosts`] (and on its own as `Arc<HostPool>`).
pub struct HostPool {
    db: sqlx::PgPool,
    tls: Arc<Tls>,
    channels: Mutex<HashMap<Uuid, Cached>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for HostPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPool").finish_non_exhaustive()
    }
}

impl HostPool {
    pub fn new(
        db: sqlx::PgPool,
        ca: Arc<InternalCa>,
        config: &HostsConfig,
    ) -> Result<Self, CaError> {
        let tls = Tls::new(ca, config.client_cert_ttl).map_err(|e| match e {
            PoolError::Ca(c) => c,
            other => CaError::Address(other.to_string()),
        })?;
        Ok(Self {
            db,
            tls: Arc::new(tls),
            channels: Mutex::new(HashMap::new()),
            connect_timeout: Duration::from_secs(5),
        })
    }

    /// A client for `host_id` (an `online` or `unreachable` host; the call itself fails with
    /// `Unavailable` when the agent cannot be reached).
    pub async fn client(&self, host_id: Uuid) -> Result<AgentClient, PoolError> {
        let host = db::get(&self.db, host_id)
            .await?
            .ok_or(PoolError::NotFound)?;
        if host.status == super::HostStatus::Pending {
            return Err(PoolError::Unavailable(host.status.to_string()));
        }
        let address = host
            .address
            .ok_or_else(|| PoolError::BadAddress(String::new()))?;
        let channel = self.channel(host_id, &address, &host.transport)?;
        Ok(HostAgentServiceClient::new(Traced {
            inner: channel,
            host_id,
        }))
    }

    /// A channel to `address` with `transport`, cached per host.
    pub fn channel(
        &self,
        host_id: Uuid,
        address: &str,
        transport: &str,
    ) -> Result<Channel, PoolError> {
        let mut channels = self.channels.lock().expect("pool lock");
        if let Some(c) = channels.get(&host_id) {
            if c.address == address && c.transport == transport {
                return Ok(c.channel.clone());
            }
        }
        let channel = self.connect(address, transport)?;
        channels.insert(
            host_id,
            Cached {
                address: address.to_string(),
                transport: transport.to_string(),
                channel: channel.clone(),
            },
        );
        Ok(channel)
    }

    /// Forgets a host's channel (deleted host, or a fresh start wanted).
    pub fn evict(&self, host_id: Uuid) {
        self.channels.lock().expect("pool lock").remove(&host_id);
    }

    /// The current client TLS configuration (for tests and diagnostics).
    pub fn client_tls_config(&self) -> Result<Arc<rustls::ClientConfig>, PoolError> {
        self.tls.config()
    }

    fn connect(&self, address: &str, transport: &str) -> Result<Channel, PoolError> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|_| PoolError::BadAddress(address.into()))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            // Bulk file streams: bigger windows and frames than HTTP/2's defaults.
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .max_frame_size(1 << 20)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        match transport {
            "insecure-dev" => {
                if !is_loopback(address) {
                    return Err(PoolError::InsecureRefused(address.into()));
                }
                Ok(endpoint.connect_lazy())
            }
            "mtls" => {
                let name = server_name(address)?;
                let tls = self.tls.clone();
                let target = address.to_string();
                let connector = tower::service_fn(move |_: Uri| {
                    let tls = tls.clone();
                    let name = name.clone();
                    let target = target.clone();
                    async move {
                        let config = tls
                            .config()
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        let tcp = tokio::net::TcpStream::connect(&target).await?;
                        tcp.set_nodelay(true)?;
                        let stream = tokio_rustls::TlsConnector::from(config)
                            .connect(name, tcp)
                            .await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                });
                Ok(endpoint.connect_with_connector_lazy(connector))
            }
            other => Err(PoolError::Tls(format!("unknown transport {other:?}"))),
        }
    }
}
