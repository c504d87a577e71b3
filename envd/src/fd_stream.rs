//! A non-blocking file descriptor as a tokio byte stream: vsock connections and PTY masters,
//! which tokio has no type for.
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub struct FdStream {
    fd: AsyncFd<OwnedFd>,
    /// PTY masters report EIO once the last slave is closed: that is their end of file.
    eio_is_eof: bool,
}

impl FdStream {
    /// Wraps `fd`, switching it to non-blocking mode. Must be called inside a tokio runtime.
    pub fn new(fd: OwnedFd, eio_is_eof: bool) -> io::Result<Self> {
        set_nonblocking(&fd)?;
        Ok(Self {
            fd: register(fd)?,
            eio_is_eof,
        })
    }

    pub fn as_raw_fd(&self) -> i32 {
        self.fd.get_ref().as_raw_fd()
    }

    /// Writes all of `buf` (through a shared reference, so one master can be read and written
    /// from different tasks).
    pub async fn write_all_shared(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| write(fd.get_ref(), buf)) {
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Reads into `buf` through a shared reference; `Ok(0)` is end of file.
    pub async fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| read(fd.get_ref(), buf)) {
                Ok(Err(e)) if self.eio_is_eof && e.raw_os_error() == Some(libc::EIO) => {
                    return Ok(0)
                }
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Registers a descriptor-owning value with the reactor.
///
/// Only for types that own their descriptor (`OwnedFd`, `Inotify`, ...): the descriptor then
/// stays open and unchanged for as long as the `AsyncFd` holds the value.
pub fn register<T: AsRawFd>(owner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `owner` owns its descriptor (see above), so it is valid and stays the same
    // until the AsyncFd, which now owns `owner`, is dropped.
    unsafe { AsyncFd::register(owner) }.map_err(io::Error::from)
}

pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: fcntl on a descriptor we own a borrow of; no memory is passed.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    nix::unistd::read(fd.as_raw_fd(), buf).map_err(io::Error::from)
}

fn write(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    nix::unistd::write(fd, buf).map_err(io::Error::from)
}

impl AsyncRead for FdStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| read(fd.get_ref(), unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if self.eio_is_eof && e.raw_os_error() == Some(libc::EIO) => {
                    return Poll::Ready(Ok(()))
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for FdStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| write(fd.get_ref(), buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Sockets get a half-close; for anything else (a PTY) this fails harmlessly.
        let _ = nix::sys::socket::shutdown(self.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}
