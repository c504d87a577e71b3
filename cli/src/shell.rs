//! `wrenn shell ID`: an interactive terminal over `WS /v1/capsules/{id}/pty`.
//!
//! The local terminal goes to raw mode once the session is up (so Ctrl-C, Ctrl-Z and line
//! editing belong to the remote shell) and comes back on every way out: the shell exiting,
//! a lost connection, SIGTERM/SIGHUP, an error. The window size is sent at start and on
//! every SIGWINCH. Ctrl-] detaches: the session keeps running in the capsule and the tag to
//! re-attach with (`--attach TAG`) is printed, as it is when the connection drops.

use crate::cli::ShellArgs;
use crate::client::{segment, Client};
use crate::error::{CliError, Result};
use crate::output;
use crate::terminal::{self, RawMode};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use std::io::Read;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Ctrl-]: leaves the session running and returns to the local shell.
const DETACH: u8 = 0x1d;

/// A login shell: bash where the image has it, else sh.
const DEFAULT_SHELL: [&str; 3] = [
    "/bin/sh",
    "-c",
    "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi",
];

/// How a session ended.
enum End {
    Exited(i32),
    Detached,
    Lost(String),
}

pub async fn run(client: &Client, args: ShellArgs, json: bool) -> Result<i32> {
    let interactive = terminal::stdin_is_terminal();
    let (cols, rows) = terminal::window_size().unwrap_or((80, 24));
    let path = format!("/v1/capsules/{}/pty", segment(&args.id));
    let url = client.url(&path);
    let mut ws = client.websocket(&path).await?;
    let lost = |e: tokio_tungstenite::tungstenite::Error| CliError::Network {
        url: url.clone(),
        detail: e.to_string(),
    };

    let mut tag = args.attach.clone().unwrap_or_default();
    match &args.attach {
        Some(tag) => {
            send(&mut ws, json!({"type": "connect", "tag": tag}))
                .await
                .map_err(lost)?;
            // The re-attached session takes this terminal's size (and redraws).
            send(
                &mut ws,
                json!({"type": "resize", "cols": cols, "rows": rows}),
            )
            .await
            .map_err(lost)?;
        }
        None => {
            let (cmd, cmd_args): (String, Vec<String>) = match args.command.split_first() {
                Some((c, rest)) => (c.clone(), rest.to_vec()),
                None => (
                    DEFAULT_SHELL[0].to_string(),
                    DEFAULT_SHELL[1..].iter().map(|s| s.to_string()).collect(),
                ),
            };
            let mut envs: Map<String, Value> = args
                .env
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            if !envs.contains_key("TERM") {
                let term = std::env::var("TERM")
                    .ok()
                    .filter(|t| !t.is_empty() && t != "dumb")
                    .unwrap_or_else(|| "xterm-256color".into());
                envs.insert("TERM".into(), json!(term));
            }
            let mut start = json!({"type": "start", "cmd": cmd, "args": cmd_args,
                "cols": cols, "rows": rows, "envs": envs});
            if let Some(cwd) = &args.cwd {
                start["cwd"] = json!(cwd);
            }
            send(&mut ws, start).await.map_err(lost)?;
            // Wait for the session before touching the terminal, so a refusal prints plainly.
            loop {
                let frame = match ws.next().await {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Err(lost(e)),
                    None => {
                        return Err(CliError::Network {
                            url: url.clone(),
                            detail: "the connection closed before the terminal started".into(),
                        })
                    }
                };
                let Some(frame) = parse(&frame) else { continue };
                match kind(&frame) {
                    "started" => {
                        tag = frame["tag"].as_str().unwrap_or_default().to_string();
                        break;
                    }
                    "error" => return Err(remote_error(&frame)),
                    "exit" => return Ok(exit_code(&frame)),
                    _ => {}
                }
            }
        }
    }

    let raw = if interactive {
        Some(RawMode::enter().map_err(|e| crate::error::fail(format!("raw terminal mode: {e}")))?)
    } else {
        None
    };
    let end = session(&mut ws, interactive).await;
    drop(raw);

    let reattach = format!("wrenn shell {} --attach {tag}", args.id);
    match end {
        Ok(End::Exited(code)) => Ok(code),
        Ok(End::Detached) => {
            note(json, &tag, "detached", &reattach);
            Ok(0)
        }
        Ok(End::Lost(why)) => {
            note(json, &tag, &format!("connection lost ({why})"), &reattach);
            Ok(1)
        }
        Err(e) => {
            if !tag.is_empty() {
                note(json, &tag, "session left", &reattach);
            }
            Err(e)
        }
    }
}

/// Tells the user how to get back to a session that is still running.
fn note(json: bool, tag: &str, what: &str, reattach: &str) {
    if json {
        eprintln!("{}", json!({"event": what, "tag": tag}));
    } else {
        eprintln!("\r\nwrenn: {what}; the session {tag} keeps running. Re-attach with: {reattach}");
    }
}

/// Moves bytes between the terminal and the socket until the remote program exits, the user
/// detaches or the connection ends.
async fn session(ws: &mut crate::client::WebSocket, interactive: bool) -> Result<End> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let input = stdin_reader();
    let mut input = Some(input);
    let mut winch = signal(SignalKind::window_change())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    // Without raw mode Ctrl-C reaches this process, not the remote program.
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let frame = match frame {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Ok(End::Lost(e.to_string())),
                    None => return Ok(End::Lost("closed by the server".into())),
                };
                if let Message::Close(_) = frame {
                    return Ok(End::Lost("closed by the server".into()));
                }
                let Some(frame) = parse(&frame) else { continue };
                match kind(&frame) {
                    "output" => {
                        let data = frame["data"].as_str().unwrap_or_default();
                        if let Ok(bytes) = b64.decode(data) {
                            output::out_bytes(&bytes)?;
                        }
                    }
                    "exit" => return Ok(End::Exited(exit_code(&frame))),
                    "error" if frame["fatal"].as_bool() == Some(true) => {
                        return Err(remote_error(&frame));
                    }
                    "error" => {
                        let data = frame["data"].as_str().unwrap_or_default();
                        eprint!("\r\nwrenn: {data}\r\n");
                    }
                    _ => {} // ping
                }
            }
            chunk = recv(&mut input) => match chunk {
                Some(bytes) => {
                    if interactive {
                        if let Some(at) = bytes.iter().position(|&b| b == DETACH) {
                            if at > 0 {
                                let _ = send(ws, json!({"type": "input", "data": b64.encode(&bytes[..at])})).await;
                            }
                            let _ = ws.close(None).await;
                            return Ok(End::Detached);
                        }
                    }
                    if let Err(e) = send(ws, json!({"type": "input", "data": b64.encode(&bytes)})).await {
                        return Ok(End::Lost(e.to_string()));
                    }
                }
                None => {
                    // End of piped input: end-of-file for the remote terminal too.
                    input = None;
                    let _ = send(ws, json!({"type": "input", "data": b64.encode([4u8])})).await;
                }
            },
            _ = winch.recv() => {
                if let Some((cols, rows)) = terminal::window_size() {
                    let _ = send(ws, json!({"type": "resize", "cols": cols, "rows": rows})).await;
                }
            }
            _ = term.recv() => return Ok(End::Detached),
            _ = hangup.recv() => return Ok(End::Detached),
            _ = interrupt.recv() => {
                if interactive {
                    let _ = send(ws, json!({"type": "input", "data": b64.encode([3u8])})).await;
                } else {
                    return Ok(End::Detached);
                }
            }
        }
    }
}

/// The next chunk from stdin, or pending forever once stdin has ended.
async fn recv(input: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match input {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads stdin on a thread of its own (a blocking read cannot be cancelled; the thread ends
/// with the process).
fn stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

async fn send(
    ws: &mut crate::client::WebSocket,
    frame: Value,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(Message::Text(frame.to_string().into())).await
}

fn parse(message: &Message) -> Option<Value> {
    match message {
        Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
        Message::Binary(b) => serde_json::from_slice(b).ok(),
        _ => None,
    }
}

fn kind(frame: &Value) -> &str {
    frame.get("type").and_then(Value::as_str).unwrap_or("")
}

fn remote_error(frame: &Value) -> CliError {
    CliError::Api {
        status: 0,
        code: "pty_error".into(),
        message: frame["data"]
            .as_str()
            .unwrap_or("terminal error")
            .to_string(),
        raw: None,
    }
}

fn exit_code(frame: &Value) -> i32 {
    match frame.get("exit_code").and_then(Value::as_i64) {
        Some(c @ 0..=255) => c as i32,
        _ => 1,
    }
}
