//! wrenn-agent: the host agent. It owns the capsules of one host, serves the
//! HostAgentService to the control plane, and registers/heartbeats with it.
//!
//! # Layout
//! - [`config`]: command line / environment.
//! - [`runtime`]: the `Runtime` trait (create, destroy, pause, resume, snapshot, stats)
//!   and its drivers; [`runtime::gvisor`] drives runsc and probes the host's capabilities.
//! - [`envd`]: the control transport to each capsule's envd (gRPC + HTTP over a Unix
//!   socket, vsock or TCP).
//! - [`capsules`]: the registry of capsules and their persisted records.
//! - [`host`]: lifecycle operations combining runtime, envd hooks and registry; its
//!   submodules run the TTL reaper, the metrics sampler and start-up recovery, and hold the
//!   outbox of changes the agent made on its own ([`host::outbox`]).
//! - [`metrics`]: per-capsule metric rings.
//! - [`service`]: the tonic HostAgentService, mapping [`host`] errors to gRPC codes.
//! - [`tls`]: mTLS server configuration (hot-swappable); [`registration`]: register,
//!   saved credentials, heartbeat and refresh, and delivery of the outbox to the control
//!   plane (`POST /v1/hosts/sandbox-events`, bodies typed in `wrenn_proto::host_http`).
//!
//! Data flow: control plane → [`service`] → [`host`] → [`runtime`] (runsc) and
//! [`envd`] (inside the capsule). Background loops ([`host::reaper`],
//! [`host::sampler`], [`registration::heartbeat_loop`]) stop on the host's
//! cancellation token.

pub mod capsules;
pub mod config;
pub mod envd;
pub mod host;
pub mod metrics;
pub mod registration;
pub mod runtime;
pub mod service;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wrenn_proto::hostagent::v1 as pb;

use crate::config::Config;
use crate::host::{Host, HostLimits};
use crate::runtime::gvisor::{self, Gvisor, GvisorConfig};
use crate::service::{AgentService, HostAgentServiceServer};

/// Total memory of the host in MiB (from /proc/meminfo).
pub fn host_memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| host::load::meminfo_kib(&s, "MemTotal:"))
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

fn disk_gb(path: &std::path::Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks() * s.fragment_size() / (1024 * 1024 * 1024))
        .unwrap_or(0)
}

/// Starts the agent and serves until shutdown (SIGTERM/SIGINT, Terminate RPC, or the
/// control plane deleting the host).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let wrenn_dir = config.wrenn_dir.clone();
    for sub in ["images", "sandboxes", "snapshots", "runsc"] {
        std::fs::create_dir_all(wrenn_dir.join(sub))
            .with_context(|| format!("creating {}/{sub}", wrenn_dir.display()))?;
    }
    let listen = config
        .listen_addr()
        .context("--address (or --listen) is required")?;
    let creds = registration::load(&wrenn_dir);
    if config.insecure_dev && !listen.ip().is_loopback() {
        bail!("--insecure-dev serves plaintext and is only allowed on a loopback address, not {listen}");
    }
    if !config.insecure_dev && creds.is_none() && config.register.is_none() {
        bail!("no credentials in {}: register with --register <token> --cp-url URL, or use --insecure-dev on loopback", registration::credentials_path(&wrenn_dir).display());
    }

    let cache = config
        .probe_cache
        .clone()
        .unwrap_or_else(|| wrenn_dir.join("capabilities.json"));
    let caps = gvisor::probe(
        &config.runsc,
        &gvisor::probe::scratch_dir(&wrenn_dir),
        Some(&cache),
        &config.platform,
        &config.network,
    )
    .await;
    if caps.runtime_version.is_empty() {
        bail!(
            "runsc ({}) is not runnable: {:?}",
            config.runsc.display(),
            caps.notes
        );
    }
    if !caps.platforms.iter().any(|p| p == &config.platform) {
        warn!(platform = %config.platform, found = ?caps.platforms, "configured gVisor platform failed the probe");
    }
    if caps.network_mode != config.network {
        warn!(configured = %config.network, using = %caps.network_mode, notes = ?caps.notes.get("network_mode"), "capsule network mode fell back");
    }
    let pool = gvisor::net::Cidr::parse(&config.net_pool)
        .filter(|c| c.prefix <= 30)
        .with_context(|| {
            format!(
                "--net-pool {:?} is not an IPv4 CIDR of /30 or wider",
                config.net_pool
            )
        })?;
    let dns = if config.dns.is_empty() {
        gvisor::net::host_resolvers()
    } else {
        config
            .dns
            .iter()
            .map(|a| a.trim().parse())
            .collect::<Result<Vec<std::net::Ipv4Addr>, _>>()
            .with_context(|| format!("--dns {:?}: not IPv4 addresses", config.dns))?
    };
    let runtime = Arc::new(Gvisor::new(
        GvisorConfig {
            wrenn_dir: wrenn_dir.clone(),
            runsc: config.runsc.clone(),
            platform: config.platform.clone(),
            network: caps.network_mode.clone(),
            overlay: config.overlay.clone(),
            net: Some(gvisor::net::NetConfig { pool, dns }),
        },
        caps.clone(),
    )?);
    let shutdown = CancellationToken::new();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let limits = HostLimits {
        cpus,
        memory_mb: host_memory_mb(),
    };
    let pools = host::pool::PoolSpec::parse_all(&config.warm_pool)
        .map_err(|e| anyhow::anyhow!("--warm-pool: {e}"))?;
    let host = Host::new(
        wrenn_dir.clone(),
        config.images_dir(),
        runtime,
        limits,
        Duration::from_secs(config.hibernate_after_secs),
        pools,
        shutdown.clone(),
    );
    host::recovery::recover(&host).await;

    let info = pb::HostInfo {
        agent_version: host.agent_version.clone(),
        arch: std::env::consts::ARCH.to_owned(),
        cpu_cores: cpus,
        memory_mb: limits.memory_mb,
        disk_gb: disk_gb(&wrenn_dir),
        capabilities: Some(service::capabilities_pb(&caps)),
    };

    // Registration and heartbeat.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let creds = match (creds, &config.register) {
        (_, Some(token)) => {
            let cp_url = config
                .cp_url
                .clone()
                .context("--cp-url is required with --register")?;
            let address = config.address.unwrap_or(listen).to_string();
            let body = serde_json::json!({
                "arch": info.arch, "cpu_cores": info.cpu_cores, "memory_mb": info.memory_mb,
                "disk_gb": info.disk_gb, "capabilities": caps,
            });
            let c = registration::register(&client, &cp_url, token, &address, &body)
                .await
                .context("registration failed")?;
            registration::save(&wrenn_dir, &c)?;
            info!(host_id = %c.host_id, "registered with the control plane");
            Some(c)
        }
        (c, None) => c,
    };
    let tls = match (&creds, config.insecure_dev) {
        (Some(c), false) => Some(tls::TlsState::new(&c.cert_pem, &c.key_pem, &c.ca_cert_pem)?),
        _ => None,
    };
    let mut tasks = Vec::new();
    if let Some(c) = creds.clone() {
        tasks.push(tokio::spawn(registration::heartbeat_loop(
            host.clone(),
            client,
            c,
            tls.clone(),
            Duration::from_secs(config.heartbeat_secs.max(1)),
        )));
    }
    tasks.push(tokio::spawn(host::reaper::run(
        host.clone(),
        Duration::from_millis(config.reaper_interval_ms.max(50)),
    )));
    tasks.push(tokio::spawn(host::reaper::hibernate(
        host.clone(),
        Duration::from_millis(config.reaper_interval_ms.max(50)),
    )));
    tasks.push(tokio::spawn(host::watchdog::run(
        host.clone(),
        Duration::from_millis(config.watchdog_interval_ms.max(50)),
    )));
    tasks.push(tokio::spawn(host::sampler::run(host.clone())));
    // Drains the pools once the host shuts down (awaited below).
    tasks.push(tokio::spawn(host::pool::run(host.clone())));
    if let Some(addr) = config.metrics_listen {
        tasks.push(tokio::spawn(telemetry::serve(
            addr,
            host.clone(),
            shutdown.clone(),
        )));
    }

    let signals = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            _ = signals.cancelled() => {}
        }
        signals.cancel();
    });

    let svc = AgentService {
        host: host.clone(),
        info,
    };
    serve(svc, listen, tls, shutdown.clone()).await?;
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }
    info!("agent stopped; capsules keep running and will be adopted at the next start (warm pool entries were removed)");
    Ok(())
}

async fn serve(
    svc: AgentService,
    listen: SocketAddr,
    tls: Option<Arc<tls::TlsState>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    info!(address = %listener.local_addr()?, tls = tls.is_some(), "serving HostAgentService");
    // Windows and frames sized for bulk file streams (the control plane's channel matches).
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .max_frame_size(1 << 20)
        .layer(telemetry::RpcLayer)
        .add_service(HostAgentServiceServer::new(svc).max_decoding_message_size(128 * 1024 * 1024));
    match tls {
        None => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await?;
        }
        Some(tls) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<tls::TlsConn, std::io::Error>>(64);
            let accept_shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let (tcp, peer) = tokio::select! {
                        _ = accept_shutdown.cancelled() => return,
                        r = listener.accept() => match r { Ok(v) => v, Err(_) => continue },
                    };
                    let acceptor = tls.acceptor();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(s)) => {
                                let _ = tx.send(Ok(tls::TlsConn(s))).await;
                            }
                            Ok(Err(e)) => warn!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => warn!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
            });
            let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
            router
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await?;
        }
    }
    Ok(())
}
