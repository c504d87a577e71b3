//! Byte streams to envd over each control transport.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::runtime::EnvdAddress;

/// A connected stream to envd.
pub enum EnvdStream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// Connects to envd at `addr`. For vsock, performs Cloud Hypervisor's `CONNECT <port>`
/// handshake on its host socket and expects `OK <port>` back.
pub async fn connect(addr: &EnvdAddress) -> std::io::Result<EnvdStream> {
    match addr {
        EnvdAddress::Unix { path } => Ok(EnvdStream::Unix(UnixStream::connect(path).await?)),
        EnvdAddress::Tcp { addr } => {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(EnvdStream::Tcp(s))
        }
        EnvdAddress::Vsock { path, port } => {
            let mut s = UnixStream::connect(path).await?;
            s.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
            // Read the reply byte by byte so no payload byte is swallowed by a buffer.
            let mut line = Vec::new();
            let mut reader = BufReader::with_capacity(1, &mut s);
            reader.read_until(b'\n', &mut line).await?;
            if !line.starts_with(b"OK ") {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    format!(
                        "vsock handshake refused: {}",
                        String::from_utf8_lossy(&line).trim()
                    ),
                ));
            }
            Ok(EnvdStream::Unix(s))
        }
    }
}

impl AsyncRead for EnvdStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            EnvdStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            EnvdStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EnvdStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            EnvdStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            EnvdStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            EnvdStream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            EnvdStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            EnvdStream::Unix(s) => s.is_write_vectored(),
            EnvdStream::Tcp(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            EnvdStream::Unix(s) => Pin::new(s).poll_flush(cx),
            EnvdStream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            EnvdStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            EnvdStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
