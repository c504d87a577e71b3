//! Starting a child: its own session, the requested user, environment and working directory,
//! on pipes or on a fresh PTY.
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::pty::{openpty, Winsize};
use nix::sys::wait::WaitStatus;
use nix::unistd::{Gid, Uid};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use super::reaper::Reaper;
use crate::fd_stream::FdStream;
use crate::users::User;

/// Everything needed to start one process, already validated.
pub struct SpawnSpec {
    pub cmd: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub user: User,
    /// `Some((cols, rows))` to run on a PTY.
    pub pty: Option<(u16, u16)>,
    pub stdin: bool,
    /// RLIMIT_NPROC of the child (and so of everything it starts).
    pub max_processes: Option<u64>,
}

/// The parent's ends of a started child.
pub struct Spawned {
    pub pid: u32,
    pub exit: oneshot::Receiver<WaitStatus>,
    pub io: ChildIo,
}

pub enum ChildIo {
    Pipes {
        stdin: Option<pipe::Sender>,
        stdout: pipe::Receiver,
        stderr: pipe::Receiver,
    },
    Pty(FdStream),
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

pub fn spawn(spec: SpawnSpec, reaper: &Reaper) -> io::Result<Spawned> {
    let mut cmd = Command::new(&spec.cmd);
    cmd.args(&spec.args).env_clear().current_dir(&spec.cwd);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    let uid = Uid::from_raw(spec.user.uid);
    let gid = Gid::from_raw(spec.user.gid);
    let groups: Vec<Gid> = spec.user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    // Only switch identity when it changes: running as envd's own user must work without
    // CAP_SETUID/CAP_SETGID (a container's default capability set lacks them).
    let drop_privileges = uid != nix::unistd::geteuid() || gid != nix::unistd::getegid();
    let on_pty = spec.pty.is_some();
    let max_processes = spec.max_processes;

    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (setsid, ioctl, setgroups, setgid, setuid, setrlimit) on data prepared before the
    // fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            if on_pty && libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            if drop_privileges {
                nix::unistd::setgroups(&groups)?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
            }
            // After the identity change: the kernel checks the limit when the user changes.
            if let Some(n) = max_processes {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NPROC, n, n)?;
            }
            Ok(())
        });
    }

    let (pid, io, exit) = reaper.spawn(|| match spec.pty {
        Some((cols, rows)) => {
            let pty = openpty(Some(&winsize(cols, rows)), None).map_err(io::Error::from)?;
            set_cloexec(&pty.master)?;
            cmd.stdin(Stdio::from(pty.slave.try_clone()?))
                .stdout(Stdio::from(pty.slave.try_clone()?))
                .stderr(Stdio::from(pty.slave));
            let child = cmd.spawn()?;
            Ok((child.id(), Io::Pty(pty.master)))
        }
        None => {
            cmd.stdin(if spec.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            let mut child = cmd.spawn()?;
            Ok((
                child.id(),
                Io::Pipes(
                    child.stdin.take().map(OwnedFd::from),
                    child
                        .stdout
                        .take()
                        .map(OwnedFd::from)
                        .expect("piped stdout"),
                    child
                        .stderr
                        .take()
                        .map(OwnedFd::from)
                        .expect("piped stderr"),
                ),
            ))
        }
    })?;
    // `cmd` (and with it the parent's copies of the PTY slave) is dropped by now: the master
    // reports end of file once the child side closes.
    let io = match io {
        Io::Pty(master) => ChildIo::Pty(FdStream::new(master, true)?),
        Io::Pipes(stdin, stdout, stderr) => ChildIo::Pipes {
            stdin: stdin.map(pipe::Sender::from_owned_fd).transpose()?,
            stdout: pipe::Receiver::from_owned_fd(stdout)?,
            stderr: pipe::Receiver::from_owned_fd(stderr)?,
        },
    };
    Ok(Spawned { pid, exit, io })
}

enum Io {
    Pipes(Option<OwnedFd>, OwnedFd, OwnedFd),
    Pty(OwnedFd),
}

fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The environment a child gets: a login-like base, then the capsule's defaults, then the
/// request's own variables.
pub fn environment(
    user: &User,
    capsule_env: impl IntoIterator<Item = (String, String)>,
    request_env: impl IntoIterator<Item = (String, String)>,
    pty: bool,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), user.home.display().to_string()),
        ("USER".into(), user.name.clone()),
        ("LOGNAME".into(), user.name.clone()),
        (
            "SHELL".into(),
            if user.shell.is_empty() {
                "/bin/sh".into()
            } else {
                user.shell.clone()
            },
        ),
    ];
    if pty {
        env.push(("TERM".into(), "xterm-256color".into()));
    }
    for (k, v) in capsule_env.into_iter().chain(request_env) {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    }
    env
}
