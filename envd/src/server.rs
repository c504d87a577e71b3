//! The transport: one listener serving gRPC and HTTP on the same connections, closed for a
//! snapshot and re-opened after restore.
//!
//! Each accepted connection is served by hyper (HTTP/1.1 with upgrades, or HTTP/2). Requests
//! with `content-type: application/grpc*` go to the tonic services, everything else to the
//! axum router. The access token is checked here, once, for both (except `/health`).
pub mod connections;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use self::connections::{ConnectionHandle, Connections};
use crate::auth::{self, AccessToken};
use crate::config::ListenAddr;
use crate::listener::{Connection, Listener};

/// How long a connection being closed may finish in-flight requests before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Upper bound for waiting on connections to go away during prepare.
const CLOSE_DEADLINE: Duration = Duration::from_secs(3);

/// The two request handlers behind the listener.
#[derive(Clone)]
pub struct Routes {
    pub grpc: axum::Router,
    pub http: axum::Router,
}

struct Bound {
    stop: CancellationToken,
    accept_loop: JoinHandle<()>,
}

pub struct Transport {
    /// What to bind; a `tcp:…:0` becomes the port first bound, so a re-bind keeps it.
    addr: Mutex<ListenAddr>,
    token: Arc<AccessToken>,
    routes: OnceLock<Routes>,
    bound: tokio::sync::Mutex<Option<Bound>>,
    local_addr: Mutex<Option<String>>,
    connections: Arc<Connections>,
}

impl Transport {
    pub fn new(addr: ListenAddr, token: Arc<AccessToken>) -> Arc<Self> {
        Arc::new(Self {
            addr: Mutex::new(addr),
            token,
            routes: OnceLock::new(),
            bound: tokio::sync::Mutex::new(None),
            local_addr: Mutex::new(None),
            connections: Arc::default(),
        })
    }

    /// Sets what the listener serves; called once before the first [`Transport::open`].
    pub fn set_routes(&self, routes: Routes) {
        let _ = self.routes.set(routes);
    }

    /// The address currently listened on, in `--listen` syntax.
    pub fn local_addr(&self) -> Option<String> {
        self.local_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Binds the listener and starts accepting, unless it is open already. Returns the
    /// bound address.
    pub async fn open(self: &Arc<Self>) -> std::io::Result<String> {
        let mut bound = self.bound.lock().await;
        if let Some(b) = bound.as_ref() {
            if !b.accept_loop.is_finished() {
                return Ok(self.local_addr().unwrap_or_default());
            }
        }
        let wanted = self.addr.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let listener = Listener::bind(&wanted).await?;
        let addr = listener.local_addr();
        if let (ListenAddr::Tcp(_), Ok(bound)) = (&wanted, addr.parse::<ListenAddr>()) {
            *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = bound;
        }
        *self.local_addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr.clone());
        let stop = CancellationToken::new();
        let accept_loop = tokio::spawn(self.clone().accept_loop(listener, stop.clone()));
        *bound = Some(Bound { stop, accept_loop });
        tracing::info!(%addr, "Listening.");
        Ok(addr)
    }

    /// Stops listening (a Unix socket path is unlinked) and closes every connection except
    /// `keep`, waiting for them to go; `keep` itself is told to close once its in-flight
    /// request is answered. Returns how many connections were closed.
    pub async fn close(&self, keep: Option<u64>) -> usize {
        if let Some(b) = self.bound.lock().await.take() {
            b.stop.cancel();
            let _ = b.accept_loop.await;
        }
        *self.local_addr.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let closed = self.connections.cancel_all_except(keep);
        self.connections.wait_until_only(keep, CLOSE_DEADLINE).await;
        if let Some(id) = keep {
            self.connections.cancel(id);
        }
        closed
    }

    async fn accept_loop(self: Arc<Self>, listener: Listener, stop: CancellationToken) {
        let routes = self
            .routes
            .get()
            .expect("routes are set before open")
            .clone();
        loop {
            let io = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(io) => io,
                    Err(e) => {
                        tracing::warn!(error = %e, "Accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let handle = self.connections.register();
            tokio::spawn(serve_connection(
                io,
                handle,
                routes.clone(),
                self.token.clone(),
            ));
        }
        drop(listener);
        tracing::info!("Stopped listening.");
    }
}

async fn serve_connection(
    io: Box<dyn Connection>,
    handle: Arc<ConnectionHandle>,
    routes: Routes,
    token: Arc<AccessToken>,
) {
    let cancel = handle.token.clone();
    let service = hyper::service::service_fn(move |req| {
        dispatch(req, routes.clone(), token.clone(), handle.clone())
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Bigger windows than the defaults keep bulk streams (output, downloads) from stalling.
    builder
        .http2()
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .max_frame_size(1 << 20);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "Connection ended with an error.");
            }
            return;
        }
        _ = cancel.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
}

fn is_grpc(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

async fn dispatch(
    mut req: Request<Incoming>,
    routes: Routes,
    token: Arc<AccessToken>,
    connection: Arc<ConnectionHandle>,
) -> Result<Response<Body>, Infallible> {
    let grpc = is_grpc(&req);
    if req.uri().path() != "/health"
        && !token.allows(req.headers().get(auth::HEADER).map(|v| v.as_bytes()))
    {
        return Ok(if grpc {
            tonic::Status::unauthenticated("missing or wrong x-access-token").into_http()
        } else {
            crate::http::error_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong X-Access-Token",
            )
        });
    }
    req.extensions_mut().insert(connection);
    let router = if grpc { routes.grpc } else { routes.http };
    match router.oneshot(req).await {
        Ok(response) => Ok(response),
        Err(never) => match never {},
    }
}
