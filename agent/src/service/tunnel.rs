//! The port proxy's byte tunnel.
//!
//! Capsules may have no network interface (gVisor with `--network=none`), so the tunnel
//! goes through envd: a relay process inside the capsule (`socat`, else busybox `nc`)
//! connects to `127.0.0.1:<port>`; client bytes become its stdin (envd StreamInput) and
//! its stdout comes back as frames.

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use wrenn_proto::envd::v1 as envd;
use wrenn_proto::hostagent::v1 as pb;

use super::{envd_status, AgentService, RpcStream};

const RELAY: &str = "if command -v socat >/dev/null 2>&1; then exec socat - TCP:127.0.0.1:$0; \
                     else exec nc 127.0.0.1 $0; fi";

pub async fn open(svc: &AgentService, mut client: Streaming<pb::TunnelFrame>) -> Result<RpcStream<pb::TunnelFrame>, Status> {
    use pb::tunnel_frame::Frame;
    let open = match client.next().await {
        Some(Ok(pb::TunnelFrame { frame: Some(Frame::Open(o)) })) => o,
        Some(Err(s)) => return Err(s),
        _ => return Err(Status::invalid_argument("the first frame must be `open`")),
    };
    if open.port == 0 || open.port > 65535 {
        return Err(Status::invalid_argument("port must be 1-65535"));
    }
    let capsule = svc.host.running(&open.sandbox_id)?;
    let envd = capsule.envd();
    let tag = format!("tunnel-{}", hex::encode(rand::random::<[u8; 6]>()));
    let start = envd::StartRequest {
        process: Some(envd::ProcessConfig {
            cmd: "/bin/sh".into(),
            args: vec!["-c".into(), RELAY.into(), open.port.to_string()],
            envs: Default::default(),
            cwd: Some("/".into()),
            user: Some("root".into()),
        }),
        tag: Some(tag.clone()),
        pty: None,
        stdin: true,
    };
    let mut output = envd.process().start(envd.request(start)).await.map_err(envd_status)?.into_inner();
    let selector = || envd::ProcessSelector { selector: Some(envd::process_selector::Selector::Tag(tag.clone())) };

    // Client → relay stdin.
    let (in_tx, in_rx) = mpsc::channel::<envd::StreamInputRequest>(32);
    let _ = in_tx
        .send(envd::StreamInputRequest {
            event: Some(envd::stream_input_request::Event::Start(envd::stream_input_request::StartEvent {
                process: Some(selector()),
            })),
        })
        .await;
    let input_envd = envd.clone();
    tokio::spawn(async move {
        let mut p = input_envd.process();
        let _ = p.stream_input(input_envd.request(ReceiverStream::new(in_rx))).await;
    });
    let pump_capsule = capsule.clone();
    let close_envd = envd.clone();
    let close_sel = selector();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = client.next().await {
            pump_capsule.touch();
            match frame.frame {
                Some(Frame::Data(data)) => {
                    let msg = envd::StreamInputRequest {
                        event: Some(envd::stream_input_request::Event::Data(envd::stream_input_request::DataEvent {
                            input: Some(envd::ProcessInput { input: Some(envd::process_input::Input::Stdin(data)) }),
                        })),
                    };
                    if in_tx.send(msg).await.is_err() {
                        break;
                    }
                }
                Some(Frame::Close(_)) => break,
                _ => {}
            }
        }
        drop(in_tx);
        let req = envd::CloseStdinRequest { process: Some(close_sel) };
        let _ = close_envd.process().close_stdin(close_envd.request(req)).await;
    });

    // Relay stdout → client.
    let (out_tx, out_rx) = mpsc::channel::<Result<pb::TunnelFrame, Status>>(32);
    tokio::spawn(async move {
        use envd::process_event::data_event::Output;
        use envd::process_event::Event;
        while let Some(item) = output.next().await {
            capsule.touch();
            let frame = match item.map(|m| m.event.and_then(|e| e.event)) {
                Ok(Some(Event::Data(d))) => match d.output {
                    Some(Output::Stdout(b)) => pb::TunnelFrame { frame: Some(Frame::Data(b)) },
                    _ => continue,
                },
                Ok(Some(Event::End(_))) => pb::TunnelFrame { frame: Some(Frame::Close(true)) },
                Ok(_) => continue,
                Err(s) => {
                    let _ = out_tx.send(Err(envd_status(s))).await;
                    break;
                }
            };
            let end = matches!(frame.frame, Some(Frame::Close(_)));
            if out_tx.send(Ok(frame)).await.is_err() || end {
                break;
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(out_rx)))
}
