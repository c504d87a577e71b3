//! `wrenn exec ID -- CMD ARGS...`: runs a command over `WS /v1/capsules/{id}/exec/stream`,
//! writing its stdout and stderr as they arrive, and exits with its exit code. Ctrl-C sends
//! `{"type":"stop"}` (the process is killed and its exit code reported); a second Ctrl-C
//! leaves at once with 130.
//!
//! `--timeout SECS` goes to the server as the start frame's `timeout_sec`, and is also kept
//! here: agents that do not apply it to streams exist, so at the deadline this sends `stop`
//! itself and exits 124 (as `timeout(1)` does).
//!
//! With `--json` every server frame is printed on stdout as one JSON line, as received.

use crate::cli::ExecArgs;
use crate::client::{segment, Client};
use crate::error::{CliError, Result};
use crate::output;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::signal::unix::{signal, SignalKind};
use tokio_tungstenite::tungstenite::Message;

pub async fn run(client: &Client, args: ExecArgs, json: bool) -> Result<i32> {
    let (cmd, cmd_args) = args
        .command
        .split_first()
        .ok_or_else(|| crate::usage("give the command to run after --"))?;
    let path = format!("/v1/capsules/{}/exec/stream", segment(&args.id));
    let mut ws = client.websocket(&path).await?;
    let mut start = json!({"type": "start", "cmd": cmd, "args": cmd_args});
    if !args.env.is_empty() {
        let envs: Map<String, Value> = args
            .env
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        start["envs"] = Value::Object(envs);
    }
    if let Some(cwd) = &args.cwd {
        start["cwd"] = json!(cwd);
    }
    if let Some(t) = args.timeout {
        start["timeout_sec"] = json!(t);
    }
    let url = client.url(&path);
    let lost = |e: tokio_tungstenite::tungstenite::Error| CliError::Network {
        url: url.clone(),
        detail: e.to_string(),
    };
    ws.send(Message::Text(start.to_string().into()))
        .await
        .map_err(lost)?;

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut stopping = false;
    let mut timed_out = false;
    let deadline = args
        .timeout
        .filter(|&t| t > 0)
        .map(|t| tokio::time::Instant::now() + std::time::Duration::from_secs(u64::from(t)));
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(lost(e)),
                };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if json {
                    output::out(&format!("{}\n", text.trim_end()))?;
                }
                let data = frame.get("data").and_then(Value::as_str).unwrap_or("");
                match frame.get("type").and_then(Value::as_str).unwrap_or("") {
                    "stdout" if !json => output::out(data)?,
                    "stderr" if !json => {
                        use std::io::Write;
                        let mut err = std::io::stderr().lock();
                        err.write_all(data.as_bytes())?;
                        err.flush()?;
                    }
                    "exit" => {
                        if timed_out {
                            return Ok(TIMED_OUT);
                        }
                        let code = frame.get("exit_code").and_then(Value::as_i64).unwrap_or(-1);
                        return Ok(exit_code(code));
                    }
                    "error" => {
                        if !json {
                            eprintln!("error: {data}");
                        }
                        last_error = Some(data.to_string());
                    }
                    _ => {}
                }
            }
            _ = sleep_until(deadline), if !timed_out => {
                timed_out = true;
                if !json {
                    eprintln!("wrenn: the command ran over {} s; stopping it", args.timeout.unwrap_or(0));
                }
                let stop = json!({"type": "stop"}).to_string();
                if ws.send(Message::Text(stop.into())).await.is_err() {
                    return Ok(TIMED_OUT);
                }
            }
            _ = interrupt.recv() => {
                if stopping {
                    return Ok(130);
                }
                stopping = true;
                let stop = json!({"type": "stop"}).to_string();
                if ws.send(Message::Text(stop.into())).await.is_err() {
                    return Ok(130);
                }
            }
        }
    }
    // Closed without an exit frame: the server said why in an error frame (already shown),
    // or the connection dropped.
    if timed_out {
        return Ok(TIMED_OUT);
    }
    match last_error {
        Some(_) => Ok(1),
        None => Err(CliError::Network {
            url: client.url(&path),
            detail: "the connection closed before the command exited".into(),
        }),
    }
}

/// The exit code when `--timeout` stopped the command.
const TIMED_OUT: i32 = 124;

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The remote exit code as a process exit code: 0–255 as they are (a signal death arrives
/// as 128 + signal), anything else (-1: unknown) as 1.
fn exit_code(code: i64) -> i32 {
    if (0..=255).contains(&code) {
        code as i32
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes() {
        assert_eq!(super::exit_code(7), 7);
        assert_eq!(super::exit_code(137), 137);
        assert_eq!(super::exit_code(-1), 1);
        assert_eq!(super::exit_code(256), 1);
    }
}
