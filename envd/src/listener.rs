//! The one listener envd serves on: a Unix socket, a vsock port or a TCP address.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, VsockAddr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::config::ListenAddr;
use crate::fd_stream::FdStream;

/// An accepted connection of any transport.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection for T {}

pub enum Listener {
    /// The path is unlinked when the listener is dropped, so a closed listener leaves no
    /// socket behind (what gVisor's checkpoint needs).
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
    Vsock(AsyncFd<OwnedFd>),
}

impl Listener {
    pub async fn bind(addr: &ListenAddr) -> io::Result<Self> {
        match addr {
            ListenAddr::Unix(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                Ok(Self::Unix(UnixListener::bind(path)?, path.clone()))
            }
            ListenAddr::Tcp(addr) => Ok(Self::Tcp(TcpListener::bind(addr).await?)),
            ListenAddr::Vsock(port) => {
                let fd = socket::socket(
                    AddressFamily::Vsock,
                    SockType::Stream,
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                    None,
                )?;
                socket::bind(fd.as_raw_fd(), &VsockAddr::new(libc::VMADDR_CID_ANY, *port))?;
                socket::listen(&fd, Backlog::new(128).map_err(io::Error::from)?)?;
                Ok(Self::Vsock(crate::fd_stream::register(fd)?))
            }
        }
    }

    /// The bound address in `--listen` syntax (with the real port for `tcp:…:0`).
    pub fn local_addr(&self) -> String {
        match self {
            Self::Unix(_, path) => format!("unix:{}", path.display()),
            Self::Tcp(l) => l
                .local_addr()
                .map(|a| format!("tcp:{a}"))
                .unwrap_or_else(|_| "tcp:?".into()),
            Self::Vsock(fd) => match socket::getsockname::<VsockAddr>(fd.get_ref().as_raw_fd()) {
                Ok(a) => format!("vsock:{}", a.port()),
                Err(_) => "vsock:?".into(),
            },
        }
    }

    pub async fn accept(&self) -> io::Result<Box<dyn Connection>> {
        match self {
            Self::Unix(l, _) => Ok(Box::new(l.accept().await?.0)),
            Self::Tcp(l) => {
                let (stream, _) = l.accept().await?;
                stream.set_nodelay(true)?;
                Ok(Box::new(stream))
            }
            Self::Vsock(fd) => loop {
                let mut guard = fd.readable().await?;
                let accepted = guard.try_io(|fd| {
                    socket::accept4(
                        fd.get_ref().as_raw_fd(),
                        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                    )
                    .map_err(io::Error::from)
                });
                if let Ok(raw) = accepted {
                    // SAFETY: accept4 just returned this descriptor and nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw?) };
                    return Ok(Box::new(FdStream::new(owned, false)?));
                }
            },
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Self::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
