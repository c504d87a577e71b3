//! A pseudo-terminal for driving `wrenn shell` as a person at a terminal would.

use super::{Wrenn, BIN};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pseudo-terminal whose slave is the controlling terminal of a `wrenn` process; what it
/// prints is collected from the master by a thread.
pub struct Pty {
    master: std::fs::File,
    /// Kept open so the slave's settings can be read after the process exits.
    slave: OwnedFd,
    seen: Arc<Mutex<Vec<u8>>>,
    child: std::process::Child,
}

nix::ioctl_write_int_bad!(set_controlling_tty, nix::libc::TIOCSCTTY);
nix::ioctl_write_ptr_bad!(set_window_size, nix::libc::TIOCSWINSZ, nix::libc::winsize);

fn winsize(rows: u16, cols: u16) -> nix::libc::winsize {
    nix::libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Pty {
    pub fn spawn(w: &Wrenn, args: &[&str]) -> Pty {
        use std::os::unix::process::CommandExt;
        let pty = nix::pty::openpty(Some(&winsize(24, 80)), None).expect("openpty");
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args)
            .env_remove("WRENN_URL")
            .env_remove("WRENN_API_KEY")
            .env("HOME", w.home.path())
            .env("WRENN_CONFIG", &w.config)
            .env("TERM", "xterm")
            .stdin(pty.slave.try_clone().unwrap())
            .stdout(pty.slave.try_clone().unwrap())
            .stderr(pty.slave.try_clone().unwrap());
        // SAFETY: between fork and exec only async-signal-safe calls: setsid(2) and
        // ioctl(2) making the pty (the child's fd 0) its controlling terminal, so that
        // resizing it sends the child SIGWINCH.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                set_controlling_tty(0, 0)?;
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn wrenn shell");
        let master = std::fs::File::from(pty.master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            slave: pty.slave,
            seen,
            child,
        }
    }

    pub fn type_text(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until `needle` shows up (after `from` bytes of output), up to `secs`.
    pub async fn wait_for(&self, needle: &str, from: usize, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            let seen = self.seen.lock().unwrap().clone();
            if String::from_utf8_lossy(&seen[from.min(seen.len())..]).contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        let size = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which outlives the call.
        unsafe { set_window_size(self.master.as_raw_fd(), &size) }.expect("TIOCSWINSZ");
    }

    /// Waits (up to 3 s) until the output has stopped growing: the reader thread may not have
    /// read a process's last words yet when it exits (the slave stays open, so there is no EOF
    /// to wait for).
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = self.len();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.len();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Waits for the process to exit (up to `secs`), then for its last output to be read.
    pub async fn exit_code(&mut self, secs: u64) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.settle().await;
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "wrenn shell still running; output: {}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The slave's terminal is back in cooked mode (echo and line editing on).
    pub fn assert_restored(&self) {
        use nix::sys::termios::{tcgetattr, LocalFlags};
        let t = tcgetattr(&self.slave).unwrap();
        assert!(
            t.local_flags
                .contains(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG),
            "terminal left in raw mode: {:?}",
            t.local_flags
        );
    }
}
