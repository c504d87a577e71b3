//! WebSocket bridges between clients and the agent's streaming RPCs: `exec/stream`,
//! `processes/{selector}/stream` and `pty` (API.md "Exec and processes").
//!
//! Each bridge is one task selecting over the client socket, the agent stream and a ticker.
//! The ticker sends the PTY `ping` frame every 30 s and, for every bridge, records activity so
//! a capsule someone is streaming from never auto-pauses. A client that goes away only drops
//! the agent stream: processes and PTY sessions keep running and can be re-attached.

use crate::app::App;
use crate::capsules::agent::{status_to_api, AgentClient};
use crate::capsules::exec::{self, ExecClientFrame};
use crate::capsules::lifecycle;
use crate::db::capsules::CapsuleRow;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use tonic::Streaming;
use wrenn_extension_api::ids;
use wrenn_proto::hostagent::v1 as pb;

/// Interval of the PTY `ping` frame and of activity refreshes while streaming.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

async fn send_json(socket: &mut WebSocket, value: serde_json::Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn send_error(socket: &mut WebSocket, message: &str, fatal: bool) {
    let _ = send_json(
        socket,
        serde_json::json!({"type": "error", "data": message, "fatal": fatal}),
    )
    .await;
}

async fn close(mut socket: WebSocket) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

/// The next text frame parsed as `T`; `None` when the client closed.
async fn next_frame<T: for<'de> Deserialize<'de>>(
    socket: &mut WebSocket,
) -> Option<Result<T, String>> {
    loop {
        match socket.recv().await? {
            Ok(Message::Text(t)) => {
                return Some(serde_json::from_str(t.as_str()).map_err(|e| e.to_string()))
            }
            Ok(Message::Binary(b)) => {
                return Some(serde_json::from_slice(&b).map_err(|e| e.to_string()))
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Forwards process events to the client until exit or the client leaves. `stop` frames kill
/// the process.
async fn pump_process(
    ctx: &App,
    row: &CapsuleRow,
    mut client: AgentClient,
    mut socket: WebSocket,
    mut stream: Streaming<pb::ProcessEvent>,
) {
    let sandbox_id = ids::encode(ids::CAPSULE, row.id);
    let mut pid: Option<u32> = None;
    let mut ticker = tokio::time::interval(PING_INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            event = stream.message() => match event {
                Ok(Some(pb::ProcessEvent { event: Some(event) })) => {
                    if let pb::process_event::Event::Start(s) = &event {
                        pid = Some(s.pid);
                    }
                    let exited = matches!(event, pb::process_event::Event::Exit(_));
                    if let Some(frame) = exec::event_frame(event) {
                        if !send_json(&mut socket, frame).await {
                            return;
                        }
                    }
                    if exited {
                        break;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(status) => {
                    let e = status_to_api(status);
                    let _ = send_json(&mut socket, serde_json::json!({"type": "error", "data": e.message})).await;
                    break;
                }
            },
            frame = next_frame::<ExecClientFrame>(&mut socket) => match frame {
                None => return,
                Some(Ok(ExecClientFrame::Stop)) => {
                    if let Some(pid) = pid {
                        if let Err(e) = exec::kill(&mut client, &sandbox_id, &pid.to_string(), 9).await {
                            let _ = send_json(&mut socket, serde_json::json!({"type": "error", "data": e.message})).await;
                        }
                    }
                }
                Some(Ok(ExecClientFrame::Start { .. })) => {
                    let _ = send_json(&mut socket, serde_json::json!({"type": "error", "data": "a process is already running on this stream"})).await;
                }
                Some(Err(e)) => {
                    let _ = send_json(&mut socket, serde_json::json!({"type": "error", "data": format!("bad frame: {e}")})).await;
                }
            },
            _ = ticker.tick() => lifecycle::touch(ctx, row, client.clone()),
        }
    }
    close(socket).await;
}

/// `WS /v1/capsules/{id}/exec/stream`.
pub async fn exec_stream(
    ctx: App,
    row: CapsuleRow,
    mut client: AgentClient,
    mut socket: WebSocket,
) {
    let start = match next_frame::<ExecClientFrame>(&mut socket).await {
        None => return,
        Some(Ok(ExecClientFrame::Start {
            cmd,
            args,
            envs,
            cwd,
            timeout_sec,
            user,
        })) => pb::ExecStreamRequest {
            sandbox_id: ids::encode(ids::CAPSULE, row.id),
            process: Some(pb::ProcessSpec {
                cmd,
                args,
                envs,
                cwd: cwd.unwrap_or_default(),
                user: user.unwrap_or_default(),
                tag: exec::new_tag("proc"),
            }),
            timeout_sec: timeout_sec.unwrap_or(0),
        },
        Some(Ok(ExecClientFrame::Stop)) => {
            send_error(&mut socket, "the first frame must be start", true).await;
            return close(socket).await;
        }
        Some(Err(e)) => {
            send_error(&mut socket, &format!("bad frame: {e}"), true).await;
            return close(socket).await;
        }
    };
    lifecycle::touch(&ctx, &row, client.clone());
    match client.exec_stream(start).await {
        Ok(stream) => pump_process(&ctx, &row, client, socket, stream.into_inner()).await,
        Err(status) => {
            let e = status_to_api(status);
            send_error(&mut socket, &e.message, true).await;
            close(socket).await;
        }
    }
}

/// `WS /v1/capsules/{id}/processes/{selector}/stream`.
pub async fn process_stream(
    ctx: App,
    row: CapsuleRow,
    mut client: AgentClient,
    selector: String,
    mut socket: WebSocket,
) {
    lifecycle::touch(&ctx, &row, client.clone());
    let request = pb::ConnectProcessRequest {
        sandbox_id: ids::encode(ids::CAPSULE, row.id),
        process: Some(exec::selector(&selector)),
    };
    match client.connect_process(request).await {
        Ok(stream) => pump_process(&ctx, &row, client, socket, stream.into_inner()).await,
        Err(status) => {
            let e = status_to_api(status);
            send_error(&mut socket, &e.message, true).await;
            close(socket).await;
        }
    }
}

/// A client frame of `WS /pty`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PtyClientFrame {
    Start {
        #[serde(default)]
        cmd: Option<String>,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        cols: Option<u32>,
        #[serde(default)]
        rows: Option<u32>,
        #[serde(default)]
        envs: HashMap<String, String>,
        #[serde(default)]
        cwd: Option<String>,
        #[serde(default)]
        user: Option<String>,
    },
    Connect {
        tag: String,
    },
    Input {
        data: String,
    },
    Resize {
        cols: u32,
        rows: u32,
    },
    Kill,
    Ping,
    Pong,
}

/// `WS /v1/capsules/{id}/pty`.
pub async fn pty(ctx: App, row: CapsuleRow, mut client: AgentClient, mut socket: WebSocket) {
    let sandbox_id = ids::encode(ids::CAPSULE, row.id);
    let b64 = base64::engine::general_purpose::STANDARD;
    let target = match next_frame::<PtyClientFrame>(&mut socket).await {
        None => return,
        Some(Ok(PtyClientFrame::Start {
            cmd,
            args,
            cols,
            rows,
            envs,
            cwd,
            user,
        })) => pb::pty_attach_request::Target::Start(pb::PtyStart {
            cmd: cmd.unwrap_or_else(|| "/bin/bash".into()),
            args,
            cols: cols.unwrap_or(80),
            rows: rows.unwrap_or(24),
            envs,
            cwd: cwd.unwrap_or_default(),
            user: user.unwrap_or_default(),
        }),
        Some(Ok(PtyClientFrame::Connect { tag })) => pb::pty_attach_request::Target::Tag(tag),
        Some(Ok(_)) => {
            send_error(
                &mut socket,
                "the first frame must be start or connect",
                true,
            )
            .await;
            return close(socket).await;
        }
        Some(Err(e)) => {
            send_error(&mut socket, &format!("bad frame: {e}"), true).await;
            return close(socket).await;
        }
    };
    // Input addressed to a re-attached session needs its tag before any event arrives.
    let mut tag = match &target {
        pb::pty_attach_request::Target::Tag(t) => t.clone(),
        pb::pty_attach_request::Target::Start(_) => String::new(),
    };
    lifecycle::touch(&ctx, &row, client.clone());
    let mut stream = match client
        .pty_attach(pb::PtyAttachRequest {
            sandbox_id: sandbox_id.clone(),
            target: Some(target),
        })
        .await
    {
        Ok(s) => s.into_inner(),
        Err(status) => {
            let e = status_to_api(status);
            send_error(&mut socket, &e.message, true).await;
            return close(socket).await;
        }
    };
    let mut ticker = tokio::time::interval(PING_INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            event = stream.message() => match event {
                Ok(Some(pb::PtyEvent { event: Some(event) })) => {
                    use pb::pty_event::Event;
                    let (frame, done) = match event {
                        Event::Started(s) => {
                            tag = s.tag.clone();
                            (serde_json::json!({"type": "started", "tag": s.tag, "pid": s.pid}), false)
                        }
                        Event::Output(b) => (serde_json::json!({"type": "output", "data": b64.encode(b)}), false),
                        Event::Exit(e) => (serde_json::json!({"type": "exit", "exit_code": e.exit_code}), true),
                        Event::Error(e) => (serde_json::json!({"type": "error", "data": e, "fatal": false}), false),
                    };
                    if !send_json(&mut socket, frame).await {
                        return;
                    }
                    if done {
                        break;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(status) => {
                    let e = status_to_api(status);
                    send_error(&mut socket, &e.message, true).await;
                    break;
                }
            },
            frame = next_frame::<PtyClientFrame>(&mut socket) => {
                let result = match frame {
                    None => return, // the PTY survives; re-attach with connect{tag}
                    Some(Err(e)) => Err(format!("bad frame: {e}")),
                    Some(Ok(PtyClientFrame::Input { data })) => match b64.decode(data.as_bytes()) {
                        Ok(bytes) => client
                            .pty_send_input(pb::PtySendInputRequest { sandbox_id: sandbox_id.clone(), tag: tag.clone(), data: bytes })
                            .await
                            .map(|_| ())
                            .map_err(|s| status_to_api(s).message.to_string()),
                        Err(_) => Err("input data must be base64".into()),
                    },
                    Some(Ok(PtyClientFrame::Resize { cols, rows })) => client
                        .pty_resize(pb::PtyResizeRequest { sandbox_id: sandbox_id.clone(), tag: tag.clone(), cols, rows })
                        .await
                        .map(|_| ())
                        .map_err(|s| status_to_api(s).message.to_string()),
                    Some(Ok(PtyClientFrame::Kill)) => client
                        .pty_kill(pb::PtyKillRequest { sandbox_id: sandbox_id.clone(), tag: tag.clone() })
                        .await
                        .map(|_| ())
                        .map_err(|s| status_to_api(s).message.to_string()),
                    Some(Ok(PtyClientFrame::Ping | PtyClientFrame::Pong)) => Ok(()),
                    Some(Ok(PtyClientFrame::Start { .. } | PtyClientFrame::Connect { .. })) => {
                        Err("this socket is already attached to a PTY".into())
                    }
                };
                if let Err(message) = result {
                    send_error(&mut socket, &message, false).await;
                }
            },
            _ = ticker.tick() => {
                if !send_json(&mut socket, serde_json::json!({"type": "ping"})).await {
                    return;
                }
                lifecycle::touch(&ctx, &row, client.clone());
            }
        }
    }
    close(socket).await;
}
