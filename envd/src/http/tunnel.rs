//! The port tunnel: `GET /tunnel/{port}` with `Connection: Upgrade` and
//! `Upgrade: wrenn-tunnel` connects to `127.0.0.1:{port}` inside the capsule and, after
//! `101 Switching Protocols`, pipes raw bytes both ways over the control connection.
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request};
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
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, PROTOCOL)
        .body(Body::empty())
        .expect("static response parts")
}
