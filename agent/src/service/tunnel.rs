//! The port proxy's byte tunnel.
//!
//! Capsules may have no network interface (gVisor with `--network=none`), so the tunnel
//! rides the control transport: `GET /tunnel/{port}` on envd with `Upgrade: wrenn-tunnel`
//! makes envd connect to `127.0.0.1:{port}` inside the capsule; after `101` the connection
//! carries raw bytes both ways, which this RPC maps to and from frames.

use futures::StreamExt;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use wrenn_proto::hostagent::v1 as pb;
use wrenn_proto::hostagent::v1::tunnel_frame::Frame;

use super::{AgentService, RpcStream};
use crate::envd::{connector, ACCESS_TOKEN_HEADER};

const PROTOCOL: &str = "wrenn-tunnel";

pub async fn open(
    svc: &AgentService,
    mut client: Streaming<pb::TunnelFrame>,
) -> Result<RpcStream<pb::TunnelFrame>, Status> {
    let open = match client.next().await {
        Some(Ok(pb::TunnelFrame {
            frame: Some(Frame::Open(o)),
        })) => o,
        Some(Err(s)) => return Err(s),
        _ => return Err(Status::invalid_argument("the first frame must be `open`")),
    };
    if open.port == 0 || open.port > 65535 {
        return Err(Status::invalid_argument("port must be 1-65535"));
    }
    let capsule = svc.host.running(&open.sandbox_id)?;
    let envd = capsule.envd();
    let stream = connector::connect(envd.address())
        .await
        .map_err(|e| Status::unavailable(format!("envd unreachable: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Status::unavailable(format!("envd handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = http::Request::builder()
        .method("GET")
        .uri(format!("/tunnel/{}", open.port))
        .header(http::header::HOST, "envd")
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, PROTOCOL);
    if let Some(token) = envd.token() {
        req = req.header(ACCESS_TOKEN_HEADER, token);
    }
    let req = req
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| Status::internal(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| Status::unavailable(format!("envd: {e}")))?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let code = resp.status();
        return Err(match code.as_u16() {
            400 => Status::invalid_argument("envd refused the port"),
            502..=504 => {
                let mut s = Status::unavailable(format!(
                    "nothing listens on port {} in the capsule",
                    open.port
                ));
                if let Ok(v) = open.port.to_string().parse() {
                    s.metadata_mut()
                        .insert(wrenn_proto::hostagent::PORT_CLOSED_METADATA, v);
                }
                s
            }
            _ => Status::unavailable(format!("envd answered {code} to the tunnel")),
        });
    }
    let upgraded = hyper::upgrade::on(resp)
        .await
        .map_err(|e| Status::unavailable(format!("upgrade: {e}")))?;
    let (mut rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));

    // Client frames → capsule port.
    let pump = capsule.clone();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = client.next().await {
            pump.touch();
            let open = match frame.frame {
                Some(Frame::Data(data)) => wr.write_all(&data).await.is_ok(),
                Some(Frame::Close(_)) => false,
                _ => true,
            };
            if !open {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    // Capsule port → frames.
    let (tx, rx) = mpsc::channel::<Result<pb::TunnelFrame, Status>>(32);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = tx
                        .send(Ok(pb::TunnelFrame {
                            frame: Some(Frame::Close(true)),
                        }))
                        .await;
                    break;
                }
                Ok(n) => {
                    capsule.touch();
                    if tx
                        .send(Ok(pb::TunnelFrame {
                            frame: Some(Frame::Data(buf[..n].to_vec())),
                        }))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
