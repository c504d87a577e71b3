//! Client helpers for envd's transport: a raw connection, a gRPC channel and an HTTP/1.1
//! connection (for `/files`, `/init` and the tunnel upgrade). Used by the tests and the
//! benchmark; the host agent may use them too.
use std::io;

use axum::body::Body;
use http::{HeaderValue, Request};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::config::ListenAddr;
use crate::listener::Connection;

/// Opens a raw connection to envd. `vsock:PORT` connects to the local CID
/// (`VMADDR_CID_LOCAL`, needs the `vsock_loopback` module): that is for tests; a host reaches a
/// guest's vsock through its hypervisor instead.
pub async fn connect(addr: &ListenAddr) -> io::Result<Box<dyn Connection>> {
    match addr {
        ListenAddr::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
        ListenAddr::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        ListenAddr::Vsock(port) => {
            let port = *port;
            let fd = tokio::task::spawn_blocking(move || connect_vsock_local(port))
                .await
                .map_err(io::Error::other)??;
            Ok(Box::new(crate::fd_stream::FdStream::new(fd, false)?))
        }
    }
}

fn connect_vsock_local(port: u32) -> io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, VsockAddr};
    use std::os::fd::AsRawFd;
    let fd = socket::socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let timeout = nix::sys::time::TimeVal::new(2, 0);
    socket::setsockopt(&fd, socket::sockopt::SendTimeout, &timeout)?;
    socket::connect(
        fd.as_raw_fd(),
        &VsockAddr::new(libc::VMADDR_CID_LOCAL, port),
    )?;
    Ok(fd)
}

/// A gRPC channel (HTTP/2) to envd at `addr`.
pub async fn grpc_channel(addr: &ListenAddr) -> Result<Channel, tonic::transport::Error> {
    let addr = addr.clone();
    Endpoint::from_static("http://envd")
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let addr = addr.clone();
            async move { connect(&addr).await.map(TokioIo::new) }
        }))
        .await
}

/// Adds `x-access-token` to every gRPC request.
#[derive(Clone)]
pub struct AccessTokenInterceptor(pub Option<String>);

impl Interceptor for AccessTokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = token
                .parse()
                .map_err(|_| tonic::Status::invalid_argument("bad token"))?;
            request.metadata_mut().insert(crate::auth::HEADER, value);
        }
        Ok(request)
    }
}

/// An HTTP/1.1 connection to envd (upgrades enabled, for the tunnel).
pub async fn http1(addr: &ListenAddr) -> io::Result<SendRequest<Body>> {
    let io = connect(addr).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender)
}

/// A request builder with the `Host` and (optional) access token headers set.
pub fn request(
    method: http::Method,
    path_and_query: &str,
    token: Option<&str>,
) -> http::request::Builder {
    let mut b = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, "envd");
    if let Some(t) = token.and_then(|t| HeaderValue::from_str(t).ok()) {
        b = b.header(crate::auth::HEADER, t);
    }
    b
}
