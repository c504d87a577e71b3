//! Reaps every child that exits, including orphans re-parented to envd.
//!
//! envd may be PID 1 (and is a child subreaper otherwise), so orphaned grandchildren become
//! its children and must be waited for, or they stay zombies. One loop calls
//! `waitpid(-1, WNOHANG)` on each SIGCHLD; exit statuses of processes envd started are handed
//! to their waiters, anything else is discarded. Spawning happens under the same lock as
//! reaping, so a child that exits immediately is registered before the reaper can see it —
//! no exit status is ever stolen.
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

#[derive(Debug, Default)]
pub struct Reaper {
    waiters: Mutex<HashMap<i32, oneshot::Sender<WaitStatus>>>,
}

impl Reaper {
    /// Starts the reaping loop. Also marks envd a child subreaper, so orphans of its
    /// processes come back to it even when it is not PID 1.
    pub fn start() -> io::Result<Arc<Self>> {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            tracing::warn!(error = %io::Error::last_os_error(), "Could not become a child subreaper.");
        }
        let reaper = Arc::new(Self::default());
        let mut sigchld = signal(SignalKind::child())?;
        let weak = Arc::downgrade(&reaper);
        tokio::spawn(async move {
            // The periodic pass covers SIGCHLDs that arrive while a pass is already running.
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    _ = sigchld.recv() => {}
                    _ = tick.tick() => {}
                }
                let Some(reaper) = weak.upgrade() else { return };
                reaper.reap();
            }
        });
        Ok(reaper)
    }

    /// Runs `spawn` (which forks) and registers the new child's pid before any reaping can
    /// happen. All forks go through here, which also serialises descriptor set-up (e.g. a
    /// PTY master becoming close-on-exec) against other forks.
    pub fn spawn<T>(
        &self,
        spawn: impl FnOnce() -> io::Result<(u32, T)>,
    ) -> io::Result<(u32, T, oneshot::Receiver<WaitStatus>)> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let (pid, value) = spawn()?;
        let (tx, rx) = oneshot::channel();
        waiters.insert(pid as i32, tx);
        Ok((pid, value, rx))
    }

    fn reap(&self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed.");
                    return;
                }
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    if !matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                        continue;
                    }
                    match waiters.remove(&pid.as_raw()) {
                        Some(tx) => {
                            let _ = tx.send(status);
                        }
                        None => tracing::debug!(pid = pid.as_raw(), "Reaped an orphan."),
                    }
                }
            }
        }
    }
}
