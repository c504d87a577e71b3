//! The port tunnel: `GET /tunnel/{port}` with `Connection: Upgrade` and
//! `Upgrade: wrenn-tunnel` connects to `127.0.0.1:{port}` inside the capsule and, after
//! `101 Switching Protocols`, pipes raw bytes both ways over the control connection.
//!
//! A tunnel to `--e2b-port` connects to nothing: envd serves E2B's envd protocol on it
//! itself ([`crate::e2b`]).
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use http::{header, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error_response;
use crate::server::ConnectionHandle;
use crate::state::AppState;

pub const PROTOCOL: &str = "wrenn-tunnel";

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/tunnel/{port}", get(tunnel))
}

async fn tunnel(
    State(state): State<Arc<AppState>>,
    Path(port): Path<u16>,
    connection: Option<Extension<Arc<ConnectionHandle>>>,
    mut req: Request,
) -> Response<Body> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !upgrade.eq_ignore_ascii_case(PROTOCOL) {
        return error_response(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "send Upgrade: wrenn-tunnel",
        );
    }
    if let Some(e2b) = state.e2b.clone().filter(|_| port == state.config.e2b_port) {
        let on_upgrade = hyper::upgrade::on(&mut req);
        let closed = connection
            .map(|Extension(c)| c.token.clone())
            .unwrap_or_default();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => e2b.serve(upgraded, closed).await,
                Err(e) => tracing::debug!(error = %e, port, "Tunnel upgrade failed."),
            }
        });
        return switching_protocols();
    }
    let mut upstream = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) => {
            return error_response(
                StatusCode::BAD_GATEWAY,
                "port_unreachable",
                &format!("127.0.0.1:{port}: {e}"),
            )
        }
    };
    let _ = upstream.set_nodelay(true);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let closed = connection.map(|Extension(c)| c);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, port, "Tunnel upgrade failed.");
                return;
            }
        };
        let mut downstream = TokioIo::new(upgraded);
        let copy = tokio::io::copy_bidirectional(&mut downstream, &mut upstream);
        match &closed {
            Some(conn) => {
                tokio::select! {
                    _ = copy => {}
                    _ = conn.token.cancelled() => {}
                }
            }
            None => {
                let _ = copy.await;
            }
        }
    });
    switching_protocols()
}

fn switching_protocols() -> Response<Body> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, PROTOCOL)
        .body(Body::empty())
        .expect("static response parts")
}
