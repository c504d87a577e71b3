//! The local terminal: raw mode for `wrenn shell` (restored when the guard drops, on every
//! way out including unwinding), the window size, and reading a secret without echo.

use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsFd;

/// Raw mode on stdin while alive; the previous settings come back on drop.
pub struct RawMode {
    stdin: std::io::Stdin,
    saved: Termios,
}

impl RawMode {
    /// Puts the terminal on stdin in raw mode (no echo, no line editing, no signals from
    /// Ctrl-C/Ctrl-Z: those bytes go to the remote program).
    pub fn enter() -> nix::Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(Self { stdin, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.stdin.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

nix::ioctl_read_bad!(get_window_size, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// The terminal's size as (columns, rows), from stdout, stdin or stderr, whichever is a
/// terminal.
pub fn window_size() -> Option<(u16, u16)> {
    use std::os::fd::AsRawFd;
    let fds = [
        std::io::stdout().as_raw_fd(),
        std::io::stdin().as_raw_fd(),
        std::io::stderr().as_raw_fd(),
    ];
    for fd in fds {
        let mut size = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own; on a descriptor
        // that is not a terminal it fails with ENOTTY and writes nothing.
        let ok = unsafe { get_window_size(fd, &mut size) }.is_ok();
        if ok && size.ws_col > 0 && size.ws_row > 0 {
            return Some((size.ws_col, size.ws_row));
        }
    }
    None
}

/// Why no secret was read.
#[derive(Debug)]
pub enum PromptError {
    Cancelled,
    Io(std::io::Error),
}

/// Prints `prompt` on stderr and reads one line from the terminal on stdin with echo off.
/// Ctrl-C cancels (signals are off meanwhile, so the echo setting is always restored).
pub fn read_secret(prompt: &str) -> Result<String, PromptError> {
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let saved = termios::tcgetattr(stdin.as_fd()).map_err(|e| PromptError::Io(e.into()))?;
    let mut quiet = saved.clone();
    quiet
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ISIG);
    quiet.local_flags.insert(LocalFlags::ICANON);
    termios::tcsetattr(stdin.as_fd(), SetArg::TCSAFLUSH, &quiet)
        .map_err(|e| PromptError::Io(e.into()))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSAFLUSH, &saved);
    eprintln!();
    read.map_err(PromptError::Io)?;
    if line.contains('\u{3}') {
        return Err(PromptError::Cancelled);
    }
    Ok(line.trim().to_string())
}

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
