//! envd: the guest agent inside every Wrenn capsule.
//!
//! # Layout
//! - [`config`]: flags (`--listen unix:PATH | vsock:PORT | tcp:ADDR`, `--access-token`, ...).
//! - [`server`]: the transport. One [`listener`] serves HTTP/1.1 and HTTP/2 connections; each
//!   request is checked against the [`auth`] token and routed by content type: gRPC to the
//!   tonic services, the rest to the axum [`http`] router. [`server::Transport::close`] and
//!   `open` implement snapshot prepare and the SIGUSR1 re-bind.
//! - [`processes`]: the process table. A start request is validated (user from [`users`],
//!   cwd), forked through the [`processes::reaper`] (which also reaps orphans, envd being
//!   PID 1 or a subreaper), and a supervisor copies the child's output into a bounded ring
//!   ([`processes::output`]) that every subscriber reads at its own pace.
//!   [`processes::service`] is the gRPC ProcessService over it.
//! - [`filesystem`]: entries, listing, mkdir/move/remove and inotify watches; the gRPC
//!   FilesystemService in [`filesystem::service`].
//! - [`http`]: `/health`, `/metrics` ([`metrics`]), `/envs`, `/init` ([`capsule`] defaults),
//!   `/snapshot/prepare`, `/files` (download/upload) and `/tunnel/{port}` (port tunnel).
//! - [`e2b`]: E2B's envd protocol (Connect JSON, `/files`) over the same services, served
//!   in-process on tunnels to `--e2b-port` so the `e2b` SDKs can drive the capsule.
//! - [`client`]: small client helpers for the host agent, tests and the benchmark.
pub mod auth;
pub mod capsule;
pub mod client;
pub mod config;
pub mod e2b;
pub mod fd_stream;
pub mod filesystem;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod processes;
pub mod server;
pub mod state;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use wrenn_proto::envd::v1::filesystem_service_server::FilesystemServiceServer;
use wrenn_proto::envd::v1::process_service_server::ProcessServiceServer;

use crate::auth::AccessToken;
use crate::capsule::Capsule;
use crate::config::Config;
use crate::filesystem::service::FilesystemRpc;
use crate::processes::reaper::Reaper;
use crate::processes::service::ProcessRpc;
use crate::processes::Processes;
use crate::server::{Routes, Transport};
use crate::state::AppState;

pub use crate::http::system::VERSION;

/// Runs envd until SIGTERM or SIGINT. Prints `envd listening on ADDR` on stdout once the
/// listener is bound (and again after every re-bind).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let reaper = Reaper::start().context("installing the SIGCHLD handler")?;
    let token = Arc::new(AccessToken::new(config.access_token.clone()));
    let capsule = Arc::new(Capsule::default());
    let processes = Processes::new(
        reaper,
        config.replay_buffer,
        Duration::from_secs(config.exited_retention_secs),
        (config.max_processes > 0).then_some(config.max_processes),
    );
    let transport = Transport::new(config.listen.clone(), token.clone());
    let e2b = (config.e2b_port != 0).then(|| {
        Arc::new(e2b::E2b {
            processes: ProcessRpc {
                processes: processes.clone(),
                capsule: capsule.clone(),
            },
            filesystem: FilesystemRpc {
                capsule: capsule.clone(),
            },
            capsule: capsule.clone(),
            default_user_name: config.e2b_default_user.clone(),
            watchers: Default::default(),
        })
    });
    let state = Arc::new(AppState {
        config,
        token,
        capsule: capsule.clone(),
        processes: processes.clone(),
        transport: transport.clone(),
        cpu: Default::default(),
        e2b,
    });
    let grpc = tonic::service::Routes::new(ProcessServiceServer::new(ProcessRpc {
        processes,
        capsule: capsule.clone(),
    }))
    .add_service(FilesystemServiceServer::new(FilesystemRpc { capsule }))
    .prepare()
    .into_axum_router();
    transport.set_routes(Routes {
        grpc,
        http: http::router().with_state(state),
    });

    let mut rebind = signal(SignalKind::user_defined1())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    announce(
        &transport
            .open()
            .await
            .with_context(|| "binding the listener")?,
    );
    loop {
        tokio::select! {
            _ = rebind.recv() => match transport.open().await {
                Ok(addr) => announce(&addr),
                Err(e) => tracing::error!(error = %e, "Re-binding the listener failed."),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    transport.close(None).await;
    Ok(())
}

fn announce(addr: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "envd listening on {addr}");
    let _ = out.flush();
}
