//! Processes started through envd: the table of live and recently exited processes, and
//! the task that supervises each one.
//!
//! A process is started by [`Processes::start`]: the request is validated (user, cwd), the
//! child is forked through the [`Reaper`], and a supervisor task copies its output into the
//! process's [`Output`] ring until it exits. Subscribers (Start, ConnectProcess) read the
//! ring at their own pace. Exited processes stay in the table for the retention period so a
//! late ConnectProcess or List still sees the exit status.
pub mod output;
pub mod reaper;
pub mod service;
pub mod spawn;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use nix::sys::wait::WaitStatus;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tonic::Status;
use wrenn_proto::envd::v1::{
    process_event::EndEvent, process_selector::Selector, ProcessConfig, ProcessSelector,
};

use self::output::{Output, Stream};
use self::reaper::Reaper;
use self::spawn::{ChildIo, SpawnSpec};
use crate::capsule::CapsuleDefaults;
use crate::fd_stream::FdStream;

/// How long output readers may keep going after the process exited (a background grandchild
/// can hold the pipes open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(250);
const READ_CHUNK: usize = 64 * 1024;

/// One started process.
pub struct Process {
    pub pid: u32,
    pub tag: Option<String>,
    pub config: ProcessConfig,
    pub output: Output,
    pty: Option<Arc<FdStream>>,
    stdin: tokio::sync::Mutex<Option<tokio::net::unix::pipe::Sender>>,
    end: watch::Sender<Option<EndEvent>>,
}

impl Process {
    pub fn is_pty(&self) -> bool {
        self.pty.is_some()
    }

    /// The end event, if the process has exited (and its output has been drained).
    pub fn end(&self) -> Option<EndEvent> {
        self.end.borrow().clone()
    }

    /// Waits for the end event.
    pub async fn wait_end(&self) -> EndEvent {
        let mut rx = self.end.subscribe();
        let end = match rx.wait_for(Option::is_some).await {
            Ok(end) => end.clone(),
            Err(_) => None,
        };
        end.unwrap_or_else(|| EndEvent {
            error: Some("process supervisor vanished".into()),
            ..Default::default()
        })
    }

    /// Writes to stdin (pipes) or to the terminal (PTY).
    pub async fn write_input(&self, data: &[u8], to_pty: bool) -> Result<(), Status> {
        match (&self.pty, to_pty) {
            (Some(pty), _) => pty.write_all_shared(data).await.map_err(io_status),
            (None, true) => Err(Status::failed_precondition("process has no PTY")),
            (None, false) => {
                use tokio::io::AsyncWriteExt;
                let mut stdin = self.stdin.lock().await;
                let Some(pipe) = stdin.as_mut() else {
                    return Err(Status::failed_precondition(
                        "stdin is closed (start the process with stdin=true to keep it open)",
                    ));
                };
                pipe.write_all(data).await.map_err(io_status)
            }
        }
    }

    pub async fn close_stdin(&self) -> Result<(), Status> {
        if let Some(pty) = &self.pty {
            // End of file on a terminal is Ctrl-D at the start of a line.
            return pty.write_all_shared(&[4]).await.map_err(io_status);
        }
        self.stdin.lock().await.take();
        Ok(())
    }

    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), Status> {
        let Some(pty) = &self.pty else {
            return Err(Status::failed_precondition("process has no PTY"));
        };
        let size = spawn::winsize(cols, rows);
        // SAFETY: TIOCSWINSZ reads a `winsize` that lives for the duration of the call.
        if unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
            return Err(io_status(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    pub fn signal(&self, signal: i32, group: bool) -> Result<(), Status> {
        if self.end().is_some() {
            return Err(Status::failed_precondition("process has already exited"));
        }
        let target = if group {
            -(self.pid as i32)
        } else {
            self.pid as i32
        };
        // SAFETY: kill with integer arguments only.
        if unsafe { libc::kill(target, signal) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EINVAL) => Status::invalid_argument(format!("invalid signal {signal}")),
                _ => io_status(e),
            });
        }
        Ok(())
    }
}

pub fn io_status(e: std::io::Error) -> Status {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => Status::not_found(e.to_string()),
        PermissionDenied => Status::permission_denied(e.to_string()),
        AlreadyExists => Status::already_exists(e.to_string()),
        InvalidInput | NotADirectory | IsADirectory => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

#[derive(Default)]
struct Table {
    by_pid: HashMap<u32, Arc<Process>>,
    by_tag: HashMap<String, u32>,
}

/// The process table.
pub struct Processes {
    table: Mutex<Table>,
    reaper: Arc<Reaper>,
    replay_buffer: usize,
    retention: Duration,
    /// RLIMIT_NPROC of started processes ([`crate::Config::max_processes`]).
    max_processes: Option<u64>,
}

impl Processes {
    pub fn new(
        reaper: Arc<Reaper>,
        replay_buffer: usize,
        retention: Duration,
        max_processes: Option<u64>,
    ) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::default(),
            reaper,
            replay_buffer,
            retention,
            max_processes,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, selector: Option<&ProcessSelector>) -> Result<Arc<Process>, Status> {
        let table = self.table();
        let found = match selector.and_then(|s| s.selector.as_ref()) {
            Some(Selector::Pid(pid)) => table.by_pid.get(pid),
            Some(Selector::Tag(tag)) => table.by_tag.get(tag).and_then(|pid| table.by_pid.get(pid)),
            None => return Err(Status::invalid_argument("a pid or tag is required")),
        };
        found
            .cloned()
            .ok_or_else(|| Status::not_found("no such process"))
    }

    pub fn list(&self) -> Vec<Arc<Process>> {
        let mut all: Vec<_> = self.table().by_pid.values().cloned().collect();
        all.sort_by_key(|p| p.pid);
        all
    }

    /// Validates and starts a process; its supervisor runs until it exits.
    pub fn start(
        self: &Arc<Self>,
        config: ProcessConfig,
        tag: Option<String>,
        pty: Option<(u16, u16)>,
        stdin: bool,
        paced: bool,
        defaults: &CapsuleDefaults,
    ) -> Result<Arc<Process>, Status> {
        if config.cmd.is_empty() {
            return Err(Status::invalid_argument("cmd is required"));
        }
        let user_name = config
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| defaults.default_user.clone())
            .unwrap_or_else(|| "root".into());
        let user = crate::users::lookup(&user_name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let cwd = match config.cwd.as_deref().filter(|c| !c.is_empty()) {
            Some(cwd) => {
                let cwd = absolute(cwd, &user.home);
                if !cwd.is_dir() {
                    return Err(Status::invalid_argument(format!(
                        "cwd {} is not a directory",
                        cwd.display()
                    )));
                }
                cwd
            }
            None => [
                defaults.default_workdir.as_deref().map(PathBuf::from),
                Some(user.home.clone()),
            ]
            .into_iter()
            .flatten()
            .find(|d| d.is_dir())
            .unwrap_or_else(|| PathBuf::from("/")),
        };
        let tag = tag.filter(|t| !t.is_empty());
        let env = spawn::environment(
            &user,
            defaults.env_vars.clone(),
            config.envs.clone(),
            pty.is_some(),
        );
        let spec = SpawnSpec {
            cmd: config.cmd.clone(),
            args: config.args.clone(),
            env,
            cwd,
            user,
            pty,
            stdin,
            max_processes: self.max_processes,
        };

        // The table lock covers the tag check and the insert, so two starts cannot both take
        // one tag.
        let mut table = self.table();
        if let Some(tag) = &tag {
            if let Some(other) = table.by_tag.get(tag).and_then(|pid| table.by_pid.get(pid)) {
                if other.end().is_none() {
                    return Err(Status::already_exists(format!(
                        "tag `{tag}` is taken by pid {}",
                        other.pid
                    )));
                }
            }
        }
        let spawned = spawn::spawn(spec, &self.reaper).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Status::not_found(format!("{}: command not found", config.cmd))
            }
            _ => io_status(e),
        })?;
        let (pty_master, stdin_pipe, readers) = match spawned.io {
            ChildIo::Pty(master) => {
                let master = Arc::new(master);
                (Some(master.clone()), None, Readers::Pty(master))
            }
            ChildIo::Pipes {
                stdin,
                stdout,
                stderr,
            } => (None, stdin, Readers::Pipes(stdout, stderr)),
        };
        let process = Arc::new(Process {
            pid: spawned.pid,
            tag: tag.clone(),
            config,
            output: Output::new(self.replay_buffer).paced(paced),
            pty: pty_master,
            stdin: tokio::sync::Mutex::new(stdin_pipe),
            end: watch::Sender::new(None),
        });
        table.by_pid.insert(process.pid, process.clone());
        if let Some(tag) = tag {
            table.by_tag.insert(tag, process.pid);
        }
        drop(table);
        tracing::info!(pid = process.pid, cmd = %process.config.cmd, "Started a process.");
        tokio::spawn(
            self.clone()
                .supervise(process.clone(), readers, spawned.exit),
        );
        Ok(process)
    }

    async fn supervise(
        self: Arc<Self>,
        process: Arc<Process>,
        readers: Readers,
        exit: tokio::sync::oneshot::Receiver<WaitStatus>,
    ) {
        let mut reading = tokio::spawn(readers.run(process.clone()));
        let status = exit.await;
        if tokio::time::timeout(DRAIN_AFTER_EXIT, &mut reading)
            .await
            .is_err()
        {
            reading.abort();
        }
        process.output.close();
        let mut end = match status {
            Ok(WaitStatus::Exited(_, code)) => EndEvent {
                exit_code: code,
                exited: true,
                status: format!("exit status {code}"),
                ..Default::default()
            },
            Ok(WaitStatus::Signaled(_, sig, _)) => EndEvent {
                exit_code: 128 + sig as i32,
                exited: false,
                status: format!("signal: {}", sig.as_str()),
                signal: Some(sig as i32),
                ..Default::default()
            },
            other => EndEvent {
                exit_code: -1,
                status: "unknown".into(),
                error: Some(format!("unexpected wait status {other:?}")),
                ..Default::default()
            },
        };
        end.output_bytes = process.output.produced();
        tracing::info!(pid = process.pid, status = %end.status, "A process ended.");
        // Stdin of an exited process is useless; dropping it frees the pipe.
        process.stdin.lock().await.take();
        process.end.send_replace(Some(end));

        tokio::time::sleep(self.retention).await;
        let mut table = self.table();
        if table
            .by_pid
            .get(&process.pid)
            .is_some_and(|p| Arc::ptr_eq(p, &process))
        {
            table.by_pid.remove(&process.pid);
        }
        if let Some(tag) = &process.tag {
            if table.by_tag.get(tag) == Some(&process.pid) {
                table.by_tag.remove(tag);
            }
        }
    }
}

fn absolute(path: &str, home: &Path) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        home.join(p)
    }
}

enum Readers {
    Pipes(
        tokio::net::unix::pipe::Receiver,
        tokio::net::unix::pipe::Receiver,
    ),
    Pty(Arc<FdStream>),
}

impl Readers {
    async fn run(self, process: Arc<Process>) {
        match self {
            Readers::Pipes(stdout, stderr) => {
                tokio::join!(
                    copy_pipe(stdout, Stream::Stdout, &process),
                    copy_pipe(stderr, Stream::Stderr, &process)
                );
            }
            Readers::Pty(master) => {
                let mut buf = vec![0u8; READ_CHUNK];
                while let Ok(n @ 1..) = master.read_shared(&mut buf).await {
                    process
                        .output
                        .push(Stream::Pty, bytes::Bytes::copy_from_slice(&buf[..n]));
                }
            }
        }
    }
}

async fn copy_pipe(mut pipe: tokio::net::unix::pipe::Receiver, stream: Stream, process: &Process) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let chunk = buf.split().freeze();
                // A paced output takes the chunk only once it fits (nothing unread is lost).
                process.output.room(chunk.len()).await;
                process.output.push(stream, chunk);
            }
        }
    }
}
